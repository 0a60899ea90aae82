"""checkpoints.py: which network a path names is decided by what the checkpoint records, not by
the names of its folders; paths.py: the user's paths made absolute."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from posewarper_jax import checkpoints, convert, paths


def test_a_run_with_both_stages_names_its_stage_2_with_the_head(identity_run):
  config, workdir = identity_run
  found = checkpoints.find(workdir)
  assert (found.kind, found.stage, found.has_head) == ('run', 2, True)
  assert found.directory == checkpoints.manager_dir(workdir, 2)
  assert found.meta['model'] == json.loads(json.dumps(config.model.to_dict()))
  assert checkpoints.load(workdir).has_head
  # config.eval.checkpoint = that run: the same network as evaluating the run itself.
  config = config.copy_and_resolve_references()
  config.eval.checkpoint = str(workdir)
  assert checkpoints.network(config, workdir / 'elsewhere') == found


def test_a_library_caller_may_name_a_run_relative_to_its_folder(identity_run, monkeypatch):
  """Orbax wants absolute paths; a script that calls the library from the run's parent folder
  with 'run/stage2' (or the workdir, or a step) gets the same network."""
  _, workdir = identity_run
  monkeypatch.chdir(workdir.parent)
  for relative in (workdir.name, f'{workdir.name}/stage2', f'{workdir.name}/stage2/checkpoints'):
    network = checkpoints.load(relative)
    assert network.has_head and network.checkpoint.directory.is_absolute(), relative


def test_a_moved_stage1_run_is_still_headless(identity_run, tmp_path):
  _, workdir = identity_run
  for moved in (tmp_path / 'renamed_run', tmp_path / 'just_the_manager'):
    shutil.copytree(checkpoints.stage_dir(workdir, 1) if moved.name == 'renamed_run'
                    else checkpoints.manager_dir(workdir, 1), moved)
    found = checkpoints.find(moved)
    assert (found.kind, found.stage, found.has_head) == ('run', 1, False), moved
    network = checkpoints.load(found)
    assert not network.has_head
    assert set(network.variables['params']) == {'backbone'}
  # And a stage-2 run under a folder called stage1 keeps its head: the name decides nothing.
  shutil.copytree(checkpoints.stage_dir(workdir, 2), tmp_path / 'x' / 'stage1')
  found = checkpoints.find(tmp_path / 'x' / 'stage1')
  assert (found.stage, found.has_head) == (2, True)


def test_a_stage2_that_never_saved_falls_back_to_stage1(identity_run, tmp_path):
  _, workdir = identity_run
  shutil.copytree(checkpoints.stage_dir(workdir, 1), tmp_path / 'stage1')
  checkpoints.manager_dir(tmp_path, 2).mkdir(parents=True)
  (checkpoints.manager_dir(tmp_path, 2) / '5.orbax-checkpoint-tmp-1').mkdir()  # never finished
  found = checkpoints.find(tmp_path)
  assert (found.stage, found.has_head) == (1, False)


def test_a_converted_checkpoint_says_whether_it_has_a_head(identity_run, tmp_path):
  _, workdir = identity_run
  variables = checkpoints.load(workdir).variables
  convert.save_variables(variables, tmp_path / 'full')
  convert.save_variables({k: {'backbone': v['backbone']} for k, v in variables.items()},
                         tmp_path / 'hrnet')
  assert checkpoints.find(tmp_path / 'full').has_head is True
  assert checkpoints.find(tmp_path / 'hrnet').has_head is False
  assert checkpoints.find(tmp_path / 'full').kind == 'variables'


def test_a_path_without_a_network_says_where_it_looked(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    checkpoints.find(tmp_path / 'missing')
  with pytest.raises(FileNotFoundError, match=r'names no network: no saved step in .*stage2'):
    checkpoints.find(tmp_path)


def test_user_paths_become_absolute(tmp_path, monkeypatch):
  from tests.helpers import posewarper_config

  monkeypatch.chdir(tmp_path)
  config = posewarper_config.get_config()
  config.data.root = 'data/pt18'
  config.stage2.init = '~/runs/w48'
  config.infer.input = 'clip.mp4'
  paths.absolute_config(config)
  assert config.data.root == str(tmp_path / 'data' / 'pt18')
  assert config.stage2.init == os.path.expanduser('~/runs/w48')
  assert config.infer.input == str(tmp_path / 'clip.mp4')
  assert config.eval.boxes == 'gt' and config.eval.checkpoint == ''  # keywords, empty: kept
  for field in paths.USER_PATHS:
    group, name = field.split('.')
    assert isinstance(config[group][name], str), field  # every listed field exists


# --- Integrity: a damaged step is reported by name, with the intact ones ------------------------

def _largest_file(step: pathlib.Path) -> pathlib.Path:
  """The biggest array file of a step's state (the optimizer's and parameters' bytes)."""
  return max((p for p in (step / checkpoints.STATE).rglob('*') if p.is_file()),
             key=lambda p: p.stat().st_size)


