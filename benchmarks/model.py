"""Benchmark of the PoseWarper network (HRNet-W48 + warping head at 384x288 by default).

Prints, for a batch of crops or pairs, the median time after warm-up of

* single frame: the backbone's heatmaps (inference-mode BatchNorm), per crop;
* pair forward: PoseWarper on (A, B), one backbone pass over 2N crops and the head, per pair;
* stage-2 step: a training step of the warping head on the frozen backbone (backbone BatchNorm
  in inference mode, head BatchNorm on batch statistics, gradients for the head only, Adam), per
  pair;

and the compile time of each, separately. When torch and torchvision import, the PyTorch
reference of tests/golden/torch_posewarper.py (the release's architecture, with torchvision's
deformable convolution) runs the same three computations on the same weights in the same
process, and the ratio PyTorch / ours is printed (above 1: we are faster). Its outputs are also
compared with ours, which checks the W48 conversion at full size.

    python benchmarks/model.py                                     # W48, batch 2, 384x288
    python benchmarks/model.py --config=configs/posewarper.py:small  # a variant
    python benchmarks/model.py --config.model.head.remat=True        # any config override
"""

from __future__ import annotations

import copy
import functools
import os
import time

import common  # first: puts the project on sys.path
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch_reference
from absl import app, flags
from common import median_ms
from ml_collections import config_flags

from posewarper_jax.convert import torch_to_flax
from posewarper_jax.models import PoseWarper, create_model, init_variables, num_params
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS


def _timed_compile(fn, *args):
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  return compiled, time.perf_counter() - start


def stage2_step(model: PoseWarper, optimizer: optax.GradientTransformation):
  """One stage-2 step: (head params, opt state, head stats, frozen vars, A, B, targets) -> ...

  The backbone's variables are not differentiated, so no backward pass runs through it.
  """

  def step(head, opt_state, head_stats, frozen, frames_a, frames_b, targets):
    def loss_fn(head):
      variables = {'params': {'backbone': frozen['params'], 'warper': head},
                   'batch_stats': {'backbone': frozen['batch_stats'], 'warper': head_stats}}
      out, updates = model.apply(variables, frames_a, frames_b, train=True,
                                 backbone_train=False, mutable='batch_stats')
      return 0.5 * jnp.mean(jnp.square(out - targets)), updates['batch_stats']['warper']

    (loss, head_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(head)
    updates, opt_state = optimizer.update(grads, opt_state, head)
    return optax.apply_updates(head, updates), opt_state, head_stats, loss

  return step


def jax_cases(model, variables, a, b, targets):
  """name -> (callable, compile seconds)."""
  single = functools.partial(model.apply, method=PoseWarper.single_frame)
  optimizer = optax.adam(1e-4)
  head = variables['params']['warper']
  frozen = {k: v['backbone'] for k, v in variables.items()}
  state = [head, optimizer.init(head), variables['batch_stats']['warper']]
  step = stage2_step(model, optimizer)

  c_single, t_single = _timed_compile(single, variables, a)
  c_pair, t_pair = _timed_compile(model.apply, variables, a, b)
  c_step, t_step = _timed_compile(step, *state, frozen, a, b, targets)

  def run_step():
    state[:3] = c_step(*state, frozen, a, b, targets)[:3]
    jax.block_until_ready(state)

  return {
      'single frame': (lambda: jax.block_until_ready(c_single(variables, a)), t_single),
      'pair forward': (lambda: jax.block_until_ready(c_pair(variables, a, b)), t_pair),
      'stage-2 step': (run_step, t_step),
  }, c_single, c_pair


_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(common.ROOT, 'configs', 'posewarper.py'), 'experiment config')
_BATCH = flags.DEFINE_integer('batch', 2, 'crops (single frame) or pairs')
_WARMUP = flags.DEFINE_integer('warmup', 1, 'untimed runs')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'timed runs (the median is printed)')
_NO_TORCH = flags.DEFINE_boolean('no_torch', False, 'skip the PyTorch reference')


