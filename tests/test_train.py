"""Training: the step under pmap on 4 CPU devices, stage-2 freezing, resume, several processes.

A tiny network (64x48 crops, one HRNet stage, a 2-block head) on a small synthetic PoseTrack18
keeps every compile to seconds.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from posewarper_jax import checkpoints, train
from posewarper_jax.data import transforms
from posewarper_jax.data.pipeline import training_dataset
from posewarper_jax.data.synthetic import generate
from posewarper_jax.models import create_model, init_variables
from tests.helpers import ROOT, posewarper_config, tiny_config, tiny_overrides
from tests.numerics import assert_close_to_scale


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
  root = tmp_path_factory.mktemp('posetrack18')
  generate(root, seed=3, num_train=2, num_val=0, num_test=0, frames=30, width=192, height=144)
  return root


@pytest.fixture(scope='module')
def batches(data_root):
  """Four global batches of 8 pairs, [1, 8, ...] (one device) and [4, 2, ...] (four)."""
  from posewarper_jax.data import source

  config = tiny_config(data_root)
  records, table = source.open_split(config, data_root, 'train')
  input_config = train._input_config(config, 2)
  stream = iter(training_dataset(records, table, input_config))
  out = []
  for _ in range(4):
    batch = next(stream)
    flat = {k: batch[k].reshape(8, *batch[k].shape[2:]) for k in train._DEVICE_FIELDS[2]}
    out.append(flat)
  return out


def _split(batch, devices):
  return {k: v.reshape(devices, v.shape[0] // devices, *v.shape[1:]) for k, v in batch.items()}


def _state(config, stage, learning_rate=1e-3, bn_axis_name=train.AXIS):
  settings = config[f'stage{stage}'].copy_and_resolve_references()
  settings.learning_rate = learning_rate
  model = create_model(config, bn_axis_name=bn_axis_name)
  variables = jax.device_get(init_variables(model, 0, tuple(config.image_size)))
  tx, _ = train.make_optimizer(settings, config.train, steps_per_epoch=100)
  return train.create_train_state(model, variables, tx, stage, seed=0)


def _flat(tree):
  return {jax.tree_util.keystr(p): np.asarray(x)
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


# --- The loss and the schedule ------------------------------------------------------------------

def test_heatmap_loss_is_the_release_formula():
  rng = np.random.default_rng(0)
  pred, gt = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5))
  w = rng.uniform(size=(2, 5)) * (rng.uniform(size=(2, 5)) > 0.3)
  # JointsMSELoss: per joint 0.5 * MSE(pred_j * w_j, gt_j * w_j) over batch and pixels, then
  # the mean over joints.
  per_joint = [0.5 * np.mean((pred[..., j] * w[:, j, None, None]
                              - gt[..., j] * w[:, j, None, None]) ** 2) for j in range(5)]
  np.testing.assert_allclose(train.heatmap_loss(pred, gt, w), np.mean(per_joint), rtol=1e-6)


def test_learning_rate_drops_at_epoch_starts():
  schedule = train.learning_rate_schedule(1e-4, (9, 14), 0.1, steps_per_epoch=10)
  # Update n (0-based) belongs to epoch n // 10.
  np.testing.assert_allclose([schedule(n) for n in (0, 89, 90, 139, 140, 199)],
                             [1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6], rtol=1e-6)


def test_the_paper_schedules_are_the_releases():
  """Spec 2.1: LR_STEP 5/7 (stage 1) and 10/15 (stage 2) act one epoch early in the release's
  scheduler call order, in both stages; stage 2 ends after 19 epochs."""
  config = posewarper_config.get_config()
  rates = {}
  for stage in (1, 2):
    settings = config[f'stage{stage}']
    schedule = train.learning_rate_schedule(settings.learning_rate, settings.lr_drop_epochs,
                                            config.train.lr_drop_factor, steps_per_epoch=10)
    rates[stage] = [float(schedule(10 * epoch)) for epoch in range(settings.num_epochs)]
  assert rates[1] == pytest.approx([1e-4] * 4 + [1e-5] * 2 + [1e-6] * 4)
  assert rates[2] == pytest.approx([1e-4] * 9 + [1e-5] * 5 + [1e-6] * 5)
  assert not config.data.reduced_decode  # the release decodes full frames


def test_the_sparse_propagation_variant_is_the_releases_experiment():
  config = posewarper_config.get_config('sparse_propagation')
  assert (config.data.labeled_videos, config.data.labeled_frames_per_video) == (-1, 5)
  assert config.stages == (1, 2) and config.stage1.global_batch == 64
  assert config.after_training == ('propagate',)


def test_gradient_clipping_bounds_the_global_norm_before_adam():
  settings = posewarper_config.get_config('synthetic').stage1
  train_config = posewarper_config.get_config('synthetic').train
  grads = {'w': jnp.full((4,), 3.0), 'b': jnp.full((2,), -4.0)}
  sizes = {}
  for clip in (0.0, 1e-12):
    train_config.grad_clip = clip
    tx, _ = train.make_optimizer(settings, train_config, steps_per_epoch=10)
    updates, _ = tx.update(grads, tx.init(grads), grads)
    sizes[clip] = float(optax.tree.norm(updates))
  # Adam's first step is lr * g / (|g| + eps): about lr per entry unclipped; with the gradient
  # clipped to norm 1e-12, far below eps = 1e-8, it is 1e-4 of that.
  np.testing.assert_allclose(sizes[0.0], settings.learning_rate * np.sqrt(6), rtol=1e-5)
  assert sizes[1e-12] < 1e-3 * sizes[0.0]


# --- The pmap'd step on four CPU devices --------------------------------------------------------

def test_four_devices_equal_one_device_with_the_whole_batch(data_root, batches):
  """Same update from [1, 8] and [4, 2]: gradients averaged and BatchNorm statistics synced."""
  assert jax.local_device_count() == 4
  config = tiny_config(data_root)
  step = train.make_train_step(stage=1)

  def traced_state(bn_axis_name=train.AXIS):
    # optax.trace(0) keeps the last (averaged) gradient in its state: the gradients are compared
    # directly, not through parameter changes that float32 rounds to the parameters' ulp.
    state = _state(config, 1, bn_axis_name=bn_axis_name)
    tx = optax.trace(decay=0.0)
    return state.replace(tx=tx, opt_state=tx.init(state.params['backbone']))

  def update(state, devices):
    new, _ = step(state, _split(batches[0], devices))
    grads, stats = jax.device_get((new.opt_state.trace, new.batch_stats))
    return _flat(grads), _flat(stats)

  (one_grads, one_stats), (four_grads, four_stats) = (update(traced_state(), 1),
                                                      update(traced_state(), 4))
  # float32 leaves the gradients of this net 3e-3 of each tensor's largest entry apart (the
  # same comparison in float64 agrees to 1.4e-7: the difference is rounding, not structure).
  for key in one_grads:
    assert_close_to_scale(four_grads[key], one_grads[key], 2e-2, f'gradient{key}')
  for key in one_stats:
    assert_close_to_scale(four_stats[key], one_stats[key], 1e-4, f'batch_stats{key}')
  # The same comparison fails when BatchNorm does not sync its statistics.
  _, unsynced_stats = update(traced_state(bn_axis_name=None), 4)
  with pytest.raises(AssertionError):
    for key in one_stats:
      assert_close_to_scale(unsynced_stats[key], one_stats[key], 1e-2, key)


def test_loss_falls_and_devices_stay_identical(data_root, batches):
  """Eight steps with the state mapped per device (out_axes=0): the copies stay bitwise equal."""
  config = tiny_config(data_root)
  state = _state(config, 1, learning_rate=3e-3)
  per_device = jax.pmap(lambda s, b: train.train_step(s, b, stage=1), axis_name=train.AXIS,
                        in_axes=(0, 0), out_axes=(0, 0))
  state = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 4), state)
  losses = []
  for i in range(8):
    state, metrics = per_device(state, _split(batches[i % 2], 4))
    losses.append(float(metrics['loss'][0]))
  assert losses[-2] < 0.7 * losses[0] and losses[-1] < 0.7 * losses[1], losses
  for name, x in _flat(jax.device_get((state.params, state.batch_stats))).items():
    for d in range(1, 4):
      np.testing.assert_array_equal(x[d], x[0], err_msg=f'device {d} differs at {name}')


def test_bfloat16_step_is_close_to_float32(data_root, batches):
  """config.model.dtype='bfloat16': the step's convolutions run in bfloat16, the parameters and
  the loss stay float32, and the result stays close to float32's."""
  losses, grads = {}, {}
  for dtype in ('float32', 'bfloat16'):
    config = tiny_config(data_root)
    config.model.dtype = dtype
    state = _state(config, 1)
    tx = optax.trace(decay=0.0)
    state = state.replace(tx=tx, opt_state=tx.init(state.params['backbone']))
    step = train.make_train_step(1, dtype=jnp.dtype(dtype))
    batch = _split(batches[0], 4)
    # XLA's CPU backend computes bfloat16 in float32 and may skip the roundings in between
    # (excess precision), so the numbers cannot show that bfloat16 was used: the program can.
    convolutions = [line for line in step.lower(state, batch).as_text().splitlines()
                    if 'stablehlo.convolution' in line]
    assert convolutions and all(('bf16' in line) == (dtype == 'bfloat16')
                                for line in convolutions), convolutions[:2]
    new, metrics = step(state, batch)
    losses[dtype] = float(metrics['loss'])
    grads[dtype] = np.concatenate([g.ravel() for g in _flat(new.opt_state.trace).values()])
    assert all(x.dtype == np.float32 for x in _flat(new.params).values())
  np.testing.assert_allclose(losses['bfloat16'], losses['float32'], rtol=3e-2)
  cosine = grads['bfloat16'] @ grads['float32'] / (
      np.linalg.norm(grads['bfloat16']) * np.linalg.norm(grads['float32']))
  assert cosine > 0.95, cosine


