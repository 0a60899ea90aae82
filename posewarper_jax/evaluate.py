"""run.py --mode=eval: single-frame and aggregated poses on a split, written and scored.

    results = evaluate(config, workdir)   # {'single frame': posetrack_map result, ...}

For every box (ground truth, or a detector's with score >= config.eval.min_box_score) of the
split's labeled frames: the single-frame network's heatmaps, and with config.eval.aggregate the
spatiotemporal aggregation of spec 3 (frames delta in AGGREGATION_DELTAS, warped to the current
frame and weighted), optionally with the flip test; decoded (inference.decode), written as
per-video PoseTrack 2018 prediction files and scored with the official mAP. Everything lands in
<workdir>/eval/<split>/: <row>/predictions/*.json, results.json and results.md.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Sequence

import cv2
import jax
import numpy as np

from posewarper_jax import checkpoints, inference, render, train
from posewarper_jax.data import source
from posewarper_jax.data.keypoints import NUM_JOINTS
from posewarper_jax.data.pipeline import (
  EvalInput,
  detection_boxes,
  evaluation_dataset,
  ground_truth_boxes,
)
from posewarper_jax.metrics import posetrack_map
from posewarper_jax.models import AGGREGATION_DELTAS, PoseWarper, create_model

# TFDS split names -> the official annotation folders.
SPLIT_DIRS = {'train': 'train', 'validation': 'val', 'test': 'test'}
ROWS = ('single frame', 'aggregation')


def split_dir(config) -> str:
  """The official annotation folder of config.eval.split."""
  if config.eval.split not in SPLIT_DIRS:
    raise ValueError(f'config.eval.split must be one of {", ".join(SPLIT_DIRS)}, '
                     f'got {config.eval.split!r}')
  return SPLIT_DIRS[config.eval.split]


def heatmap_functions(model: PoseWarper, flip_test: bool) -> dict[str, Callable]:
  """Row name -> jitted (variables, frames uint8 [N, T, H, W, 3]) -> heatmaps [N, h, w, J]."""

  def with_flip(fn):
    if not flip_test:
      return fn
    # HRNet's flip test: the mirrored crops' heatmaps, mirrored back, averaged with the plain.
    def flipped(variables, frames):
      back = inference.flip_back(fn(variables, frames[:, :, :, ::-1]))
      return 0.5 * (fn(variables, frames) + back)
    return flipped

  def single(variables, frames):
    return model.apply(variables, train.normalize(frames[:, 0]), method=PoseWarper.single_frame)

  def aggregated(variables, frames):
    return model.apply(variables, train.normalize(frames), method=PoseWarper.aggregate)

  return {'single frame': jax.jit(with_flip(single)), 'aggregation': jax.jit(with_flip(aggregated))}


def predict(config, workdir: str | pathlib.Path) -> dict[str, tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray]]:
  """Row -> (image_ids [N], xy [N, 17, 2] frame pixels, scores [N, 17]) over the split's boxes."""
  workdir = pathlib.Path(workdir)
  settings = config.eval
  split_dir(config)  # checks config.eval.split before any work
  records, table = source.open_split(config, workdir, settings.split)
  if settings.boxes == 'gt':
    boxes = ground_truth_boxes(records, table)
  else:
    boxes = detection_boxes(settings.boxes, records, table, settings.min_box_score)
  if len(boxes.record) == 0:
    raise ValueError(f'config.eval.boxes={settings.boxes!r}: no box on a labeled frame of the '
                     f'{settings.split} split')
  network = checkpoints.load_network(config, workdir)
  variables, path = network.variables, network.checkpoint.describe()
  rows = [r for r in ROWS if r == 'single frame' or (settings.aggregate and network.has_head)]
  if settings.aggregate and not network.has_head:
    print(f'eval: {path} has no warping head; only the single-frame row', flush=True)
  print(f'eval: {path} on {len(boxes.record)} boxes ({settings.boxes}) of the '
        f'{settings.split} split: {", ".join(rows)}', flush=True)
  outputs = infer_boxes(config, records, table, boxes, variables, rows, settings.flip_test)
  if settings.oks_nms > 0:
    areas = boxes.box[:, 2] * boxes.box[:, 3]
    for row, (image_ids, xy, scores) in outputs.items():
      keep = inference.nms_per_frame(image_ids, xy, scores, areas, settings.oks_nms)
      print(f'eval: OKS-NMS at {settings.oks_nms} keeps {keep.sum()} of {len(keep)} poses '
            f'({row})', flush=True)
      outputs[row] = (image_ids[keep], xy[keep], scores[keep])
  return outputs


