"""run.py --mode=augment_grid: the paper's augmentation experiment over a grid of label subsets.

    table = run_grid(config, workdir)   # <workdir>/grid/results.md, label_grid.png / .csv

For every (V, N) of config.grid.labels (V labeled videos, N labeled frames per video, -1 = all;
spec 7), in <workdir>/grid/<V..._N...>/:

1. sparse/: the single-frame baseline (stage 1) and PoseWarper (stage 2) trained on that subset
   only, with the stage settings of the config (the release's baseline: batch 64); then its
   single-frame mAP (the "baseline" curve), the propagation experiment on the same subset
   (--mode=propagate's table) and the enlarged training set (--mode=augment: every kept pose
   propagated to its six neighbours, the joint filter, the source box);
2. retrain/: the baseline trained again on kept + propagated labels with config.grid.retrain's
   stage settings (the release: from COCO, batch 128, 10 epochs, drops at 5 and 7), and
   PoseWarper on it, then its single-frame mAP ("+ PoseWarper augmentation") and its
   aggregation ("+ aggregation"). The release does not say which warper aggregates the
   retrained baseline; this trains stage 2 on the retrained network with the enlarged set, so
   that nothing in the experiment sees a label outside the subset.

Every step is the train mode's (resumed where it stopped, skipped when done: report.py), so the
command run again after a stop finishes the grid without repeating finished work. A synthetic
set (config.data.synthetic) is generated once in <workdir>/data and shared by every point.
"""

from __future__ import annotations

import json
import math
import pathlib

import jax
import ml_collections

from posewarper_jax import paths, plots, report, train
from posewarper_jax.data import source
from tfds_posetrack.posetrack18 import split_directory
from tfds_posetrack.posetrack18.pairs import check_sparse_labels

CURVES = ('baseline', '+ PoseWarper augmentation', '+ aggregation')


def labels(config) -> list[tuple[int, int]]:
  """config.grid.labels as (V, N) pairs; ValueError naming the field for anything else."""
  points = []
  for entry in config.grid.labels:
    if not isinstance(entry, (tuple, list)) or len(entry) != 2:
      raise ValueError(f'config.grid.labels: each entry is (labeled_videos, '
                       f'labeled_frames_per_video), got {entry!r}')
    try:
      check_sparse_labels(*entry)
    except ValueError as error:
      raise ValueError(f'config.grid.labels {tuple(entry)}: {error}') from None
    points.append((int(entry[0]), int(entry[1])))
  if not points:
    raise ValueError('config.grid.labels is empty: no (V, N) to train')
  if len(set(points)) != len(points):
    raise ValueError(f'config.grid.labels repeats a point: {points}')
  return points


def point_name(videos: int, frames: int) -> str:
  """The folder of a grid point: 'V50_N1', 'Vall_N2'."""
  return f'V{"all" if videos == -1 else videos}_N{"all" if frames == -1 else frames}'


def _shared_data(config, workdir: pathlib.Path) -> ml_collections.ConfigDict:
  """The data fields every run of the grid reads: a synthetic set generated (and built) once in
  <workdir>/data, or the user's root as given."""
  data = ml_collections.ConfigDict(config.data.to_dict())
  if config.data.synthetic:
    source.prepare_dataset(config, workdir)
    root = source.dataset_root(config, workdir)
    data.update(synthetic=False, root=str(root), tfds_dir=str(root.parent / 'tfds'))
  return data


def sparse_config(config, data, videos: int, frames: int) -> ml_collections.ConfigDict:
  """Step 1's run: both stages on the (V, N) subset; eval (single frame), propagate, augment."""
  run = ml_collections.ConfigDict(config.to_dict())
  run.data = ml_collections.ConfigDict(data.to_dict())
  run.data.update(labeled_videos=videos, labeled_frames_per_video=frames)
  run.stages = (1, 2)
  # Its own networks: one from elsewhere may have seen labels outside the subset.
  run.stage2.init = run.eval.checkpoint = ''
  run.after_training = ('eval', 'propagate', 'augment')
  run.eval.aggregate = False  # the baseline curve is the single frame
  return run


