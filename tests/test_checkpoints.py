"""checkpoints.py: which network a path names is decided by what the checkpoint records, not by
the names of its folders; paths.py: the user's paths made absolute."""

from __future__ import annotations

import json
import os
import shutil

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
  from tests.test_train import posewarper_config

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
