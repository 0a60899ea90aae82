"""Deformable convolution (DCN v1, and v2 with a modulation mask), NHWC, in plain JAX.

Semantics are exactly those of ``torchvision.ops.deform_conv2d`` (and of the PoseWarper
release's DCN and mmcv), POSEWARPER_SPEC.md 1.4:

* ``offsets[n, oy, ox, :]`` holds ``2 * G * kh * kw`` channels. Offset group ``g`` owns the
  contiguous block ``[g * 2 * kh * kw, (g + 1) * 2 * kh * kw)``; inside it, tap
  ``t = i * kw + j`` (row-major over the kernel) holds ``(dy, dx)`` at channels ``2t, 2t + 1``.
  This is torchvision's NCHW channel order, moved to the last axis.
* Input channel ``c`` is sampled with the offsets of group ``c // (Cin / G)``.
* Tap ``(i, j)`` of output ``(oy, ox)`` samples the input at
  ``y = oy * stride - pad + i * dil + dy`` and ``x = ox * stride - pad + j * dil + dx``,
  bilinearly, with zero padding: each of the four integer corners that lies outside the image
  contributes zero (so a sample with ``y <= -1``, ``y >= H``, ``x <= -1`` or ``x >= W`` is zero).
* DCN v2: ``mask[n, oy, ox, g * kh * kw + t]`` multiplies tap ``t`` of group ``g`` (no sigmoid).
* The sampled columns are contracted with ``kernel`` (HWIO, ``[kh, kw, Cin / F, Cout]`` with
  ``F = feature_group_count`` weight groups), exactly like ``lax.conv_general_dilated``.

How it is computed. The input, zero-padded by one pixel, is read as rows of ``Cin / G`` channels
(one offset group at one pixel; a single value in PoseWarper, where G = Cin). Each bilinear sample
is four row gathers at the corners of its 2x2 window, weighted and summed in one fused loop that
XLA feeds straight into the matmul with the kernel. A sample wholly outside the image reads a
window clipped into the padding with zero weights, and the padding supplies the zeros of corners
that fall outside, so no bounds logic remains inside the gathers. Sampling and accumulation run in
float32 for float32 and bfloat16 inputs (float64 stays float64).

The backward pass is written by hand (``jax.custom_vjp`` with symbolic zeros). It keeps the
sampled columns from the forward pass for the kernel gradient, regathers the corners for the
offset and mask gradients (cheaper than keeping four times the columns alive), and computes the
gradient with respect to ``inputs`` -- the only part that needs a scatter -- only when ``inputs``
is being differentiated. In PoseWarper the inputs are the heatmaps of a frozen backbone, so its
training step contains no scatter at all.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

IntOrPair = int | Sequence[int]

# The corners of a sample's 2x2 window as (dy, dx) from its top-left corner; corner (dy, dx) has
# bilinear weight (ly if dy else 1 - ly) * (lx if dx else 1 - lx) for fractional parts (ly, lx).
_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))


class _Geometry(NamedTuple):
  """Static shapes and conv parameters, checked once (hashable: a nondiff argument)."""

  batch: int
  height: int
  width: int
  in_channels: int
  out_channels: int
  offset_groups: int
  kernel_h: int
  kernel_w: int
  out_h: int
  out_w: int
  strides: tuple[int, int]
  padding: tuple[int, int]
  dilation: tuple[int, int]
  feature_groups: int
  precision: lax.Precision | None
  # float32, or float64 for float64 inputs: bfloat16 inputs are sampled and accumulated in f32.
  sample_dtype: jnp.dtype

  @property
  def taps(self) -> int:
    return self.kernel_h * self.kernel_w

  @property
  def channels_per_group(self) -> int:
    return self.in_channels // self.offset_groups


def _pair(value: IntOrPair, name: str, minimum: int) -> tuple[int, int]:
  if isinstance(value, int):
    pair = (value, value)
  else:
    pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
      raise ValueError(f'{name} must be an int or a pair of ints, got {value!r}')
  if min(pair) < minimum:
    raise ValueError(f'{name} must be >= {minimum}, got {value!r}')
  return pair  # type: ignore[return-value]


def _geometry(inputs, offsets, kernel, mask, strides, padding, dilation,
              feature_group_count, precision) -> _Geometry:
  """Validates shapes and arguments; every mismatch raises ValueError naming it."""
  if inputs.ndim != 4:
    raise ValueError(f'inputs must be [N, H, W, Cin], got shape {inputs.shape}')
  if offsets.ndim != 4:
    raise ValueError(f'offsets must be [N, Ho, Wo, 2 * G * kh * kw], got shape {offsets.shape}')
  if kernel.ndim != 4:
    raise ValueError(f'kernel must be HWIO [kh, kw, Cin / groups, Cout], got shape {kernel.shape}')
  strides = _pair(strides, 'strides', 1)
  padding = _pair(padding, 'padding', 0)
  dilation = _pair(dilation, 'dilation', 1)
  if not isinstance(feature_group_count, int) or feature_group_count < 1:
    raise ValueError(f'feature_group_count must be a positive int, got {feature_group_count!r}')
  n, h, w, cin = inputs.shape
  kh, kw, kcin, cout = kernel.shape
  fgc = feature_group_count
  if cin % fgc:
    raise ValueError(f'input channels ({cin}) are not divisible by feature_group_count ({fgc})')
  if cout % fgc:
    raise ValueError(f'kernel output channels ({cout}) are not divisible by '
                     f'feature_group_count ({fgc})')
  if kcin != cin // fgc:
    raise ValueError(f'kernel input channels ({kcin}) must equal input channels / '
                     f'feature_group_count ({cin} / {fgc} = {cin // fgc})')
  out_h = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // strides[0] + 1
  out_w = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // strides[1] + 1
  if out_h < 1 or out_w < 1:
    raise ValueError(f'output would be empty ({out_h}x{out_w}): input {h}x{w}, kernel {kh}x{kw}, '
                     f'padding {padding}, dilation {dilation}, strides {strides}')
  if offsets.shape[:3] != (n, out_h, out_w):
    raise ValueError(f'offsets must be [N, Ho, Wo, ...] = [{n}, {out_h}, {out_w}, ...] for these '
                     f'inputs and conv parameters, got shape {offsets.shape}')
  taps = kh * kw
  if offsets.shape[3] % (2 * taps):
    raise ValueError(f'offset channels ({offsets.shape[3]}) must be a multiple of '
                     f'2 * kh * kw = {2 * taps}')
  groups = offsets.shape[3] // (2 * taps)
  if groups < 1 or cin % groups:
    raise ValueError(f'input channels ({cin}) are not divisible by the {groups} offset groups '
                     f'implied by {offsets.shape[3]} offset channels')
  if mask is not None:
    if mask.ndim != 4 or mask.shape != (n, out_h, out_w, groups * taps):
      raise ValueError(f'mask must be [N, Ho, Wo, G * kh * kw] = '
                       f'{[n, out_h, out_w, groups * taps]}, got shape {mask.shape}')
  if n * (h + 2) * (w + 2) * groups >= 2**31:
    raise ValueError(f'inputs {inputs.shape} with {groups} offset groups are too large for int32 '
                     'gather indices; split the batch')
  sample_dtype = jnp.promote_types(jnp.promote_types(inputs.dtype, offsets.dtype), jnp.float32)
  return _Geometry(n, h, w, cin, cout, groups, kh, kw, out_h, out_w, strides, padding, dilation,
                   fgc, precision, sample_dtype)


def deform_conv2d(inputs: jax.Array, offsets: jax.Array, kernel: jax.Array,
                  mask: jax.Array | None = None, *, strides: IntOrPair = 1,
                  padding: IntOrPair = 0, dilation: IntOrPair = 1,
                  feature_group_count: int = 1,
                  precision: lax.Precision | None = None) -> jax.Array:
  """Deformable 2-D convolution with torchvision's semantics, NHWC.

  Args:
    inputs: [N, H, W, Cin], float32 or bfloat16.
    offsets: [N, Ho, Wo, 2 * G * kh * kw]; layout in the module docstring (group-major, taps
      row-major, (dy, dx) per tap). G, the number of offset groups, is inferred and must divide
      Cin.
    kernel: [kh, kw, Cin / feature_group_count, Cout] (HWIO).
    mask: optional DCN v2 modulation, [N, Ho, Wo, G * kh * kw], applied as given (no sigmoid).
    strides, padding, dilation: an int or an (h, w) pair. Padding is symmetric zero padding.
    feature_group_count: weight groups, as in ``lax.conv_general_dilated``.
    precision: matmul precision of the contraction with the kernel.

  Returns:
    [N, Ho, Wo, Cout] in the promoted dtype of ``inputs`` and ``kernel``.
  """
  geo = _geometry(inputs, offsets, kernel, mask, strides, padding, dilation,
                  feature_group_count, precision)
  return _deform_conv(inputs, offsets, mask, kernel, geo)


# ----------------------------------------------------------------------------------------------
# Sampling.


def _planes(inputs: jax.Array, geo: _Geometry) -> jax.Array:
  """[N, H, W, Cin] -> [N * (H + 2) * (W + 2) * G, Cpg] rows in the sample dtype.

  The input zero-padded by one pixel on every side, in its own NHWC order: row (n, y, x, g)
  holds offset group g's Cpg channels at padded pixel (y, x), the image's (y - 1, x - 1).
  """
  n, h, w, _ = inputs.shape
  padded = jnp.pad(inputs.astype(geo.sample_dtype), ((0, 0), (1, 1), (1, 1), (0, 0)))
  # Materialize the padded copy (a few MB): left to itself XLA fuses the pad into every gather,
  # which then pays an index decomposition and a bounds select per sampled value.
  padded = lax.optimization_barrier(padded)
  return padded.reshape(n * (h + 2) * (w + 2) * geo.offset_groups, geo.channels_per_group)


def _unplanes(planes_grad: jax.Array, geo: _Geometry) -> jax.Array:
  """Transpose of _planes: [N * (H + 2) * (W + 2) * G, Cpg] -> [N, H, W, Cin]."""
  n, h, w = geo.batch, geo.height, geo.width
  padded = planes_grad.reshape(n, h + 2, w + 2, geo.in_channels)
  return padded[:, 1:h + 1, 1:w + 1]


def _sample_points(offsets: jax.Array, geo: _Geometry) -> tuple[jax.Array, jax.Array]:
  """Sampling positions y, x, each [N, Ho, Wo, G, kh * kw], in input pixels."""
  off = offsets.astype(geo.sample_dtype).reshape(
      geo.batch, geo.out_h, geo.out_w, geo.offset_groups, geo.taps, 2)
  (sh, sw), (ph, pw), (dh, dw) = geo.strides, geo.padding, geo.dilation
  tap_y = jnp.repeat(jnp.arange(geo.kernel_h) * dh, geo.kernel_w)  # [taps], row-major
  tap_x = jnp.tile(jnp.arange(geo.kernel_w) * dw, geo.kernel_h)
  base_y = (jnp.arange(geo.out_h) * sh - ph)[:, None] + tap_y  # [Ho, taps]
  base_x = (jnp.arange(geo.out_w) * sw - pw)[:, None] + tap_x  # [Wo, taps]
  y = base_y[None, :, None, None, :].astype(off.dtype) + off[..., 0]
  x = base_x[None, None, :, None, :].astype(off.dtype) + off[..., 1]
  return y, x


class _Taps(NamedTuple):
  """Where and how one set of sample points [N, Ho, Wo, G, K] reads the padded planes."""

  corner_rows: tuple[jax.Array, ...]  # 4 x int32 rows of _planes, in _CORNERS order
  weights: tuple[jax.Array, ...]  # 4 x bilinear weights, zero for samples outside
  ly: jax.Array  # fractional parts in [0, 1)
  lx: jax.Array
  valid: jax.Array  # 1.0 where some corner can be inside the image, else 0.0


def _locate(y: jax.Array, x: jax.Array, geo: _Geometry) -> _Taps:
  h, w = geo.height, geo.width
  # Far-away samples are zero; clipping first keeps the int conversion exact for any offset.
  y = jnp.clip(y, -2.0, h + 1.0)
  x = jnp.clip(x, -2.0, w + 1.0)
  y0, x0 = jnp.floor(y), jnp.floor(x)
  # Some corner can be inside the image only if the top-left corner y0 is in [-1, H - 1] (and
  # likewise x0); then its padded position y0 + 1 is in [0, H] and the 2x2 window lies inside
  # the padded plane, whose border supplies the zeros of corners outside the image. Samples
  # wholly outside read the window at the clipped position with zero weights.
  valid = ((y0 >= -1) & (y0 <= h - 1) & (x0 >= -1) & (x0 <= w - 1)).astype(y.dtype)
  yi = jnp.clip(y0, -1, h - 1).astype(jnp.int32) + 1
  xi = jnp.clip(x0, -1, w - 1).astype(jnp.int32) + 1
  n, _, _, g, _ = y.shape
  image = jnp.arange(n, dtype=jnp.int32)[:, None, None, None, None]
  group = jnp.arange(g, dtype=jnp.int32)[None, None, None, :, None]
  top_left = ((image * (h + 2) + yi) * (w + 2) + xi) * g + group
  rows = tuple(top_left + (dy * (w + 2) + dx) * g for dy, dx in _CORNERS)
  ly, lx = y - y0, x - x0
  wy, wx = (1.0 - ly, ly), (1.0 - lx, lx)
  weights = tuple(wy[dy] * wx[dx] * valid for dy, dx in _CORNERS)
  return _Taps(rows, weights, ly, lx, valid)


def _gather_rows(planes: jax.Array, rows: jax.Array) -> jax.Array:
  """planes[rows] -> rows.shape + [Cpg]; every row index is in bounds by construction."""
  dnums = lax.GatherDimensionNumbers(
      offset_dims=(rows.ndim,), collapsed_slice_dims=(0,), start_index_map=(0,))
  return lax.gather(planes, rows[..., None], dnums, slice_sizes=(1, planes.shape[1]),
                    mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)


def _scatter_add_rows(planes: jax.Array, rows: jax.Array, updates: jax.Array) -> jax.Array:
  """Transpose of _gather_rows: planes with updates [..., Cpg] added at rows."""
  dnums = lax.ScatterDimensionNumbers(
      update_window_dims=(rows.ndim,), inserted_window_dims=(0,),
      scatter_dims_to_operand_dims=(0,))
  return lax.scatter_add(planes, rows[..., None], updates, dnums,
                         mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)


# ----------------------------------------------------------------------------------------------
# Contraction with the kernel, and its two transposes.


def _compute_dtype(inputs_dtype, kernel_dtype):
  return jnp.result_type(inputs_dtype, kernel_dtype)


def _dot(lhs: jax.Array, rhs: jax.Array, contract: tuple[int, int], geo: _Geometry) -> jax.Array:
  """2-D matmul contracting lhs axis contract[0] with rhs axis contract[1], in the sample dtype.

  Written as an explicit dot_general with the large operand first: einsum is free to swap the
  operands, and XLA then returns the result in a transposed layout that every later elementwise
  pass reads with a stride.
  """
  dnums = (((contract[0],), (contract[1],)), ((), ()))
  return lax.dot_general(lhs, rhs, dnums, precision=geo.precision,
                         preferred_element_type=geo.sample_dtype)


def _kernel_matrices(kernel: jax.Array, geo: _Geometry) -> jax.Array:
  """[kh, kw, Cin / F, Cout] -> [F, G * K * Cpg / F, Cout / F] in the columns' channel order.

  For F = 1 the columns' order (g, k, p) is kept as it is. For F > 1 each weight group needs a
  contiguous block of channels, so the columns are reordered to (k, c) instead, see _cols_2d.
  """
  k, g, cpg, f = geo.taps, geo.offset_groups, geo.channels_per_group, geo.feature_groups
  if f == 1:
    kern = kernel.reshape(k, g, cpg, geo.out_channels).transpose(1, 0, 2, 3)
    return kern.reshape(1, g * k * cpg, geo.out_channels)
  kern = kernel.reshape(k, geo.in_channels // f, f, geo.out_channels // f)
  return kern.transpose(2, 0, 1, 3).reshape(f, k * geo.in_channels // f, geo.out_channels // f)


def _cols_2d(cols: jax.Array, geo: _Geometry) -> jax.Array:
  """[N, Ho, Wo, G, K, Cpg] -> [F, M, G * K * Cpg / F] matching _kernel_matrices."""
  m = geo.batch * geo.out_h * geo.out_w
  f = geo.feature_groups
  if f == 1:
    return cols.reshape(1, m, -1)
  cols = cols.transpose(0, 1, 2, 4, 3, 5).reshape(m, geo.taps, f, geo.in_channels // f)
  return cols.transpose(2, 0, 1, 3).reshape(f, m, -1)


def _cols_from_2d(cols2d: jax.Array, geo: _Geometry) -> jax.Array:
  """Inverse of _cols_2d."""
  n, ho, wo, g, k, cpg = (geo.batch, geo.out_h, geo.out_w, geo.offset_groups, geo.taps,
                          geo.channels_per_group)
  f = geo.feature_groups
  if f == 1:
    return cols2d.reshape(n, ho, wo, g, k, cpg)
  cols = cols2d.reshape(f, n * ho * wo, k, geo.in_channels // f).transpose(1, 2, 0, 3)
  return cols.reshape(n, ho, wo, k, g, cpg).transpose(0, 1, 2, 4, 3, 5)


def _contract(cols: jax.Array, kernel: jax.Array, geo: _Geometry) -> jax.Array:
  """cols [N, Ho, Wo, G, K, Cpg] x kernel [kh, kw, Cin / F, Cout] -> [N, Ho, Wo, Cout]."""
  cols2d = _cols_2d(cols.astype(kernel.dtype), geo)
  kern = _kernel_matrices(kernel, geo)
  out = [_dot(cols2d[i], kern[i], (1, 0), geo) for i in range(geo.feature_groups)]
  out = out[0] if len(out) == 1 else jnp.concatenate(out, axis=-1)
  return out.reshape(geo.batch, geo.out_h, geo.out_w, geo.out_channels)


def _contract_transpose_cols(gout: jax.Array, kernel: jax.Array, geo: _Geometry) -> jax.Array:
  """d out / d cols: gout [N, Ho, Wo, Cout] -> [N, Ho, Wo, G, K, Cpg]."""
  f = geo.feature_groups
  gout = gout.astype(kernel.dtype).reshape(-1, f, geo.out_channels // f)
  kern = _kernel_matrices(kernel, geo)
  gcols = jnp.stack([_dot(gout[:, i], kern[i], (1, 1), geo) for i in range(f)])
  return _cols_from_2d(gcols, geo)


def _contract_transpose_kernel(cols: jax.Array, gout: jax.Array, geo: _Geometry,
                               dtype) -> jax.Array:
  """d out / d kernel: -> [kh, kw, Cin / F, Cout]."""
  k, g, cpg, f = geo.taps, geo.offset_groups, geo.channels_per_group, geo.feature_groups
  cols2d = _cols_2d(cols.astype(dtype), geo)
  gout = gout.astype(dtype).reshape(-1, f, geo.out_channels // f)
  gk = jnp.stack([_dot(cols2d[i], gout[:, i], (0, 0), geo) for i in range(f)])
  if f == 1:
    gk = gk.reshape(g, k, cpg, geo.out_channels).transpose(1, 0, 2, 3)
  else:
    gk = gk.reshape(f, k, geo.in_channels // f, geo.out_channels // f).transpose(1, 2, 0, 3)
  return gk.reshape(geo.kernel_h, geo.kernel_w, geo.in_channels // f, geo.out_channels)


# ----------------------------------------------------------------------------------------------
# The op and its hand-written VJP.


def _mask_taps(mask: jax.Array | None, geo: _Geometry) -> jax.Array | None:
  if mask is None:
    return None
  return mask.astype(geo.sample_dtype).reshape(
      geo.batch, geo.out_h, geo.out_w, geo.offset_groups, geo.taps)


def _sample(inputs, offsets, mask, geo):
  """Corner values and taps, shared by forward and backward.

  Returns (taps, corners, cols): corners are 4 x [N, Ho, Wo, G, K, Cpg] and cols, the
  (modulated) bilinear samples, [N, Ho, Wo, G, K, Cpg], all in the sample dtype.
  """
  planes = _planes(inputs, geo)
  taps = _locate(*_sample_points(offsets, geo), geo)
  corners = tuple(_gather_rows(planes, rows) for rows in taps.corner_rows)
  cols = sum(wgt[..., None] * val for wgt, val in zip(taps.weights, corners, strict=True))
  m = _mask_taps(mask, geo)
  if m is not None:
    cols = cols * m[..., None]
  return taps, corners, cols


def _forward(inputs, offsets, mask, kernel, geo):
  """-> (output [N, Ho, Wo, Cout], sampled columns [N, Ho, Wo, G, K, Cpg])."""
  dtype = _compute_dtype(inputs.dtype, kernel.dtype)
  *_, cols = _sample(inputs, offsets, mask, geo)
  return _contract(cols, kernel.astype(dtype), geo).astype(dtype), cols


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _deform_conv(inputs, offsets, mask, kernel, geo):
  return _forward(inputs, offsets, mask, kernel, geo)[0]


def _deform_conv_fwd(inputs, offsets, mask, kernel, geo):
  # With symbolic_zeros=True every primal leaf arrives as CustomVJPPrimal(value, perturbed).
  perturbed = (inputs.perturbed, offsets.perturbed,
               mask is not None and mask.perturbed, kernel.perturbed)
  inputs, offsets, kernel = inputs.value, offsets.value, kernel.value
  mask = None if mask is None else mask.value
  out, cols = _forward(inputs, offsets, mask, kernel, geo)
  # The columns are kept only for the kernel gradient.
  return out, (inputs, offsets, mask, kernel, cols if perturbed[3] else None, perturbed)


def _deform_conv_bwd(geo, residuals, gout):
  inputs, offsets, mask, kernel, cols, perturbed = residuals
  need_inputs, need_offsets, need_mask, need_kernel = perturbed
  if isinstance(gout, jax.custom_derivatives.SymbolicZero):
    return None, None, None, None
  dtype = _compute_dtype(inputs.dtype, kernel.dtype)
  # Recompute the corners rather than keep them alive from the forward pass (four times the
  # columns' memory). The barrier keeps XLA from merging this sampling with the forward's,
  # which would materialize all four corner arrays; recomputed, they fuse into their consumers.
  inputs, offsets, mask = lax.optimization_barrier((inputs, offsets, mask))
  taps, corners, _ = _sample(inputs, offsets, mask, geo)
  m = _mask_taps(mask, geo)
  gcols = _contract_transpose_cols(gout, kernel.astype(dtype), geo)  # [N, Ho, Wo, G, K, Cpg]

  g_inputs = g_offsets = g_mask = g_kernel = None
  if need_kernel:
    g_kernel = _contract_transpose_kernel(cols, gout, geo, dtype).astype(kernel.dtype)
  if need_offsets or need_mask:
    # s[c] = d loss / d (weight of corner c), summed over the group's channels.
    s00, s01, s10, s11 = (jnp.sum(gcols * val, axis=-1) for val in corners)
    if need_mask:
      g_mask = sum(s * wgt for s, wgt in zip((s00, s01, s10, s11), taps.weights, strict=True))
      g_mask = g_mask.reshape(mask.shape).astype(mask.dtype)
    if need_offsets:
      scale = taps.valid if m is None else taps.valid * m
      gy = ((s10 - s00) * (1.0 - taps.lx) + (s11 - s01) * taps.lx) * scale
      gx = ((s01 - s00) * (1.0 - taps.ly) + (s11 - s10) * taps.ly) * scale
      g_offsets = jnp.stack([gy, gx], axis=-1).reshape(offsets.shape).astype(offsets.dtype)
  if need_inputs:
    if m is not None:
      gcols = gcols * m[..., None]
    g_planes = jnp.zeros((geo.batch * (geo.height + 2) * (geo.width + 2) * geo.offset_groups,
                          geo.channels_per_group), gcols.dtype)
    for rows, wgt in zip(taps.corner_rows, taps.weights, strict=True):
      g_planes = _scatter_add_rows(g_planes, rows, gcols * wgt[..., None])
    g_inputs = _unplanes(g_planes, geo).astype(inputs.dtype)
  return g_inputs, g_offsets, g_mask, g_kernel


_deform_conv.defvjp(_deform_conv_fwd, _deform_conv_bwd, symbolic_zeros=True)
