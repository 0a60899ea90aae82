"""run.py --mode=eval: single-frame and aggregated poses on a split, written and scored.

    results = evaluate(config, workdir)   # {'single frame': posetrack_map result, ...}

For every box (ground truth, or a detector's with score >= config.eval.min_box_score) of the
split's labeled frames: the single-frame network's heatmaps, and with config.eval.aggregate the
spatiotemporal aggregation of spec 3 (frames delta in AGGREGATION_DELTAS, warped to the current
frame and weighted), optionally with the flip test (predictor.py); decoded (codec.decode),
written as per-video PoseTrack 2018 prediction files and scored with the official mAP.
Everything lands in <workdir>/eval/<split>/: <row>/predictions/*.json, results.json and
results.md.
"""

from __future__ import annotations

import json
import pathlib

import cv2
import jax
import numpy as np

from posewarper_jax import checkpoints, predictions, predictor, render
from posewarper_jax.data import source
from posewarper_jax.data.pipeline import detection_boxes, ground_truth_boxes
from posewarper_jax.metrics import posetrack_map
from tfds_posetrack.posetrack18 import split_directory
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS

ROWS = predictor.ROWS


def predict(config, workdir: str | pathlib.Path) -> dict[str, tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray]]:
  """Row -> (image_ids [N], xy [N, 17, 2] frame pixels, scores [N, 17]) over the split's boxes."""
  workdir = pathlib.Path(workdir)
  settings = config.eval
  split_directory(config.eval.split, 'config.eval.split')  # before any work
  records, table = source.open_split(config, workdir, settings.split)
  if settings.boxes == 'gt':
    boxes = ground_truth_boxes(records, table)
  else:
    boxes = detection_boxes(settings.boxes, records, table, settings.min_box_score)
  if len(boxes.record) == 0:
    raise ValueError(f'config.eval.boxes={settings.boxes!r}: no box on a labeled frame of the '
                     f'{settings.split} split')
  network = checkpoints.load_network(config, workdir)
  path = network.checkpoint.describe()
  rows = [r for r in ROWS if r == 'single frame' or (settings.aggregate and network.has_head)]
  if settings.aggregate and not network.has_head:
    print(f'eval: {path} has no warping head; only the single-frame row', flush=True)
  print(f'eval: {path} on {len(boxes.record)} boxes ({settings.boxes}) of the '
        f'{settings.split} split: {", ".join(rows)}', flush=True)
  outputs = predictor.poses_in_boxes(
      predictor.Predictor(config, network.variables, settings.flip_test), config, records,
      table, boxes, rows)
  if settings.oks_nms > 0:
    areas = boxes.box[:, 2] * boxes.box[:, 3]
    for row, (image_ids, xy, scores) in outputs.items():
      keep = predictions.nms_per_frame(image_ids, xy, scores, areas, settings.oks_nms)
      print(f'eval: OKS-NMS at {settings.oks_nms} keeps {keep.sum()} of {len(keep)} poses '
            f'({row})', flush=True)
      outputs[row] = (image_ids[keep], xy[keep], scores[keep])
  return outputs


def evaluate(config, workdir: str | pathlib.Path) -> dict[str, dict]:
  """Predicts, writes and scores every row; returns row -> the posetrack_map result."""
  workdir = pathlib.Path(workdir)
  split = split_directory(config.eval.split, 'config.eval.split')
  gt_dir = source.annotation_dir(config, workdir, split)
  out = workdir / 'eval' / split
  results = {}
  for row, (image_ids, xy, scores) in predict(config, workdir).items():
    if config.eval.neck_from_shoulders:
      xy, scores = predictions.neck_from_shoulders(xy, scores)
    pred_dir = out / row.replace(' ', '_') / 'predictions'
    if jax.process_index() == 0:
      predictions.write_predictions(pred_dir, gt_dir, image_ids, xy, scores)
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