def retrain_config(config, data, augmented_root: pathlib.Path) -> ml_collections.ConfigDict:
  """Step 2's run: both stages on the enlarged set with config.grid.retrain's settings; eval
  with aggregation. The enlarged set holds only kept and propagated labels: all of them train."""
  run = ml_collections.ConfigDict(config.to_dict())
  run.data = ml_collections.ConfigDict(data.to_dict())
  run.data.update(root=str(augmented_root), tfds_dir='', labeled_videos=-1,
                  labeled_frames_per_video=-1)
  run.stages = (1, 2)
  run.stage1.update(config.grid.retrain.stage1.to_dict())
  run.stage2.update(config.grid.retrain.stage2.to_dict())
  run.stage2.init = run.eval.checkpoint = ''  # the retrained networks, never another's
  run.after_training = ('eval',)
  run.eval.aggregate = True
  return run


def _train(config, workdir: pathlib.Path) -> None:
  """What `run.py --mode=train` does in workdir (the lock is the grid's)."""
  train.check_resume(config, workdir)
  train.write_config(config, workdir)
  for stage in config.stages:
    train.train_stage(config, workdir, stage)
  report.run_after_training(config, workdir)


def _total(path: pathlib.Path, row: str) -> float:
  results = json.loads(path.read_text())
  return float(results[row]['groups']['Total']) if row in results else math.nan


def run_grid(config, workdir: str | pathlib.Path) -> str | None:
  """Trains and scores every grid point; returns (and prints) the results table on process 0."""
  workdir = pathlib.Path(workdir)
  points = labels(config)
  split = split_directory(config.eval.split, 'config.eval.split')
  data = _shared_data(config, workdir)
  rows = []
  for videos, frames in points:
    name = point_name(videos, frames)
    point = workdir / 'grid' / name
    print(f'=== augment_grid: {name} (config.data.labeled_videos={videos}, '
          f'labeled_frames_per_video={frames}): the sparse run', flush=True)
    sparse = sparse_config(config, data, videos, frames)
    _train(sparse, point / 'sparse')
    print(f'=== augment_grid: {name}: the baseline retrained on the propagated labels',
          flush=True)
    _train(retrain_config(config, data, point / 'sparse' / 'augment' / 'posetrack18'),
           point / 'retrain')
    if jax.process_index() != 0:
      continue
    counts = train.label_counts(sparse, point / 'sparse')
    sparse_eval = point / 'sparse' / 'eval' / split / 'results.json'
    retrain_eval = point / 'retrain' / 'eval' / split / 'results.json'
    propagated = json.loads((point / 'sparse' / 'propagate' / split / 'results.json')
                            .read_text())['total']
    rows.append({'point': name, 'labeled_videos': videos, 'labeled_frames_per_video': frames,
                 **counts,
                 'baseline': _total(sparse_eval, 'single frame'),
                 '+ PoseWarper augmentation': _total(retrain_eval, 'single frame'),
                 '+ aggregation': _total(retrain_eval, 'aggregation'),
                 'propagation PoseWarper': propagated['PoseWarper'].get('all', math.nan),
                 'propagation copy': propagated['copy'].get('all', math.nan)})
  if jax.process_index() != 0:
    return None
  out = workdir / 'grid'
  table = results_table(rows, f'{config.eval.split}, {config.eval.boxes} boxes')
  paths.write_atomically(out / 'results.json', json.dumps(rows, indent=1))
  paths.write_atomically(out / 'results.md', table + '\n')
  plots.label_grid([r['point'] for r in rows], [r['labeled_frames'] for r in rows],
                   {curve: [r[curve] for r in rows] for curve in CURVES}, out / 'label_grid.png')
  print(table, flush=True)
  print(f'augment_grid: every run in {out}; the figure in {out / "label_grid.png"}', flush=True)
  return table


def results_table(rows: list[dict], title: str) -> str:
  """Markdown: one line per grid point, Total mAP of the three curves and of the propagation
  experiment (every frame of the runs) on the same subset."""
  fmt = lambda v: '' if not math.isfinite(v) else f'{v:.1f}'
  lines = [f'| {title}: Total mAP | V | N | labeled frames (people) | baseline | '
           '+ PoseWarper augmentation | + aggregation | propagation: PoseWarper | copy |',
           '|---|---|---|---|---|---|---|---|---|']
  for r in rows:
    lines.append(f'| {r["point"]} | {r["labeled_videos"]} | {r["labeled_frames_per_video"]} | '
                 f'{r["labeled_frames"]} ({r["labeled_people"]}) | {fmt(r["baseline"])} | '
                 f'{fmt(r["+ PoseWarper augmentation"])} | {fmt(r["+ aggregation"])} | '
                 f'{fmt(r["propagation PoseWarper"])} | {fmt(r["propagation copy"])} |')
  return '\n'.join(lines)
