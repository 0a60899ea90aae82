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
   that nothing in the experiment sees a label outside the subset;
3. retrain_<control>/, for each of config.grid.controls (none in the paper's experiment): the
   baseline alone retrained with step 2's settings on the same frames carrying other poses
   (augment.POSES: 'copy', the kept poses unchanged, or 'ground_truth', those frames' own
   labels), its single-frame mAP a curve of its own: what the warp adds over copying, and what
   labeling those frames would give.
4. at each (V, N) of config.grid.spread_points, `config.grid.initialisations - 1` times with
   config.seed + i (the initialisation and the order of the batches), the single-frame
   baseline again on the same labels (sparse_init<i>/: stage 1 and its mAP; the draw of the
   labeled videos pinned by config.data.labeled_seed), and steps 2 and 3 again on the same
   enlarged sets (retrain_init<i>/, retrain_<control>_init<i>/): the table gives the mean and
   range of each curve there, the figure the range.

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

from posewarper_jax import augment, paths, plots, pretrain, report, train
from posewarper_jax.data import source
from tfds_posetrack.posetrack18 import split_directory
from tfds_posetrack.posetrack18.pairs import check_sparse_labels

CURVES = ('baseline', '+ PoseWarper augmentation', '+ aggregation')
# config.grid.controls: the baseline retrained on the same frames with other poses
# (augment.POSES), a curve each: what the warp adds over copying, and the most labels there give.
CONTROL_CURVES = {'copy': '+ copied poses', 'ground_truth': '+ their true labels'}
# The propagation experiment's rows in the table, scored as the release scores it (every frame
# of the runs, kept ones included: propagate.py's 'runs') and on the moved frames only ('all').
PROPAGATION_ROWS = ('PoseWarper', 'copy')
PROPAGATION_FRAMES = (('runs', ''), ('all', ', moved frames'))
# How right the enlarged sets' moved labels are on the train frames they label (augment.py's
# label_accuracy.json over all |delta|: PCKh@0.5 and the systematic offset): PoseWarper's, and
# the copy control's.
LABEL_ROWS = (('PoseWarper', 'posewarper'), ('copy', 'copy'))
LABEL_FIELDS = ('pckh', 'offset')


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


def baseline_config(config, data, videos: int, frames: int,
                    initialisation: int) -> ml_collections.ConfigDict:
  """A further initialisation of step 1's baseline: stage 1 alone on the same labels, with
  config.seed + initialisation; its single-frame mAP."""
  run = sparse_config(_seeded(config, initialisation), data, videos, frames)
  run.data.labeled_seed = source.labeled_seed(config)  # the labels of the grid's draw
  run.stages = (1,)
  run.after_training = ('eval',)
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


def control_config(config, data, augmented_root: pathlib.Path) -> ml_collections.ConfigDict:
  """A control's run: the baseline alone retrained on a control's enlarged set (as step 2's,
  single frame only)."""
  run = retrain_config(config, data, augmented_root)
  run.stages = (1,)
  run.eval.aggregate = False
  return run


def controls(config) -> tuple[str, ...]:
  """config.grid.controls, checked: ValueError naming the field for an unknown one."""
  names = tuple(config.grid.get('controls', ()))
  unknown = [c for c in names if c not in CONTROL_CURVES]
  if unknown or len(set(names)) != len(names):
    raise ValueError(f'config.grid.controls: each of {tuple(CONTROL_CURVES)} at most once, got '
                     f'{names!r}')
  return names


def spread(config, points: list[tuple[int, int]]) -> tuple[tuple[tuple[int, int], ...], int]:
  """(config.grid.spread_points, config.grid.initialisations), checked: ValueError naming the
  field for a count below 1, an entry that is not a (V, N) of config.grid.labels, or a repeat.
  No points: ((), 1)."""
  count = config.grid.get('initialisations', 1)
  if not isinstance(count, int) or isinstance(count, bool) or count < 1:
    raise ValueError(f'config.grid.initialisations must be an integer >= 1, got {count!r}')
  chosen = []
  for entry in config.grid.get('spread_points', ()):
    entry = tuple(entry) if isinstance(entry, (tuple, list)) else entry
    if entry not in points:
      raise ValueError(f'config.grid.spread_points: each entry is a (V, N) of config.grid.labels '
                       f'{points}, got {entry!r}')
    if entry in chosen:
      raise ValueError(f'config.grid.spread_points repeats {entry}')
    chosen.append(entry)
  return (tuple(chosen), count) if chosen else ((), 1)


def run_name(name: str, initialisation: int) -> str:
  """A retraining's folder: 'retrain', 'retrain_copy'; the further initialisations
  'retrain_init1', 'retrain_copy_init2'."""
  return name if initialisation == 0 else f'{name}_init{initialisation}'


def _seeded(config, initialisation: int) -> ml_collections.ConfigDict:
  """The config of a further initialisation: config.seed + initialisation (the retrainings'
  data is the enlarged set, which the seed does not draw)."""
  if initialisation == 0:
    return config
  run = ml_collections.ConfigDict(config.to_dict())
  run.seed = config.seed + initialisation
  return run


def _which(config, initialisation: int, runs: int) -> str:
  """' (initialisation 2 of 3: config.seed=1)' for the console, '' where a point runs one."""
  return (f' (initialisation {initialisation + 1} of {runs}: '
          f'config.seed={config.seed + initialisation})' if runs > 1 else '')


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


def _label_accuracy(sparse: pathlib.Path, poses: str, field: str) -> float:
  """A field of an enlarged set's label_accuracy.json, all |delta| (NaN when not written)."""
  path = augment.output_root(sparse, poses).parent / 'label_accuracy.json'
  return float(json.loads(path.read_text())['all'][field]) if path.exists() else math.nan


def run_grid(config, workdir: str | pathlib.Path) -> str | None:
  """Trains and scores every grid point; returns (and prints) the results table on process 0."""
  workdir = pathlib.Path(workdir)
  points, extra = labels(config), controls(config)
  spread_points, initialisations = spread(config, points)
  split = split_directory(config.eval.split, 'config.eval.split')
  config = pretrain.with_standin(config, workdir)  # every run's stage 1 starts from it
  data = source.shared_data(config, workdir)
  pretrain.pretrain(config, workdir)
  rows = []
  for videos, frames in points:
    name = point_name(videos, frames)
    point = workdir / 'grid' / name
    print(f'=== augment_grid: {name} (config.data.labeled_videos={videos}, '
          f'labeled_frames_per_video={frames}): the sparse run', flush=True)
    sparse = sparse_config(config, data, videos, frames)
    _train(sparse, point / 'sparse')
    runs = initialisations if (videos, frames) in spread_points else 1
    for i in range(1, runs):
      print(f'=== augment_grid: {name}: the sparse baseline again, on the same labels'
            f'{_which(config, i, runs)}', flush=True)
      _train(baseline_config(config, data, videos, frames, i), point / run_name('sparse', i))
    for i in range(runs):
      seeded = _seeded(config, i)
      print(f'=== augment_grid: {name}: the baseline retrained on the propagated labels'
            f'{_which(config, i, runs)}', flush=True)
      _train(retrain_config(seeded, data, point / 'sparse' / 'augment' / 'posetrack18'),
             point / run_name('retrain', i))
      for control in extra:
        print(f'=== augment_grid: {name}: the control {control!r} (the baseline retrained on '
              f'the same frames, {CONTROL_CURVES[control][2:]}){_which(config, i, runs)}',
              flush=True)
        run, root = (point / run_name(f'retrain_{control}', i),
                     augment.output_root(point / 'sparse', control))
        if i > 0 or (run / 'config.json').exists():  # written by _train: the set was complete
          print(f'augment ({control}): {root} was written before', flush=True)
        else:
          augment.augment(sparse, point / 'sparse', control)
        _train(control_config(seeded, data, root), run)
    if jax.process_index() != 0:
      continue
    counts = train.label_counts(sparse, point / 'sparse')
    propagated = json.loads((point / 'sparse' / 'propagate' / split / 'results.json')
                            .read_text())['total']
    scores = _curves(point, split, extra, runs)
    rows.append({'point': name, 'labeled_videos': videos, 'labeled_frames_per_video': frames,
                 **counts,
                 **{curve: sum(values) / runs for curve, values in scores.items()},
                 **({'initialisations': runs,
                     **{f'{curve} runs': values for curve, values in scores.items()}}
                    if runs > 1 else {}),
                 **{f'propagation {row}{suffix}': propagated[row].get(frames, math.nan)
                    for row in PROPAGATION_ROWS for frames, suffix in PROPAGATION_FRAMES},
                 **{f'train labels {field} {row}': _label_accuracy(point / 'sparse', poses,
                                                                    field)
                    for field in LABEL_FIELDS for row, poses in LABEL_ROWS}})
  if jax.process_index() != 0:
    return None
  out = workdir / 'grid'
  curves = (*CURVES, *(CONTROL_CURVES[c] for c in extra))
  table = results_table(rows, f'{config.eval.split}, {config.eval.boxes} boxes', curves)
  paths.write_atomically(out / 'results.json', json.dumps(rows, indent=1))
  paths.write_atomically(out / 'results.md', table + '\n')
  ranges = {curve: [_range(r, curve) for r in rows] for curve in curves}
  plots.label_grid([r['point'] for r in rows], [r['labeled_frames'] for r in rows],
                   {curve: [r[curve] for r in rows] for curve in curves}, out / 'label_grid.png',
                   ranges={c: v for c, v in ranges.items() if any(v)})
  print(table, flush=True)
  print(f'augment_grid: every run in {out}; the figure in {out / "label_grid.png"}', flush=True)
  return table


def _curves(point: pathlib.Path, split: str, extra: tuple[str, ...],
            runs: int) -> dict[str, list[float]]:
  """Each curve's Total mAP at a grid point, one per initialisation."""
  results = lambda run: point / run / 'eval' / split / 'results.json'
  retrained = [results(run_name('retrain', i)) for i in range(runs)]
  return {'baseline': [_total(results(run_name('sparse', i)), 'single frame')
                       for i in range(runs)],
          '+ PoseWarper augmentation': [_total(p, 'single frame') for p in retrained],
          '+ aggregation': [_total(p, 'aggregation') for p in retrained],
          **{CONTROL_CURVES[c]: [_total(results(run_name(f'retrain_{c}', i)), 'single frame')
                                 for i in range(runs)] for c in extra}}


def _range(row: dict, curve: str) -> tuple[float, float] | None:
  """(lowest, highest) of a curve's initialisations at a point that ran several, else None."""
  values = row.get(f'{curve} runs')
  return (min(values), max(values)) if values else None


def results_table(rows: list[dict], title: str, curves: tuple[str, ...] = CURVES) -> str:
  """Markdown: one line per grid point, Total mAP of the curves (the three, then any control)
  and of the propagation experiment on the same subset, over every frame of the runs (the
  release's scoring), then over the moved frames only; then the PCKh and the systematic offset
  (head sizes) of the moved labels the retrained baselines trained on (PoseWarper's, the copy
  control's), against the train frames' own labels. Where a point retrained several
  initialisations (config.grid.spread_points), a curve's cell is their mean and, in brackets,
  their range."""
  fmt = lambda v, digits=1: '' if not math.isfinite(v) else f'{v:.{digits}f}'

  def curve_cell(row: dict, curve: str) -> str:
    span = _range(row, curve)
    mean = fmt(row.get(curve, math.nan))
    return mean if span is None or not mean else f'{mean} ({fmt(span[0])}-{fmt(span[1])})'
  propagation = [f'propagation {row}{suffix}' for _, suffix in PROPAGATION_FRAMES
                 for row in PROPAGATION_ROWS]
  labels = [f'train labels {field} {row}' for field in LABEL_FIELDS for row, _ in LABEL_ROWS]
  header = ['V', 'N', 'labeled frames (people)', *curves,
            'propagation: PoseWarper', 'copy', 'moved frames: PoseWarper', 'copy',
            'train labels PCKh: PoseWarper', 'copy', 'offset: PoseWarper', 'copy']
  lines = [f'| {title}: Total mAP | ' + ' | '.join(header) + ' |',
           '|---' * (len(header) + 1) + '|']
  for r in rows:
    cells = [r['labeled_videos'], r['labeled_frames_per_video'],
             f'{r["labeled_frames"]} ({r["labeled_people"]})',
             *(curve_cell(r, c) for c in curves),
             *(fmt(r.get(c, math.nan)) for c in propagation),
             *(fmt(r.get(c, math.nan), 3 if 'offset' in c else 1) for c in labels)]
    lines.append(f'| {r["point"]} | ' + ' | '.join(str(c) for c in cells) + ' |')
  return '\n'.join(lines)
