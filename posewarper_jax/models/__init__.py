"""Flax Linen modules of posewarper_jax (NHWC), and `create_model(config)`."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from posewarper_jax.models.hrnet import HRNet
from posewarper_jax.models.posewarper import (
    AGGREGATION_DELTAS,
    AGGREGATION_WEIGHTS,
    PoseWarper,
    WarpingHead,
    num_params,
)
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS

__all__ = ['AGGREGATION_DELTAS', 'AGGREGATION_WEIGHTS', 'HRNet', 'PoseWarper', 'WarpingHead',
           'build_posewarper', 'create_model', 'init_variables', 'initializer', 'num_params']

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
# Fields that the model sections of a config may set (the rest come from elsewhere).
_SET_ELSEWHERE = ('num_joints', 'dtype', 'bn_axis_name')


def _kwargs(cls: type, section: Mapping[str, Any], where: str) -> dict[str, Any]:
  """Checks a config section against a module's fields; errors name the offending field."""
  allowed = {f.name for f in dataclasses.fields(cls) if f.init} - {'parent', 'name',
                                                                    *_SET_ELSEWHERE}
  unknown = sorted(set(section) - allowed)
  if unknown:
    raise ValueError(f'{where}: unknown field(s) {", ".join(unknown)}; '
                     f'{cls.__name__} takes {", ".join(sorted(allowed))}')
  out = {}
  for key, value in section.items():
    if key == 'remat':
      if not isinstance(value, bool):
        raise ValueError(f'{where}.remat must be True or False, got {value!r}')
      out[key] = value
      continue
    values = value if isinstance(value, (tuple, list)) else (value,)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                             for v in values):
      raise ValueError(f'{where}.{key} must be a positive integer or a non-empty tuple of them, '
                       f'got {value!r}')
    out[key] = tuple(value) if isinstance(value, (tuple, list)) else value
  return out


def build_posewarper(backbone: Mapping[str, Any], head: Mapping[str, Any], *,
                     num_joints: int = NUM_JOINTS, dtype: Any = jnp.float32,
                     bn_axis_name: str | None = None, where: str = 'model') -> PoseWarper:
  """PoseWarper from plain dicts of HRNet and WarpingHead fields (see configs/posewarper.py)."""
  if not isinstance(num_joints, int) or num_joints <= 0:
    raise ValueError(f'{where}.num_joints must be a positive integer, got {num_joints!r}')
  common = dict(num_joints=num_joints, dtype=dtype, bn_axis_name=bn_axis_name)
  return PoseWarper(
      backbone=HRNet(**_kwargs(HRNet, backbone, f'{where}.backbone'), **common),
      warper=WarpingHead(**_kwargs(WarpingHead, head, f'{where}.head'), **common))


def create_model(config, *, bn_axis_name: str | None = None) -> PoseWarper:
  """Builds the network that `config.model` describes (configs/posewarper.py).

  Args:
    config: the experiment's ml_collections config; reads config.model.
    bn_axis_name: the pmap axis name when training on several devices (synchronized BatchNorm).
  """
  model = config.model
  if model.dtype not in DTYPES:
    raise ValueError(f'config.model.dtype must be one of {", ".join(DTYPES)}, '
                     f'got {model.dtype!r}')
  return build_posewarper(model.backbone.to_dict(), model.head.to_dict(),
                          dtype=DTYPES[model.dtype],
                          bn_axis_name=bn_axis_name, where='config.model')


def init_variables(model: PoseWarper, seed: int, image_size: tuple[int, int]) -> dict[str, Any]:
  """Fresh {'params', 'batch_stats'} of a PoseWarper (backbone and head), jit-compiled on the
  host CPU whatever the default backend; the arrays live on the CPU.

  Draws with the 'rbg' PRNG: XLA's CPU compiler needs about 0.4 s per threefry draw, some 40 s
  for the small model's few hundred tensors, against 3 s with rbg. rbg's bits depend on the
  backend; always initializing on the CPU makes a seed give the same weights on every machine.
  It is also faster: compiling W48's thousand initializers took 116 s on an H100 (jax 0.11.2)
  against about 30 s on a 2-core CPU.
  """
  with jax.default_device(jax.local_devices(backend='cpu')[0]):  # this process's CPU
    return initializer(model, tuple(image_size))(jax.random.key(seed, impl='rbg'))


@functools.lru_cache(maxsize=8)
def initializer(model: PoseWarper, image_size: tuple[int, int]) -> Callable:
  """model.init on `image_size` frames, jitted once per network and crop size in a process: the
  label grid's runs (and the tests) initialize the same network again and again, and a new
  function each time would trace and compile it again (seconds each; minutes for W48)."""
  def init(key):
    frames = jnp.zeros((1, *image_size, 3), jnp.float32)
    return model.init(key, frames, frames)
  return jax.jit(init)