@pytest.mark.parametrize('backbone_bn', ['frozen', 'batch'])
def test_stage2_changes_no_backbone_variable(data_root, batches, backbone_bn):
  config = tiny_config(data_root, stages=(2,))
  state = _state(config, 2)
  before = jax.device_get((state.params, state.batch_stats))
  step = train.make_train_step(stage=2, backbone_bn=backbone_bn)
  for i in range(2):
    state, metrics = step(state, _split(batches[i], 4))
  params, stats = jax.device_get((state.params, state.batch_stats))
  for key, x in _flat(before[0]['backbone']).items():
    np.testing.assert_array_equal(_flat(params['backbone'])[key], x, err_msg=key)
  after_stats = _flat(stats['backbone'])
  moved = [k for k, x in _flat(before[1]['backbone']).items()
           if not np.array_equal(after_stats[k], x)]
  # 'batch' (the release) normalizes with batch statistics and moves the running averages.
  assert (moved == []) == (backbone_bn == 'frozen'), moved[:3]
  # The head trains. (Its offset-feature blocks start moving only once the zero-initialized
  # offset convs have: in two steps their updates are still below float32's resolution.)
  after_warper = _flat(params['warper'])
  last_layers = [k for k in after_warper if "['offsets" in k or "['deform_conv" in k]
  assert last_layers and all(not np.array_equal(after_warper[k], _flat(before[0]['warper'])[k])
                             for k in last_layers)
  assert np.isfinite(float(metrics['loss']))


