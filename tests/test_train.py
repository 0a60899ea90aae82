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
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from posewarper_jax import checkpoints, parallel, provenance, train
from posewarper_jax.data import transforms
from posewarper_jax.data.pipeline import epoch_size, training_dataset
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
  input_config = train.input_config(config, 2)
  stream = iter(training_dataset(records, table, input_config))
  out = []
  for _ in range(4):
    batch = next(stream)
    flat = {k: batch[k].reshape(8, *batch[k].shape[2:]) for k in train.device_batch(batch)}
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


def _traced_state(config, stage, bn_axis_name=train.AXIS):
  """The stage's state with optax.trace(0) as its optimizer, which keeps the last (averaged)
  gradient in its state: gradients are compared directly, not through parameter changes that
  float32 rounds to the parameters' ulp."""
  state = _state(config, stage, bn_axis_name=bn_axis_name)
  tx = optax.trace(decay=0.0)
  return state.replace(tx=tx, opt_state=tx.init(state.params[train.TRAINABLE[stage]]))


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

  traced_state = lambda bn_axis_name=train.AXIS: _traced_state(config, 1, bn_axis_name)

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


@pytest.mark.parametrize('stage', [1, 2])
def test_jit_on_four_devices_equals_one_device_and_pmap(data_root, batches, stage):
  """config.train.parallel='jit': the same step under jax.jit over a Mesh, the batch one array
  sharded by NamedSharding. On four devices its loss, gradients, BatchNorm statistics and
  parameters equal one device's with the whole batch (to float32's rounding of the sums'
  order) and pmap's on the same four devices."""
  config = tiny_config(data_root, stages=(stage,))
  single = jax.sharding.Mesh(np.array(jax.devices()[:1]), (parallel.AXIS,))
  layouts = {'jit, 4 devices': (parallel.Layout.of('jit'), 4),
             'jit, 1 device': (parallel.Layout('jit', single), 1),
             'pmap, 4 devices': (parallel.Layout.of('pmap'), 4)}

  def update(layout, devices):
    step = train.make_train_step(stage, layout=layout)
    state = layout.state(_traced_state(config, stage))
    new, metrics = step(state, layout.batch(_split(batches[0], devices)))
    grads, params, stats = jax.device_get((new.opt_state.trace, new.params, new.batch_stats))
    return float(metrics['loss']), _flat(grads), _flat(params), _flat(stats)

  results = {name: update(*layout) for name, layout in layouts.items()}
  assert results['jit, 4 devices'][0] > 0
  for name, tolerance in (('jit, 1 device', 2e-2), ('pmap, 4 devices', 1e-5)):
    loss, grads, params, stats = results[name]
    jit_loss, jit_grads, jit_params, jit_stats = results['jit, 4 devices']
    np.testing.assert_allclose(jit_loss, loss, rtol=1e-5, err_msg=name)
    assert grads.keys() == jit_grads.keys()
    for key in grads:
      assert_close_to_scale(jit_grads[key], grads[key], tolerance, f'{name}: gradient{key}')
    for key in params:
      assert_close_to_scale(jit_params[key], params[key], tolerance, f'{name}: param{key}')
    for key in stats:
      assert_close_to_scale(jit_stats[key], stats[key], 1e-4, f'{name}: batch_stats{key}')


def test_an_unknown_parallel_layout_is_refused_by_name():
  with pytest.raises(ValueError, match=r"config.train.parallel must be one of \('pmap', 'jit'\)"):
    parallel.Layout.of('pjit')


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


