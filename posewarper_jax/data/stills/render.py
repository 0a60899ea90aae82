"""Drawing a still: its people (bodies in clothes) far to near over its background, and their
COCO labels from what is seen.

Bodies are filled, tapered limbs with round joints and a dark outline, a filled 3D-box torso, an
oval head with hair, in their clothes (clothes.py). synthetic.py draws one saturated colour per
limb, warm on the left and cool on the right; here left and right are told apart by weaker cues:
the clothes are a lighter shade on the person's left side, and a face (eyes, nose) is drawn on a
head facing the camera, hair covering the back of the head. With limb_code > 0 each arm and leg
segment carries that share of the videos' colour for it.

Labels (Still.render), v as COCO's: 0 not labeled (x = y = 0), 1 labeled but covered by a nearer
person, 2 labeled and visible. A joint outside the image is not labeled; an eye is labeled only
when it faces the camera (it is drawn then), the nose when the face is not turned away, an ear
when it is not on the far side of the head (body.LABEL_DEPTH). A person's bbox is the extent of
their visible pixels (the part no nearer person covers, clipped to the image) and area its pixel
count, as COCO's come from the visible segmentation; a person with no visible pixel has no
annotation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from posewarper_jax.data.drawing import ONE, SHIFT, pt
from posewarper_jax.data.stills.backgrounds import background
from posewarper_jax.data.stills.body import (
    HEAD,
    HEAD_FWD,
    HEAD_RX,
    HEAD_RY,
    HEAD_TOP,
    L_HAND,
    L_TOE,
    LABEL_DEPTH,
    NECK,
    R_HAND,
    R_TOE,
    TORSO,
    Person,
)
from posewarper_jax.data.synthetic import LIMBS as _VIDEO_LIMBS

# (a, b, half width at a, at b (units of h), what it wears): the limbs as tapered capsules.
_LIMBS: tuple[tuple[int, int, float, float, str], ...] = (
    (5, 7, 0.034, 0.027, 'upper_arm'), (7, 9, 0.026, 0.019, 'forearm'),
    (6, 8, 0.034, 0.027, 'upper_arm'), (8, 10, 0.026, 0.019, 'forearm'),
    (11, 13, 0.056, 0.040, 'thigh'), (13, 15, 0.038, 0.026, 'shin'),
    (12, 14, 0.056, 0.040, 'thigh'), (14, 16, 0.038, 0.026, 'shin'),
    (15, L_TOE, 0.022, 0.018, 'shoe'), (16, R_TOE, 0.022, 0.018, 'shoe'),
)
_LEFT_JOINTS = frozenset((5, 7, 9, 11, 13, 15))
# The synthetic videos' colour per limb (joint a, joint b) -> BGR: their people's "anatomy",
# which a limb of a still carries in the share `limb_code` of its colour (generate_stills).
_VIDEO_COLOURS = {(a, b): colour for a, b, colour, _ in _VIDEO_LIMBS}
_LIGHTER = 0.25  # the left side's clothes: this share of the way to white


def _lighter(colour: Sequence[int]) -> tuple[float, ...]:
  return tuple(c + _LIGHTER * (255 - c) for c in colour)


def _dark(colour: Sequence[float]) -> tuple[float, ...]:
  return tuple(0.35 * c for c in colour)


def _capsule(img: np.ndarray, mask: np.ndarray, label: int, a: np.ndarray, b: np.ndarray,
             ra: float, rb: float, colour: Sequence[float], outline: float) -> None:
  """A tapered limb from a (half width ra, px) to b (rb): a dark outline `outline` px wide, the
  fill, and the same shape (outline included) as `label` in `mask`."""
  d = b - a
  length = float(np.hypot(*d))
  n = np.array([-d[1], d[0]]) / length if length > 1e-6 else np.zeros(2)
  for target, grow, col, aa in ((img, outline, _dark(colour), cv2.LINE_AA),
                                (img, 0.0, colour, cv2.LINE_AA),
                                (mask, outline, label, cv2.LINE_8)):
    ga, gb = ra + grow, rb + grow
    if length > 1e-6:
      quad = np.array([pt(*(a + ga * n)), pt(*(b + gb * n)), pt(*(b - gb * n)),
                       pt(*(a - ga * n))], np.int32)
      cv2.fillConvexPoly(target, quad, col, aa, SHIFT)
    for centre, r in ((a, ga), (b, gb)):
      cv2.circle(target, pt(*centre), max(1, round(r * ONE)), col, -1, aa, SHIFT)


def _ellipse(img: np.ndarray, mask: np.ndarray | None, label: int, centre: np.ndarray,
             axes: tuple[float, float], angle: float, colour: Sequence[float],
             outline: float) -> None:
  """A filled ellipse (axes px, angle degrees) with a dark outline; into `mask` too if given."""
  steps = [(img, outline, _dark(colour), cv2.LINE_AA)] if outline > 0 else []
  steps.append((img, 0.0, colour, cv2.LINE_AA))
  if mask is not None:
    steps.append((mask, outline, label, cv2.LINE_8))
  for target, grow, col, aa in steps:
    size = (max(1, round((axes[0] + grow) * ONE)), max(1, round((axes[1] + grow) * ONE)))
    cv2.ellipse(target, pt(*centre), size, angle, 0, 360, col, -1, aa, SHIFT)


def draw_person(img: np.ndarray, mask: np.ndarray, label: int, person: Person) -> None:
  """Draws a person into img and their silhouette as `label` into mask, parts far to near."""
  pts, h, dress = person.points, person.height, person.clothes
  xy, depth = pts[:, :2], pts[:, 2]
  outline = max(1.0, 0.008 * h)
  skin = dress.skin
  wear = {'upper_arm': dress.shirt, 'forearm': dress.shirt if dress.long_sleeves else skin,
          'thigh': dress.trousers, 'shin': skin if dress.shorts else dress.trousers,
          'shoe': dress.shoes}
  items: list[tuple[float, int, tuple]] = []
  for k, (a, b, ra, rb, part) in enumerate(_LIMBS):
    colour = wear[part]
    if a in _LEFT_JOINTS and colour is not skin and part != 'shoe':
      colour = _lighter(colour)
    if dress.limb_code and (a, b) in _VIDEO_COLOURS:
      code = dress.limb_code
      colour = tuple((1 - code) * c + code * v for c, v in zip(colour, _VIDEO_COLOURS[a, b],
                                                                strict=True))
    items.append(((depth[a] + depth[b]) / 2, k, ('limb', a, b, ra * h, rb * h, colour)))
    if part == 'forearm':  # the hand, at the wrist's depth
      hand = L_HAND if a == 7 else R_HAND
      items.append((depth[b] + 1e-4, 50 + k, ('limb', b, hand, 0.019 * h, 0.022 * h, skin)))
  # The torso slightly behind limbs at its depth (arms at the sides are drawn over it).
  items.append((float(depth[list(TORSO)].mean()) - 0.02, 100, ('torso',)))
  items.append((float(depth[NECK]) - 0.01, 101, ('limb', NECK, HEAD, 0.03 * h, 0.03 * h,
                                                  skin)))
  items.append((float(depth[HEAD]), 102, ('head',)))
  for _, _, item in sorted(items, key=lambda i: (i[0], i[1])):
    if item[0] == 'limb':
      _, a, b, ra, rb, colour = item
      _capsule(img, mask, label, xy[a], xy[b], ra, rb, colour, outline)
    elif item[0] == 'torso':
      hull = cv2.convexHull(np.array([pt(*xy[i]) for i in TORSO], np.int32))
      cv2.fillConvexPoly(img, hull, dress.shirt, cv2.LINE_AA, SHIFT)
      cv2.polylines(img, [hull], True, _dark(dress.shirt), max(1, round(outline)), cv2.LINE_AA,
                    SHIFT)
      cv2.fillConvexPoly(mask, hull, label, cv2.LINE_8, SHIFT)
      cv2.polylines(mask, [hull], True, label, max(1, round(outline)), cv2.LINE_8, SHIFT)
    else:
      _draw_head(img, mask, label, person, outline)


def _draw_head(img: np.ndarray, mask: np.ndarray, label: int, person: Person,
               outline: float) -> None:
  pts, h, dress = person.points, person.height, person.clothes
  centre = pts[HEAD, :2]
  up = pts[HEAD_TOP, :2] - centre
  angle = math.degrees(math.atan2(up[0], -up[1]))  # the oval's long axis along the head's up
  for ear in (3, 4):
    if person.face_depth(ear) > LABEL_DEPTH[ear]:
      _ellipse(img, mask, label, pts[ear, :2], (0.016 * h, 0.022 * h), angle,
               tuple(0.85 * c for c in dress.skin), outline)
  _ellipse(img, mask, label, centre, (HEAD_RX * h, HEAD_RY * h), angle, dress.skin, outline)
  # Hair: over the top of a face turned to the camera, the back of a profile, all of a head
  # turned away.
  forward = pts[HEAD_FWD, :2] - centre
  hair = centre + up * 0.3 * max(person.facing, 0.0) - 0.45 * forward
  cover = 0.88 + 0.1 * max(-person.facing, 0.0)  # a head turned away: hair down to the neck
  _ellipse(img, None, label, hair, (HEAD_RX * h * 1.02, HEAD_RY * h * cover), angle, dress.hair,
           0.0)
  dot = max(0.8, 0.011 * h)
  for eye in (1, 2):
    if person.face_depth(eye) > LABEL_DEPTH[eye]:
      _ellipse(img, None, label, pts[eye, :2], (dot, dot), 0.0, (25, 20, 20), 0.0)
  if person.face_depth(0) > 0.3:
    _ellipse(img, None, label, pts[0, :2], (1.1 * dot, 1.1 * dot), 0.0,
             tuple(0.7 * c for c in dress.skin), 0.0)


@dataclasses.dataclass(frozen=True)
class Still:
  """One image: its id, size, people far to near, and the seed of its background."""

  image_id: int
  width: int
  height: int
  people: tuple[Person, ...]
  background_seed: int

  @property
  def file_name(self) -> str:
    return f'{self.image_id:012d}.jpg'

  def background(self) -> np.ndarray:
    return background(np.random.default_rng(self.background_seed), self.width, self.height)

  def render(self) -> tuple[np.ndarray, list[dict[str, Any] | None]]:
    """(the image [H, W, 3] uint8 BGR, per person of `people` their COCO annotation without
    id, or None for one with no visible pixel: not annotated)."""
    img = self.background()
    # Who is seen at each pixel: 0 background, i + 1 the i-th person (far to near).
    owner = np.zeros((self.height, self.width), np.uint8)
    for i, person in enumerate(self.people):
      draw_person(img, owner, i + 1, person)
    annotations = []
    for i, person in enumerate(self.people):
      ys, xs = np.nonzero(owner == i + 1)
      if not len(xs):  # entirely covered or outside the image: not annotated
        annotations.append(None)
        continue
      flat, labeled = [], 0
      for j, (x, y) in enumerate(person.joints):
        x, y = round(float(x), 2), round(float(y), 2)
        inside = 0 <= x <= self.width - 1 and 0 <= y <= self.height - 1 and (x, y) != (0, 0)
        if not inside or (j in LABEL_DEPTH and person.face_depth(j) <= LABEL_DEPTH[j]):
          flat += [0, 0, 0]
          continue
        covered = owner[int(round(y)), int(round(x))] > i + 1
        flat += [x, y, 1 if covered else 2]
        labeled += 1
      x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
      annotations.append({
          'image_id': self.image_id, 'category_id': 1, 'keypoints': flat,
          'num_keypoints': labeled, 'bbox': [x1, y1, x2 - x1, y2 - y1], 'area': float(len(xs)),
          'iscrowd': 0})
    return img, annotations
