"""What run.py's train mode does after training: config.after_training, then one results table.

    run_after_training(config, workdir)   # e.g. ('eval', 'propagate', 'render')

Steps:
- 'eval': evaluate.evaluate (single-frame and aggregation mAP) -> <workdir>/eval/<split>.
- 'propagate': propagate.propagate (PoseWarper against copying labels) -> <workdir>/propagate.
- 'render': the network's poses on the longest labeled run of the split's first video, in its
  ground-truth boxes (infer.infer_frames) -> <workdir>/infer/<video id> (poses.mp4, grid.png,
  offsets.png).
- 'augment': augment.augment (the train split's kept labels and the poses PoseWarper
  propagates from them) -> <workdir>/augment/posetrack18.

Then `summary` gathers whatever the steps wrote into <workdir>/results.md and prints it: the
single-frame and aggregation mAP, and the propagation mAP per |delta|.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

import jax

from posewarper_jax import (
  augment,
  checkpoints,
  evaluate,
  infer,
  paths,
  propagate,
  provenance,
)
from posewarper_jax.data import source
from posewarper_jax.data.pipeline import ground_truth_boxes, record_frames
from tfds_posetrack.posetrack18 import longest_labeled_run, split_directory


def render_first_video(config, workdir: pathlib.Path) -> pathlib.Path:
  """Poses on the eval split's first video, over its longest run of labeled frames, in their
  ground-truth boxes (infer.infer_frames, on the frames decoded in memory); returns the output
  folder, <workdir>/infer/<video id>."""
  records, table = source.open_split(config, workdir, config.eval.split)
  run = longest_labeled_run(table, 0)
  if not len(run):
    raise ValueError(f'render: video {table.video_names[0]} of the {config.eval.split} split has '
                     'no labeled frame')
  name = table.video_names[0]
  # The video id comes from an annotation file: never a path.
  out = paths.inside(workdir / 'infer', name, f'render: the video id of {config.eval.split}')
  frame = record_frames(records)
  position = {int(r): i for i, r in enumerate(run)}
  truth = ground_truth_boxes(records, table)
  boxes = [(position[int(r)], box, 1.0) for r, box in zip(truth.record, truth.box, strict=True)
           if int(r) in position]
  return infer.infer_frames(config, checkpoints.load_network(config, workdir),
                            [frame(int(r)) for r in run],
                            [f'{table.frame_index[r]:06d}.jpg' for r in run], boxes, 10.0, out,
                            f'{config.eval.split} video {name}')


STEPS: dict[str, Callable] = {'eval': evaluate.evaluate, 'propagate': propagate.propagate,
                              'render': render_first_video, 'augment': augment.augment}
# Where a run records its finished steps (provenance.Steps).
AFTER_TRAINING_RECORD = 'after_training.json'


def run_after_training(config, workdir: str | pathlib.Path,
                       home: str | pathlib.Path | None = None) -> str | None:
  """Runs config.after_training in order; returns (and prints) the summary table, or None when
  there are no steps.

  A step finished with the same config on the same checkpoints (provenance.Steps, in
  <workdir>/after_training.json) is not run again, so running the command again after it
  finished, or after it stopped, repeats nothing that is complete; a step whose config or
  checkpoints changed runs again. `home`: the workdir the user named (provenance.py).
  """
  workdir = pathlib.Path(workdir)
  steps = provenance.Steps(workdir / AFTER_TRAINING_RECORD, workdir, home)
  stamp = provenance.stamp(config, workdir, home)
  for name in config.after_training:
    if steps.done(name, stamp):
      print(f'--- after training: {name}: done before with this config and these checkpoints '
            f'({steps.path})', flush=True)
      continue
    if name == 'propagate' and checkpoints.network(config, workdir).has_head is False:
      print('--- after training: propagate: skipped, the network has no warping head (stage 2 '
            'was not trained)', flush=True)
      continue
    print(f'--- after training: {name}', flush=True)
    STEPS[name](config, workdir)
    if jax.process_index() == 0:
      steps.finish(name, stamp)
  if not config.after_training or jax.process_index() != 0:
    return None
  table = summary(config, workdir)
  print(table, flush=True)
  return table


def summary(config, workdir: str | pathlib.Path) -> str:
  """<workdir>/results.md: one table of Total mAP from what eval and propagate wrote for
  config.eval.split (rows whose results are missing are left out).

  Columns: every labeled frame of the split (the eval rows), then the frames |delta| = 1, 2, 3
  away from a kept label in the propagation protocol (the propagate rows).
  """
  workdir = pathlib.Path(workdir)
  split = split_directory(config.eval.split, 'config.eval.split')
  rows: dict[str, list[str]] = {}
  eval_path = workdir / 'eval' / split / 'results.json'
  evaluated = json.loads(eval_path.read_text()) if eval_path.exists() else {}
  prop_path = workdir / 'propagate' / split / 'results.json'
  propagated = json.loads(prop_path.read_text())['total'] if prop_path.exists() else {}
  distances = ('1', '2', '3')
  fmt = lambda result, key: f'{result[key]:.1f}' if result and key in result else ''
  names = {'single frame': ('single frame', 'single frame'),
           'PoseWarper aggregation': ('aggregation', None),
           'PoseWarper propagation': (None, 'PoseWarper'),
           'copy the nearest label': (None, 'copy')}
  for name, (eval_row, prop_row) in names.items():
    totals = evaluated.get(eval_row, {}).get('groups') if eval_row else None
    cells = [fmt(totals, 'Total')] + [fmt(propagated.get(prop_row), d) for d in distances]
    if any(cells):
      rows[name] = cells
  header = (f'| {config.eval.split}, {config.eval.boxes} boxes: Total mAP | all labeled frames | '
            + ' | '.join(propagate.delta_column(d) for d in distances) + ' |')
  lines = [header, '|---|---|---|---|---|']
  lines += [f'| {name} | ' + ' | '.join(cells) + ' |' for name, cells in rows.items()]
  notes = []
  if evaluated.get('aggregation') and evaluated.get('single frame'):
    gain = (evaluated['aggregation']['groups']['Total']
            - evaluated['single frame']['groups']['Total'])
    notes.append(f'aggregation - single frame: {gain:+.1f} mAP')
  if propagated.get('PoseWarper') and propagated.get('copy'):
    notes += [f'propagation - copy at |delta| = {d}: '
              f'{propagated["PoseWarper"][d] - propagated["copy"][d]:+.1f} mAP'
              for d in distances if d in propagated['PoseWarper'] and d in propagated['copy']]
  text = '\n'.join(lines + ([''] + notes if notes else []))
  (workdir / 'results.md').write_text(text + '\n')
  return text