def main(argv):
  del argv
  config = _CONFIG.value
  model = create_model(config)
  h, w = config.image_size
  n = _BATCH.value
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((n, h, w, 3)), jnp.float32)
  b = jnp.asarray(a + 0.1 * rng.standard_normal((n, h, w, 3)), jnp.float32)
  targets = jnp.asarray(rng.uniform(size=(n, h // 4, w // 4, NUM_JOINTS)),
                        jnp.float32)

  ref = None if _NO_TORCH.value else torch_reference.build(config)
  if ref is None:
    variables = init_variables(model, 0, (h, w))
  else:
    # The same weights on both sides (random, with batch statistics and non-zero offsets).
    variables = jax.tree.map(jnp.asarray, torch_to_flax(ref[1], model=model))

  params = variables['params']
  model_cfg = config.model
  print(f'# PoseWarper: backbone {model_cfg.backbone.to_dict()}, head {model_cfg.head.to_dict()}')
  print(f'# {h}x{w} crops, batch {n}, {model_cfg.dtype}; parameters: backbone '
        f'{num_params(params["backbone"]):,}, head {num_params(params["warper"]):,}')
  print(f'# {common.machine_line()}')
  if ref is not None:
    import torch
    import torchvision
    print(f'# reference: PyTorch {torch.__version__}, torchvision {torchvision.__version__}, '
          f'{torch.get_num_threads()} threads (tests/golden/torch_posewarper.py), same weights')
  else:
    print('# reference: torch not importable, no ratios')
  print(f'# medians of {_REPEATS.value} runs after {_WARMUP.value} warm-up; seconds per crop '
        '(single frame) or per pair')
  print()

  ours, c_single, c_pair = jax_cases(model, variables, a, b, targets)
  theirs = {}
  if ref is not None:
    theirs = {k: v for k, v in torch_reference.cases(ref[0], a, b, targets).items() if k in ours}
  # Outputs first: the timed training steps change both sides' heads. Both sides run in
  # float32; the reference in float64 gives the scale of float32 rounding on these weights.
  if ref is not None:
    import torch
    reference = ref[0].eval()
    reference64 = copy.deepcopy(reference).double()
    inputs = {'single frame': (a,), 'pair forward': (a, b)}
    for name, compiled in (('single frame', c_single), ('pair forward', c_pair)):
      method = (lambda m: m.single_frame) if name == 'single frame' else (lambda m: m)
      tensors = [torch_reference.nchw(x) for x in inputs[name]]
      with torch.no_grad():
        exp64 = method(reference64)(*(t.double() for t in tensors)).numpy()
        exp32 = method(reference)(*tensors).numpy()
      exp64 = np.moveaxis(exp64, 1, -1)
      scale = np.abs(exp64).max()
      ours_err = np.abs(np.asarray(compiled(variables, *inputs[name])) - exp64).max() / scale
      torch_err = np.abs(np.moveaxis(exp32, 1, -1) - exp64).max() / scale
      print(f'# {name}, max error / max |output| against PyTorch float64: ours (float32) '
            f'{ours_err:.1e}, PyTorch float32 {torch_err:.1e}')
    del reference64
    print()

  header = ['computation', 'ours s', 'ours compile s']
  if theirs:
    header += ['PyTorch s', 'PyTorch / ours']
  print('| ' + ' | '.join(header) + ' |')
  print('|' + '---|' * len(header))
  for name, (fn, compile_s) in ours.items():
    t_ours = median_ms(fn, _WARMUP.value, _REPEATS.value) / 1e3 / n
    row = [name, f'{t_ours:.3f}', f'{compile_s:.1f}']
    if theirs:
      t_theirs = median_ms(theirs[name], _WARMUP.value, _REPEATS.value) / 1e3 / n
      row += [f'{t_theirs:.3f}', f'{t_theirs / t_ours:.2f}x']
    print('| ' + ' | '.join(row) + ' |', flush=True)


if __name__ == '__main__':
  app.run(main)