def infer_boxes(config, records, table, boxes, variables, rows: Sequence[str],
                flip_test: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Row ('single frame', 'aggregation') -> (image_ids [N], xy [N, 17, 2], scores [N, 17]) of
  the boxes, in box order: crops, heatmaps, decoding, scores times the box scores."""
  model = create_model(config)
  functions = heatmap_functions(model, flip_test)
  deltas = AGGREGATION_DELTAS if 'aggregation' in rows else (0,)
  stream = evaluation_dataset(records, table, boxes, EvalInput(
      image_size=tuple(config.image_size), deltas=deltas, batch=config.eval.batch))
  variables = jax.device_put(variables)
  outputs = {row: ([], []) for row in rows}
  kept_records = []
  for batch in stream:
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in batch.items()}
    valid = flat['valid']
    kept_records.append(flat['record'][valid])
    for row in rows:
      heatmaps = np.asarray(functions[row](variables, flat['frames']))[valid]
      xy, peak = inference.decode(heatmaps, flat['center'][valid], flat['scale'][valid])
      outputs[row][0].append(xy)
      outputs[row][1].append(peak * flat['score'][valid][:, None])
  image_ids = image_ids_of(records, np.concatenate(kept_records))
  return {row: (image_ids, np.concatenate(xy), np.concatenate(scores))
          for row, (xy, scores) in outputs.items()}


def image_ids_of(records, record_index: np.ndarray) -> np.ndarray:
  """The PoseTrack image ids of records (each record read once)."""
  ids = {int(r): int(records[int(r)]['image_id']) for r in np.unique(record_index)}
  return np.asarray([ids[int(r)] for r in record_index], np.int64)


def evaluate(config, workdir: str | pathlib.Path) -> dict[str, dict]:
  """Predicts, writes and scores every row; returns row -> the posetrack_map result."""
  workdir = pathlib.Path(workdir)
  gt_dir = source.dataset_root(config, workdir) / 'annotations' / split_dir(config)
  out = workdir / 'eval' / split_dir(config)
  results = {}
  for row, (image_ids, xy, scores) in predict(config, workdir).items():
    if config.eval.neck_from_shoulders:
      xy, scores = inference.neck_from_shoulders(xy, scores)
    pred_dir = out / row.replace(' ', '_') / 'predictions'
    if jax.process_index() == 0:
      inference.write_predictions(pred_dir, gt_dir, image_ids, xy, scores)
      results[row] = posetrack_map.evaluate(gt_dir, pred_dir)
      results[row]['label'] = row
  if jax.process_index() == 0 and config.eval.gallery and results:
    row = list(results)[-1]  # aggregation when there is a head
    gallery = out / row.replace(' ', '_') / 'gallery'
    worst_frames_gallery(gt_dir, out / row.replace(' ', '_') / 'predictions',
                         source.dataset_root(config, workdir), gallery)
    print(f'eval: the worst frames per joint ({row}) in {gallery}', flush=True)
  if jax.process_index() == 0:
    (out / 'results.json').write_text(json.dumps(results, indent=1))
    table = results_table(results, f'{config.eval.split}, {config.eval.boxes} boxes')
    (out / 'results.md').write_text(table + '\n')
    print(table, flush=True)
    print(f'eval: predictions and results in {out}', flush=True)
  return results


def worst_frames_gallery(gt_dir: pathlib.Path, pred_dir: pathlib.Path,
                         image_root: pathlib.Path, out_dir: pathlib.Path, per_joint: int = 4,
                         min_score: float = 0.2) -> int:
  """For each of the 15 joints, the frames with the most mistakes on it (posetrack_map.
  frame_errors): the predictions drawn, that joint's ground truth ringed in white, in
  <out_dir>/<joint>.png. Returns the number of images written."""
  frames = [frame for path in sorted(gt_dir.glob('*.json'))
            for frame in posetrack_map.load_video(path, pred_dir / path.name)]
  if not frames:
    return 0
  errors = np.stack([posetrack_map.frame_errors(f, min_score) for f in frames])  # [F, 15]
  written = 0
  for j, joint in enumerate(posetrack_map.POSEVAL_JOINTS):
    worst = [i for i in np.argsort(-errors[:, j], kind='stable')[:per_joint] if errors[i, j] > 0]
    tiles = []
    for i in worst:
      frame = frames[i]
      image = cv2.imread(str(image_root / frame.file_name), cv2.IMREAD_COLOR_RGB)
      if image is None:
        raise FileNotFoundError(f'gallery: cannot read {image_root / frame.file_name}')
      xy = np.zeros((len(frame.pred_xy), NUM_JOINTS, 2))
      scores = np.zeros((len(frame.pred_xy), NUM_JOINTS))
      xy[:, list(posetrack_map.POSEVAL_TO_POSETRACK)] = frame.pred_xy
      scores[:, list(posetrack_map.POSEVAL_TO_POSETRACK)] = np.nan_to_num(frame.pred_score)
      drawn = render.draw_poses(image, xy, scores, min_score)
      radius = max(6, image.shape[0] // 60)
      for g in np.flatnonzero(frame.gt_has[:, j]):
        cv2.circle(drawn, tuple(int(round(v)) for v in frame.gt_xy[g, j]), radius,
                   (255, 255, 255), 2, cv2.LINE_AA)
      cv2.putText(drawn, f'{joint}: {errors[i, j]} mistakes  {frame.file_name}', (8, 24),
                  cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
      tiles.append(drawn)
    if tiles:
      render.save_grid(tiles, out_dir / f'{joint}.png', columns=2)
      written += 1
  return written


def results_table(results: dict[str, dict], title: str) -> str:
  """Markdown: one row per result, Head .. Ankle and Total (mAP)."""
  lines = [posetrack_map.markdown_table(result, title).splitlines() for result in
           results.values()]
  return '\n'.join(lines[0][:2] + [line[2] for line in lines])
