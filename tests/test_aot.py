"""The training steps compiled for accelerators this machine does not have (posewarper_jax.aot).

The compiles need libtpu and JAX's CUDA plugin, which only the accelerator venv has
(`bash scripts/venv.sh requirements-accel.lock .venv-accel`): elsewhere those tests skip, unless
POSEWARPER_ACCEL_TESTS=1 (as .ci/run sets it), where a missing backend fails them. The rest (the
platform switch, the collective count, the refusal without a backend) run everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from posewarper_jax import accelerators, aot, parallel, train
from posewarper_jax.models import create_model
from posewarper_jax.ops import backend
from tests.helpers import ROOT, TINY, posewarper_config, tiny_model_overrides

_HAVE = {p: accelerators.backend_installed(p) for p in ('tpu', 'gpu')}
_REQUIRED = os.environ.get('POSEWARPER_ACCEL_TESTS') == '1'


def _needs(platform: str) -> None:
  if not _HAVE[platform]:
    if _REQUIRED:
      pytest.fail(f'POSEWARPER_ACCEL_TESTS=1 but the {platform} backend is not installed: '
                  f'{accelerators.SETUP}')
    pytest.skip(f'the {platform} compile-only backend is not installed ({accelerators.SETUP})')


def _tiny_config(dtype: str = 'float32'):
  config = posewarper_config.get_config('stage1')
  config.image_size = TINY['image_size']
  config.model.backbone.update(TINY['backbone'])
  config.model.head.update(TINY['head'])
  config.model.dtype = dtype
  return config


def _nbytes(tree) -> int:
  return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def _tiled_nbytes(tree) -> int:
  """An upper bound of the bytes in a TPU's tiled layouts: the last two dimensions padded to
  (8, 128) tiles, a vector (or scalar) to 1024 elements."""
  total = 0
  for x in jax.tree.leaves(tree):
    shape = tuple(x.shape)
    if len(shape) < 2:
      padded = -(-max(1, int(np.prod(shape))) // 1024) * 1024
    else:
      padded = (int(np.prod(shape[:-2])) * (-(-shape[-2] // 8) * 8)
                * (-(-shape[-1] // 128) * 128))
    total += padded * np.dtype(x.dtype).itemsize
  return total


@pytest.mark.parametrize('stage', [1, 2])
@pytest.mark.parametrize('name', ['v5e-4', 'h100-2'])
def test_the_training_steps_compile_for_a_tpu_slice_and_two_gpus(name, stage):
  target = accelerators.TARGETS[name]
  _needs(target.chip.platform)
  config = _tiny_config()
  devices = accelerators.compile_only_devices(target)
  assert len(devices) == target.chips
  per_device = 2
  program = aot.train_program(config, stage, devices, per_device)
  compiled, seconds = aot.compile_program(program, target.chip.platform)
  row = aot.analyse(program, compiled, seconds, target, 'float32')

  # The step is the one training runs: the jit layout's, over every device of the target.
  assert compiled.input_shardings[0][1]['frames_a'].mesh.devices.size == target.chips
  # The gradients are averaged over the devices: all-reduces carrying at least the trainable
  # group's gradients, float32, once (BatchNorm's statistics add their own).
  state = aot.abstract_train_state(config, stage)
  trainable = _nbytes(state.params[train.TRAINABLE[stage]])
  reduced = row['collectives'].get('all-reduce', {'count': 0, 'bytes': 0})
  assert reduced['count'] >= 1 and reduced['bytes'] >= trainable, row['collectives']
  # Memory, derived from the parameters: every device holds the whole state (replicated) and
  # its share of the batch, exactly on a GPU, within the padding of tiled layouts on a TPU;
  # the new state reuses the donated buffers of the old (aliased: at least the trainable
  # parameters and their two Adam moments); the peak fits the chip.
  batch = aot.training_batch(config, stage, per_device)
  memory = row['memory']
  if target.chip.platform == 'gpu':
    assert memory['arguments'] == _nbytes(state) + _nbytes(batch), memory
  else:
    assert _nbytes(state) + _nbytes(batch) <= memory['arguments'], memory
    assert memory['arguments'] <= _tiled_nbytes(state) + _tiled_nbytes(batch), memory
  assert memory['aliased'] >= 3 * trainable, memory
  assert memory['peak'] <= memory['hbm'] and memory['fits']
  if target.chip.platform == 'tpu':
    cost = row['cost']
    assert cost['counted_on'] == 'tpu' and cost['flops'] > 0 and cost['bytes'] > 0
    assert cost['bound_s'] == max(cost['flops'] / target.chip.peak_bf16,
                                  cost['bytes'] / target.chip.hbm_bandwidth)


@pytest.mark.parametrize('row', ['aggregation', 'propagation'])
def test_the_inference_functions_compile_for_one_gpu(row):
  # What eval, propagation and augmentation run (predictor.heatmap_functions), on one device.
  _needs('gpu')
  config = _tiny_config()
  target = accelerators.TARGETS['h100-2']
  device = accelerators.compile_only_devices(target)[0]
  program = aot.inference_program(config, row, device, per_device=3)
  compiled, seconds = aot.compile_program(program, 'gpu')
  result = aot.analyse(program, compiled, seconds, target, 'float32')
  h, w = (s // 4 for s in config.image_size)
  assert compiled.out_info.shape == (3, h, w, 17)
  assert result['collectives'] == {} and result['memory']['fits']


def test_the_program_for_an_accelerator_leaves_out_the_cpus_formulations():
  # HRNet's optimization barriers (hrnet.materialize) pay off only on the CPU: a program traced
  # for a TPU or a GPU, on a machine whose JAX backend is the CPU, must not carry them.
  config = _tiny_config()
  model = create_model(config)
  frames = jnp.zeros((1, *config.image_size, 3))
  variables = jax.eval_shape(model.init, jax.random.key(0), frames, frames)

  def text(platform):
    with backend.compiling_for(platform):
      return jax.jit(lambda v, x: model.apply(v, x, method=type(model).single_frame)).lower(
          variables, frames).as_text()

  assert 'optimization_barrier' in text('cpu')
  assert 'optimization_barrier' not in text('tpu')
  assert 'optimization_barrier' not in text('gpu')

  # The offset convolutions' kernel gradient as per-tap matrix products (ops/conv.py) is the
  # CPU's too: for an accelerator the gradient is lax's convolution.
  maps = jnp.zeros((1, *[s // 4 for s in config.image_size], 17))

  def head_gradient(platform):
    def loss(params, variables):
      return jnp.sum(model.apply({**variables, 'params': params}, maps, maps, maps,
                                 method=type(model).warp))
    with backend.compiling_for(platform):
      return jax.jit(jax.grad(loss)).lower(variables['params'], variables).as_text()

  taps = 3 * 3 * len(config.model.head.dilations)
  products = {p: head_gradient(p).count('stablehlo.dot_general') for p in ('cpu', 'tpu')}
  assert products['cpu'] >= products['tpu'] + taps, products
  with pytest.raises(ValueError, match='platform must be one of'):
    with backend.compiling_for('cuda'):
      pass


def test_collectives_are_counted_with_the_bytes_of_their_results():
  # A TPU's synchronous all-reduce; a GPU's asynchronous one, whose start's result also holds
  # its operands (counted once, at its done); an all-gather; anything else is not counted.
  hlo = '\n'.join([
      '  %psum.7 = f32[3,3,16,16]{3,2,1,0:T(8,128)} all-reduce(%fusion.2), channel_id=1',
      '  %ars = ((f32[2,16]{1,0}, bf16[8]{0}), f32[2,16]{1,0}, bf16[8]{0}) all-reduce-start(%a)',
      '  %ard = (f32[2,16]{1,0}, bf16[8]{0}) all-reduce-done(%ars), metadata={}',
      '  ROOT %ag = f32[4,2]{1,0} all-gather(%c), dimensions={0}',
      '  %add = f32[3]{0} add(%x, %y)'])
  assert aot.collectives(hlo) == {
      'all-reduce': {'count': 2, 'bytes': 3 * 3 * 16 * 16 * 4 + 2 * 16 * 4 + 8 * 2},
      'all-gather': {'count': 1, 'bytes': 32}}


@pytest.mark.skipif(_HAVE['tpu'], reason='libtpu is installed here')
def test_without_libtpu_a_tpu_target_is_refused_with_the_setup_line():
  with pytest.raises(accelerators.MissingBackendError, match='requirements-accel.lock'):
    accelerators.compile_only_devices(accelerators.TARGETS['v5e-4'])


def test_unknown_targets_are_named():
  with pytest.raises(ValueError, match="no target 'v9-8'.*v5e-8"):
    accelerators.target('v9-8')


def test_the_jit_layout_over_given_devices_runs_the_training_step():
  # Layout.over, which the compiles use, is the layout training runs: on this machine's CPU
  # devices it takes the same state and batch as Layout.of('jit').
  devices = jax.devices()[:2]
  assert parallel.Layout.over(devices).mesh.devices.tolist() == devices
  assert parallel.Layout.over(jax.devices()) == parallel.Layout.of('jit')


def test_the_command_compiles_a_target_and_writes_its_rows(tmp_path):
  _needs('tpu')
  # As a user types it, from another folder with relative paths.
  config = os.path.relpath(ROOT / 'configs' / 'posewarper.py', tmp_path)
  env = {**os.environ, 'PYTHONPATH': str(ROOT)}
  command = [sys.executable, '-m', 'posewarper_jax.aot', f'--config={config}:stage1',
             *tiny_model_overrides(), '--targets=v5e-4', '--dtypes=bfloat16',
             '--programs=stage1', '--out=rows/v5e.json']
  result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  written = json.loads((tmp_path / 'rows' / 'v5e.json').read_text())
  (row,) = written['rows']
  assert (row['target'], row['program'], row['dtype']) == ('v5e-4', 'stage1', 'bfloat16')
  assert row['per_device'] == posewarper_config.get_config('stage1').stage1.global_batch // 8
  assert written['versions']['libtpu'] != 'not installed'
  assert 'v5e-4    stage1' in result.stdout and '| v5e-4 | stage1 | bfloat16 |' in result.stdout

  # Run again (a long run that stopped): what is in --out is not compiled again.
  again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'compiled before' in again.stdout
  assert json.loads((tmp_path / 'rows' / 'v5e.json').read_text())['rows'] == [row]