@pytest.mark.parametrize('stage', [1, 2])
def test_the_cpu_compiler_options_give_the_default_steps_loss_and_gradients(
    data_root, batches, monkeypatch, stage):
  """The training step as run.py compiles it on the CPU (backend.CPU_COMPILER_OPTIONS: the
  convolutions on oneDNN) against the same step with XLA's defaults (what the suite otherwise
  runs: tests/conftest.py): the loss, the gradients and the BatchNorm statistics, to float32
  rounding."""
  from posewarper_jax.ops import backend

  results = {}
  for options in ('chosen', 'default'):
    monkeypatch.setenv(backend.DEFAULTS_VARIABLE, options)
    config = tiny_config(data_root)
    step = train.make_train_step(stage)
    batch = _split(batches[0], 4)
    new, metrics = step(_traced_state(config, stage), batch)
    (compiled,) = step._compiled.values()  # what the call compiled, with the options it had
    assert ('onednn' in compiled.as_text()) == (options == 'chosen')
    results[options] = (float(metrics['loss']), _flat(new.opt_state.trace),
                        _flat(new.batch_stats))
  (loss, grads, stats), (loss_d, grads_d, stats_d) = results['chosen'], results['default']
  np.testing.assert_allclose(loss, loss_d, rtol=1e-5)
  for name in grads_d:
    assert_close_to_scale(grads[name], grads_d[name], 1e-4, f'gradient {name}')
  for name in stats_d:
    assert_close_to_scale(stats[name], stats_d[name], 1e-5, f'batch_stats {name}')