def test_stage2_starts_as_the_identity(data_root, batches):
  """Spec 1.5: at step 0 the head returns B's heatmaps."""
  config = tiny_config(data_root, stages=(2,))
  state = _state(config, 2)
  batch = batches[0]
  frames = jnp.concatenate([transforms.normalize(batch['frames_a']),
                            transforms.normalize(batch['frames_b'])])
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  model = create_model(config)
  h_a, h_b = jnp.split(model.apply(variables, frames, method=model.single_frame), 2)
  warped = model.apply(variables, h_a, h_b, h_b, method=model.warp)
  assert_close_to_scale(warped, h_b, 1e-6, 'head at init')


# --- The loop: checkpoints, resume, preemption, errors ------------------------------------------

def _final(workdir: pathlib.Path, stage: int = 1):
  return _flat(checkpoints.load(workdir / f'stage{stage}').variables)


def _losses(workdir: pathlib.Path, stage: int = 1) -> dict[int, float]:
  lines = (workdir / f'stage{stage}' / 'metrics.jsonl').read_text().splitlines()
  return {row['step']: row['loss'] for row in map(json.loads, lines)}  # later lines win


def _saved_steps(workdir: pathlib.Path, stage: int = 1) -> list[int]:
  return sorted(int(p.name) for p in (workdir / f'stage{stage}' / 'checkpoints').iterdir()
                if p.name.isdigit())


