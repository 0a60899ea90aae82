"""PoseWarper-W48's 3x3 convolutions one at a time: XLA:CPU against PyTorch's CPU convolutions.

The training-step tables (profile_step.py) say where our step spends its time; this says how
fast each of those convolutions is in each framework, so that the step's gap to the release can
be read convolution by convolution. For every shape, in the same process and interleaved:

- ours: `lax.conv_general_dilated` in NHWC / HWIO as the Flax layers call it, jitted alone, its
  forward, its input gradient and its kernel gradient (each a `jax.vjp` with respect to one
  operand, compiled apart), as XLA:CPU compiles it by default (YNNPACK where it takes the
  convolution), with YNNPACK's fusions switched off for that function (Eigen:
  `xla_cpu_experimental_ynn_fusion_type=''`, a per-function compiler option), and with the
  project's options (oneDNN: backend.CPU_COMPILER_OPTIONS, what run.py compiles with); and the
  kernel gradient in ops/conv.py's two formulations (stride 1 only: ops/conv.py leaves strided
  convolutions to lax), the per-tap matrix products under the project's options and the 1-D
  convolution over the rows under XLA's defaults (where it is the faster);
- PyTorch's: `torch.nn.functional.conv2d` in NCHW, and `aten::convolution_backward` with the
  output mask of the input gradient or the kernel gradient alone (what autograd calls).

Medians after warm-up, milliseconds per call; both frameworks on the same threads (torch's
intra-op threads set to the cores JAX sees). A convolution alone is not a convolution in the
step: inside the compiled step XLA runs independent ops side by side and fuses their
neighbours, so the step's op times (profile_step.py) differ from these.

    python benchmarks/conv_ops.py                 # HRNet-W48's branch convolutions, batch 2
    python benchmarks/conv_ops.py --convs=head    # the warping head's (stage 2), batch 2 pairs
    python benchmarks/conv_ops.py --batch 4 --repeats 20
"""

from __future__ import annotations

import functools
import os

import common  # first: puts the project on sys.path
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from common import median_ms

from posewarper_jax.ops import backend, conv

_BATCH = flags.DEFINE_integer('batch', 2, 'crops per call (the W48 steps of train_step.py: 2)')
_REPEATS = flags.DEFINE_integer('repeats', 10, 'timed calls per case, after 3 warm-up calls')
_CONVS = flags.DEFINE_list('convs', ['hrnet'], 'which convolutions: hrnet (stage 1\'s), head '
                           '(the warping head\'s, trained in stage 2)')

# (in, out, height, width, stride, dilation), padding = dilation. 'hrnet': HRNet-W48 at 384x288,
# the four branches' BasicBlock convolutions (48 to 384 channels at 96x72 to 12x9: the bulk of
# stage 1's convolutions) and the stride-2 transition / fuse convolutions whose input gradient
# is base-dilated. 'head': the warping head at W48's 96x72 heatmaps, its offset network's 128 ->
# 128 convolutions (39 a step) and three of its five dilated 128 -> 306 offset convolutions.
SHAPES = {
    'hrnet': ((48, 48, 96, 72, 1, 1), (96, 96, 48, 36, 1, 1), (192, 192, 24, 18, 1, 1),
              (384, 384, 12, 9, 1, 1), (48, 96, 96, 72, 2, 1), (96, 192, 48, 36, 2, 1),
              (192, 384, 24, 18, 2, 1)),
    'head': ((128, 128, 96, 72, 1, 1), (128, 306, 96, 72, 1, 3), (128, 306, 96, 72, 1, 12),
             (128, 306, 96, 72, 1, 24)),
}
PHASES = ('forward', 'input grad', 'kernel grad')


# The compiler options of the columns of ours: XLA:CPU's defaults, no YNNPACK fusions, and the
# project's (oneDNN's convolutions).
BACKENDS = {'default': {}, 'Eigen': {'xla_cpu_experimental_ynn_fusion_type': ''},
            'oneDNN': backend.CPU_COMPILER_OPTIONS}