def _copy_run_with_two_steps(identity_run, tmp_path) -> pathlib.Path:
  """A stage-2 manager directory with steps 1 and 2 (2 a sealed copy of 1)."""
  _, workdir = identity_run
  manager = tmp_path / 'stage2' / 'checkpoints'
  shutil.copytree(checkpoints.manager_dir(workdir, 2), manager)
  shutil.copytree(manager / '1', manager / '2')
  checkpoints.seal(manager / '2')
  return manager


@pytest.mark.parametrize('damage', ['overwrite', 'truncate', 'delete'])
def test_a_damaged_step_is_refused_by_name_with_the_intact_steps(identity_run, tmp_path, damage):
  manager = _copy_run_with_two_steps(identity_run, tmp_path)
  assert (manager / '1' / checkpoints.INTEGRITY).exists()  # training sealed it
  assert checkpoints.verify(manager / '2') is True
  victim = _largest_file(manager / '2')
  data = bytearray(victim.read_bytes())
  if damage == 'overwrite':  # eight bytes, the size unchanged
    data[len(data) // 2:len(data) // 2 + 8] = b'\x7f' * 8
    victim.write_bytes(bytes(data))
  elif damage == 'truncate':
    victim.write_bytes(bytes(data[:len(data) // 2]))
  else:
    victim.unlink()
  name = str(victim.relative_to(manager / '2'))
  with pytest.raises(checkpoints.DamagedCheckpointError) as error:
    checkpoints.load(tmp_path)  # the run: its latest step, 2
  message = str(error.value)
  assert f'{manager / "2"} is damaged: {name}' in message
  assert f'Intact steps of {manager}: 1' in message and str(manager / '1') in message
  assert checkpoints.intact_steps(manager) == [1]
  # The step the message offers loads, by its folder.
  network = checkpoints.load(manager / '1')
  assert network.checkpoint.step == 1 and network.has_head


def test_an_unsealed_step_that_orbax_cannot_read_is_reported_not_raised_from_orbax(
    identity_run, tmp_path):
  manager = _copy_run_with_two_steps(identity_run, tmp_path)
  (manager / '2' / checkpoints.INTEGRITY).unlink()  # as a run killed right after the save
  assert checkpoints.verify(manager / '2') is False
  _largest_file(manager / '2').write_bytes(b'')
  with pytest.raises(checkpoints.DamagedCheckpointError,
                     match=rf'{manager / "2"} cannot be read \(.*\)\. Intact steps of '
                           rf'{manager}: 1;'):
    checkpoints.load(manager)


def test_nan_in_a_step_is_damage():
  with pytest.raises(checkpoints.DamagedCheckpointError, match=r"checkpoint /x: \['a'\] holds "
                     'NaN'):
    checkpoints.check_finite({'a': np.array([1.0, np.nan]), 'b': np.arange(3)},
                             pathlib.Path('/x'))
  checkpoints.check_finite({'b': np.arange(3), 'c': np.ones(2)}, pathlib.Path('/x'))


def test_an_empty_stage2_checkpoints_folder_falls_back_to_stage1(identity_run, tmp_path):
  """A stage 2 that died before its first save: eval, propagate and infer get stage 1."""
  config, workdir = identity_run
  shutil.copytree(checkpoints.stage_dir(workdir, 1), tmp_path / 'stage1')
  checkpoints.manager_dir(tmp_path, 2).mkdir(parents=True)
  config = config.copy_and_resolve_references()
  network = checkpoints.load_network(config, tmp_path)
  assert (network.checkpoint.stage, network.has_head) == (1, False)
  with pytest.raises(ValueError, match='has no warping head: propagation needs a stage-2'):
    checkpoints.load_network(config, tmp_path, needs_head='propagation')


def test_a_network_trained_with_another_model_config_is_named(identity_run):
  config, workdir = identity_run
  config = config.copy_and_resolve_references()
  config.model.head.num_blocks += 1
  config.model.dtype = 'bfloat16'  # computes differently, loads the same: not reported
  with pytest.raises(ValueError, match=r'another model than config.model describes:\n  '
                     r'config.model.head.num_blocks: 2 before, 3 now\nPass'):
    checkpoints.load_network(config, workdir)


def test_a_name_from_a_data_file_stays_inside(tmp_path):
  assert paths.inside(tmp_path, '000342_mpii_test', 'video id') == tmp_path / '000342_mpii_test'
  for name in ('../../../elsewhere/x', '..', '.', '', 'a/b', 'a\\b', 'a\x00b'):
    with pytest.raises(ValueError, match='video id .* is not a plain file name'):
      paths.inside(tmp_path, name, 'video id')
