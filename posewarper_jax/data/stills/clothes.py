"""The stills' clothes: each person's colours (BGR) and what they wear, drawn at random.

A shirt colour on the torso and upper arms (the forearms too with long sleeves), a trouser colour
on the legs (skin on the shins with shorts), skin on the forearms, hands, neck and head, dark
shoes, and hair. render.py draws them, the clothes of the person's left side a lighter shade, and
with limb_code > 0 each arm and leg segment partly in the synthetic videos' colour for it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from posewarper_jax.data.drawing import hsv


@dataclasses.dataclass(frozen=True)
class Clothes:
  """BGR colours of one person; long_sleeves: the forearms wear the shirt; shorts: skin shins."""

  shirt: tuple[int, int, int]
  trousers: tuple[int, int, int]
  skin: tuple[int, int, int]
  hair: tuple[int, int, int]
  shoes: tuple[int, int, int]
  long_sleeves: bool
  shorts: bool
  limb_code: float = 0.0  # the share of the videos' limb colours in each limb's (0 to 1)


def random_clothes(rng: np.random.Generator, limb_code: float = 0.0) -> Clothes:
  """A person's clothes, drawn from rng (the draws in a fixed order: the stills are a function of
  their seed); limb_code as Clothes.limb_code."""
  skin = np.array((75, 100, 140)) + rng.uniform(0, 1) * np.array((110, 105, 100))
  trousers = [(110, 60, 30), (40, 40, 40), (120, 160, 180), (110, 110, 110), (60, 40, 30)]
  base = (np.array(trousers[int(rng.integers(len(trousers)))]) if rng.random() < 0.6
          else np.array(hsv(rng.uniform(0, 180), rng.uniform(30, 200), rng.uniform(40, 200))))
  hair = [(20, 20, 25), (30, 50, 80), (80, 150, 200), (170, 170, 175), (20, 40, 120)]
  return Clothes(
      shirt=hsv(rng.uniform(0, 180), rng.uniform(40, 230), rng.uniform(60, 240)),
      trousers=tuple(int(c) for c in np.clip(base + rng.normal(0, 12, 3), 0, 255)),
      skin=tuple(int(c) for c in np.clip(skin + rng.normal(0, 8, 3), 0, 255)),
      hair=tuple(int(c) for c in np.clip(np.array(hair[int(rng.integers(len(hair)))])
                                         + rng.normal(0, 10, 3), 0, 255)),
      shoes=tuple(int(c) for c in np.clip(rng.uniform(15, 90) + rng.normal(0, 10, 3), 0, 255)),
      long_sleeves=bool(rng.random() < 0.4), shorts=bool(rng.random() < 0.2),
      limb_code=limb_code)
