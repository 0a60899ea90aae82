"""run.py --mode=propagate: video pose propagation on the validation split (spec 3).

    results = propagate(config, workdir)

In each video's longest run of consecutive labeled frames, frame 4 and every 7th after it keep
their labels (pairs.propagation_protocol); every other frame of the run gets poses from its
nearest kept frame, |delta| <= 3 frames away. Three rows, scored with the official mAP on the
frames that lost their labels, per |delta| and over all of them:

- PoseWarper: each kept person's ground-truth Gaussian heatmaps, in its box's crop, warped to
  the target frame by the head (offsets from H_target - H_source, the same box cropped from both
  frames), then decoded; joint score = the warped peak.
- copy: the kept frame's ground-truth pose copied unchanged (the baseline of doing nothing).
- single frame: the stage-1 network on the target frame's own ground-truth boxes.

Writes <workdir>/propagate/<split>/: results.json, results.md (Total mAP per |delta|), a plot
propagation.png, and the prediction files of each row.
"""

from __future__ import annotations

import functools
import itertools
import json
import pathlib
import shutil
from collections.abc import Sequence

import cv2
import grain
import jax
import numpy as np

from posewarper_jax import checkpoints, evaluate, inference, train
from posewarper_jax.data import source, transforms
from posewarper_jax.data.keypoints import box_has_area
from posewarper_jax.data.pipeline import Boxes, decode_rgb, ground_truth_boxes, person_box
from posewarper_jax.metrics import posetrack_map
from posewarper_jax.models import PoseWarper, create_model
from tfds_posetrack.posetrack18 import propagation_protocol

MAX_DISTANCE = 3
ROWS = ('PoseWarper', 'copy', 'single frame')
HEATMAP_STRIDE = 4