def test_resume_equals_an_uninterrupted_run(data_root, tmp_path, monkeypatch):
  """2N steps straight; N steps, stop, resume to 2N; SIGTERM after step 1, resume: all equal."""
  n = 3
  config = tiny_config(data_root, num_steps=2 * n, checkpoint_every=n)
  straight = tmp_path / 'straight'
  train.train_stage(config, straight, 1)

  stopped = tmp_path / 'stopped'
  train.train_stage(tiny_config(data_root, num_steps=n, checkpoint_every=n), stopped, 1)
  assert _saved_steps(stopped) == [n]
  train.train_stage(config, stopped, 1)

  # A preemption: SIGTERM arrives while step 1 is being logged; the loop saves step 1 and exits.
  preempted = tmp_path / 'preempted'
  write = train.logs.MetricLogger.write

  def write_then_terminate(self, step, metrics):
    write(self, step, metrics)
    if step == 1:
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(train.logs.MetricLogger, 'write', write_then_terminate)
  with pytest.raises(SystemExit) as exit_info:
    train.train_stage(config, preempted, 1)
  assert exit_info.value.code == train.EXIT_PREEMPTED  # not 0: `train && eval` stops there
  assert _saved_steps(preempted) == [1]
  monkeypatch.setattr(train.logs.MetricLogger, 'write', write)
  train.train_stage(config, preempted, 1)

  reference = _final(straight)
  for run in (stopped, preempted):
    final = _final(run)
    for key, x in reference.items():
      np.testing.assert_array_equal(final[key], x, err_msg=f'{run.name}: {key}')
    assert _losses(run) == _losses(straight)


def test_a_run_compiles_its_step_once(data_root, tmp_path, monkeypatch):
  """The first step's compilation serves the whole run: given the host arrays of a fresh state,
  then the device arrays it returns, the mapped step traced (and compiled) twice."""
  traces = []
  step = train.train_step

  def counting(*args, **kwargs):
    traces.append(1)  # runs once per trace, not per step
    return step(*args, **kwargs)

  monkeypatch.setattr(train, 'train_step', counting)
  train.train_stage(tiny_config(data_root, num_steps=3, checkpoint_every=3), tmp_path, 1)
  assert len(traces) == 1


def test_sigterm_between_log_steps_saves_at_the_next_step(data_root, tmp_path, monkeypatch):
  """A scheduler's grace period may be shorter than log_every steps: the loop stops after the
  step in flight, not at the next log step."""
  config = tiny_config(data_root, num_steps=6, checkpoint_every=6)
  config.train.log_every = 100
  make = train.make_train_step

  def make_terminating(*args, **kwargs):
    step = make(*args, **kwargs)
    calls = []

    def terminating(state, batch):
      calls.append(1)
      if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
      return step(state, batch)
    return terminating

  monkeypatch.setattr(train, 'make_train_step', make_terminating)
  with pytest.raises(SystemExit) as exit_info:
    train.train_stage(config, tmp_path, 1)
  assert exit_info.value.code == train.EXIT_PREEMPTED
  assert _saved_steps(tmp_path) == [2]
  assert (tmp_path / 'stage1' / 'checkpoints' / '2' / checkpoints.INTEGRITY).exists()


