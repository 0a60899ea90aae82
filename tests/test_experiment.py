"""One experiment, checked before it writes: run.py refuses every value that can only be wrong
before the workdir exists, and provenance.py's one rule decides what is done, resumable or
refused, wherever a workdir holds something."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest

from posewarper_jax import config_checks, provenance
from posewarper_jax.data import source
from tests.helpers import ROOT, posewarper_config, tiny_model_overrides


def _start(cwd: pathlib.Path, variant: str, *args: str, **popen) -> subprocess.Popen:
  """run.py started as a user starts it: from `cwd`, every path relative to it."""
  return subprocess.Popen(
      [sys.executable, os.path.relpath(ROOT / 'run.py', cwd),
       f'--config={os.path.relpath(ROOT / "configs" / "posewarper.py", cwd)}:{variant}',
       *tiny_model_overrides(), '--config.data.synthetic_videos=(2, 1)', *args],
      cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.parametrize('variant, args, message', [
    # A config value: each of these was refused only after the workdir was locked and
    # config.json written, after the data was generated, or after stage 1 had trained.
    ('synthetic', ('--config.train.parallel=tpu',), r"config.train.parallel must be one of"),
    ('synthetic', ('--config.stage2.warp_input=truth',), 'config.stage2.warp_input'),
    # What the data decides: two train videos.
    ('synthetic', ('--config.data.labeled_videos=5',),
     r'config.data.labeled_videos asks for 5 labeled videos, but config.data.synthetic_videos '
     r'has 2'),
    ('synthetic_grid', ('--mode=augment_grid', '--config.grid.labels=((2, 1), (3, 1))',
                        '--config.grid.spread_points=()'),
     r'config.grid.labels \(3, 1\) asks for 3 labeled videos.* has 2'),
])
def test_a_value_that_can_only_be_wrong_leaves_no_workdir(tmp_path, variant, args, message):
  import re
  done = _start(tmp_path, variant, '--workdir=runs/new', *args)
  _, err = done.communicate(timeout=300)
  assert done.returncode != 0
  assert re.search(message, err), err[-2000:]
  assert not (tmp_path / 'runs').exists()


@pytest.mark.parametrize('mode, field, value, devices, message', [
    ('train', 'stage2.global_batch', 12, 8, r'config.stage2.global_batch \(12\) must divide '
                                            r'evenly over the 8 devices'),
    ('train', 'stage2.backbone_bn', 'moving', 1, r"config.stage2.backbone_bn must be one of "
                                                 r"\('frozen', 'batch'\)"),
    ('eval', 'model.dtype', 'half', 1, 'config.model.dtype must be one of'),
    ('eval', 'eval.split', 'dev', 1, 'config.eval.split must be one of'),
    ('augment_grid', 'grid.retrain.stage1.global_batch', 6, 4,
     r'config.grid.retrain.stage1.global_batch \(6\) must divide'),
    ('train', 'pretrain.stage1.global_batch', 6, 4,
     r'config.pretrain.stage1.global_batch \(6\) must divide'),
    ('augment_grid', 'grid.controls', ('copy', 'warp'), 1, 'config.grid.controls'),
    ('train', 'pretrain.limb_code', 2.0, 1, r'config.pretrain.limb_code must be a share'),
])
def test_every_check_names_its_field(mode, field, value, devices, message):
  config = posewarper_config.get_config('synthetic_grid,standin')
  config_checks.check(config, mode, device_count=2)
  section, _, name = field.rpartition('.')
  target = config
  for part in section.split('.'):
    target = target[part]
  target[name] = value
  with pytest.raises(ValueError, match=message):
    config_checks.check(config, mode, device_count=devices)


def test_sigterm_outside_training_says_to_run_again(tmp_path):
  # Stopped while the synthetic videos are generated: no training loop saves, the command says
  # how to go on, and what was half made is made again (no marker was written).
  run = _start(tmp_path, 'synthetic', '--workdir=runs/stopped')
  for line in run.stdout:
    if 'generating a synthetic PoseTrack18' in line:
      run.send_signal(signal.SIGTERM)
      break
  out, _ = run.communicate(timeout=120)
  assert run.returncode == 128 + signal.SIGTERM
  assert 'SIGTERM; stopped. Run the same command again' in out
  assert not (tmp_path / 'runs' / 'stopped' / 'data' / 'posetrack18' / 'GENERATED').exists()


# --- The rule -------------------------------------------------------------------------------------

def test_added_fields_count_as_their_value_before_and_changed_ones_are_named():
  saved = {'seed': 0, 'num_train': 2}
  assert provenance.config_checks.differences(saved, {**saved, 'layout': 'posetrack18'},
                                              added={'layout': 'posetrack18'}) == []
  assert provenance.config_checks.differences(saved, {**saved, 'layout': 'posetrack21'},
                                              added={'layout': 'posetrack18'}) == [
      "layout: 'posetrack18' before, 'posetrack21' now"]
  assert provenance.config_checks.differences(saved, {**saved, 'new': 1}) == []  # no default
  assert provenance.config_checks.differences({**saved, 'gone': 1}, saved) == []
  assert provenance.config_checks.differences(saved, {'seed': 1, 'num_train': 2},
                                              ignore=('seed',)) == []


def test_a_set_made_before_a_field_was_added_is_not_made_again(tmp_path, capsys):
  # The synthetic set's marker from before layouts existed (no 'layout' key).
  config = posewarper_config.get_config('synthetic')
  root = source.dataset_root(config, tmp_path)
  root.mkdir(parents=True)
  num_train, num_val = config.data.synthetic_videos
  height, width = config.data.synthetic_frame_size
  (root / 'GENERATED').write_text(json.dumps(dict(
      seed=config.seed, num_train=num_train, num_val=num_val, num_test=0, width=width,
      height=height), sort_keys=True) + '\n')
  source.check_synthetic(config, tmp_path)  # done: not refused, nothing to make
  config.seed = 1
  with pytest.raises(provenance.Refused, match=r'\n  seed: 0 before, 1 now\n'):
    source.check_synthetic(config, tmp_path)


def test_made_once_records_last_and_refuses_other_settings_by_name(tmp_path, capsys):
  made = []
  make = lambda: made.append((tmp_path / 'set').mkdir(exist_ok=True))
  kwargs = dict(announce='making', what='the test')
  provenance.make_once(tmp_path / 'set', 'DONE', {'a': 1}, make, **kwargs)
  provenance.make_once(tmp_path / 'set', 'DONE', {'a': 1, 'b': 2}, make, **kwargs)  # added since
  assert len(made) == 1
  with pytest.raises(provenance.Refused, match=r'set was made with other settings than the test '
                                               r'now asks for:\n  a: 1 before, 3 now\nStart'):
    provenance.make_once(tmp_path / 'set', 'DONE', {'a': 3}, make, **kwargs)
  (tmp_path / 'set' / 'DONE').write_text('{')
  with pytest.raises(provenance.Refused, match=r'DONE: unreadable'):
    provenance.make_once(tmp_path / 'set', 'DONE', {'a': 1}, make, **kwargs)


def test_paths_inside_the_workdir_are_recorded_relative_to_the_run(tmp_path):
  config = posewarper_config.get_config('synthetic')
  home = tmp_path / 'work'
  config.stage1.init = str(home / 'pretrain')
  config.data.root = str(home / 'data' / 'posetrack18')
  config.eval.checkpoint = '/elsewhere/run'
  recorded = provenance.recorded_config(config, home / 'grid' / 'V1_N1' / 'sparse', home)
  assert recorded['stage1']['init'] == '../../../pretrain'
  assert recorded['data']['root'] == '../../../data/posetrack18'
  assert recorded['eval']['checkpoint'] == '/elsewhere/run'  # the user's, outside: as given
  assert recorded['eval']['boxes'] == 'gt'


def test_a_finished_step_is_done_until_what_it_read_changes(tmp_path):
  config = posewarper_config.get_config('synthetic')
  steps = provenance.Steps(tmp_path / 'after_training.json', tmp_path)
  stamp = provenance.stamp(config, tmp_path)
  assert not steps.done('eval', stamp)
  steps.finish('eval', stamp)
  again = provenance.Steps(tmp_path / 'after_training.json', tmp_path)
  config.eval.added_since = 1  # a field added to the code: still done
  assert again.done('eval', provenance.stamp(config, tmp_path))
  config.grid.labels = ((1, 1),)  # not of the run
  assert again.done('eval', provenance.stamp(config, tmp_path))
  config.eval.flip_test = True
  assert not again.done('eval', provenance.stamp(config, tmp_path))
