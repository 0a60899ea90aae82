"""The quick start, shortened: the README's first command with a tiny model and two steps per
stage, end to end (generate, build, train both stages, eval, propagate, render, the results
table), then the same command again, which must redo nothing."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from posewarper_jax import report
from posewarper_jax.data import source
from posewarper_jax.data.pipeline import ground_truth_boxes
from tests.helpers import ROOT, posewarper_config, tiny_model_overrides
from tfds_posetrack.posetrack18 import longest_labeled_run


def _overrides() -> list[str]:
  return [*tiny_model_overrides(), '--config.sigma=1.0',
          '--config.data.synthetic_videos=(2, 1)', '--config.data.synthetic_frame_size=(144, 192)',
          '--config.stage1.global_batch=8', '--config.stage2.global_batch=8',
          '--config.train.num_steps=2', '--config.eval.batch=16']


def _config():
  """The quick start's config with _overrides() applied, as the fixture's run.py gets it."""
  config = posewarper_config.get_config('synthetic')
  config.data.synthetic_videos = (2, 1)
  config.data.synthetic_frame_size = (144, 192)
  return config


def _start(cwd: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
  """run.py started as a user starts it: from `cwd`, every path relative to it."""
  return subprocess.run([sys.executable, os.path.relpath(ROOT / 'run.py', cwd),
                         f'--config={os.path.relpath(ROOT / "configs" / "posewarper.py", cwd)}'
                         ':synthetic', *args], cwd=cwd, capture_output=True, text=True,
                        timeout=900)


def _run(cwd: pathlib.Path, *args: str) -> str:
  done = _start(cwd, *args)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  return done.stdout


@pytest.fixture(scope='module')
def quickstart(tmp_path_factory):
  """(workdir, stdout of the first run, stdout of the second), run from another folder with a
  relative --workdir (the README's runs/quickstart crashed that way once: Orbax wants absolute
  paths)."""
  cwd = tmp_path_factory.mktemp('user')
  outputs = [_run(cwd, '--workdir=runs/quickstart', *_overrides()) for _ in range(2)]
  return cwd / 'runs' / 'quickstart', *outputs


def test_one_command_does_everything(quickstart):
  workdir, first, _ = quickstart
  assert 'generating a synthetic PoseTrack18' in first
  assert '[stage 1] step 2/2' in first and '[stage 2] step 2/2' in first
  for step in ('eval', 'propagate', 'render'):
    assert f'--- after training: {step}\n' in first
  assert (workdir / 'stage1' / 'checkpoints' / '2').is_dir()
  assert (workdir / 'stage2' / 'checkpoints' / '2').is_dir()
  assert set(json.loads((workdir / 'eval' / 'val' / 'results.json').read_text())) == {
      'single frame', 'aggregation'}
  assert (workdir / 'propagate' / 'val' / 'propagation.png').stat().st_size > 0
  (video,) = (workdir / 'infer').iterdir()
  for name in ('poses.mp4', 'grid.png', 'offsets.png', 'predictions.json'):
    assert (video / name).stat().st_size > 0, name
  # Rendered on the labeled run (30 middle frames, perhaps one more) of the first validation
  # video, in its ground-truth boxes.
  frames = json.loads((video / 'predictions.json').read_text())['frames']
  records, table = source.open_split(_config(), workdir, 'validation')
  run = set(longest_labeled_run(table, 0).tolist())
  boxes = [r for r in ground_truth_boxes(records, table).record if int(r) in run]
  assert len(frames) >= 30 and boxes
  assert sum(len(f['people']) for f in frames) == len(boxes)


def test_the_results_table(quickstart):
  workdir, first, _ = quickstart
  table = (workdir / 'results.md').read_text()
  assert table.strip() in first  # printed at the end
  rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
          for line in table.splitlines() if line.startswith('| ') and 'Total mAP' not in line}
  assert list(rows) == ['single frame', 'PoseWarper aggregation', 'PoseWarper propagation',
                        'copy the nearest label']
  evaluated = json.loads((workdir / 'eval' / 'val' / 'results.json').read_text())
  propagated = json.loads((workdir / 'propagate' / 'val' / 'results.json').read_text())['total']
  assert rows['single frame'][0] == f'{evaluated["single frame"]["groups"]["Total"]:.1f}'
  assert rows['PoseWarper aggregation'] == [
      f'{evaluated["aggregation"]["groups"]["Total"]:.1f}', '', '', '']
  assert rows['PoseWarper propagation'][1:] == [f'{propagated["PoseWarper"][d]:.1f}'
                                                for d in '123']
  assert rows['copy the nearest label'][1:] == [f'{propagated["copy"][d]:.1f}' for d in '123']
  assert 'propagation - copy at |delta| = 3:' in table


def test_running_it_again_redoes_nothing(quickstart):
  workdir, first, second = quickstart
  assert 'generating' not in second
  assert 'stage 1: already at step 2 of 2' in second and 'stage 2: already at step 2 of 2' in second
  for step in ('eval', 'propagate', 'render'):
    assert f'--- after training: {step}: done before' in second
  assert (workdir / 'results.md').read_text().strip() in second


def test_a_workdir_generated_with_other_settings_is_an_error(quickstart):
  workdir = quickstart[0]
  config = posewarper_config.get_config('synthetic')
  config.data.synthetic_frame_size = (144, 192)
  config.data.synthetic_videos = (3, 1)
  with pytest.raises(ValueError, match=r'was made with other settings .*\n  num_train: 2 before, '
                                       r'3 now\nStart this experiment in another --workdir'):
    source.prepare_dataset(config, workdir)


def test_propagation_is_skipped_without_a_warping_head(identity_run, tmp_path, capsys):
  config, trained = identity_run
  shutil.copytree(trained / 'stage1', tmp_path / 'stage1')
  config = config.copy_and_resolve_references()
  config.after_training = ('propagate',)
  table = report.run_after_training(config, tmp_path)
  assert 'propagate: skipped, the network has no warping head' in capsys.readouterr().out
  assert 'propagation' not in table and not (tmp_path / 'propagate').exists()


def test_eval_from_relative_paths_picks_the_runs_stage2(quickstart):
  # Another workdir, the data and the network named relative to where the command starts:
  # config.eval.checkpoint = a run with both stages evaluates its stage 2, with the head.
  workdir = quickstart[0]
  cwd = workdir.parent
  out = _run(cwd, '--workdir=other', '--mode=eval', *_overrides(),
             '--config.data.synthetic=False', '--config.data.root=quickstart/data/posetrack18',
             '--config.data.tfds_dir=quickstart/data/tfds',
             '--config.eval.checkpoint=quickstart', '--config.eval.gallery=False')
  assert 'quickstart/stage2/checkpoints step 2 (stage 2, with its warping head)' in out
  results = json.loads((cwd / 'other' / 'eval' / 'val' / 'results.json').read_text())
  assert set(results) == {'single frame', 'aggregation'}


def test_resuming_with_another_model_is_refused_before_the_config_changes(quickstart):
  workdir = quickstart[0]
  written = (workdir / 'config.json').read_text()
  done = _start(workdir.parent.parent, '--workdir=runs/quickstart', *_overrides(),
                '--config.model.head.num_blocks=3', '--config.train.num_steps=4')
  assert done.returncode != 0
  assert ('this command changes:\n  config.model.head.num_blocks: 2 before, 3 now\n'
          'Start the new experiment in another --workdir') in done.stderr
  assert (workdir / 'config.json').read_text() == written