def test_a_rematerialized_backbone_gives_the_plain_steps_loss_and_gradients(data_root, batches):
  """config.model.backbone.remat: the same function; only the memory of the step changes."""
  results, convolutions = {}, {}
  for remat in (False, True):
    config = tiny_config(data_root)
    config.model.backbone.remat = remat
    state = _traced_state(config, 1)
    step = train.make_train_step(1)
    program = step.lower(state, _split(batches[0], 4)).as_text()
    convolutions[remat] = program.count('stablehlo.convolution')
    new, metrics = step(state, _split(batches[0], 4))
    results[remat] = (float(metrics['loss']), _flat(new.opt_state.trace),
                      _flat(new.batch_stats))
  # The recomputed blocks are in the program (the backward's second forward of their
  # convolutions): without them this comparison would test nothing.
  assert convolutions[True] > convolutions[False], convolutions
  (loss, grads, stats), (loss_r, grads_r, stats_r) = results[False], results[True]
  assert loss_r == pytest.approx(loss, rel=1e-6)
  assert grads.keys() == grads_r.keys()
  for name in grads:
    assert_close_to_scale(grads_r[name], grads[name], rtol=1e-5, name=name)
  for name in stats:
    np.testing.assert_allclose(stats_r[name], stats[name], rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize('backbone_bn', ['frozen', 'batch'])
def test_stage2_four_devices_equal_one_and_only_the_head_trains(data_root, batches, backbone_bn):
  """Stage 2 from [1, 8] and [4, 2]: the head's gradients averaged, its BatchNorm statistics
  synced and, with backbone_bn='batch' (the release), the backbone's too ('frozen': untouched);
  no backbone weight moves, the head's last layers do. The statistics' comparison fails, for
  the head and for the backbone, when BatchNorm does not sync (bn_axis_name=None; checked with
  'batch' alone, one compilation less: the head's BatchNorm is the same module in both)."""
  config = tiny_config(data_root, stages=(2,))
  step = train.make_train_step(stage=2, backbone_bn=backbone_bn)

  # The head's parameters move by the traced gradient: a gradient of exactly zero would leave
  # them where they are.
  traced_state = lambda bn_axis_name=train.AXIS: _traced_state(config, 2, bn_axis_name)

  def update(state, devices):
    new, metrics = step(state, _split(batches[0], devices))
    grads, params, stats = jax.device_get((new.opt_state.trace, new.params, new.batch_stats))
    assert np.isfinite(float(metrics['loss']))
    return _flat(grads), params, {g: _flat(stats[g]) for g in ('backbone', 'warper')}

  before = _state(config, 2)
  before_params = {g: _flat(before.params[g]) for g in ('backbone', 'warper')}
  before_stats = {g: _flat(before.batch_stats[g]) for g in ('backbone', 'warper')}
  one_grads, _, one_stats = update(traced_state(), 1)
  four_grads, four_params, four_stats = update(traced_state(), 4)
  assert one_grads.keys() == before_params['warper'].keys()  # the optimizer covers the head
  for key in one_grads:
    assert_close_to_scale(four_grads[key], one_grads[key], 2e-2, f'gradient{key}')
  for group in ('backbone', 'warper'):
    for key in one_stats[group]:
      assert_close_to_scale(four_stats[group][key], one_stats[group][key], 1e-4,
                            f'batch_stats {group}{key}')
  for key, x in before_params['backbone'].items():
    np.testing.assert_array_equal(_flat(four_params['backbone'])[key], x, err_msg=key)
  moved = [k for k, x in before_stats['backbone'].items()
           if not np.array_equal(four_stats['backbone'][k], x)]
  # 'batch' normalizes with batch statistics and moves the running averages; 'frozen' runs the
  # backbone in inference mode.
  assert (moved == []) == (backbone_bn == 'frozen'), moved[:3]
  assert all(not np.array_equal(four_stats['warper'][k], x)
             for k, x in before_stats['warper'].items())
  after_warper = _flat(four_params['warper'])
  last_layers = [k for k in after_warper if "['offsets" in k or "['deform_conv" in k]
  assert last_layers and all(not np.array_equal(after_warper[k], before_params['warper'][k])
                             for k in last_layers)
  if backbone_bn == 'batch':
    _, _, unsynced = update(traced_state(bn_axis_name=None), 4)
    for group in ('backbone', 'warper'):
      with pytest.raises(AssertionError):
        for key in one_stats[group]:
          assert_close_to_scale(unsynced[group][key], one_stats[group][key], 1e-2, key)


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


def test_stage2_warps_frame_bs_labels_where_the_batch_has_them(data_root, batches):
  """config.stage2.warp_input='ground_truth' (a diagnostic): the head warps 'targets_b' where
  'has_targets_b', B's predicted heatmaps elsewhere, with offsets from the predictions; with no
  such example the step is the release's."""
  config = tiny_config(data_root, stages=(2,))
  step = train.make_train_step(stage=2)
  batch = batches[0]
  has = np.array([True, False] * 4)
  targets_b = np.roll(batch['targets'], 3, axis=1)  # maps unlike B's predictions
  loss = lambda b: float(step(_state(config, 2), _split(b, 1))[1]['loss'])
  plain = loss(batch)
  assert loss({**batch, 'targets_b': targets_b, 'has_targets_b': np.zeros(8, bool)}) == plain
  mixed = loss({**batch, 'targets_b': targets_b, 'has_targets_b': has})
  state = _state(config, 2)
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  model = create_model(config, bn_axis_name=None)
  frames = jnp.concatenate([transforms.normalize(batch['frames_a']),
                            transforms.normalize(batch['frames_b'])])
  h_a, h_b = jnp.split(model.apply(variables, frames, method=model.single_frame), 2)
  warped = jnp.where(has[:, None, None, None], targets_b, h_b)
  predicted, _ = model.apply(variables, h_a, h_b, warped, train=True, method=model.warp,
                             mutable=['batch_stats'])
  expected = float(train.heatmap_loss(predicted, batch['targets'], batch['target_weights']))
  np.testing.assert_allclose(mixed, expected, rtol=1e-5)
  assert abs(mixed - plain) > 1e-3 * plain


# --- The loop: checkpoints, resume, preemption, errors ------------------------------------------

def _final(workdir: pathlib.Path, stage: int = 1):
  return _flat(checkpoints.load(workdir / f'stage{stage}').variables)


def _losses(workdir: pathlib.Path, stage: int = 1) -> dict[int, float]:
  lines = (workdir / f'stage{stage}' / 'metrics.jsonl').read_text().splitlines()
  return {row['step']: row['loss'] for row in map(json.loads, lines)}  # later lines win


def _steps_logged(workdir: pathlib.Path, stage: int = 1) -> list[int]:
  lines = (workdir / f'stage{stage}' / 'metrics.jsonl').read_text().splitlines()
  return [json.loads(line)['step'] for line in lines]


def _saved_steps(workdir: pathlib.Path, stage: int = 1) -> list[int]:
  return sorted(int(p.name) for p in (workdir / f'stage{stage}' / 'checkpoints').iterdir()
                if p.name.isdigit())


# A run that crosses epochs: 7 labeled frames per video leave 24 pairs, an epoch of 3 steps of 8;
# 4 epochs, the rate dropping at the starts of epochs 1 and 3 (steps 4 and 10).
EPOCH_STEPS, STEPS = 3, 12
EPOCH_OVERRIDES = ['--config.data.labeled_frames_per_video=7', '--config.stage1.num_epochs=4',
                   '--config.stage1.lr_drop_epochs=(1, 3)', f'--config.train.num_steps={STEPS}',
                   f'--config.train.checkpoint_every={STEPS}']


def _epochs_config(data_root: pathlib.Path, **train_fields):
  """tiny_config with EPOCH_OVERRIDES' fields (train_fields replace num_steps and
  checkpoint_every)."""
  config = tiny_config(data_root, **{'num_steps': STEPS, 'checkpoint_every': STEPS,
                                     **train_fields})
  config.data.labeled_frames_per_video = 7
  config.stage1.update(num_epochs=4, lr_drop_epochs=(1, 3))
  return config


@pytest.fixture(scope='module')
def epochs_run(data_root, tmp_path_factory):
  """(workdir, traces): the uninterrupted single-process run of _epochs_config, and how many
  times it traced the step. The resume and the two-process tests compare with it."""
  workdir = tmp_path_factory.mktemp('epochs_run')
  traces = []
  step = train.train_step

  def counting(*args, **kwargs):
    traces.append(1)  # runs once per trace, not per step
    return step(*args, **kwargs)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(train, 'train_step', counting)
    train.train_stage(_epochs_config(data_root), workdir, 1)
  return workdir, len(traces)


def test_each_epoch_reshuffles_and_redraws_frame_b(data_root):
  """Epoch 2 of the stream holds the same (frame A, person) examples as epoch 1, in another
  order, with frame B drawn again within config.data.max_gap of A (same video)."""
  from posewarper_jax.data import source

  config = _epochs_config(data_root)
  records, table = source.open_split(config, data_root, 'train')
  table = train.training_labels(config, table, 2)
  input_config = train.input_config(config, 2)
  size = epoch_size(table, input_config)
  assert size == EPOCH_STEPS * config.stage2.global_batch
  stream = iter(training_dataset(records, table, input_config))
  rows = []
  for _ in range(2 * EPOCH_STEPS):
    batch = next(stream)
    rows += zip(*(batch[k].ravel().tolist() for k in ('record_a', 'person', 'record_b')),
                strict=True)
  epochs = [rows[:size], rows[size:]]
  examples = [[(a, p) for a, p, _ in epoch] for epoch in epochs]
  assert sorted(examples[0]) == sorted(examples[1])
  assert len(set(examples[0])) == size  # each labeled person once per epoch
  assert examples[0] != examples[1]  # reshuffled
  frame_b = [dict(((a, p), b) for a, p, b in epoch) for epoch in epochs]
  redrawn = [e for e in frame_b[0] if frame_b[0][e] != frame_b[1][e]]
  assert len(redrawn) >= size // 4, redrawn  # k = 2: 4 in 5 deltas change
  for a, _, b in rows:
    assert table.video[b] == table.video[a]
    assert abs(int(table.frame_index[b]) - int(table.frame_index[a])) <= config.data.max_gap


def test_the_learning_rate_drops_at_the_first_step_of_the_configured_epochs(data_root,
                                                                            epochs_run):
  """metrics.jsonl's learning_rate (the schedule the optimizer runs, at the step's update
  count): 1e-3 in epoch 0, x 0.1 from the first step of epoch 1, x 0.01 from that of epoch 3."""
  config = _epochs_config(data_root)
  lines = (epochs_run[0] / 'stage1' / 'metrics.jsonl').read_text().splitlines()
  rates = {row['step']: row['learning_rate'] for row in map(json.loads, lines)}
  base, factor = config.stage1.learning_rate, config.train.lr_drop_factor
  drops = [e * EPOCH_STEPS + 1 for e in config.stage1.lr_drop_epochs]
  assert drops == [4, 10]
  expected = {s: base * factor ** sum(s >= d for d in drops) for s in range(1, STEPS + 1)}
  assert rates == pytest.approx(expected, rel=1e-6)


def test_a_run_resumed_across_epochs_equals_an_uninterrupted_run(data_root, epochs_run,
                                                                 tmp_path, monkeypatch):
  """SIGTERM after step 2 (epoch 0): step 2 saved, exit EXIT_PREEMPTED. Resumed with
  num_steps=5, it dies after logging step 4 (epoch 1); resumed again from step 2, it logs steps
  3 and 4 again (metrics.jsonl keeps one line per step) and stops at 5 (saved at its last
  step); resumed once more, it ends in epoch 3. Final variables bitwise equal to the
  uninterrupted run's, and the same logged losses."""
  run = tmp_path / 'run'
  write = train.logs.MetricLogger.write

  def write_then(stop_step, stop):
    def write_and_stop(self, step, metrics):
      write(self, step, metrics)
      if step == stop_step:
        stop()
    return write_and_stop

  monkeypatch.setattr(train.logs.MetricLogger, 'write',
                      write_then(2, lambda: os.kill(os.getpid(), signal.SIGTERM)))
  with pytest.raises(SystemExit) as exit_info:
    train.train_stage(_epochs_config(data_root), run, 1)
  assert exit_info.value.code == train.EXIT_PREEMPTED  # not 0: `train && eval` stops there
  assert _saved_steps(run) == [2]

  def die():
    raise KeyboardInterrupt

  monkeypatch.setattr(train.logs.MetricLogger, 'write', write_then(4, die))
  with pytest.raises(KeyboardInterrupt):
    train.train_stage(_epochs_config(data_root, num_steps=5), run, 1)
  assert _steps_logged(run) == [1, 2, 3, 4] and _saved_steps(run) == [2]
  monkeypatch.setattr(train.logs.MetricLogger, 'write', write)
  train.train_stage(_epochs_config(data_root, num_steps=5), run, 1)
  assert _saved_steps(run) == [2, 5]
  train.train_stage(_epochs_config(data_root), run, 1)

  straight = epochs_run[0]
  reference, final = _final(straight), _final(run)
  for key, x in reference.items():
    np.testing.assert_array_equal(final[key], x, err_msg=key)
  assert _losses(run) == _losses(straight)
  assert _steps_logged(run) == list(range(1, STEPS + 1))


def test_under_jit_a_resumed_run_is_exact_and_a_pmap_checkpoint_resumes(data_root, epochs_run,
                                                                         tmp_path):
  """config.train.parallel='jit' in the loop: stopped at step 5 and resumed, a run ends bitwise
  where the uninterrupted jit run ends. A checkpoint written under pmap resumes under jit: its
  first 5 steps are pmap's (epochs_run, the same losses), the rest follow jit's run (to
  float32's rounding: the two compile the sums in different orders)."""
  jit = lambda **fields: _epochs_config(data_root, parallel='jit', **fields)
  straight, resumed, mixed = tmp_path / 'straight', tmp_path / 'resumed', tmp_path / 'mixed'
  train.train_stage(jit(), straight, 1)
  train.train_stage(jit(num_steps=5), resumed, 1)
  assert _saved_steps(resumed) == [5]
  train.train_stage(jit(), resumed, 1)
  reference = _final(straight)
  for key, x in _final(resumed).items():
    np.testing.assert_array_equal(x, reference[key], err_msg=key)
  assert _losses(resumed) == _losses(straight)

  train.train_stage(_epochs_config(data_root, num_steps=5), mixed, 1)  # pmap
  provenance.write_config(_epochs_config(data_root, num_steps=5), mixed)  # as the train mode does
  provenance.check_resume(jit(), mixed)  # the layout is not the run's: no refusal
  train.train_stage(jit(), mixed, 1)
  pmap_losses, mixed_losses, jit_losses = _losses(epochs_run[0]), _losses(mixed), _losses(straight)
  assert [mixed_losses[s] for s in range(1, 6)] == [pmap_losses[s] for s in range(1, 6)]
  np.testing.assert_allclose([mixed_losses[s] for s in range(6, STEPS + 1)],
                             [jit_losses[s] for s in range(6, STEPS + 1)], rtol=1e-3)


def test_a_run_compiles_its_step_once(epochs_run):
  """The first step's compilation serves the whole run: given the host arrays of a fresh state,
  then the device arrays it returns, the mapped step traced (and compiled) twice."""
  assert epochs_run[1] == 1


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


def test_resuming_with_another_config_is_refused_before_anything_changes(data_root, tmp_path):
  config = tiny_config(data_root, stages=(1, 2), num_steps=1, checkpoint_every=1)
  provenance.write_config(config, tmp_path)
  train.train_stage(config, tmp_path, 1)
  written = (tmp_path / 'config.json').read_text()

  other = tiny_config(data_root, stages=(1, 2), num_steps=1, checkpoint_every=1)
  other.model.head.num_blocks = 3
  other.stage1.learning_rate = 5e-4
  with pytest.raises(ValueError, match=(
      r'holds a run trained \(stage 1\) with another config .*config.json\); this command '
      r"changes:\n  config.model.head.num_blocks: 2 before, 3 now\n  "
      r'config.stage1.learning_rate: 0.001 before, 0.0005 now\nStart the new experiment')):
    provenance.check_resume(other, tmp_path)
  assert (tmp_path / 'config.json').read_text() == written
  # What a resume may change: when it stops, logging, and stages not trained yet; and a field
  # added to the config since the run was trained is no change.
  fine = tiny_config(data_root, stages=(1, 2), num_steps=5, checkpoint_every=1)
  fine.train.log_every = 7
  fine.stage2.learning_rate = 1e-5
  fine.stage1.added_since = 0.5
  provenance.check_resume(fine, tmp_path)


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
    ('stage2.warp_input', 'truth', 2, r"config.stage2.warp_input must be one of \('prediction'"),
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
    ('data.labeled_seed', -2, 1, 'config.data.labeled_seed must be an integer >= -1, got -2'),
    # Refused only when a step started (after the data was built, or after stage 1) before.
    ('train.parallel', 'tpu', 1, r"config.train.parallel must be one of \('pmap', 'jit'\)"),
    ('model.dtype', 'float16', 1, r"config.model.dtype must be one of \('float32', 'bfloat16'\)"),
    ('stage2.global_batch', 6, 1, r'config.stage2.global_batch \(6\).*4 devices'),
    ('after_training', ('evaluate',), 1, r"config.after_training: each step one of .*'evaluate'"),
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


def test_sparse_labels_reach_both_stages_and_stage2_trains_on_stage1(data_root, tmp_path,
                                                                      capsys):
  """Spec 7: both stages train on the same (V, N) subset; every example's frame A is in it.
  Stage 2 starts from, and keeps, stage 1's final backbone. With warp_input='ground_truth' (a
  diagnostic) stage 2 reads the labels of frames B that the subset drops."""
  config = tiny_config(data_root, stages=(1, 2), num_steps=1, checkpoint_every=1)
  config.data.update(labeled_videos=1, labeled_frames_per_video=6)
  config.stage2.warp_input = 'ground_truth'
  train.train_stage(config, tmp_path, 1)
  final = train.train_stage(config, tmp_path, 2)
  stage1 = _final(tmp_path, 1)
  for key, x in _flat(final.params['backbone']).items():
    np.testing.assert_array_equal(x, stage1[f"['params']['backbone']{key}"], err_msg=key)
  out = capsys.readouterr().out
  for stage in (1, 2):
    assert f'stage {stage}: training labels: 1 of 2 videos, 6 labeled frames' in out
  from posewarper_jax.data import source
  from tfds_posetrack.posetrack18 import sparse_labels

  records, table = source.open_split(config, tmp_path, 'train')
  sparse = sparse_labels(table, 1, 6, config.seed)
  kept = set(np.flatnonzero(sparse.is_labeled).tolist())
  input_config = train.input_config(config, 2)
  stream = iter(training_dataset(records, sparse, input_config))
  support = 0
  for _ in range(3):
    batch = next(stream)
    assert set(batch['record_a'].ravel().tolist()) <= kept
    records_b = batch['record_b'].ravel()[batch['has_targets_b'].ravel()]
    support += sum(r not in kept for r in records_b.tolist())
  assert support > 0  # ground truth of frames the subset left unlabeled


# --- Several processes --------------------------------------------------------------------------

def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _launch_pair(workdir: pathlib.Path, data_root: pathlib.Path,
                 *args: str) -> list[subprocess.Popen]:
  """run.py on _epochs_config (and args) as two processes x 2 CPU devices through
  jax.distributed."""
  port = _free_port()
  command = [sys.executable, str(ROOT / 'run.py'), '--config=configs/posewarper.py:synthetic',
             f'--workdir={workdir}', '--config.stages=(1,)', *tiny_overrides(data_root),
             *EPOCH_OVERRIDES, *args]
  processes = []
  for index in range(2):
    env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f'localhost:{port}', JAX_NUM_PROCESSES='2',
               JAX_PROCESS_ID=str(index), XLA_FLAGS='--xla_force_host_platform_device_count=2')
    processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
  return processes


