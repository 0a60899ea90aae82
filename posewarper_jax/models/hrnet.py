"""The pose HRNet (Sun et al., CVPR 2019) as a Flax Linen module, NHWC.

One class covers HRNet-W48 (PoseWarper's backbone), HRNet-W32 and small CPU-sized variants: the
network is built from a stage specification (`width`, `stage_modules`, `stage_blocks`, the stem
and layer1 sizes). The behaviour is that of the official `pose_hrnet.py`; the facts are in
POSEWARPER_SPEC.md section 1.1.

Naming. Every submodule is named after its path in the official PyTorch model, relative to its
parent, with '.' written as '_': PyTorch's `stage3.1.fuse_layers.2.0.1.1` is the BatchNorm
`fuse_layers_2_0_1_1` inside the module `stage3_1`. `posewarper_jax.convert` relies on this to
map checkpoints mechanically; keep it when changing the code.

Padding is always explicit and symmetric (PyTorch's), never 'SAME': a 3x3 stride-2 'SAME' conv
pads an even input only at the end, which shifts every coarser branch by half a pixel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from posewarper_jax.ops import backend

ModuleDef = Callable[..., nn.Module]

# The official HRNet initialization: N(0, 0.001) for every convolution, biases 0; BatchNorm
# scale 1 and bias 0 (Flax's defaults).
CONV_INIT = nn.initializers.normal(stddev=0.001)
# PyTorch BatchNorm momentum 0.1 weights the new batch; Flax's momentum weights the old average.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
BOTTLENECK_EXPANSION = 4


def make_conv(dtype: Any = None, kernel_init: Callable = CONV_INIT,
              conv_general_dilated: Callable | None = None) -> ModuleDef:
  """A conv factory: `conv(features, kernel, strides=1, dilation=1, name=...)`, PyTorch padding.

  Padding is dilation * (kernel // 2) on every side, as in every convolution of the model.
  conv_general_dilated: the convolution primitive (default lax's), e.g. ops.conv's, which
  computes the same function with the kernel gradient in another formulation.
  """

  def conv(features: int, kernel: int, strides: int = 1, dilation: int = 1, *,
           use_bias: bool = False, name: str) -> nn.Conv:
    pad = dilation * (kernel // 2)
    return nn.Conv(features, (kernel, kernel), strides=(strides, strides),
                   padding=((pad, pad), (pad, pad)), kernel_dilation=(dilation, dilation),
                   use_bias=use_bias, dtype=dtype, kernel_init=kernel_init,
                   conv_general_dilated=conv_general_dilated, name=name)

  return conv


def make_norm(train: bool, dtype: Any = None, axis_name: str | None = None) -> ModuleDef:
  """A BatchNorm factory with PyTorch's momentum and epsilon.

  Args:
    train: normalize with the batch's statistics and update the running averages (True), or use
      the running averages (False).
    dtype: computation dtype (statistics are reduced in float32 regardless).
    axis_name: the pmap/shard_map axis to average batch statistics over (synchronized BN).
  """
  return functools.partial(nn.BatchNorm, use_running_average=not train, momentum=BN_MOMENTUM,
                           epsilon=BN_EPSILON, dtype=dtype, axis_name=axis_name if train else None)


def materialize(x: jax.Array) -> jax.Array:
  """x, unchanged, written to memory before its consumers read it (on the CPU backend).

  An identity (`lax.optimization_barrier`): the function and its gradients are untouched; only
  XLA's fusion decisions change. Why, on the CPU: the kernel gradient of every convolution reads
  its input activations in a transposed layout (batch innermost). XLA:CPU fuses the whole chain
  that produced them (BatchNorm, ReLU, the residual sum, a fuse layer's upsampled branches) into
  that transpose and recomputes it element by element in transposed order, once per consumer.
  Profiled on HRNet-W48 (docs/benchmarks.md, "Where the step's time goes"), these fusions took
  more time than the convolutions. With the block outputs materialized the transposes become
  copies. On GPU and TPU, XLA's fusions are profitable as they are: the barrier stays off there.
  """
  if backend.platform() == 'cpu':
    return jax.lax.optimization_barrier(x)
  return x


def upsample_nearest(x: jax.Array, factor: int) -> jax.Array:
  """Nearest-neighbour upsampling of [N, H, W, C] by an integer factor (PyTorch's 'nearest')."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


class BasicBlock(nn.Module):
  """conv3x3-BN-ReLU-conv3x3-BN, plus the residual (projected by a 1x1 conv + BN when
  `project` is set), then ReLU. [N, H, W, Cin] -> [N, H / strides, W / strides, features]."""

  features: int
  conv: ModuleDef
  norm: ModuleDef
  strides: int = 1
  project: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    residual = x
    y = self.conv(self.features, 3, self.strides, name='conv1')(x)
    y = nn.relu(self.norm(name='bn1')(y))
    y = self.conv(self.features, 3, name='conv2')(y)
    y = self.norm(name='bn2')(y)
    if self.project:
      residual = self.conv(self.features, 1, self.strides, name='downsample_0')(x)
      residual = self.norm(name='downsample_1')(residual)
    return materialize(nn.relu(y + residual))


class Bottleneck(nn.Module):
  """1x1 (planes) - 3x3 (planes) - 1x1 (4 * planes) with BN, residual, ReLU (layer1)."""

  planes: int
  conv: ModuleDef
  norm: ModuleDef
  project: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    residual = x
    y = nn.relu(self.norm(name='bn1')(self.conv(self.planes, 1, name='conv1')(x)))
    y = nn.relu(self.norm(name='bn2')(self.conv(self.planes, 3, name='conv2')(y)))
    y = self.norm(name='bn3')(self.conv(self.planes * BOTTLENECK_EXPANSION, 1, name='conv3')(y))
    if self.project:
      residual = self.conv(self.planes * BOTTLENECK_EXPANSION, 1, name='downsample_0')(x)
      residual = self.norm(name='downsample_1')(residual)
    return materialize(nn.relu(y + residual))


class HighResolutionModule(nn.Module):
  """Parallel branches of BasicBlocks, then every output branch sums all inputs.

  Input and output: a list of [N, H / 2^b, W / 2^b, channels[b]] for branch b. With
  `multi_scale_output=False` only branch 0 is fused and returned (a list of one).
  To a finer branch i < j: 1x1 conv + BN, then nearest upsampling by 2^(j - i); to a coarser one:
  a chain of i - j stride-2 3x3 convs + BN, ReLU between them; ReLU after each sum.
  """

  channels: Sequence[int]
  num_blocks: int
  conv: ModuleDef
  norm: ModuleDef
  block: ModuleDef = BasicBlock  # or nn.remat(BasicBlock): HRNet.remat
  multi_scale_output: bool = True

  @nn.compact
  def __call__(self, xs: Sequence[jax.Array]) -> list[jax.Array]:
    if len(xs) != len(self.channels):
      raise ValueError(f'{self.name}: got {len(xs)} branches, expected {len(self.channels)}')
    xs = list(xs)
    for b, c in enumerate(self.channels):
      for k in range(self.num_blocks):
        xs[b] = self.block(c, self.conv, self.norm, name=f'branches_{b}_{k}')(xs[b])
    if len(xs) == 1:
      return xs
    outputs = []
    for i in range(len(xs) if self.multi_scale_output else 1):
      total = None
      for j, x in enumerate(xs):
        if j > i:
          x = self.conv(self.channels[i], 1, name=f'fuse_layers_{i}_{j}_0')(x)
          x = upsample_nearest(self.norm(name=f'fuse_layers_{i}_{j}_1')(x), 2 ** (j - i))
        elif j < i:
          for k in range(i - j):
            last = k == i - j - 1
            x = self.conv(self.channels[i] if last else self.channels[j], 3, 2,
                          name=f'fuse_layers_{i}_{j}_{k}_0')(x)
            x = self.norm(name=f'fuse_layers_{i}_{j}_{k}_1')(x)
            if not last:
              x = nn.relu(x)
        total = x if total is None else total + x
      outputs.append(materialize(nn.relu(total)))
    return outputs


class HRNet(nn.Module):
  """The pose HRNet: images [N, H, W, 3] -> heatmaps [N, H / 4, W / 4, num_joints].

  Attributes:
    width: channels of the highest-resolution branch; branch b has width * 2^b (48: HRNet-W48).
    stage_modules: number of HighResolutionModules in stage 2, 3, ...; stage s has s branches.
    stage_blocks: BasicBlocks per branch in each of those stages.
    stem_features: channels of the two stride-2 stem convolutions.
    layer1_planes: Bottleneck planes of layer1 (its output has 4 * layer1_planes channels).
    layer1_blocks: Bottlenecks in layer1.
    num_joints: heatmap channels.
    remat: recompute each residual block's activations (layer1's Bottlenecks, every branch's
      BasicBlocks) in the backward pass instead of keeping them (jax.checkpoint): the same
      function and gradients; a training step's activation memory falls to the blocks' inputs
      and outputs, for about one more forward pass of compute. For batches or crops larger
      than a chip holds (docs/accelerators.md: the release's fit every chip without it).
    dtype: computation dtype (parameters stay in float32); heatmaps come out in it.
    bn_axis_name: axis over which training-mode BatchNorm averages its statistics.

  The spatial size must be divisible by 4 * 2^(number of branches - 1) for the branches to line
  up (384x288 and 256x192 are, for W48's four branches).
  """

  width: int = 48
  stage_modules: Sequence[int] = (1, 4, 3)
  stage_blocks: Sequence[int] = (4, 4, 4)
  stem_features: int = 64
  layer1_planes: int = 64
  layer1_blocks: int = 4
  num_joints: int = 17
  remat: bool = False
  dtype: Any = None
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False, return_features: bool = False):
    """Returns heatmaps, or (heatmaps, highest-resolution features) with `return_features`."""
    if len(self.stage_modules) != len(self.stage_blocks) or not self.stage_modules:
      raise ValueError(f'HRNet: stage_modules {tuple(self.stage_modules)} and stage_blocks '
                       f'{tuple(self.stage_blocks)} must be non-empty and of the same length')
    factor = 4 * 2 ** len(self.stage_modules)
    if images.ndim != 4 or images.shape[1] % factor or images.shape[2] % factor:
      raise ValueError(f'HRNet: images must be [N, H, W, C] with H and W divisible by {factor} '
                       f'for {len(self.stage_modules) + 1} branches, got {images.shape}')
    conv = make_conv(self.dtype)
    norm = make_norm(train, self.dtype, self.bn_axis_name)
    bottleneck, basic_block = ((nn.remat(Bottleneck), nn.remat(BasicBlock)) if self.remat
                               else (Bottleneck, BasicBlock))

    x = nn.relu(norm(name='bn1')(conv(self.stem_features, 3, 2, name='conv1')(images)))
    x = nn.relu(norm(name='bn2')(conv(self.stem_features, 3, 2, name='conv2')(x)))
    for k in range(self.layer1_blocks):
      x = bottleneck(self.layer1_planes, conv, norm,
                     project=k == 0 and self.stem_features != 4 * self.layer1_planes,
                     name=f'layer1_{k}')(x)

    branches = [x]
    last_stage = len(self.stage_modules) + 1
    for stage, (modules, blocks) in enumerate(zip(self.stage_modules, self.stage_blocks,
                                                  strict=True), start=2):
      channels = [self.width * 2 ** b for b in range(stage)]
      branches = self._transition(stage - 1, branches, channels, conv, norm)
      for m in range(modules):
        branches = HighResolutionModule(
            channels, blocks, conv, norm, block=basic_block,
            multi_scale_output=not (stage == last_stage and m == modules - 1),
            name=f'stage{stage}_{m}')(branches)

    features = branches[0]
    heatmaps = conv(self.num_joints, 1, use_bias=True, name='final_layer')(features)
    return (heatmaps, features) if return_features else heatmaps

  def _transition(self, index: int, branches: list[jax.Array], channels: Sequence[int],
                  conv: ModuleDef, norm: ModuleDef) -> list[jax.Array]:
    """transition{index}: adapts existing branches' channels and adds the new coarser branch.

    An existing branch gets a 3x3 conv + BN + ReLU only when its channel count changes; a new
    branch is a stride-2 3x3 conv + BN + ReLU of the previous stage's last (coarsest) output.
    """
    out = []
    for i, c in enumerate(channels):
      if i < len(branches):
        x = branches[i]
        if x.shape[-1] != c:
          x = conv(c, 3, name=f'transition{index}_{i}_0')(x)
          x = nn.relu(norm(name=f'transition{index}_{i}_1')(x))
      else:
        # The official code allows several stride-2 steps here; every HRNet adds one branch.
        x = conv(c, 3, 2, name=f'transition{index}_{i}_0_0')(branches[-1])
        x = nn.relu(norm(name=f'transition{index}_{i}_0_1')(x))
      out.append(x)
    return out