class _PropagationExamples:
  """Index -> the source and target crops of one kept person, its Gaussian maps, the crop."""

  def __init__(self, records, items: np.ndarray, image_size: tuple[int, int], sigma: float):
    # sigma: the training targets' Gaussian, the maps the head learned to move.
    self.records, self.items, self.image_size, self.sigma = records, items, image_size, sigma

  def __call__(self, index: int) -> dict:
    target, src, person = (int(x) for x in self.items[index])
    height, width = self.image_size
    record = self.records[src]
    center, scale, matrix = transforms.box_crop(person_box(record, person), (width, height))
    keypoints = np.asarray(record['people']['keypoints'][person], np.float64)
    maps, _ = transforms.gaussian_targets(
        transforms.transform_keypoints(keypoints, matrix), (width, height),
        (width // HEATMAP_STRIDE, height // HEATMAP_STRIDE), self.sigma)
    crop = lambda r: transforms.warp_image(decode_rgb(self.records[r]['image']), matrix,
                                           (width, height))
    return {'source': crop(src), 'target': crop(target), 'heatmaps': maps, 'center': center,
            'scale': scale, 'item': np.int64(index)}


def _items(records, protocol: np.ndarray) -> np.ndarray:
  """[M, 3] (target record, source record, person) for every kept person (with a box) of a
  moved frame."""
  rows = []
  for target, src, delta in protocol:
    if delta != 0:
      record = records[int(src)]
      keypoints = np.asarray(record['people']['keypoints'])
      # A person whose box has no area (one annotated joint) cannot be cropped: not propagated.
      rows += [(target, src, p) for p in range(len(keypoints))
               if keypoints[p, :, 2].any() and box_has_area(person_box(record, p))]
  return np.asarray(rows, np.int64).reshape(-1, 3)


def warp_heatmaps(config, records, items: np.ndarray, variables):
  """Yields, per batch of items (in order, the last batch trimmed): (the kept persons' Gaussian
  maps [B, h, w, J], those maps warped to the target frames [B, h, w, J], center [B, 2],
  scale [B, 2])."""
  model = create_model(config)
  fn = jax.jit(lambda v, s, t, h: model.apply(v, train.normalize(s), train.normalize(t), h,
                                              method=PoseWarper.propagate))
  examples = _PropagationExamples(records, items, tuple(config.image_size), config.sigma)
  batch = config.eval.batch
  padded = list(range(len(items))) + [0] * (-len(items) % batch)
  stream = (grain.MapDataset.source(padded).map(examples).batch(batch)
            .to_iter_dataset(grain.ReadOptions()))
  variables = jax.device_put(variables)
  done = 0
  for b in stream:
    keep = min(batch, len(items) - done)
    warped = np.asarray(fn(variables, b['source'], b['target'], b['heatmaps']))
    yield b['heatmaps'][:keep], warped[:keep], b['center'][:keep], b['scale'][:keep]
    done += keep


def propagate_poses(config, records, items: np.ndarray, variables
                    ) -> tuple[np.ndarray, np.ndarray]:
  """PoseWarper's propagation of the items: (xy [M, 17, 2] in target frames, scores [M, 17])."""
  decoded = [inference.decode(warped, center, scale) for _, warped, center, scale
             in warp_heatmaps(config, records, items, variables)]
  return np.concatenate([d[0] for d in decoded]), np.concatenate([d[1] for d in decoded])


def _copied(records, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  keypoints = np.stack([np.asarray(records[int(s)]['people']['keypoints'][int(p)], np.float64)
                        for _, s, p in items])
  return keypoints[..., :2], (keypoints[..., 2] > 0).astype(np.float64)


def _subset(gt_dir: pathlib.Path, out: pathlib.Path, image_ids: set[int]) -> pathlib.Path:
  """Copies of the ground-truth files with annotations only on image_ids: the metric evaluates
  exactly those frames."""
  if out.exists():
    shutil.rmtree(out)
  out.mkdir(parents=True)
  for path in sorted(gt_dir.glob('*.json')):
    data = json.loads(path.read_text())
    data['annotations'] = [a for a in data['annotations'] if int(a['image_id']) in image_ids]
    (out / path.name).write_text(json.dumps(data))
  return out


def propagate(config, workdir: str | pathlib.Path) -> dict[str, dict[str, float]]:
  """Runs the protocol; returns row -> {'1', '2', '3', 'all'} -> Total mAP (and writes files)."""
  workdir = pathlib.Path(workdir)
  split = evaluate.split_dir(config)
  records, table = source.open_split(config, workdir, config.eval.split)
  protocol = propagation_protocol(table, MAX_DISTANCE)
  items = _items(records, protocol)
  if not len(items):
    raise ValueError(f'the {config.eval.split} split has no labeled run to propagate through')
  network = checkpoints.load_network(config, workdir, needs_head='propagation')
  variables, path = network.variables, network.checkpoint.describe()
  print(f'propagate: {path}, {len(items)} people onto '
        f'{int((protocol[:, 2] != 0).sum())} frames of the {config.eval.split} split',
        flush=True)

  target_ids = evaluate.image_ids_of(records, items[:, 0])
  predictions = {'PoseWarper': propagate_poses(config, records, items, variables),
                 'copy': _copied(records, items)}
  moved = protocol[protocol[:, 2] != 0]
  targets = np.unique(moved[:, 0])
  boxes = ground_truth_boxes(records, table)
  chosen = np.isin(boxes.record, targets)
  boxes = Boxes(boxes.record[chosen], boxes.box[chosen], boxes.score[chosen],
                boxes.annotation_id[chosen])
  single = evaluate.infer_boxes(config, records, table, boxes, variables, ['single frame'])
  ids = {'PoseWarper': target_ids, 'copy': target_ids, 'single frame': single['single frame'][0]}
  predictions['single frame'] = single['single frame'][1:]

  gt_dir = source.dataset_root(config, workdir) / 'annotations' / split
  out = workdir / 'propagate' / split
  frame_ids = evaluate.image_ids_of(records, moved[:, 0])
  distance = np.abs(moved[:, 2])
  groups = {str(d): set(frame_ids[distance == d].tolist()) for d in range(1, MAX_DISTANCE + 1)}
  groups['all'] = set(frame_ids.tolist())
  results: dict[str, dict[str, float]] = {row: {} for row in ROWS}
  full: dict[str, dict] = {}
  if jax.process_index() != 0:
    return results
  subsets = {name: _subset(gt_dir, out / 'ground_truth' / name, group)
             for name, group in groups.items() if group}
  for row in ROWS:
    pred_dir = out / row.replace(' ', '_') / 'predictions'
    inference.write_predictions(pred_dir, gt_dir, ids[row], *predictions[row])
    for name, subset in subsets.items():
      full[f'{row} |delta|={name}'] = result = posetrack_map.evaluate(subset, pred_dir)
      results[row][name] = result['groups']['Total']
  (out / 'results.json').write_text(json.dumps({'total': results, 'full': full}, indent=1))
  table_md = results_table(results, list(subsets))
  (out / 'results.md').write_text(table_md + '\n')
  plot(results, [n for n in subsets if n != 'all'], out / 'propagation.png')
  print(table_md, flush=True)
  print(f'propagate: predictions, tables and propagation.png in {out}', flush=True)
  return results


def delta_column(distance: str) -> str:
  """A Markdown table header for the frames |delta| = distance away ('\\|': a literal bar)."""
  return f'\\|delta\\| = {distance}'


def results_table(results: dict[str, dict[str, float]], columns: Sequence[str]) -> str:
  header = ['mAP (Total)'] + [delta_column(c) if c != 'all' else 'all moved frames'
                              for c in columns]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for row, values in results.items():
    lines.append(f'| {row} | ' + ' | '.join(f'{values[c]:.1f}' for c in columns) + ' |')
  return '\n'.join(lines)


# Row colours (BGR) for the plot.
_COLOURS = {'PoseWarper': (200, 90, 30), 'copy': (40, 40, 200), 'single frame': (60, 160, 60)}


def plot(results: dict[str, dict[str, float]], distances: Sequence[str],
         path: pathlib.Path, size: tuple[int, int] = (640, 420)) -> None:
  """Total mAP against |delta|, one line per row, as a PNG (drawn with OpenCV)."""
  width, height = size
  left, right, top, bottom = 70, 170, 40, 60
  image = np.full((height, width, 3), 255, np.uint8)
  text = functools.partial(cv2.putText, fontFace=cv2.FONT_HERSHEY_SIMPLEX, fontScale=0.45,
                           color=(0, 0, 0), thickness=1, lineType=cv2.LINE_AA)
  x_of = lambda i: int(left + (i + 0.5) * (width - left - right) / len(distances))
  y_of = lambda v: int(height - bottom - v / 100 * (height - top - bottom))
  cv2.rectangle(image, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
  for v in range(0, 101, 20):
    cv2.line(image, (left - 4, y_of(v)), (width - right, y_of(v)), (225, 225, 225), 1)
    text(image, f'{v}', (left - 35, y_of(v) + 5))
  for i, d in enumerate(distances):
    text(image, d, (x_of(i) - 4, height - bottom + 20))
  text(image, '|delta| (frames from the labeled frame)', (left + 40, height - 15))
  text(image, 'mAP', (10, top - 15))
  for k, (row, values) in enumerate(results.items()):
    colour = _COLOURS.get(row, (0, 0, 0))
    # A NaN (poseval's mAP of a subset without ground truth for some joint) breaks the line.
    points = [(x_of(i), y_of(values[d])) if np.isfinite(values[d]) else None
              for i, d in enumerate(distances)]
    for a, b in itertools.pairwise(points):
      if a and b:
        cv2.line(image, a, b, colour, 2, cv2.LINE_AA)
    for p in filter(None, points):
      cv2.circle(image, p, 4, colour, -1, cv2.LINE_AA)
    y = top + 20 + 22 * k
    cv2.line(image, (width - right + 15, y), (width - right + 40, y), colour, 2, cv2.LINE_AA)
    text(image, row, (width - right + 48, y + 5))
  path.parent.mkdir(parents=True, exist_ok=True)
  cv2.imwrite(str(path), image)
