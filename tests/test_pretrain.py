"""The COCO stand-in's pretraining (posewarper_jax/pretrain.py, run by experiment.py): made once
per workdir, resumed like a stage, refused when its settings change before anything is written,
and the start of the run's stage 1."""

import json
import os
import pathlib
import shutil
import signal

import pytest

from posewarper_jax import checkpoints, config_checks, experiment, pretrain, train
from posewarper_jax.models import create_model
from tests.helpers import tiny_config
from tfds_posetrack.posetrack18 import keypoints


def _standin_config(data_root, **train_fields):
  """tiny_config reading data_root, with a stand-in of 6 stills at 192x144 trained 2 steps."""
  config = tiny_config(data_root, **{'num_steps': 2, 'checkpoint_every': 2, **train_fields})
  config.data.synthetic_frame_size = (144, 192)
  config.pretrain.update(stills=6, max_people=3)
  config.pretrain.stage1.global_batch = 4
  config.eval.update(batch=16, gallery=False)
  return config


def test_the_stand_in_names_stage1_init_and_excludes_another():
  config = tiny_config(pathlib.Path('/data'))
  assert pretrain.with_standin(config, '/w') is config  # no stand-in: untouched
  config.pretrain.stills = 10
  standin = pretrain.with_standin(config, '/w')
  assert standin.stage1.init == '/w/pretrain' and config.stage1.init == ''
  assert pretrain.with_standin(standin, '/w').stage1.init == '/w/pretrain'  # once is enough
  config.stage1.init = '/coco.pth'
  with pytest.raises(ValueError, match=r"config.pretrain.stills=10 .* config.stage1.init="
                                       r"'/coco.pth'"):
    pretrain.with_standin(config, '/w')
  config.stage1.init = ''
  config.pretrain.stage1.global_batch = 0
  with pytest.raises(ValueError, match='config.pretrain.stage1.global_batch must be an integer'):
    config_checks.check_training(config)
  config.pretrain.stage1.global_batch = 4
  config.pretrain.limb_code = 2.0
  with pytest.raises(ValueError, match=r'config.pretrain.limb_code must be a share in \[0, 1\]'):
    config_checks.check_training(config)


@pytest.fixture(scope='module')
def standin_run(synthetic_root, tmp_path_factory):
  """(config, workdir) of a tiny run whose stage 1 starts from the stand-in (made and scored in
  its workdir), as the train mode runs it."""
  workdir = tmp_path_factory.mktemp('standin')
  config = _standin_config(synthetic_root)
  experiment.run(config, workdir)
  return pretrain.with_standin(config, workdir), workdir


def test_the_stand_in_is_made_in_the_workdir_and_starts_stage1(standin_run, capsys):
  config, workdir = standin_run
  data = workdir / 'data'
  assert (data / 'stills' / 'annotations' / 'person_keypoints_train2017.json').is_file()
  assert len(list((data / 'stills' / 'train2017').glob('*.jpg'))) == 6
  assert len(list((data / 'stills_posetrack18' / 'annotations' / 'train').glob('*.json'))) == 6
  run = json.loads((workdir / 'pretrain' / 'config.json').read_text())
  assert run['stages'] == [1] and run['stage1']['init'] == ''
  # Recorded relative to the run's folder: the workdir can move.
  assert run['data']['root'] == '../data/stills_posetrack18'
  assert json.loads((workdir / 'config.json').read_text())['stage1']['init'] == 'pretrain'
  assert run['stage1']['global_batch'] == 4  # config.pretrain.stage1's, not the run's 8
  # COCO's joints: its flips swap the eyes; the run on the videos flips as PoseTrack.
  assert run['data']['joints'] == 'coco' and config.data.joints == 'posetrack18'
  pretraining = train.input_config(pretrain.standin_run(config, workdir).config, 1)
  assert pretraining.flip_pairs == keypoints.COCO_FLIP_PAIRS
  assert train.input_config(config, 1).flip_pairs == keypoints.FLIP_PAIRS
  # Scored on the run's own validation videos, single frame only.
  results = json.loads((workdir / 'pretrain' / 'eval' / 'val' / 'results.json').read_text())
  assert list(results) == ['single frame']
  # The run's stage 1 started from the stand-in's weights.
  started = checkpoints.load(workdir / 'pretrain').variables['params']['backbone']
  assert config.stage1.init == str(workdir / 'pretrain')
  fresh = train.initial_variables(config, create_model(config), 1, workdir)
  assert (fresh['params']['backbone']['final_layer']['kernel']
          == started['final_layer']['kernel']).all()