def _steps_logged(workdir: pathlib.Path, stage: int = 1) -> list[int]:
  lines = (workdir / f'stage{stage}' / 'metrics.jsonl').read_text().splitlines()
  return [json.loads(line)['step'] for line in lines]


def test_a_damaged_latest_step_resumes_from_the_newest_intact_one(data_root, tmp_path, capsys):
  """Eight bytes overwritten in the latest step's arrays: the resume says so, sets it aside and
  continues from the step before, ending exactly where an undamaged run ends."""
  config = tiny_config(data_root, num_steps=4, checkpoint_every=2)
  straight = tmp_path / 'straight'
  train.train_stage(config, straight, 1)

  damaged = tmp_path / 'damaged'
  train.train_stage(tiny_config(data_root, num_steps=4, checkpoint_every=2), damaged, 1)
  step4 = damaged / 'stage1' / 'checkpoints' / '4'
  victim = max((p for p in (step4 / checkpoints.STATE).rglob('*') if p.is_file()),
               key=lambda p: p.stat().st_size)
  data = bytearray(victim.read_bytes())
  data[len(data) // 2:len(data) // 2 + 8] = b'\x7f' * 8
  victim.write_bytes(bytes(data))
  capsys.readouterr()
  train.train_stage(tiny_config(data_root, num_steps=6, checkpoint_every=2), damaged, 1)
  out = capsys.readouterr().out
  assert f'{step4} is damaged: {victim.relative_to(step4)}: contents differ' in out
  assert f'moved to {step4.parent / "4.damaged"}' in out
  assert 'resuming from step 2, the newest intact checkpoint' in out
  assert (step4.parent / '4.damaged').is_dir()
  assert _saved_steps(damaged) == [2, 4, 6]

  train.train_stage(tiny_config(data_root, num_steps=6, checkpoint_every=2), straight, 1)
  reference = _final(straight)
  final = _final(damaged)
  for key, x in reference.items():
    np.testing.assert_array_equal(final[key], x, err_msg=key)
  assert _steps_logged(damaged) == _steps_logged(straight) == [1, 2, 3, 4, 5, 6]


def test_every_step_damaged_is_an_error_naming_them(data_root, tmp_path):
  config = tiny_config(data_root, num_steps=2, checkpoint_every=2)
  train.train_stage(config, tmp_path, 1)
  (tmp_path / 'stage1' / 'checkpoints' / '2' / 'state' / '_METADATA').write_text('{')
  with pytest.raises(checkpoints.DamagedCheckpointError,
                     match=r'every saved step in .* is damaged:\n  .*2 is damaged: '
                           r'state/_METADATA.*\nNothing to resume from'):
    train.train_stage(tiny_config(data_root, num_steps=3, checkpoint_every=2), tmp_path, 1)


def test_a_resume_logs_each_step_once(data_root, tmp_path, monkeypatch):
  """A run that dies after logging step 3 (its last checkpoint: step 2) resumes at 3: the step is
  logged again, and metrics.jsonl keeps one line for it."""
  config = tiny_config(data_root, num_steps=4, checkpoint_every=2)
  write = train.logs.MetricLogger.write

  def write_then_die(self, step, metrics):
    write(self, step, metrics)
    if step == 3:
      raise KeyboardInterrupt

  monkeypatch.setattr(train.logs.MetricLogger, 'write', write_then_die)
  with pytest.raises(KeyboardInterrupt):
    train.train_stage(config, tmp_path, 1)
  assert _steps_logged(tmp_path) == [1, 2, 3]
  monkeypatch.setattr(train.logs.MetricLogger, 'write', write)
  train.train_stage(config, tmp_path, 1)
  assert _steps_logged(tmp_path) == [1, 2, 3, 4]


def test_resuming_with_another_config_is_refused_before_anything_changes(data_root, tmp_path):
  config = tiny_config(data_root, stages=(1, 2), num_steps=1, checkpoint_every=1)
  train.write_config(config, tmp_path)
  train.train_stage(config, tmp_path, 1)
  written = (tmp_path / 'config.json').read_text()

  other = tiny_config(data_root, stages=(1, 2), num_steps=1, checkpoint_every=1)
  other.model.head.num_blocks = 3
  other.stage1.learning_rate = 5e-4
  with pytest.raises(ValueError, match=(
      r'holds a run trained \(stage 1\) with another config .*config.json\); this command '
      r"changes:\n  config.model.head.num_blocks: 2 before, 3 now\n  "
      r'config.stage1.learning_rate: 0.001 before, 0.0005 now\nStart the new experiment')):
    train.check_resume(other, tmp_path)
  assert (tmp_path / 'config.json').read_text() == written
  # What a resume may change: when it stops, logging, and stages not trained yet.
  fine = tiny_config(data_root, stages=(1, 2), num_steps=5, checkpoint_every=1)
  fine.train.log_every = 7
  fine.stage2.learning_rate = 1e-5
  train.check_resume(fine, tmp_path)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data_root, tmp_path):
  config = tiny_config(data_root, num_steps=12, checkpoint_every=1)
  config.stage1.learning_rate = 1e12  # diverges within a few steps
  with pytest.raises(train.NonFiniteLossError, match='the loss is'):
    train.train_stage(config, tmp_path, 1)
  assert _saved_steps(tmp_path)  # steps before the bad one were saved
  for value in _final(tmp_path).values():
    assert np.all(np.isfinite(value))


