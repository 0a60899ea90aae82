"""The stills' body model: a random articulated pose of a 3D skeleton, turned, leaned and placed in
an image, and the person it makes with their clothes (clothes.py).

Body units: the standing height h. The pose is an array [NUM_POINTS, 3] of points: the first 17
rows are COCO's joints in COCO's order (tfds_posetrack/posetrack18/coco.py, COCO_JOINTS), the
rest points that are drawn but not labeled (NECK .. R_HAND, the torso box TORSO). A Person holds
them in the image: x, y in pixels and depth in body units (larger = nearer the camera).

Pose statistics, unlike the synthetic videos' walking gait: random articulated poses within joint
limits (arms hanging, raised, forward, out, crossed, akimbo or on the head; legs straight, wide,
bent, crouching, sitting, kneeling, one leg lifted, a static stride), a leaning and twisted torso,
a turned and tilted head, any rotation about the vertical axis (left and right swap in the image
when the person turns away) and some in-plane lean.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from posewarper_jax.data.stills.clothes import Clothes, random_clothes
from posewarper_jax.data.synthetic import limb_dir

# Body units: the standing height h. Pelvis centre at the origin, x to the person's left, y down,
# z forward; at yaw 0 the person faces the camera (their left on the image's right).
_HIP_HALF = 0.09
_SHOULDER_HALF = 0.125
_SHOULDER_Y = -0.29  # along the spine, in the torso's frame
_NECK_Y = -0.335
_HEAD_UP = 0.09  # neck to head centre
HEAD_RX, HEAD_RY = 0.058, 0.072  # an oval head, not synthetic.py's circle
_UPPER_ARM, _FOREARM = 0.175, 0.15
_THIGH, _SHIN = 0.25, 0.25

# Points beyond the 17 joints, in the same [P, 3] array: drawn, not labeled.
NECK, HEAD, HEAD_TOP, HEAD_FWD, L_TOE, R_TOE, L_HAND, R_HAND = range(17, 25)
TORSO = tuple(range(25, 37))  # a 3D box with a waist: its projection's hull is the torso
NUM_POINTS = 37
# Head-local positions (units of the head radii) of the face joints: x left, y down, z forward.
_HEAD_JOINTS = {0: (0.0, 0.25, 0.98), 1: (0.38, -0.05, 0.85), 2: (-0.38, -0.05, 0.85),
                3: (0.98, 0.05, -0.1), 4: (-0.98, 0.05, -0.1)}
# A face joint is labeled (and an eye drawn) when its depth in front of the head centre, in head
# radii, exceeds this: eyes only on a face turned towards the camera, the nose up to a little past
# the profile (so wherever an eye is), ears unless on the far side.
LABEL_DEPTH = {0: -0.3, 1: 0.25, 2: 0.25, 3: -0.3, 4: -0.3}

# Leg styles: per leg (thigh abduction, thigh forward swing, knee bend) ranges in radians, and
# the torso's extra forward lean. Two entries: (left, right) before the random side swap.
_LEGS: dict[str, tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...],
                       tuple[float, float]]] = {
    'stand': (((-0.05, 0.2), (-0.15, 0.25), (0.0, 0.25)),) * 2 + ((0.0, 0.0),),
    'wide': (((0.2, 0.55), (-0.1, 0.2), (0.0, 0.6)),) * 2 + ((0.0, 0.1),),
    'bent': (((0.05, 0.3), (0.3, 0.9), (0.6, 1.4)),) * 2 + ((0.1, 0.4),),
    'crouch': (((0.1, 0.4), (1.2, 1.9), (2.0, 2.5)),) * 2 + ((0.3, 0.7),),
    'sit': (((0.0, 0.3), (1.3, 1.7), (1.2, 1.8)),) * 2 + ((-0.1, 0.2),),
    'kneel': (((0.0, 0.2), (1.2, 1.6), (1.4, 1.7)), ((0.0, 0.2), (-0.2, 0.2), (1.4, 1.7)),
              (0.0, 0.2)),
    'stride': (((0.0, 0.2), (0.3, 0.9), (0.1, 0.9)), ((0.0, 0.2), (-0.6, -0.15), (0.0, 0.8)),
               (0.0, 0.3)),
    'one_leg': (((0.0, 0.6), (0.3, 1.6), (0.2, 2.2)), ((-0.05, 0.15), (-0.1, 0.15), (0.0, 0.2)),
                (0.0, 0.2)),
}
_LEG_P = (0.2, 0.1, 0.15, 0.12, 0.1, 0.08, 0.15, 0.1)

# Arm styles: (abduction, forward swing, elbow bend) ranges and the bend direction (torso-local,
# x towards the body's midline, y down, z forward; None: random).
_ARMS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float],
                       tuple[float, float, float] | None]] = {
    'hang': ((0.05, 0.4), (-0.3, 0.5), (0.0, 0.6), (0.2, 0.0, 1.0)),
    'raised': ((2.2, 3.0), (-0.3, 0.6), (0.0, 1.0), (1.0, -0.3, 0.2)),
    'forward': ((0.0, 0.5), (0.9, 1.9), (0.0, 1.2), (0.5, -0.5, 0.3)),
    'side': ((0.9, 1.8), (-0.2, 0.6), (0.0, 1.4), (0.0, -1.0, 0.5)),
    'crossed': ((-0.1, 0.3), (0.3, 0.8), (1.7, 2.3), (1.0, -0.2, 0.4)),
    'akimbo': ((0.5, 0.9), (-0.5, -0.1), (1.4, 2.1), (1.0, 0.3, 0.2)),
    'on_head': ((2.0, 2.6), (0.0, 0.5), (2.0, 2.5), (1.0, 0.0, 0.1)),
    'random': ((-0.2, 2.9), (-0.6, 2.2), (0.0, 2.5), None),
}
_ARM_P = (0.25, 0.12, 0.12, 0.1, 0.08, 0.08, 0.05, 0.2)


def _rot_x(a: float) -> np.ndarray:
  c, s = math.cos(a), math.sin(a)
  return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
  c, s = math.cos(a), math.sin(a)
  return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
  c, s = math.cos(a), math.sin(a)
  return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
  return float(rng.uniform(*bounds))


def _posed_body(rng: np.random.Generator) -> np.ndarray:
  """A random articulated pose: [NUM_POINTS, 3] in body units (before the turn about the
  vertical axis). Rotations about x lean forward when negative (y down, z forward)."""
  p = np.zeros((NUM_POINTS, 3))
  legs = _LEGS[str(rng.choice(list(_LEGS), p=_LEG_P))]
  swap = rng.random() < 0.5  # which leg of an asymmetric style is the left
  pitch = _u(rng, (-0.15, 0.3)) + _u(rng, legs[2])
  torso = _rot_x(-pitch) @ _rot_z(_u(rng, (-0.2, 0.2))) @ _rot_y(_u(rng, (-0.45, 0.45)))
  # Arms: both in one style half the time (symmetric poses), else each its own.
  styles = [str(rng.choice(list(_ARMS), p=_ARM_P))]
  styles.append(styles[0] if rng.random() < 0.5 else str(rng.choice(list(_ARMS), p=_ARM_P)))
  for k, (side, (sh, el, wr, hip, kn, an, toe, hand)) in enumerate((
      (1.0, (5, 7, 9, 11, 13, 15, L_TOE, L_HAND)),
      (-1.0, (6, 8, 10, 12, 14, 16, R_TOE, R_HAND)))):
    ab_r, fw_r, kn_r = legs[k ^ swap]
    ab, fw = _u(rng, ab_r), _u(rng, fw_r)
    p[hip] = (side * _HIP_HALF, 0.0, 0.0)
    p[kn] = p[hip] + _THIGH * limb_dir(side, ab, fw)
    # The knee bends in the leg's swing plane only (a hinge), backwards.
    p[an] = p[kn] + _SHIN * limb_dir(side, 0.7 * ab, fw - _u(rng, kn_r))
    p[toe] = p[an] + (0.0, 0.015, 0.075)
    ab_r, fw_r, el_r, bend = _ARMS[styles[k]]
    upper = limb_dir(side, _u(rng, ab_r), _u(rng, fw_r))
    if bend is None:
      bend = (rng.uniform(0, 1), rng.uniform(-1, 0.5), rng.uniform(0, 1))
    # The elbow (a hinge, 0 to 2.5 rad) turns the forearm from the upper arm towards `bend`.
    b = np.array([-side * bend[0], bend[1], bend[2]], np.float64)
    b = b - (b @ upper) * upper
    if np.linalg.norm(b) < 1e-6:
      b = np.array([0.0, 0.0, 1.0]) - upper[2] * upper
    b /= np.linalg.norm(b)
    e = _u(rng, el_r)
    fore = math.cos(e) * upper + math.sin(e) * b
    shoulder = np.array([side * _SHOULDER_HALF, _SHOULDER_Y, 0.0])
    p[sh] = torso @ shoulder
    p[el] = torso @ (shoulder + _UPPER_ARM * upper)
    p[wr] = torso @ (shoulder + _UPPER_ARM * upper + _FOREARM * fore)
    p[hand] = torso @ (shoulder + _UPPER_ARM * upper + (_FOREARM + 0.03) * fore)
  # The torso: a box with a waist, its shoulder and waist corners turning with the spine.
  for i, (x, y, z) in enumerate(((0.13, -0.30, 0.06), (0.095, -0.13, 0.06), (0.10, 0.02, 0.065))):
    for j, (sx, sz) in enumerate(((1, 1), (-1, 1), (1, -1), (-1, -1))):
      point = np.array([sx * x, y, sz * z])
      p[TORSO[4 * i + j]] = point if i == 2 else torso @ point
  p[NECK] = torso @ np.array([0.0, _NECK_Y, 0.0])
  head = torso @ _rot_x(-_u(rng, (-0.35, 0.45))) @ _rot_y(_u(rng, (-0.9, 0.9))) @ _rot_z(
      _u(rng, (-0.3, 0.3)))
  # The head pivots at the neck; its local frame is scaled by the radii (x, z: rx; y: ry).
  p[HEAD] = p[NECK] + head @ (0.0, -_HEAD_UP, 0.0)
  radii = np.array([HEAD_RX, HEAD_RY, HEAD_RX])
  for j, local in _HEAD_JOINTS.items():
    p[j] = p[HEAD] + head @ (radii * local)
  p[HEAD_TOP] = p[HEAD] + head @ (0.0, -HEAD_RY, 0.0)
  p[HEAD_FWD] = p[HEAD] + head @ (0.0, 0.0, HEAD_RX)
  return p


@dataclasses.dataclass(frozen=True)
class Person:
  """One person of a still. points: [NUM_POINTS, 3] image x, y (px) and depth (body units,
  larger = nearer the camera); the first 17 rows are COCO's joints. height: standing height h
  in px; facing: cos of the head's turn (1: the face looks at the camera)."""

  points: np.ndarray
  height: float
  facing: float
  clothes: Clothes

  @property
  def joints(self) -> np.ndarray:
    """[17, 2] image x, y of COCO's joints."""
    return self.points[:17, :2]

  def face_depth(self, joint: int) -> float:
    """How far a face joint is in front of the head centre, in head radii."""
    return float((self.points[joint, 2] - self.points[HEAD, 2]) / HEAD_RX)


