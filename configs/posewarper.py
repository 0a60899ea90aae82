"""PoseWarper on PoseTrack18: the paper's experiment and its variants.

    python run.py --config=configs/posewarper.py --workdir=DIR          # the paper's setting
    python run.py --config=configs/posewarper.py:w32 --workdir=DIR      # a named variant
    --config.model.head.num_blocks=10                                   # any field, overridden

`get_config(arg)` takes comma-separated variant names (see VARIANTS).
"""

from __future__ import annotations

import ml_collections


def _paper() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # Crops fed to the network (H, W); heatmaps are a quarter of that (96 x 72).
  config.image_size = (384, 288)

  config.data = ml_collections.ConfigDict()
  # k: the supporting frame B is t + delta, delta uniform in [-k, k] (spec 2.2: T = 2). Frames
  # are stored within 7 of a label (the TFDS builder's max_gap), so any k <= 7 needs no rebuild.
  config.data.max_gap = 2

  config.model = ml_collections.ConfigDict()
  config.model.num_joints = 17
  config.model.dtype = 'float32'  # computation dtype, 'float32' or 'bfloat16'; params stay f32
  # HRNet-W48 (spec 1.1): branch b has width * 2^b channels; stage s has s branches.
  config.model.backbone = ml_collections.ConfigDict(dict(
      width=48,
      stage_modules=(1, 4, 3),   # stage2, stage3, stage4
      stage_blocks=(4, 4, 4),    # BasicBlocks per branch
      stem_features=64,
      layer1_planes=64,
      layer1_blocks=4,
  ))
  # The warping head (spec 1.3).
  config.model.head = ml_collections.ConfigDict(dict(
      num_blocks=20,
      features=128,
      dilations=(3, 6, 12, 18, 24),
      remat=False,  # recompute offset-block activations in the backward (memory; CPU speed)
  ))
  return config


def _w32(config: ml_collections.ConfigDict) -> None:
  """HRNet-W32: the usual smaller backbone (channels 32/64/128/256)."""
  config.model.backbone.width = 32


def _small(config: ml_collections.ConfigDict) -> None:
  """A CPU-sized network for tests and the synthetic quick start (3 branches, 128x96 crops)."""
  config.image_size = (128, 96)
  config.model.backbone.update(width=16, stage_modules=(1, 1), stage_blocks=(2, 2),
                               stem_features=32, layer1_planes=16, layer1_blocks=1)
  config.model.head.update(num_blocks=4, features=32, dilations=(3, 6, 12))


VARIANTS = {
    'w32': _w32,
    'small': _small,
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = _paper()
  for name in filter(None, (arg or '').split(',')):
    if name not in VARIANTS:
      raise ValueError(f'configs/posewarper.py: unknown variant {name!r}; known variants: '
                       f'{", ".join(sorted(VARIANTS))}')
    VARIANTS[name](config)
  return config
