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

Every run is the train mode's sequence (experiment.train_run: resumed where it stopped, skipped
when done, by provenance.py's rule), and every run of the grid is planned and checked
(experiment.check) before the first writes, so the command run again after a stop finishes the
grid without repeating finished work, and one that cannot go on is refused before it starts. A
synthetic set (config.data.synthetic) is generated once in <workdir>/data and shared by every
point.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib

import jax
import ml_collections

from posewarper_jax import (
  augment,
  config_checks,
  experiment,
  paths,
  plots,
  pretrain,
  provenance,
  report,
  train,
)
from posewarper_jax.data import source
from tfds_posetrack.posetrack18 import split_directory

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


def point_name(videos: int, frames: int) -> str:
  """The folder of a grid point: 'V50_N1', 'Vall_N2'."""
  return f'V{"all" if videos == -1 else videos}_N{"all" if frames == -1 else frames}'


def sparse_config(config, data, videos: int, frames: int) -> ml_collections.ConfigDict:
  """Step 1's run: both stages on the (V, N) subset; eval (single frame), propagate, augment."""
  run_config = ml_collections.ConfigDict(config.to_dict())
  run_config.data = ml_collections.ConfigDict(data.to_dict())
  run_config.data.update(labeled_videos=videos, labeled_frames_per_video=frames)
  run_config.stages = (1, 2)
  # Its own networks: one from elsewhere may have seen labels outside the subset.
  run_config.stage2.init = run_config.eval.checkpoint = ''
  run_config.after_training = ('eval', 'propagate', 'augment')
  run_config.eval.aggregate = False  # the baseline curve is the single frame
  return run_config


def baseline_config(config, data, videos: int, frames: int,
                    initialisation: int) -> ml_collections.ConfigDict:
  """A further initialisation of step 1's baseline: stage 1 alone on the same labels, with
  config.seed + initialisation; its single-frame mAP."""
  run_config = sparse_config(_with_seed(config, initialisation), data, videos, frames)
  run_config.data.labeled_seed = source.labeled_seed(config)  # the labels of the grid's draw
  run_config.stages = (1,)
  run_config.after_training = ('eval',)
  return run_config


def retrain_config(config, data, augmented_root: pathlib.Path) -> ml_collections.ConfigDict:
  """Step 2's run: both stages on the enlarged set with config.grid.retrain's settings; eval
  with aggregation. The enlarged set holds only kept and propagated labels: all of them train."""
  run_config = ml_collections.ConfigDict(config.to_dict())
  run_config.data = ml_collections.ConfigDict(data.to_dict())
  run_config.data.update(root=str(augmented_root), tfds_dir='', labeled_videos=-1,
                  labeled_frames_per_video=-1)
  run_config.stages = (1, 2)
  run_config.stage1.update(config.grid.retrain.stage1.to_dict())
  run_config.stage2.update(config.grid.retrain.stage2.to_dict())
  # The retrained networks, never another's.
  run_config.stage2.init = run_config.eval.checkpoint = ''
  run_config.after_training = ('eval',)
  run_config.eval.aggregate = True
  return run_config


def control_config(config, data, augmented_root: pathlib.Path) -> ml_collections.ConfigDict:
  """A control's run: the baseline alone retrained on a control's enlarged set (as step 2's,
  single frame only)."""
  run_config = retrain_config(config, data, augmented_root)
  run_config.stages = (1,)
  run_config.eval.aggregate = False
  return run_config


def run_name(name: str, initialisation: int) -> str:
  """A retraining's folder: 'retrain', 'retrain_copy'; the further initialisations
  'retrain_init1', 'retrain_copy_init2'."""
  return name if initialisation == 0 else f'{name}_init{initialisation}'


def _with_seed(config, initialisation: int) -> ml_collections.ConfigDict:
  """The config of a further initialisation: config.seed + initialisation (the retrainings'
  data is the enlarged set, which the seed does not draw)."""
  if initialisation == 0:
    return config
  run = ml_collections.ConfigDict(config.to_dict())
  run.seed = config.seed + initialisation
  return run


def _initialisation_note(config, initialisation: int, runs: int) -> str:
  """' (initialisation 2 of 3: config.seed=1)' for the console, '' where a point runs one."""
  return (f' (initialisation {initialisation + 1} of {runs}: '
          f'config.seed={config.seed + initialisation})' if runs > 1 else '')


def curve_total(path: pathlib.Path, row: str) -> float:
  results = json.loads(path.read_text())
  return float(results[row]['groups']['Total']) if row in results else math.nan


def _label_accuracy(sparse: pathlib.Path, poses: str, field: str) -> float:
  """A field of an enlarged set's label_accuracy.json, all |delta| (NaN when not written)."""
  path = augment.output_root(sparse, poses).parent / 'label_accuracy.json'
  return float(json.loads(path.read_text())['all'][field]) if path.exists() else math.nan


@dataclasses.dataclass(frozen=True)
class Point:
  """One (V, N) of the grid and its runs, in the order they train: the sparse run, the sparse
  baseline's further initialisations, then per initialisation the retraining and each
  control's (`controls`: (control, its enlarged set, its run))."""

  videos: int
  frames: int
  folder: pathlib.Path
  sparse: experiment.Run
  baselines: tuple[experiment.Run, ...]
  retrains: tuple[experiment.Run, ...]
  controls: tuple[tuple[tuple[str, pathlib.Path, experiment.Run], ...], ...]

  @property
  def runs(self) -> list[experiment.Run]:
    return [self.sparse, *self.baselines, *self.retrains,
            *(run for group in self.controls for _, _, run in group)]


