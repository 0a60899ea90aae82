"""Benchmark of the deformable convolution at PoseWarper's shape, against torchvision when present.

PoseWarper's warping head applies five deformable 3x3 convolutions (dilations 3, 6, 12, 18, 24) to
the 17 heatmaps of the supporting frame at 96x72, with 17 offset groups (one per channel). For each
dilation this prints the median milliseconds, after warm-up, of

* fwd: the forward pass;
* fwd+bwd: forward and backward for PoseWarper's training step, where the heatmaps come from a
  frozen backbone: gradients with respect to the offsets and the kernel;
* fwd+bwd all: also the gradient with respect to the inputs (the only part that needs a scatter);

and XLA's planned peak memory of each (arguments + outputs + temporaries). When torch and
torchvision import, torchvision.ops.deform_conv2d runs the same cases in the same process, on the
CPU, interleaved with ours, and the ratio torchvision / ours is printed (above 1: we are faster).
torchvision's backward always computes every gradient, so its two fwd+bwd columns cost the same.

    python benchmarks/deform_conv.py            # the table, in Markdown
    python benchmarks/deform_conv.py --repeats 20 --batch 8
"""

from __future__ import annotations

import argparse

import common  # first: puts the project on sys.path
import jax
import jax.numpy as jnp
import numpy as np
from common import median_ms, peak_mib

from posewarper_jax.ops import deform_conv2d

DILATIONS = (3, 6, 12, 18, 24)


def jax_cases(x, offsets, kernel, dilation):
  """name -> (compiled function, args) for the three measured computations."""
  conv = dict(padding=dilation, dilation=dilation)

  def loss(x, offsets, kernel):
    # A cotangent that is not all ones, as in training.
    return jnp.sum(jnp.square(deform_conv2d(x, offsets, kernel, **conv)))

  fns = {
      'fwd': jax.jit(lambda x, o, k: deform_conv2d(x, o, k, **conv)),
      'fwd+bwd': jax.jit(jax.value_and_grad(loss, argnums=(1, 2))),
      'fwd+bwd all': jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2))),
  }
  args = (x, offsets, kernel)
  return {name: (fn.lower(*args).compile(), args) for name, fn in fns.items()}


def torch_cases(x, offsets, kernel, dilation, device: str = 'cpu'):
  """The same three computations with torchvision on `device` ('cpu' or 'cuda'; each call
  waits for the GPU), or {} without torch."""
  try:
    import torch
    from torchvision.ops import deform_conv2d as tv_deform_conv2d
  except ImportError:
    return {}
  as_torch = lambda a, axes: torch.from_numpy(np.asarray(a).transpose(axes).copy()).to(device)
  tx, toff = as_torch(x, (0, 3, 1, 2)), as_torch(offsets, (0, 3, 1, 2))
  tk = as_torch(kernel, (3, 2, 0, 1))
  sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)

  def fwd():
    with torch.no_grad():
      tv_deform_conv2d(tx, toff, tk, padding=dilation, dilation=dilation)
    sync()

  def fwd_bwd(inputs_grad: bool):
    def run():
      xi = tx.detach().requires_grad_(inputs_grad)
      oi, ki = toff.detach().requires_grad_(), tk.detach().requires_grad_()
      out = tv_deform_conv2d(xi, oi, ki, padding=dilation, dilation=dilation)
      out.square().sum().backward()
      sync()
    return run

  return {'fwd': fwd, 'fwd+bwd': fwd_bwd(False), 'fwd+bwd all': fwd_bwd(True)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--height', type=int, default=96)
  parser.add_argument('--width', type=int, default=72)
  parser.add_argument('--channels', type=int, default=17)
  parser.add_argument('--dilations', type=int, nargs='+', default=list(DILATIONS))
  parser.add_argument('--warmup', type=int, default=3)
  parser.add_argument('--repeats', type=int, default=9)
  parser.add_argument('--offset_scale', type=float, default=4.0,
                      help='std of the random offsets, in pixels')
  parser.add_argument('--no_torch', action='store_true', help='skip torchvision')
  args = parser.parse_args(argv)

  rng = np.random.default_rng(0)
  n, h, w, c = args.batch, args.height, args.width, args.channels
  x = jnp.asarray(rng.normal(size=(n, h, w, c)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 3, c, c)) * 0.1, jnp.float32)
  offsets = jnp.asarray(rng.normal(size=(n, h, w, 2 * c * 9)) * args.offset_scale, jnp.float32)

  print(f'# deform_conv2d, batch {n}, {h}x{w}, {c} channels, {c} offset groups, 3x3')
  print(f'# {common.machine_line()}')
  torch_version = None
  if not args.no_torch:
    try:
      import torch
      import torchvision
      torch_version = (f'torch {torch.__version__}, torchvision {torchvision.__version__}, '
                       f'{torch.get_num_threads()} threads')
    except ImportError:
      pass
  print(f'# reference: {torch_version or "torchvision not importable: no ratios"}')
  print(f'# medians of {args.repeats} runs after {args.warmup} warm-up runs; ms')
  print()

  names = ('fwd', 'fwd+bwd', 'fwd+bwd all')
  header = ['dilation', 'computation', 'ours ms', 'ours peak MiB']
  if torch_version:
    header += ['torchvision ms', 'torchvision / ours']
  print('| ' + ' | '.join(header) + ' |')
  print('|' + '---|' * len(header))
  totals = {name: [0.0, 0.0] for name in names}
  for dilation in args.dilations:
    ours = jax_cases(x, offsets, kernel, dilation)
    theirs = torch_cases(x, offsets, kernel, dilation) if torch_version else {}
    for name in names:
      compiled, fn_args = ours[name]
      t_ours = median_ms(lambda compiled=compiled, fn_args=fn_args:
                         jax.block_until_ready(compiled(*fn_args)), args.warmup, args.repeats)
      mem = peak_mib(compiled)
      row = [str(dilation), name, f'{t_ours:.1f}', '-' if mem is None else f'{mem:.0f}']
      totals[name][0] += t_ours
      if theirs:
        t_theirs = median_ms(theirs[name], args.warmup, args.repeats)
        totals[name][1] += t_theirs
        row += [f'{t_theirs:.1f}', f'{t_theirs / t_ours:.2f}x']
      print('| ' + ' | '.join(row) + ' |', flush=True)
  for name in names:
    row = ['all', name, f'{totals[name][0]:.1f}', '']
    if torch_version:
      row += [f'{totals[name][1]:.1f}', f'{totals[name][1] / totals[name][0]:.2f}x']
    print('| ' + ' | '.join(row) + ' |')


if __name__ == '__main__':
  main()