def ours(x, w, stride: int, dilation: int, options: dict,
         primitive=jax.lax.conv_general_dilated) -> dict:
  """Phase -> a callable running our convolution's phase once (NHWC, HWIO), compiled with
  `options`; primitive: lax's convolution or ops/conv.py's (the same signature)."""
  def conv(x, w):
    return primitive(x, w, (stride, stride), ((dilation, dilation), (dilation, dilation)),
                     rhs_dilation=(dilation, dilation),
                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  def compiled(fn, *args):
    return jax.jit(fn).lower(*args).compile(compiler_options=options)

  g = jnp.ones_like(jax.jit(conv)(x, w))
  forward = compiled(conv, x, w)
  input_grad = compiled(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0], x, w, g)
  kernel_grad = compiled(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0], x, w, g)
  return {'forward': lambda: forward(x, w).block_until_ready(),
          'input grad': lambda: input_grad(x, w, g).block_until_ready(),
          'kernel grad': lambda: kernel_grad(x, w, g).block_until_ready()}


def theirs(x, w, stride: int, dilation: int) -> dict:
  """Phase -> a callable running PyTorch's convolution's phase once (NCHW, OIHW)."""
  import torch

  tx = torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 1)))
  tw = torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(w), (3, 2, 0, 1))))
  with torch.no_grad():
    ty = torch.nn.functional.conv2d(tx, tw, stride=stride, padding=dilation, dilation=dilation)
  tg = torch.ones_like(ty)

  def backward(mask):
    def run():
      with torch.no_grad():
        torch.ops.aten.convolution_backward(tg, tx, tw, None, [stride, stride],
                                            [dilation, dilation], [dilation, dilation],
                                            False, [0, 0], 1, mask)
    return run

  def forward():
    with torch.no_grad():
      torch.nn.functional.conv2d(tx, tw, stride=stride, padding=dilation, dilation=dilation)

  return {'forward': forward, 'input grad': backward([True, False, False]),
          'kernel grad': backward([False, True, False])}


def main(argv):
  del argv
  import torch

  torch.set_num_threads(len(os.sched_getaffinity(0)))
  print(common.machine_line())
  print(f'jax {jax.__version__}, torch {torch.__version__}, {torch.get_num_threads()} torch '
        f'threads, batch {_BATCH.value}, medians of {_REPEATS.value} calls, ms per call\n')
  print('| convolution 3x3 | phase | XLA default ms | Eigen ms | oneDNN ms | tap products ms '
        '| rows (XLA default) ms | PyTorch ms | PyTorch / oneDNN '
        '| PyTorch / the fastest of ours |')
  print('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  rng = np.random.default_rng(0)
  unknown = sorted(set(_CONVS.value) - set(SHAPES))
  if unknown:
    raise app.UsageError(f'--convs: unknown {unknown}; choose from {sorted(SHAPES)}')
  shapes = [shape for name in _CONVS.value for shape in SHAPES[name]]
  for cin, cout, h, w, stride, dilation in shapes:
    x = jnp.asarray(rng.normal(size=(_BATCH.value, h, w, cin)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(3, 3, cin, cout)) / np.sqrt(9 * cin), jnp.float32)
    cases = [ours(x, kernel, stride, dilation, options) for options in BACKENDS.values()]
    forms = ([ours(x, kernel, stride, dilation, BACKENDS['oneDNN'], conv.conv_general_dilated),
              ours(x, kernel, stride, dilation, BACKENDS['default'],
                   functools.partial(conv.conv_general_dilated, kernel_gradient='rows'))]
             if stride == 1 else [])
    torch_case = theirs(x, kernel, stride, dilation)
    for phase in PHASES:
      times = [median_ms(case[phase], warmup=3, repeats=_REPEATS.value) for case in cases]
      form_ms = [median_ms(case[phase], warmup=3, repeats=_REPEATS.value)
                 for case in (forms if phase == 'kernel grad' else [])]
      torch_ms = median_ms(torch_case[phase], warmup=3, repeats=_REPEATS.value)
      fastest = min(times + form_ms)
      name = (f'{cin} -> {cout} at {h}x{w}' + (', stride 2' if stride == 2 else '')
              + (f', dilation {dilation}' if dilation > 1 else ''))
      form_cells = ' | '.join(f'{t:.2f}' for t in form_ms) if form_ms else ' | '
      print(f'| {name} | {phase} | {" | ".join(f"{t:.2f}" for t in times)} | {form_cells} | '
            f'{torch_ms:.2f} | {torch_ms / times[2]:.2f}x | {torch_ms / fastest:.2f}x |',
            flush=True)


if __name__ == '__main__':
  app.run(main)