def make_person(rng: np.random.Generator, width: int, height: int,
                group: tuple[float, float] | None, limb_code: float = 0.0) -> Person:
  """A posed person, turned, leaned and placed in a width x height image. group: (centre x,
  spread) in px that the person's centre is drawn around (people overlap), or None."""
  body = _posed_body(rng)
  yaw = rng.uniform(-math.pi, math.pi)
  c, s = math.cos(yaw), math.sin(yaw)
  x, y = body[:, 0] * c + body[:, 2] * s, body[:, 1]
  depth = -body[:, 0] * s + body[:, 2] * c
  # In-plane lean: mostly a little, sometimes far (lying, falling, acrobatics).
  roll = rng.normal(0, 0.12) if rng.random() < 0.92 else rng.uniform(-1.3, 1.3)
  cr, sr = math.cos(roll), math.sin(roll)
  x, y = x * cr - y * sr, x * sr + y * cr
  # Standing height: most people in [0.15, 0.9] of the image height, one in six near the camera
  # and up to about twice it (cut off by the frame); log-uniform in each range.
  lo, hi = (0.15, 0.9) if rng.random() < 0.83 else (0.9, 2.0)
  h = height * math.exp(rng.uniform(math.log(lo), math.log(hi)))
  top = min(float(y.min()), float(y[HEAD] - HEAD_RY))
  extent_x = (float(x.min()) * h, float(x.max()) * h)
  extent_y = (top * h, float(y.max()) * h)
  size_y = extent_y[1] - extent_y[0]
  # The figure's top somewhere that keeps some of it in the image, heads mostly in view.
  y0 = rng.uniform(-0.12 * size_y, max(height - 0.85 * size_y, 0.15 * height)) - extent_y[0]
  mid = (extent_x[0] + extent_x[1]) / 2
  if group is None:
    x0 = rng.uniform(0.0, 1.0) * width - mid
  else:
    x0 = float(np.clip(rng.normal(group[0], group[1]), 0, width)) - mid
  points = np.stack([x0 + h * x, y0 + h * y, depth], axis=1)
  return Person(points=points, height=h, facing=float(depth[HEAD_FWD] - depth[HEAD]) / HEAD_RX,
                clothes=random_clothes(rng, limb_code))