def test_stage2_without_a_stage1_network_says_where_it_looked(data_root, tmp_path):
  with pytest.raises(FileNotFoundError, match='stage1.*config.stage2.init'):
    train.train_stage(tiny_config(data_root, stages=(2,), num_steps=1), tmp_path, 2)


@pytest.mark.parametrize('field, value, stage, message', [
    ('stages', (3,), 3, 'config.stages: 3'),
    ('stage2.backbone_bn', 'bogus', 2, 'config.stage2.backbone_bn'),
    ('stage1.global_batch', 6, 1, r'config.stage1.global_batch \(6\).*4 devices'),
    ('stage1.num_epochs', 0, 1, 'config.stage1.num_epochs must be an integer >= 1, got 0'),
    # Each of these trained (or divided by zero) before, leaving nothing or garbage behind.
    ('train.keep_checkpoints', 0, 1, 'config.train.keep_checkpoints must be an integer >= 1'),
    ('train.num_steps', -5, 1, 'config.train.num_steps must be an integer >= 0, got -5'),
    ('train.checkpoint_every', 0, 1, 'config.train.checkpoint_every must be an integer >= 1'),
    ('train.log_every', 0, 2, 'config.train.log_every must be an integer >= 1'),
    ('data.max_gap', 8, 1, r'config.data.max_gap \(8\) is larger than config.data.stored_gap '
     r'\(7\)'),
    ('sigma', float('nan'), 1, 'config.sigma must be a finite number > 0'),
    ('image_size', (60, 48), 1, r'config.image_size must be .*multiples of 8'),
    ('stage2.learning_rate', -1e-4, 2, 'config.stage2.learning_rate must be a finite number'),
    ('data.labeled_videos', 0, 1, r'config.data.labeled_videos must be -1 \(all\) or a positive'),
])
def test_an_invalid_value_names_the_field(tmp_path, field, value, stage, message):
  config = tiny_config(tmp_path / 'nowhere', stages=(1, 2))
  section, _, name = field.rpartition('.')
  (config[section] if section else config)[name] = value
  workdir = tmp_path / 'run'
  with pytest.raises(ValueError, match=message):
    train.train_stage(config, workdir, stage)
  assert not workdir.exists()  # refused before anything was written


def test_missing_data_says_where_it_looked_and_what_to_do(tmp_path):
  config = tiny_config(tmp_path / 'nowhere')
  with pytest.raises(FileNotFoundError, match='nowhere.*synthetic'):
    train.train_stage(config, tmp_path, 1)