def test_made_once_then_found(standin_run, capsys, monkeypatch):
  config, workdir = standin_run

  def never(*args, **kwargs):
    raise AssertionError('made again')

  monkeypatch.setattr(pretrain, 'generate_stills', never)
  monkeypatch.setattr(pretrain, 'to_posetrack18', never)
  capsys.readouterr()
  experiment.run(config, workdir)
  out = capsys.readouterr().out
  assert 'pretrain: generating' not in out and 'nothing to do' in out
  assert 'done before with this config' in out  # its evaluation


def test_other_settings_are_refused_before_anything_changes(standin_run):
  config, workdir = standin_run
  other = _standin_config(pathlib.Path(config.data.root))
  other.pretrain.stills = 7
  written = {p: p.read_bytes() for p in workdir.rglob('*.json')}
  with pytest.raises(ValueError, match=r'data/stills was made with other settings than '
                                       r'config.pretrain now asks for:\n  num_images: 6 before, '
                                       r'7 now\nStart this experiment in another --workdir') as e:
    experiment.run(other, workdir)
  assert 'delete' not in str(e.value)  # the remedy never destroys finished work
  assert {p: p.read_bytes() for p in workdir.rglob('*.json')} == written  # config.json too
  experiment.run(_standin_config(pathlib.Path(config.data.root)), workdir)  # the original: runs


def test_a_moved_workdir_resumes(standin_run, tmp_path, capsys):
  config, workdir = standin_run
  moved = tmp_path / 'moved'
  shutil.copytree(workdir, moved, symlinks=True)
  capsys.readouterr()
  experiment.run(_standin_config(pathlib.Path(config.data.root)), moved)
  out = capsys.readouterr().out
  assert 'pretrain: generating' not in out and out.count('nothing to do') == 2, out


def test_a_stopped_pretraining_resumes_and_a_half_generated_set_is_made_again(
    synthetic_root, tmp_path, monkeypatch):
  config = _standin_config(synthetic_root, num_steps=3, checkpoint_every=3)
  config.pretrain.evaluate = False
  config.stages = ()
  # A generation that died midway leaves no marker: it is made again from the start.
  (tmp_path / 'data' / 'stills').mkdir(parents=True)
  (tmp_path / 'data' / 'stills' / 'half.jpg').write_bytes(b'')
  write = train.logs.MetricLogger.write

  def write_then_stop(self, step, metrics):
    write(self, step, metrics)
    if step == 1:
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(train.logs.MetricLogger, 'write', write_then_stop)
  with pytest.raises(SystemExit):
    experiment.run(config, tmp_path)
  assert (tmp_path / 'data' / 'stills' / 'GENERATED').exists()
  manager = checkpoints.manager_dir(tmp_path / 'pretrain', 1)
  assert checkpoints.latest_step(manager) == 1
  monkeypatch.setattr(train.logs.MetricLogger, 'write', write)
  experiment.run(config, tmp_path)
  assert checkpoints.latest_step(manager) == 3
  steps = [json.loads(line)['step'] for line in
           (tmp_path / 'pretrain' / 'stage1' / 'metrics.jsonl').read_text().splitlines()]
  assert steps == [1, 2, 3]