def plan(config, workdir: pathlib.Path, data) -> list[Point]:
  """Every run of the grid, with its config and folder (nothing made: the grid checks them all
  before the first writes)."""
  spread_points = {tuple(p) for p in config.grid.spread_points}
  points = []
  for videos, frames in config_checks.grid_points(config):
    folder = workdir / 'grid' / point_name(videos, frames)

    def run(run_config, name, folder=folder):
      return experiment.Run(run_config, folder / name, workdir)

    count = config.grid.initialisations if (videos, frames) in spread_points else 1
    augmented = folder / 'sparse' / 'augment' / 'posetrack18'
    retrains, controls = [], []
    for i in range(count):
      seeded = _with_seed(config, i)
      retrains.append(run(retrain_config(seeded, data, augmented), run_name('retrain', i)))
      controls.append(tuple(
          (control, augment.output_root(folder / 'sparse', control),
           run(control_config(seeded, data, augment.output_root(folder / 'sparse', control)),
               run_name(f'retrain_{control}', i)))
          for control in config.grid.controls))
    points.append(Point(
        videos, frames, folder, run(sparse_config(config, data, videos, frames), 'sparse'),
        tuple(run(baseline_config(config, data, videos, frames, i), run_name('sparse', i))
              for i in range(1, count)), tuple(retrains), tuple(controls)))
  return points


def _control_set(point: Point, control: str, root: pathlib.Path) -> None:
  """A control's enlarged set, made from the sparse run once (recorded as finished in the sparse
  run's after-training record, provenance.Steps, like its own steps after training)."""
  sparse = point.sparse
  steps = provenance.Steps(sparse.workdir / report.AFTER_TRAINING_RECORD, sparse.workdir,
                           sparse.home)
  stamp = provenance.stamp(sparse.config, sparse.workdir, sparse.home)
  name = f'augment_{control}'
  if steps.done(name, stamp):
    print(f'augment ({control}): {root} was written before', flush=True)
    return
  augment.augment(sparse.config, sparse.workdir, control)
  if jax.process_index() == 0:
    steps.finish(name, stamp)


def run_grid(config, workdir: str | pathlib.Path) -> str | None:
  """Trains and scores every grid point; returns (and prints) the results table on process 0."""
  workdir = pathlib.Path(workdir)
  split = split_directory(config.eval.split, 'config.eval.split')
  config = pretrain.with_standin(config, workdir)  # every run's stage 1 starts from it
  points = plan(config, workdir, source.shared_data_config(config, workdir))
  standin = experiment.standin(config, workdir)
  experiment.check(config, workdir, [*([standin] if standin else []),
                                     *(run for point in points for run in point.runs)])
  source.shared_data(config, workdir)
  experiment.make_standin(config, workdir, standin)
  rows = []
  for point in points:
    name, runs = point.folder.name, len(point.retrains)
    note = lambda i, runs=runs: _initialisation_note(config, i, runs)
    print(f'=== augment_grid: {name} (config.data.labeled_videos={point.videos}, '
          f'labeled_frames_per_video={point.frames}): the sparse run', flush=True)
    experiment.train_run(point.sparse)
    for i, baseline in enumerate(point.baselines, start=1):
      print(f'=== augment_grid: {name}: the sparse baseline again, on the same labels'
            f'{note(i)}', flush=True)
      experiment.train_run(baseline)
    for i, (retrain, controls) in enumerate(zip(point.retrains, point.controls, strict=True)):
      print(f'=== augment_grid: {name}: the baseline retrained on the propagated labels'
            f'{note(i)}', flush=True)
      experiment.train_run(retrain)
      for control, root, run in controls:
        print(f'=== augment_grid: {name}: the control {control!r} (the baseline retrained on '
              f'the same frames, {CONTROL_CURVES[control][2:]}){note(i)}', flush=True)
        _control_set(point, control, root)
        experiment.train_run(run)
    if jax.process_index() != 0:
      continue
    sparse = point.sparse
    counts = train.label_counts(sparse.config, sparse.workdir)
    propagated = json.loads((sparse.workdir / 'propagate' / split / 'results.json')
                            .read_text())['total']
    scores = point_curves(point.folder, split, tuple(config.grid.controls), runs)
    rows.append({'point': name, 'labeled_videos': point.videos,
                 'labeled_frames_per_video': point.frames, **counts,
                 **{curve: sum(values) / runs for curve, values in scores.items()},
                 **({'initialisations': runs,
                     **{f'{curve} runs': values for curve, values in scores.items()}}
                    if runs > 1 else {}),
                 **{f'propagation {row}{suffix}': propagated[row].get(frames, math.nan)
                    for row in PROPAGATION_ROWS for frames, suffix in PROPAGATION_FRAMES},
                 **{f'train labels {field} {row}': _label_accuracy(sparse.workdir, poses,
                                                                    field)
                    for field in LABEL_FIELDS for row, poses in LABEL_ROWS}})
  if jax.process_index() != 0:
    return None
  out = workdir / 'grid'
  curves = (*CURVES, *(CONTROL_CURVES[c] for c in config.grid.controls))
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


def point_curves(point: pathlib.Path, split: str, extra: tuple[str, ...],
            runs: int) -> dict[str, list[float]]:
  """Each curve's Total mAP at a grid point, one per initialisation."""
  results = lambda run: point / run / 'eval' / split / 'results.json'
  retrained = [results(run_name('retrain', i)) for i in range(runs)]
  return {'baseline': [curve_total(results(run_name('sparse', i)), 'single frame')
                       for i in range(runs)],
          '+ PoseWarper augmentation': [curve_total(p, 'single frame') for p in retrained],
          '+ aggregation': [curve_total(p, 'aggregation') for p in retrained],
          **{CONTROL_CURVES[c]: [curve_total(results(run_name(f'retrain_{c}', i)), 'single frame')
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
