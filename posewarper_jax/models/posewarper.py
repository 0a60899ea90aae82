"""PoseWarper: one HRNet for both frames and a head that warps heatmaps between them.

Spec: POSEWARPER_SPEC.md sections 1.2, 1.3, 1.5 and 3. All entry points take NHWC crops
normalized as in spec 2.3 and return float32 heatmaps [N, H / 4, W / 4, num_joints].

    frames A, B --HRNet (one batched pass)--> H_A, H_B
    d = H_A - H_B --offset_feats (BasicBlocks)--> features
        --offsets_k (dilation r_k)--> offsets_k --deform_conv_k(H_B)--> warped_k
    prediction of H_A = mean_k warped_k

Variables are grouped by the two top-level submodules, `backbone` (the HRNet, final layer
included) and `warper` (the head), in both 'params' and 'batch_stats', so training can freeze
the backbone by path prefix. Submodule names follow the official PyTorch model (see hrnet.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from posewarper_jax.models.hrnet import BasicBlock, HRNet, make_conv, make_norm
from posewarper_jax.models.layers import DeformConv, identity_kernel_init
from posewarper_jax.ops.conv import conv_general_dilated as tap_product_conv

# Spatiotemporal aggregation at test time (spec 3): frame offsets relative to the current frame
# and their weights. The current frame comes first in the `frames` of `PoseWarper.aggregate`.
AGGREGATION_DELTAS = (0, -1, -2, 1, 2)
AGGREGATION_WEIGHTS = (0.3, 0.25, 0.1, 0.25, 0.1)

DEFORM_KERNEL = 3


class WarpingHead(nn.Module):
  """Warps heatmaps with deformable convolutions driven by a heatmap difference.

  Attributes:
    num_joints: heatmap channels (one deformable offset group per joint).
    num_blocks: BasicBlocks of the offset network (20 in PoseWarper).
    features: their channels (128).
    dilations: one offset conv + deformable conv per dilation ((3, 6, 12, 18, 24)).
    remat: recompute each offset block's activations in the backward pass instead of keeping
      them (jax.checkpoint). Saves memory; on a CPU it is also faster (the step is bound by
      memory traffic, docs/benchmarks.md), on accelerators it costs about one extra forward.
    dtype: computation dtype of the convolutions (deformable sampling is float32 regardless).
    bn_axis_name: axis over which training-mode BatchNorm averages its statistics.

  Initialized as in spec 1.5: identity deformable kernels and zero offset convs, so a fresh head
  returns the heatmaps it warps unchanged.
  """

  num_joints: int = 17
  num_blocks: int = 20
  features: int = 128
  dilations: Sequence[int] = (3, 6, 12, 18, 24)
  remat: bool = False
  dtype: Any = None
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, difference: jax.Array, heatmaps: jax.Array,
               train: bool = False) -> jax.Array:
    """Warps `heatmaps` [N, h, w, J] with offsets read from `difference` [N, h, w, J].

    `difference` is H_target - H_source; the result is a prediction of the target's heatmaps.
    """
    if difference.shape != heatmaps.shape or difference.shape[-1] != self.num_joints:
      raise ValueError(f'WarpingHead: difference {difference.shape} and heatmaps '
                       f'{heatmaps.shape} must both be [N, h, w, {self.num_joints}]')
    if not self.dilations:
      raise ValueError('WarpingHead: dilations must not be empty')
    conv = make_conv(self.dtype)
    norm = make_norm(train, self.dtype, self.bn_axis_name)
    x = difference
    block = nn.remat(BasicBlock) if self.remat else BasicBlock
    for n in range(self.num_blocks):
      x = block(self.features, conv, norm, project=n == 0 and self.num_joints != self.features,
                name=f'offset_feats_{n}')(x)
    # The kernel gradient of these wide convolutions (features -> 306) as per-tap products: on
    # the CPU twice as fast as XLA's convolution form (ops/conv.py); the same function.
    offset_conv = make_conv(self.dtype, kernel_init=nn.initializers.zeros_init(),
                            conv_general_dilated=tap_product_conv)
    warped = []
    for k, r in enumerate(self.dilations, start=1):
      offsets = offset_conv(2 * self.num_joints * DEFORM_KERNEL ** 2, DEFORM_KERNEL, dilation=r,
                            name=f'offsets{k}')(x)
      # For looking at them: apply(..., mutable=['intermediates']) returns one per dilation.
      self.sow('intermediates', 'offsets', offsets)
      warped.append(DeformConv(self.num_joints, (DEFORM_KERNEL, DEFORM_KERNEL), padding=r,
                               dilation=r, kernel_init=identity_kernel_init, dtype=self.dtype,
                               name=f'deform_conv{k}')(heatmaps, offsets))
    return sum(warped) / len(warped)


def _f32(x: jax.Array) -> jax.Array:
  return x.astype(jnp.float32)


class PoseWarper(nn.Module):
  """The two-frame PoseWarper network: `backbone` (HRNet) and `warper` (WarpingHead).

  Calls, on crops [N, H, W, 3] (with aggregation [N, T, H, W, 3]):
    model.apply(v, frames_a, frames_b)                  -> A's heatmaps warped from B
    model.apply(v, frames, method=PoseWarper.single_frame) -> the backbone's heatmaps
    model.apply(v, frames, method=PoseWarper.aggregate) -> spatiotemporal aggregation
    model.apply(v, src, tgt, heatmaps, method=PoseWarper.propagate) -> heatmaps moved src -> tgt
    model.apply(v, h_tgt, h_src, heatmaps, method=PoseWarper.warp) -> the head on given maps
  `train=True` runs BatchNorm on batch statistics (pass mutable=['batch_stats']);
  `backbone_train` overrides it for the backbone alone, so a frozen backbone can stay in
  inference mode while the head trains (stage 2).
  """

  backbone: HRNet
  warper: WarpingHead

  def __call__(self, frames_a: jax.Array, frames_b: jax.Array, train: bool = False,
               backbone_train: bool | None = None) -> jax.Array:
    """Frames A and B [N, H, W, 3] -> the prediction of A's heatmaps from B's [N, h, w, J]."""
    if frames_a.shape != frames_b.shape:
      raise ValueError(f'PoseWarper: frames_a {frames_a.shape} and frames_b {frames_b.shape} '
                       'must have the same shape')
    h_a, h_b = jnp.split(self._heatmaps(jnp.concatenate([frames_a, frames_b]), train,
                                        backbone_train), 2)
    return _f32(self.warper(h_a - h_b, h_b, train=train))

  def single_frame(self, frames: jax.Array, train: bool = False) -> jax.Array:
    """Crops [N, H, W, 3] -> the backbone's heatmaps [N, h, w, J]."""
    return _f32(self.backbone(frames, train=train))

  def warp(self, h_target: jax.Array, h_source: jax.Array, heatmaps: jax.Array,
           train: bool = False) -> jax.Array:
    """Warps `heatmaps` with the offsets the head reads from h_target - h_source (all [N,h,w,J])."""
    return _f32(self.warper(h_target - h_source, heatmaps, train=train))

  def aggregate(self, frames: jax.Array, weights: Sequence[float] = AGGREGATION_WEIGHTS,
                train: bool = False) -> jax.Array:
    """Spatiotemporal pose aggregation (spec 3).

    Args:
      frames: [N, T, H, W, 3], the same box cropped from T frames; index 0 is the current frame
        (with the default weights the frames are at AGGREGATION_DELTAS).
      weights: T weights.
    Returns:
      [N, h, w, J]: sum over t of weights[t] * (frame t's heatmaps warped to the current frame),
      the current frame included (warped with a zero difference). One backbone pass of N * T
      crops and one head pass.
    """
    return self.single_and_aggregate(frames, weights, train)[1]

  def single_and_aggregate(self, frames: jax.Array,
                           weights: Sequence[float] = AGGREGATION_WEIGHTS,
                           train: bool = False) -> tuple[jax.Array, jax.Array]:
    """(the current frame's own heatmaps, `aggregate`'s) [N, h, w, J] each, from the one
    backbone pass of the N * T crops that aggregation makes anyway: the single-frame row of an
    evaluation at no cost of its own. frames as `aggregate`'s."""
    if frames.ndim != 5 or frames.shape[1] != len(weights):
      raise ValueError(f'PoseWarper.aggregate: frames must be [N, T, H, W, C] with T = '
                       f'{len(weights)} (one per weight), got {frames.shape}')
    n, t = frames.shape[:2]
    h = self._heatmaps(frames.reshape(n * t, *frames.shape[2:]), train, None)
    h = h.reshape(n, t, *h.shape[1:])
    current = jnp.broadcast_to(h[:, :1], h.shape)
    flat = lambda x: x.reshape(n * t, *x.shape[2:])
    warped = self.warper(flat(current - h), flat(h), train=train).reshape(h.shape)
    w = jnp.asarray(weights, jnp.float32).reshape(1, t, 1, 1, 1)
    return _f32(h[:, 0]), jnp.sum(_f32(warped) * w, axis=1)

  def propagate(self, frames_source: jax.Array, frames_target: jax.Array, heatmaps: jax.Array,
                train: bool = False) -> jax.Array:
    """Video pose propagation: moves `heatmaps` [N, h, w, J] of the source crops to the target.

    The offsets come from H_target - H_source (one batched backbone pass over both crops); the
    heatmaps are typically Gaussian maps of the source frame's ground truth (spec 3).
    """
    if frames_source.shape != frames_target.shape:
      raise ValueError(f'PoseWarper.propagate: frames_source {frames_source.shape} and '
                       f'frames_target {frames_target.shape} must have the same shape')
    h_s, h_t = jnp.split(self._heatmaps(jnp.concatenate([frames_source, frames_target]), train,
                                        None), 2)
    return self.warp(h_t, h_s, heatmaps, train=train)

  def _heatmaps(self, frames: jax.Array, train: bool, backbone_train: bool | None) -> jax.Array:
    return self.backbone(frames, train=train if backbone_train is None else backbone_train)


def num_params(tree: Any) -> int:
  """Number of scalars in a pytree of arrays or ShapeDtypeStructs."""
  return sum(int(x.size) for x in jax.tree.leaves(tree))