def _outputs(processes: list[subprocess.Popen]) -> tuple[list[str], str]:
  outputs = [p.communicate(timeout=300)[0] for p in processes]
  return outputs, '\n\n'.join(f'process {i}:\n{out[-3000:]}' for i, out in enumerate(outputs))


def _logged(path: pathlib.Path) -> list[dict]:
  """The complete lines of a metrics.jsonl being written (none while it does not exist)."""
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().split('\n')[:-1]]


def test_two_processes_agree_on_a_sigterm_to_one_and_resume_to_the_single_process_run(
    data_root, epochs_run, tmp_path):
  """Two processes x 2 CPU devices (run.py, jax.distributed) against this process's 4 devices.

  SIGTERM reaches process 1 alone, after step 1: the processes agree on it at the next multiple
  of train.PREEMPTION_CHECK_EVERY, both save that step (one iterator state each) and exit with
  EXIT_PREEMPTED; the same command resumes both and ends where the single-process run ends.
  """
  check = train.PREEMPTION_CHECK_EVERY
  assert check < STEPS  # the pair stops at `check` and resumes to STEPS
  multi = tmp_path / 'multi'
  metrics = multi / 'stage1' / 'metrics.jsonl'
  processes = _launch_pair(multi, data_root)
  deadline = time.monotonic() + 300
  while (not _logged(metrics) and all(p.poll() is None for p in processes)
         and time.monotonic() < deadline):
    time.sleep(0.02)
  signalled_after = len(_logged(metrics))
  os.kill(processes[1].pid, signal.SIGTERM)
  outputs, report = _outputs(processes)
  # Sent well before the agreement step: the stop there is the agreement's, not a coincidence.
  assert 1 <= signalled_after < check - 2, (signalled_after, report)
  assert [p.returncode for p in processes] == [train.EXIT_PREEMPTED] * 2, report
  assert all(f'SIGTERM, saved step {check}' in out for out in outputs), report
  assert _saved_steps(multi) == [check]
  assert _steps_logged(multi) == list(range(1, check + 1))
  data = multi / 'stage1' / 'checkpoints' / str(check) / 'data'
  saved = sorted(p.name for p in data.iterdir() if p.name.startswith('process_'))
  assert saved == ['process_0-of-2.json', 'process_1-of-2.json']  # one iterator state each

  processes = _launch_pair(multi, data_root)
  outputs, report = _outputs(processes)
  assert all(p.returncode == 0 for p in processes), report
  assert 'process 1 of 2' in outputs[1] and '4 cpu devices' in outputs[0]
  assert all(f'resumed from step {check}' in out for out in outputs), report

  single = epochs_run[0]
  rows = {r['step']: r for r in _logged(multi / 'stage1' / 'metrics.jsonl')}
  reference = {r['step']: r for r in _logged(single / 'stage1' / 'metrics.jsonl')}
  assert list(rows) == list(reference) == list(range(1, STEPS + 1))
  # Step 1 depends only on the initial parameters and the data: the processes fed exactly the
  # single process's batches, and the all-reduce averaged over all four devices, in another
  # order (float32 rounding of a sum of 4 terms: a few 1e-8). Later steps start from parameters
  # that rounding moved apart; a wrong batch would move the loss by percents.
  for name in ('loss', 'grad_norm'):
    np.testing.assert_allclose(rows[1][name], reference[1][name], rtol=1e-6, err_msg=name)
  np.testing.assert_allclose([rows[s]['loss'] for s in rows],
                             [reference[s]['loss'] for s in rows], rtol=1e-3)
  assert [rows[s]['learning_rate'] for s in rows] == [reference[s]['learning_rate'] for s in rows]
  # Per weight, the final parameters are not comparable: Adam moves a weight by about the rate
  # whatever its gradient's size, so a weight whose gradient is near zero can take a step in
  # either direction by rounding alone (one weight differed by 13% of the largest possible
  # distance, the sum of the rates). Averaged over a tensor (the root mean square of the
  # difference), rounding stays under 1% of that distance here: the bound is 3% (a wrong batch
  # shows in the losses above). The BatchNorm averages follow the parameters: 2% here.
  largest_move = sum(reference[s]['learning_rate'] for s in reference)
  final, single_final = _final(multi), _final(single)
  for key, x in single_final.items():
    difference = np.asarray(final[key], np.float64) - np.asarray(x, np.float64)
    if key.startswith("['params']"):
      rms = np.sqrt(np.mean(difference ** 2))
      assert rms <= 3e-2 * largest_move, (key, rms / largest_move)
    else:
      assert_close_to_scale(final[key], x, 5e-2, key)


def test_two_processes_under_jit_train_as_one(data_root, epochs_run, tmp_path):
  """config.train.parallel='jit' over two processes x 2 CPU devices: one Mesh of the four, each
  process's rows of the batch on its own devices. The losses are the single process's (step 1
  to the rounding of a 4-term sum, as with pmap above; later steps to 1e-3)."""
  multi = tmp_path / 'multi'
  processes = _launch_pair(multi, data_root, '--config.train.parallel=jit')
  outputs, report = _outputs(processes)
  assert all(p.returncode == 0 for p in processes), report
  assert 'process 1 of 2' in outputs[1] and '4 cpu devices' in outputs[0]
  rows = {r['step']: r for r in _logged(multi / 'stage1' / 'metrics.jsonl')}
  reference = {r['step']: r for r in _logged(epochs_run[0] / 'stage1' / 'metrics.jsonl')}
  assert list(rows) == list(reference) == list(range(1, STEPS + 1))
  for name in ('loss', 'grad_norm'):
    np.testing.assert_allclose(rows[1][name], reference[1][name], rtol=1e-6, err_msg=name)
  np.testing.assert_allclose([rows[s]['loss'] for s in rows],
                             [reference[s]['loss'] for s in rows], rtol=1e-3)