def test_sparse_labels_reach_both_stages_and_nothing_else(data_root, tmp_path, capsys):
  """Spec 7: both stages train on the same (V, N) subset; every example's frame A is in it."""
  config = tiny_config(data_root, stages=(1, 2), num_steps=1, checkpoint_every=1)
  config.data.update(labeled_videos=1, labeled_frames_per_video=6)
  train.train_stage(config, tmp_path, 1)
  train.train_stage(config, tmp_path, 2)
  out = capsys.readouterr().out
  for stage in (1, 2):
    assert f'stage {stage}: training labels: 1 of 2 videos, 6 labeled frames' in out
  from posewarper_jax.data import source
  from tfds_posetrack.posetrack18 import sparse_labels

  records, table = source.open_split(config, tmp_path, 'train')
  sparse = sparse_labels(table, 1, 6, config.seed)
  kept = set(np.flatnonzero(sparse.is_labeled).tolist())
  input_config = train._input_config(config, 2)
  stream = iter(training_dataset(records, sparse, input_config))
  for _ in range(3):
    assert set(next(stream)['record_a'].ravel().tolist()) <= kept


def test_stage2_trains_on_the_stage1_network(data_root, tmp_path):
  config = tiny_config(data_root, stages=(1, 2), num_steps=2, checkpoint_every=2)
  train.train_stage(config, tmp_path, 1)
  final = train.train_stage(config, tmp_path, 2)
  stage1 = _final(tmp_path, 1)
  for key, x in _flat(final.params['backbone']).items():
    np.testing.assert_array_equal(x, stage1[f"['params']['backbone']{key}"], err_msg=key)


# --- Several processes --------------------------------------------------------------------------

def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_processes_equal_one(data_root, tmp_path):
  """Two processes x 2 CPU devices through jax.distributed == this process's 4 devices."""
  steps = 3
  single = tmp_path / 'single'
  train.train_stage(tiny_config(data_root, num_steps=steps, checkpoint_every=steps), single, 1)

  multi = tmp_path / 'multi'
  port = _free_port()
  command = [sys.executable, str(ROOT / 'run.py'), '--config=configs/posewarper.py:synthetic',
             f'--workdir={multi}', '--config.stages=(1,)', f'--config.train.num_steps={steps}',
             f'--config.train.checkpoint_every={steps}', *tiny_overrides(data_root)]
  processes = []
  for index in range(2):
    env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f'localhost:{port}', JAX_NUM_PROCESSES='2',
               JAX_PROCESS_ID=str(index), XLA_FLAGS='--xla_force_host_platform_device_count=2')
    processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
  outputs = [p.communicate(timeout=300)[0] for p in processes]
  report = '\n\n'.join(f'process {i}:\n{out[-3000:]}' for i, out in enumerate(outputs))
  assert all(p.returncode == 0 for p in processes), report
  assert 'process 1 of 2' in outputs[1] and '4 cpu devices' in outputs[0]
  # The step-1 loss depends only on the initial parameters and the data: the processes must have
  # fed exactly the single process's batches.
  np.testing.assert_allclose(list(_losses(multi).values()), list(_losses(single).values()),
                             rtol=1e-6)
  # The all-reduce sums in another order. Adam divides by sqrt(v), so for a weight whose gradient
  # is near zero that rounding becomes a visible fraction of its update: parameters are compared
  # against the size of an Adam step (about the learning rate), statistics against their scale.
  max_update = tiny_config(data_root).stage1.learning_rate * steps
  final, reference = _final(multi), _final(single)
  for key, x in reference.items():
    if key.startswith("['params']"):
      # Within 5% of an Adam step (1% held on the data before issue 18's box sanitising; after
      # it a few weights whose gradient is almost zero reach 1.25%).
      error = np.abs(np.asarray(final[key]) - np.asarray(x))
      assert error.max() <= 5e-2 * max_update, (key, error.max() / max_update)
    else:
      assert_close_to_scale(final[key], x, 1e-3, key)
  data = multi / 'stage1' / 'checkpoints' / str(steps) / 'data'
  saved = sorted(p.name for p in data.iterdir() if p.name.startswith('process_'))
  assert saved == ['process_0-of-2.json', 'process_1-of-2.json']  # one iterator state each
