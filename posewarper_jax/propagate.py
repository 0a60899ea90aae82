"""run.py --mode=propagate: video pose propagation on the validation split (spec 3).

    results = propagate(config, workdir)

In each video's longest run of consecutive labeled frames (runs of three frames or fewer left
out, as the release does), frame 4 and every 7th after it keep their labels
(pairs.propagation_protocol); every other frame of the run gets poses from its nearest kept
frame, |delta| <= 3 frames away, and the kept frames their own warped with d = 0. Three rows,
scored with the official mAP against ground truth restricted to the frames of each column: every
frame of the runs, kept ones included (the release's score, spec 7), the frames that lost their
labels per |delta|, and all of those together:

- PoseWarper: each kept person's ground-truth Gaussian heatmaps, in its box's crop, warped to
  the target frame by the head (offsets from H_target - H_source, the same box cropped from both
  frames), then decoded; joint score = the warped peak.
- copy: the kept frame's ground-truth pose copied unchanged (the baseline of doing nothing).
- single frame: the stage-1 network on the target frame's own ground-truth boxes.

Writes <workdir>/propagate/<split>/: results.json, results.md (Total mAP per |delta|), a plot
propagation.png with the numbers behind it in propagation.csv (plots.py), and the prediction
files of each row.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from collections.abc import Sequence

import jax
import numpy as np

from posewarper_jax import checkpoints, plots, predictions, predictor
from posewarper_jax.data import source
from posewarper_jax.data.pipeline import (
  Boxes,
  crop_records,
  ground_truth_boxes,
  image_ids_of,
  propagation_items,
  propagation_stream,
)
from posewarper_jax.metrics import posetrack_map
from tfds_posetrack.posetrack18 import (
  PROPAGATION_DISTANCE,
  PROPAGATION_MIN_RUN,
  formats,
  propagation_protocol,
  split_directory,
)

ROWS = ('PoseWarper', 'copy', 'single frame')


def _copied(records, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  records = crop_records(records)
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
    data, _ = formats.read(path)  # a PoseTrack17 file as the 2018 dict: its ids are the records'
    data['annotations'] = [a for a in data['annotations'] if int(a['image_id']) in image_ids]
    (out / path.name).write_text(json.dumps(data))
  return out


def propagate(config, workdir: str | pathlib.Path) -> dict[str, dict[str, float]]:
  """Runs the protocol; returns row -> {'1', '2', '3', 'all', 'runs'} -> Total mAP (and writes
  files): per |delta|, over all moved frames, and over every frame of the runs."""
  workdir = pathlib.Path(workdir)
  split = split_directory(config.eval.split, 'config.eval.split')
  records, table = source.open_split(config, workdir, config.eval.split)
  protocol = propagation_protocol(table, min_run=PROPAGATION_MIN_RUN)
  items = propagation_items(records, protocol, kept=True)
  if not len(items):
    raise ValueError(f'the {config.eval.split} split has no labeled run of '
                     f'{PROPAGATION_MIN_RUN} frames or more to propagate through')
  network = checkpoints.load_network(config, workdir, needs_head='propagation')
  path = network.checkpoint.describe()
  print(f'propagate: {path}, {len(items)} people onto the {len(protocol)} frames of the runs '
        f'({int((protocol[:, 2] != 0).sum())} moved) of the {config.eval.split} split',
        flush=True)

  network_predictor = predictor.Predictor(config, network.variables)
  target_ids = image_ids_of(records, items[:, 0])
  stream = propagation_stream(records, items, tuple(config.image_size), config.eval.batch,
                              config.sigma)
  poses = {'PoseWarper': predictor.propagate_poses(network_predictor, stream),
           'copy': _copied(records, items)}
  boxes = ground_truth_boxes(records, table)
  chosen = np.isin(boxes.record, protocol[:, 0])
  boxes = Boxes(boxes.record[chosen], boxes.box[chosen], boxes.score[chosen],
                boxes.annotation_id[chosen])
  single = predictor.poses_in_boxes(network_predictor, config, records, table, boxes,
                                    ['single frame'])['single frame']
  ids = {'PoseWarper': target_ids, 'copy': target_ids, 'single frame': single[0]}
  poses['single frame'] = single[1:]

  gt_dir = source.annotation_dir(config, workdir, split)
  out = workdir / 'propagate' / split
  frame_ids = image_ids_of(records, protocol[:, 0])
  distance = np.abs(protocol[:, 2])
  groups = {str(d): set(frame_ids[distance == d].tolist())
            for d in range(1, PROPAGATION_DISTANCE + 1)}
  groups['all'] = set(frame_ids[distance > 0].tolist())
  # The release's score (spec 7): every frame of the runs, the kept ones included.
  groups['runs'] = set(frame_ids.tolist())
  results: dict[str, dict[str, float]] = {row: {} for row in ROWS}
  full: dict[str, dict] = {}
  if jax.process_index() != 0:
    return results
  subsets = {name: _subset(gt_dir, out / 'ground_truth' / name, group)
             for name, group in groups.items() if group}
  for row in ROWS:
    pred_dir = out / row.replace(' ', '_') / 'predictions'
    predictions.write_predictions(pred_dir, gt_dir, ids[row], *poses[row])
    for name, subset in subsets.items():
      full[f'{row} |delta|={name}'] = result = posetrack_map.evaluate(subset, pred_dir)
      results[row][name] = result['groups']['Total']
  (out / 'results.json').write_text(json.dumps({'total': results, 'full': full}, indent=1))
  table_md = results_table(results, list(subsets))
  (out / 'results.md').write_text(table_md + '\n')
  plots.propagation(results, [n for n in subsets if n not in ('all', 'runs')],
                    out / 'propagation.png')
  print(table_md, flush=True)
  print(f'propagate: predictions, tables and propagation.png in {out}', flush=True)
  return results


def delta_column(distance: str) -> str:
  """A Markdown table header for the frames |delta| = distance away ('\\|': a literal bar)."""
  return f'\\|delta\\| = {distance}'


def results_table(results: dict[str, dict[str, float]], columns: Sequence[str]) -> str:
  names = {'all': 'all moved frames', 'runs': 'every frame of the runs'}
  header = ['mAP (Total)'] + [names.get(c) or delta_column(c) for c in columns]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for row, values in results.items():
    lines.append(f'| {row} | ' + ' | '.join(f'{values[c]:.1f}' for c in columns) + ' |')
  return '\n'.join(lines)
