"""Layers shared by the models: the deformable convolution as a Flax Linen module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from posewarper_jax.ops.deform_conv import deform_conv2d

Initializer = Any  # flax.linen.initializers.Initializer; (key, shape, dtype) -> Array


def identity_kernel_init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
  """HWIO kernel that copies input channel c to output channel c through the centre tap.

  PoseWarper's deformable convolutions start this way (W[c, c, 1, 1] = 1 in PyTorch's OIHW), so
  that with zero offsets a fresh warping head returns the supporting frame's heatmaps unchanged.
  Needs an odd kernel and as many outputs as inputs (with weight groups, output c reads local
  input c mod (Cin / groups), its own channel).
  """
  del key
  kh, kw, cin_per_group, cout = shape
  if kh % 2 == 0 or kw % 2 == 0:
    raise ValueError(f'identity_kernel_init needs an odd kernel (a centre tap), got {kh}x{kw}')
  if cout % cin_per_group:
    raise ValueError(f'identity_kernel_init needs Cout ({cout}) to be a multiple of the kernel '
                     f'input channels ({cin_per_group})')
  out = jnp.arange(cout)
  return jnp.zeros(shape, dtype).at[kh // 2, kw // 2, out % cin_per_group, out].set(1)


class DeformConv(nn.Module):
  """Deformable convolution (DCN v1, or v2 when a mask is given), NHWC.

  Attributes:
    features: output channels.
    kernel_size: (kh, kw).
    strides, padding, dilation: int or (h, w); padding is symmetric zero padding (PyTorch's).
    feature_group_count: weight groups.
    use_bias: add a learned bias (PoseWarper's deformable convs have none).
    kernel_init: initializer of the HWIO kernel; `identity_kernel_init` for PoseWarper.
    dtype: computation dtype (None: inferred from the inputs and the kernel); sampling is in
      float32 regardless.
    param_dtype: dtype of the parameters.
    precision: matmul precision of the contraction with the kernel.

  Call with ``inputs [N, H, W, Cin]`` and ``offsets [N, Ho, Wo, 2 * G * kh * kw]`` in
  torchvision's channel order: offset group g owns channels [g * 2 * kh * kw, (g + 1) * 2 * kh *
  kw); inside it tap t = i * kw + j holds (dy, dx) at channels (2t, 2t + 1). Input channel c uses
  group c // (Cin / G). The optional ``mask [N, Ho, Wo, G * kh * kw]`` is used as given (apply a
  sigmoid before, as DCN v2 does). Returns [N, Ho, Wo, features].
  """

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: int | tuple[int, int] = 1
  padding: int | tuple[int, int] = 0
  dilation: int | tuple[int, int] = 1
  feature_group_count: int = 1
  use_bias: bool = False
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: lax.Precision | None = None

  @nn.compact
  def __call__(self, inputs: jax.Array, offsets: jax.Array,
               mask: jax.Array | None = None) -> jax.Array:
    # Shapes are validated by deform_conv2d, which names each mismatch.
    cin = inputs.shape[-1]
    kh, kw = self.kernel_size
    kernel = self.param('kernel', self.kernel_init,
                        (kh, kw, cin // self.feature_group_count, self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    inputs, offsets, mask, kernel, bias = nn.dtypes.promote_dtype(
        inputs, offsets, mask, kernel, bias, dtype=self.dtype)
    out = deform_conv2d(inputs, offsets, kernel, mask, strides=self.strides,
                        padding=self.padding, dilation=self.dilation,
                        feature_group_count=self.feature_group_count, precision=self.precision)
    if bias is not None:
      out = out + bias
    return out
