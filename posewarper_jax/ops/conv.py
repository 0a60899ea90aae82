"""A stride-1 convolution whose kernel gradient is computed in another formulation on the CPU:
as matrix products, one per tap ('taps', the warping head's offset convolutions), or as one
1-D convolution over the rows ('rows', row_kernel_gradient: measured, not yet chosen anywhere;
docs/benchmarks.md, issue 39).

`conv_general_dilated` has lax.conv_general_dilated's signature and computes the same function,
forward and gradients; Flax's nn.Conv takes it as `conv_general_dilated=`, so parameters,
names and checkpoints do not change. For an NHWC x HWIO convolution with unit strides, no input
dilation and one feature group, on the CPU backend, the 'taps' kernel gradient is one product
per tap: for tap (i, j), the input window that tap reads ([N, Ho, Wo, Cin], a slice of the
padded input) contracted over N, Ho and Wo with the output gradient ([N, Ho, Wo, Cout]). The
forward and the input gradient are lax's.

Why: XLA:CPU lowers the kernel gradient as a convolution whose "batch" is Cin and whose window is
the whole image. For PoseWarper's offset convolutions (128 -> 2 * 17 * 9 = 306 channels, dilated
3 to 24, at 96x72) YNNPACK runs that form at about 19 GFLOP/s of thread time in the W48 step,
against about 90 for the 128 -> 128 kernel gradients; the per-tap products take 88-101 ms
against 166-231 ms in isolation (docs/benchmarks.md, "Where the step's time goes"). For narrow
convolutions (48 -> 48, 128 -> 128) the convolution form is the faster one (11 vs 45 ms, 28 vs
60 ms), which is why this is opt-in per layer (the warping head's offset convolutions) rather
than every convolution's. Anything it does not cover (strides, other layouts, other backends)
is lax.conv_general_dilated unchanged: GPU and TPU libraries have their own gradient kernels.
A 1x1 kernel's gradient is one matrix product already, and stays lax's too.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from posewarper_jax.ops import backend

_NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1),
                                 out_spec=(0, 3, 1, 2))


def _ones(values) -> bool:
  return values is None or all(v == 1 for v in values)


def _is_nhwc(dimension_numbers) -> bool:
  if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
    return dimension_numbers == _NHWC
  return dimension_numbers is not None and tuple(dimension_numbers) == ('NHWC', 'HWIO', 'NHWC')


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None, *,
                         kernel_gradient: str = 'taps'):
  """lax.conv_general_dilated; see the module docstring for when its kernel gradient is
  rewritten. kernel_gradient: its formulation there, 'taps' (kernel_gradient) or 'rows'
  (row_kernel_gradient); `functools.partial` it for a Flax layer's `conv_general_dilated`."""
  if kernel_gradient not in KERNEL_GRADIENTS:
    raise ValueError(f'conv_general_dilated: kernel_gradient must be one of '
                     f'{tuple(KERNEL_GRADIENTS)}, got {kernel_gradient!r}')
  if (backend.platform() != 'cpu' or not _is_nhwc(dimension_numbers)
      or not _ones(window_strides) or not _ones(lhs_dilation) or feature_group_count != 1
      or batch_group_count != 1 or preferred_element_type is not None
      or isinstance(padding, str) or lhs.ndim != 4 or tuple(rhs.shape[:2]) == (1, 1)):
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type)
  padding = tuple(tuple(int(p) for p in pair) for pair in padding)
  dilation = tuple(int(d) for d in (rhs_dilation or (1, 1)))
  return _conv(lhs, rhs, padding, dilation, precision, kernel_gradient)


def _plain(x, kernel, padding, dilation, precision):
  return lax.conv_general_dilated(x, kernel, (1, 1), padding, rhs_dilation=dilation,
                                  dimension_numbers=_NHWC, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv(x, kernel, padding, dilation, precision, form):
  return _plain(x, kernel, padding, dilation, precision)


def _conv_fwd(x, kernel, padding, dilation, precision, form):
  return _plain(x, kernel, padding, dilation, precision), (x, kernel)


def kernel_gradient(x: jax.Array, g: jax.Array, kernel_shape, padding, dilation,
                    precision=None) -> jax.Array:
  """d(sum(g * conv(x, k))) / dk, [kh, kw, Cin, Cout]: per tap, the window of the padded input
  that the tap reads contracted with g over (N, Ho, Wo). x: [N, H, W, Cin]; g: [N, Ho, Wo,
  Cout]."""
  kh, kw = kernel_shape[:2]
  (top, bottom), (left, right) = padding
  padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  ho, wo = g.shape[1:3]
  taps = []
  for i in range(kh):
    for j in range(kw):
      window = padded[:, i * dilation[0]:i * dilation[0] + ho,
                      j * dilation[1]:j * dilation[1] + wo, :]
      taps.append(lax.dot_general(window, g, (((0, 1, 2), (0, 1, 2)), ((), ())),
                                  precision=precision))
  return jnp.stack(taps).reshape(kh, kw, x.shape[-1], g.shape[-1])


def row_kernel_gradient(x: jax.Array, g: jax.Array, kernel_shape, padding, dilation,
                        precision=None) -> jax.Array:
  """The same [kh, kw, Cin, Cout] as kernel_gradient, as one 1-D convolution over the rows: its
  batch is (column tap j, Cin) (the kw column-shifted windows of the padded input stacked), its
  input features are (N, Wo), its window is the output gradient's Ho rows, and its kh outputs
  (stride: the row dilation) are the row taps. x: [N, H, W, Cin]; g: [N, Ho, Wo, Cout].

  Why: XLA:CPU's own kernel gradient is a 2-D convolution whose input features are the batch
  (2 in the W48 steps) and whose window is the whole image, which every CPU library runs far
  below its speed; here the contraction's features are N x Wo (144 at W48's first branch)."""
  kh, kw = kernel_shape[:2]
  (top, bottom), (left, right) = padding
  n, cin = x.shape[0], x.shape[-1]
  ho, wo, cout = g.shape[1:]
  padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  columns = jnp.stack([padded[:, :, j * dilation[1]:j * dilation[1] + wo, :]
                       for j in range(kw)])                     # [kw, N, Hp, Wo, Cin]
  lhs = columns.transpose(0, 4, 1, 3, 2).reshape(kw * cin, n * wo, -1)
  rhs = g.transpose(0, 2, 3, 1).reshape(n * wo, cout, ho)
  rows = lax.conv_general_dilated(lhs, rhs, (dilation[0],), 'VALID',
                                  dimension_numbers=('NCH', 'IOH', 'NCH'),
                                  precision=precision)          # [kw * Cin, Cout, kh]
  return rows.reshape(kw, cin, cout, kh).transpose(3, 0, 1, 2)


KERNEL_GRADIENTS = {'taps': kernel_gradient, 'rows': row_kernel_gradient}


def _conv_bwd(padding, dilation, precision, form, residuals, g):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda x: _plain(x, kernel, padding, dilation, precision), x)
  (grad_x,) = input_vjp(g)
  grad_kernel = KERNEL_GRADIENTS[form](x, g, kernel.shape, padding, dilation, precision)
  return grad_x, grad_kernel.astype(kernel.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)
