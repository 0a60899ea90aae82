"""A COCO stand-in: labeled still images of posed people, in COCO's official keypoint layout.

The paper pretrains HRNet on COCO (labeled still photographs of another domain) before it
fine-tunes on sparsely labeled PoseTrack videos. This is that first dataset's analog for the
project's synthetic videos (synthetic.py): stills that teach pose but differ from the synthetic
videos the way COCO differs from PoseTrack.

`generate_stills(out_dir, ...)` writes

  train2017/<12-digit image id>.jpg
  annotations/person_keypoints_train2017.json   {info, images, annotations, categories}

with COCO's fields: image {id, file_name, width, height}; annotation {id, image_id,
category_id 1, keypoints 17 x (x, y, v) flat, num_keypoints, bbox [x, y, w, h], area,
iscrowd 0}; the one category with COCO's 17 keypoint names and 19-limb skeleton (1-based).
Joints are COCO's, in COCO's order: slots 1 and 2 are the eyes, where PoseTrack18 has
head_bottom and head_top. That is kept on purpose: the release fine-tunes a COCO network on
PoseTrack, and those two channels change meaning between the stages.

v as COCO: 0 not labeled (x = y = 0), 1 labeled but covered by a nearer person, 2 labeled and
visible. A joint outside the image is not labeled; an eye is labeled only when it faces the
camera (it is drawn then), the nose when the face is not turned away, an ear when it is not on
the far side of the head. A person's bbox is the extent of their visible pixels (the part no
nearer person covers, clipped to the image) and area its pixel count, as COCO's come from the
visible segmentation. People with visible pixels but no labeled joint (e.g. a belly filling the
frame) are kept with num_keypoints 0, as COCO's person_keypoints files keep unlabeled people;
people with no visible pixel are left out.

`to_posetrack18(coco_dir, out_dir)` turns such a directory (or the real COCO train2017) into the
PoseTrack18 layout the project's dataset builder reads, each image one labeled one-frame video.

How the stills differ from the synthetic videos, each on purpose:

- Appearance. Bodies are filled, tapered limbs with round joints and a dark outline, a filled
  3D-box torso, an oval head with hair, in clothes: a shirt colour on the torso and upper arms
  (forearms too with long sleeves), a trouser colour on the legs, skin on the forearms, hands,
  neck and head, dark shoes. synthetic.py draws one saturated colour per limb, warm on the left
  and cool on the right; here left and right are told apart by weaker cues: the clothes are a
  lighter shade on the person's left side, and a face (eyes, nose) is drawn on a head facing
  the camera, hair covering the back of the head.
- Backgrounds. Indoor rooms (flat walls, framed rectangles, a perspective tiled floor),
  outdoor scenes (sky gradient, buildings with window grids, blocky ground texture), brick or
  tile walls, studio gradients, in colours that may be saturated, with per-pixel sensor noise
  and no smoothing. synthetic.py's are blurred, desaturated noise with stripes and blobs.
- Scale and crowding. 1 to max_people people per image, standing heights from 0.15 of the image
  height to about twice it (cut off by the frame), often grouped so that they overlap, drawn far
  (small) to near (large) so that nearer people occlude farther ones.
- No motion blur, no defocus, no sweeping foreground occluders, no camera motion: single
  sharp images.
- Pose statistics. No walking gait: random articulated poses within joint limits (arms hanging,
  raised, forward, out, crossed, akimbo or on the head; legs straight, wide, bent, crouching,
  sitting, kneeling, one leg lifted, a static stride), a leaning and twisted torso, a turned and
  tilted head, any rotation about the vertical axis (left and right swap in the image when the
  person turns away) and some in-plane lean.

Deterministic: the same arguments give byte-identical JSON and identical JPEG files; each image
draws from its own child of SeedSequence(seed), so images are independent of one another.
Everything in pixels scales with the image size.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import math
import os
import pathlib
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from posewarper_jax.data.drawing import ONE, SHIFT, pt
from posewarper_jax.data.synthetic import LIMBS as _VIDEO_LIMBS
from posewarper_jax.data.synthetic import frame_scale, limb_dir, sequence_name
from tfds_posetrack.posetrack18 import keypoints as kp
from tfds_posetrack.posetrack18.formats import image_id as posetrack_image_id

JPEG_QUALITY = 90
IMAGES = 'train2017'
ANNOTATIONS = 'annotations/person_keypoints_train2017.json'

COCO_JOINTS: tuple[str, ...] = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
    'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
    'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle',
)
# COCO's skeleton is PoseTrack18's (1-based, the same 19 pairs in the same order).
COCO_SKELETON: tuple[tuple[int, int], ...] = kp.SKELETON
# Under a horizontal flip COCO swaps the eyes too (PoseTrack18's FLIP_PAIRS keep slots 1 and 2):
# the dataset package's fact, which the pretraining's flip augmentation reads (config.data.joints).
COCO_FLIP_PAIRS = kp.COCO_FLIP_PAIRS
_INFO = {'description': 'Synthetic COCO stand-in: posed people in still images '
                        '(posewarper_jax.data.stills)',
         'url': '', 'version': '1.0', 'year': 2024, 'contributor': 'posewarper_jax',
         'date_created': '2024/01/01'}  # fixed, so that the file is a function of the arguments

# --- The body --------------------------------------------------------------------------------
# Body units: the standing height h. Pelvis centre at the origin, x to the person's left, y down,
# z forward; at yaw 0 the person faces the camera (their left on the image's right).
_HIP_HALF = 0.09
_SHOULDER_HALF = 0.125
_SHOULDER_Y = -0.29  # along the spine, in the torso's frame
_NECK_Y = -0.335
_HEAD_UP = 0.09  # neck to head centre
_HEAD_RX, _HEAD_RY = 0.058, 0.072  # an oval head, not synthetic.py's circle
_UPPER_ARM, _FOREARM = 0.175, 0.15
_THIGH, _SHIN = 0.25, 0.25

# Points beyond the 17 joints, in the same [P, 3] array: drawn, not labeled.
_NECK, _HEAD, _HEAD_TOP, _HEAD_FWD, _L_TOE, _R_TOE, _L_HAND, _R_HAND = range(17, 25)
_TORSO = tuple(range(25, 37))  # a 3D box with a waist: its projection's hull is the torso
_NUM_POINTS = 37
# Head-local positions (units of the head radii) of the face joints: x left, y down, z forward.
_HEAD_JOINTS = {0: (0.0, 0.25, 0.98), 1: (0.38, -0.05, 0.85), 2: (-0.38, -0.05, 0.85),
                3: (0.98, 0.05, -0.1), 4: (-0.98, 0.05, -0.1)}
# A face joint is labeled (and an eye drawn) when its depth in front of the head centre, in head
# radii, exceeds this: eyes only on a face turned towards the camera, the nose up to a little past
# the profile (so wherever an eye is), ears unless on the far side.
_LABEL_DEPTH = {0: -0.3, 1: 0.25, 2: 0.25, 3: -0.3, 4: -0.3}

# (a, b, half width at a, at b (units of h), what it wears): the limbs as tapered capsules.
_LIMBS: tuple[tuple[int, int, float, float, str], ...] = (
    (5, 7, 0.034, 0.027, 'upper_arm'), (7, 9, 0.026, 0.019, 'forearm'),
    (6, 8, 0.034, 0.027, 'upper_arm'), (8, 10, 0.026, 0.019, 'forearm'),
    (11, 13, 0.056, 0.040, 'thigh'), (13, 15, 0.038, 0.026, 'shin'),
    (12, 14, 0.056, 0.040, 'thigh'), (14, 16, 0.038, 0.026, 'shin'),
    (15, _L_TOE, 0.022, 0.018, 'shoe'), (16, _R_TOE, 0.022, 0.018, 'shoe'),
)
_LEFT_JOINTS = frozenset((5, 7, 9, 11, 13, 15))
# The synthetic videos' colour per limb (joint a, joint b) -> BGR: their people's "anatomy",
# which a limb of a still carries in the share `limb_code` of its colour (generate_stills).
_VIDEO_COLOURS = {(a, b): colour for a, b, colour, _ in _VIDEO_LIMBS}
_LIGHTER = 0.25  # the left side's clothes: this share of the way to white

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
  """A random articulated pose: [_NUM_POINTS, 3] in body units (before the turn about the
  vertical axis). Rotations about x lean forward when negative (y down, z forward)."""
  p = np.zeros((_NUM_POINTS, 3))
  legs = _LEGS[str(rng.choice(list(_LEGS), p=_LEG_P))]
  swap = rng.random() < 0.5  # which leg of an asymmetric style is the left
  pitch = _u(rng, (-0.15, 0.3)) + _u(rng, legs[2])
  torso = _rot_x(-pitch) @ _rot_z(_u(rng, (-0.2, 0.2))) @ _rot_y(_u(rng, (-0.45, 0.45)))
  # Arms: both in one style half the time (symmetric poses), else each its own.
  styles = [str(rng.choice(list(_ARMS), p=_ARM_P))]
  styles.append(styles[0] if rng.random() < 0.5 else str(rng.choice(list(_ARMS), p=_ARM_P)))
  for k, (side, (sh, el, wr, hip, kn, an, toe, hand)) in enumerate((
      (1.0, (5, 7, 9, 11, 13, 15, _L_TOE, _L_HAND)),
      (-1.0, (6, 8, 10, 12, 14, 16, _R_TOE, _R_HAND)))):
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
      p[_TORSO[4 * i + j]] = point if i == 2 else torso @ point
  p[_NECK] = torso @ np.array([0.0, _NECK_Y, 0.0])
  head = torso @ _rot_x(-_u(rng, (-0.35, 0.45))) @ _rot_y(_u(rng, (-0.9, 0.9))) @ _rot_z(
      _u(rng, (-0.3, 0.3)))
  # The head pivots at the neck; its local frame is scaled by the radii (x, z: rx; y: ry).
  p[_HEAD] = p[_NECK] + head @ (0.0, -_HEAD_UP, 0.0)
  radii = np.array([_HEAD_RX, _HEAD_RY, _HEAD_RX])
  for j, local in _HEAD_JOINTS.items():
    p[j] = p[_HEAD] + head @ (radii * local)
  p[_HEAD_TOP] = p[_HEAD] + head @ (0.0, -_HEAD_RY, 0.0)
  p[_HEAD_FWD] = p[_HEAD] + head @ (0.0, 0.0, _HEAD_RX)
  return p


# --- People ----------------------------------------------------------------------------------


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


@dataclasses.dataclass(frozen=True)
class Person:
  """One person of a still. points: [_NUM_POINTS, 3] image x, y (px) and depth (body units,
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
    return float((self.points[joint, 2] - self.points[_HEAD, 2]) / _HEAD_RX)


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
  bgr = cv2.cvtColor(np.array([[[h, s, v]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
  return tuple(int(c) for c in bgr)


def _clothes(rng: np.random.Generator, limb_code: float = 0.0) -> Clothes:
  skin = np.array((75, 100, 140)) + rng.uniform(0, 1) * np.array((110, 105, 100))
  trousers = [(110, 60, 30), (40, 40, 40), (120, 160, 180), (110, 110, 110), (60, 40, 30)]
  base = (np.array(trousers[int(rng.integers(len(trousers)))]) if rng.random() < 0.6
          else np.array(_hsv(rng.uniform(0, 180), rng.uniform(30, 200), rng.uniform(40, 200))))
  hair = [(20, 20, 25), (30, 50, 80), (80, 150, 200), (170, 170, 175), (20, 40, 120)]
  return Clothes(
      shirt=_hsv(rng.uniform(0, 180), rng.uniform(40, 230), rng.uniform(60, 240)),
      trousers=tuple(int(c) for c in np.clip(base + rng.normal(0, 12, 3), 0, 255)),
      skin=tuple(int(c) for c in np.clip(skin + rng.normal(0, 8, 3), 0, 255)),
      hair=tuple(int(c) for c in np.clip(np.array(hair[int(rng.integers(len(hair)))])
                                         + rng.normal(0, 10, 3), 0, 255)),
      shoes=tuple(int(c) for c in np.clip(rng.uniform(15, 90) + rng.normal(0, 10, 3), 0, 255)),
      long_sleeves=bool(rng.random() < 0.4), shorts=bool(rng.random() < 0.2),
      limb_code=limb_code)


def _make_person(rng: np.random.Generator, width: int, height: int,
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
  top = min(float(y.min()), float(y[_HEAD] - _HEAD_RY))
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
  return Person(points=points, height=h, facing=float(depth[_HEAD_FWD] - depth[_HEAD]) / _HEAD_RX,
                clothes=_clothes(rng, limb_code))


# --- Backgrounds -----------------------------------------------------------------------------

BACKGROUNDS = ('indoor', 'outdoor', 'bricks', 'studio')


def _colour(rng: np.random.Generator, sat: tuple[float, float] = (20, 160),
            val: tuple[float, float] = (60, 230)) -> np.ndarray:
  return np.array(_hsv(rng.uniform(0, 180), rng.uniform(*sat), rng.uniform(*val)), np.float32)


def _rectangle(img: np.ndarray, rng: np.random.Generator, box: tuple[int, int, int, int],
               scale: float) -> None:
  """A framed rectangle (door, window, picture, shelf): fill, a darker frame, maybe bars."""
  x1, y1, x2, y2 = box
  fill = _colour(rng)
  frame = fill * rng.uniform(0.3, 0.7)
  cv2.rectangle(img, (x1, y1), (x2, y2), fill.tolist(), -1)
  t = max(1, round(rng.uniform(1, 4) * scale))
  cv2.rectangle(img, (x1, y1), (x2, y2), frame.tolist(), t)
  if rng.random() < 0.4:  # window bars
    cv2.line(img, ((x1 + x2) // 2, y1), ((x1 + x2) // 2, y2), frame.tolist(), t)
    cv2.line(img, (x1, (y1 + y2) // 2), (x2, (y1 + y2) // 2), frame.tolist(), t)


def _floor(img: np.ndarray, rng: np.random.Generator, horizon: int) -> None:
  """Below `horizon`: a floor in perspective, tiled (checker) or plain with a gradient."""
  h, w = img.shape[:2]
  if horizon >= h:
    return
  yy, xx = np.mgrid[horizon:h, 0:w].astype(np.float32)
  d = yy - horizon + 0.08 * h  # distance below the vanishing line (the camera's height)
  a, b = _colour(rng, (0, 120), (50, 220)), _colour(rng, (0, 120), (50, 220))
  if rng.random() < 0.6:
    vx = rng.uniform(0.2, 0.8) * w
    tiles = (np.floor((xx - vx) / d * rng.uniform(1.5, 5)) + np.floor(rng.uniform(8, 30) * h
                                                                          / (d * 10))) % 2
    floor = a + tiles[..., None] * (b - a)
  else:
    floor = a + (d / d.max())[..., None] * (b - a)
  img[horizon:] = floor


def _outdoor(img: np.ndarray, rng: np.random.Generator, scale: float) -> None:
  h, w = img.shape[:2]
  horizon = int(rng.uniform(0.2, 0.65) * h)
  sky_top = _colour(rng, (40, 160), (120, 230))
  sky_low = np.array(_hsv(rng.uniform(90, 125), rng.uniform(0, 60), rng.uniform(180, 250)),
                     np.float32)
  t = np.linspace(0, 1, max(horizon, 1), dtype=np.float32)[:, None, None]
  img[:horizon] = sky_top + t * (sky_low - sky_top)
  # Buildings standing on the horizon, with grids of windows.
  for _ in range(int(rng.integers(0, 6))):
    bw = int(rng.uniform(0.1, 0.4) * w)
    x1 = int(rng.uniform(-0.1, 1.0) * w)
    y1 = int(horizon - rng.uniform(0.1, 0.6) * h)
    xs, ys = slice(max(x1, 0), max(min(x1 + bw, w), 0)), slice(max(y1, 0), horizon)
    wall = _colour(rng, (0, 80), (70, 220))
    img[ys, xs] = wall
    px, py = max(4, int(rng.uniform(8, 25) * scale)), max(4, int(rng.uniform(10, 30) * scale))
    yy, xx = np.mgrid[ys, xs]
    windows = ((xx - x1) % px < px * 0.55) & ((yy - y1) % py < py * 0.55)
    img[ys, xs][windows] = wall * rng.uniform(0.3, 0.7)
  # The ground: a colour with blocky patches (nearest-neighbour upscaled noise).
  ground = _colour(rng, (20, 140), (50, 180))
  gh, gw = max(1, (h - horizon) // max(2, int(rng.uniform(6, 20) * scale))), max(
      1, w // max(2, int(rng.uniform(6, 20) * scale)))
  patches = cv2.resize(rng.normal(0, rng.uniform(5, 25), (gh, gw)).astype(np.float32),
                       (w, h - horizon), interpolation=cv2.INTER_NEAREST)
  img[horizon:] = ground + patches[..., None]


def _bricks(img: np.ndarray, rng: np.random.Generator, scale: float) -> None:
  """Bricks or tiles covering the image: rows of offset blocks, each its own shade."""
  h, w = img.shape[:2]
  bh = max(4, int(rng.uniform(8, 40) * scale))
  bw = max(4, int(bh * rng.uniform(1.0, 3.0)))
  offset = bw // 2 if rng.random() < 0.7 else 0  # bricks; tiles are aligned
  mortar_width = max(1, round(rng.uniform(1, 3) * scale))
  yy, xx = np.mgrid[0:h, 0:w]
  row = yy // bh
  xs = xx + (row % 2) * offset
  block = row * (w // bw + 2) + xs // bw
  base, mortar = _colour(rng, (30, 170), (60, 200)), _colour(rng, (0, 40), (120, 230))
  shades = rng.normal(1.0, rng.uniform(0.03, 0.15), int(block.max()) + 1).astype(np.float32)
  img[:] = base * shades[block][..., None]
  img[((yy % bh) < mortar_width) | ((xs % bw) < mortar_width)] = mortar


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
  """A random scene of one of BACKGROUNDS: [height, width, 3] uint8 BGR."""
  scale = frame_scale(width, height)
  img = np.zeros((height, width, 3), np.float32)
  kind = str(rng.choice(BACKGROUNDS, p=(0.4, 0.3, 0.15, 0.15)))
  if kind == 'indoor':
    horizon = int(rng.uniform(0.35, 0.8) * height)
    wall = _colour(rng)
    shade = np.linspace(rng.uniform(0.75, 1.1), rng.uniform(0.85, 1.15), height,
                        dtype=np.float32)[:horizon, None, None]
    img[:horizon] = wall * shade
    for _ in range(int(rng.integers(1, 6))):
      rw, rh = rng.uniform(0.05, 0.3) * width, rng.uniform(0.1, 0.6) * height
      x1, y1 = rng.uniform(-0.05, 1.0) * width, rng.uniform(0.0, 0.9) * horizon - rh / 2
      _rectangle(img, rng, (int(x1), int(y1), int(x1 + rw), int(min(y1 + rh, horizon))), scale)
    _floor(img, rng, horizon)
    # A skirting board where the wall meets the floor.
    board = max(1, round(rng.uniform(2, 8) * scale))
    img[max(0, horizon - board):horizon] = _colour(rng, (0, 60), (30, 240))
  elif kind == 'outdoor':
    _outdoor(img, rng, scale)
  elif kind == 'bricks':
    _bricks(img, rng, scale)
  else:  # studio: a flat colour with a gradient and a vignette
    a, b = _colour(rng), _colour(rng)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    t = ((xx / width - 0.5) * math.cos(ang) + (yy / height - 0.5) * math.sin(ang) + 0.7) / 1.4
    r2 = ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2)[..., None]
    img[:] = (a + t[..., None] * (b - a)) * (1 - rng.uniform(0, 0.8) * r2)
  # Sensor noise: per pixel (synthetic.py's grain is smooth, several pixels wide), grey.
  noise = rng.standard_normal((height, width, 1), np.float32) * rng.uniform(1.5, 6)
  return np.clip(img + noise, 0, 255).astype(np.uint8)


# --- Drawing ---------------------------------------------------------------------------------


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


def _draw_person(img: np.ndarray, mask: np.ndarray, label: int, person: Person) -> None:
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
      hand = _L_HAND if a == 7 else _R_HAND
      items.append((depth[b] + 1e-4, 50 + k, ('limb', b, hand, 0.019 * h, 0.022 * h, skin)))
  # The torso slightly behind limbs at its depth (arms at the sides are drawn over it).
  items.append((float(depth[list(_TORSO)].mean()) - 0.02, 100, ('torso',)))
  items.append((float(depth[_NECK]) - 0.01, 101, ('limb', _NECK, _HEAD, 0.03 * h, 0.03 * h,
                                                  skin)))
  items.append((float(depth[_HEAD]), 102, ('head',)))
  for _, _, item in sorted(items, key=lambda i: (i[0], i[1])):
    if item[0] == 'limb':
      _, a, b, ra, rb, colour = item
      _capsule(img, mask, label, xy[a], xy[b], ra, rb, colour, outline)
    elif item[0] == 'torso':
      hull = cv2.convexHull(np.array([pt(*xy[i]) for i in _TORSO], np.int32))
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
  centre = pts[_HEAD, :2]
  up = pts[_HEAD_TOP, :2] - centre
  angle = math.degrees(math.atan2(up[0], -up[1]))  # the oval's long axis along the head's up
  for ear in (3, 4):
    if person.face_depth(ear) > _LABEL_DEPTH[ear]:
      _ellipse(img, mask, label, pts[ear, :2], (0.016 * h, 0.022 * h), angle,
               tuple(0.85 * c for c in dress.skin), outline)
  _ellipse(img, mask, label, centre, (_HEAD_RX * h, _HEAD_RY * h), angle, dress.skin, outline)
  # Hair: over the top of a face turned to the camera, the back of a profile, all of a head
  # turned away.
  forward = pts[_HEAD_FWD, :2] - centre
  hair = centre + up * 0.3 * max(person.facing, 0.0) - 0.45 * forward
  cover = 0.88 + 0.1 * max(-person.facing, 0.0)  # a head turned away: hair down to the neck
  _ellipse(img, None, label, hair, (_HEAD_RX * h * 1.02, _HEAD_RY * h * cover), angle, dress.hair,
           0.0)
  dot = max(0.8, 0.011 * h)
  for eye in (1, 2):
    if person.face_depth(eye) > _LABEL_DEPTH[eye]:
      _ellipse(img, None, label, pts[eye, :2], (dot, dot), 0.0, (25, 20, 20), 0.0)
  if person.face_depth(0) > 0.3:
    _ellipse(img, None, label, pts[0, :2], (1.1 * dot, 1.1 * dot), 0.0,
             tuple(0.7 * c for c in dress.skin), 0.0)


# --- Stills and their labels -----------------------------------------------------------------


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
      _draw_person(img, owner, i + 1, person)
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
        if not inside or (j in _LABEL_DEPTH and person.face_depth(j) <= _LABEL_DEPTH[j]):
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


def make_stills(*, seed: int = 0, num_images: int = 3000, width: int = 384, height: int = 288,
                max_people: int = 6, limb_code: float = 0.0) -> list[Still]:
  """The stills `generate_stills` writes with the same arguments (cheap: nothing is drawn)."""
  if num_images < 1 or not 1 <= max_people <= 250 or width < 16 or height < 16:
    raise ValueError(f'need num_images >= 1, 1 <= max_people <= 250 and an image of at least '
                     f'16x16; got {num_images}, {max_people}, {width}x{height}')
  if not 0 <= limb_code <= 1:
    raise ValueError(f'limb_code is a share in [0, 1], got {limb_code!r}')
  if num_images >= 10**6:
    raise ValueError(f'at most 999999 images (ids are 6-digit PoseTrack video numbers once '
                     f'converted), got {num_images}')
  rng = np.random.default_rng(seed)
  # Distinct ids spread over COCO's range (below 10^6, as COCO's: to_posetrack18 needs it).
  ids = np.sort(rng.choice(np.arange(1, 10**6), size=num_images, replace=False))
  stills = []
  for image_id, child in zip(ids, np.random.SeedSequence(seed).spawn(num_images), strict=True):
    r = np.random.default_rng(child)
    n = int(r.integers(1, max_people + 1))
    # Half the images group their people around a point, so that they overlap.
    group = ((r.uniform(0.2, 0.8) * width, r.uniform(0.08, 0.3) * width) if r.random() < 0.5
             else None)
    people = [_make_person(r, width, height, group, limb_code) for _ in range(n)]
    # Far to near: the smaller (farther) first, so that nearer people occlude them.
    people.sort(key=lambda p: p.height)
    stills.append(Still(int(image_id), width, height, tuple(people), int(r.integers(2**63))))
  return stills


def generate_stills(out_dir: str | os.PathLike, *, seed: int = 0, num_images: int = 3000,
                    width: int = 384, height: int = 288, max_people: int = 6,
                    limb_code: float = 0.0, jpeg_quality: int = JPEG_QUALITY) -> dict[str, Any]:
  """Writes the COCO stand-in under `out_dir` (see the module docstring).

  Args:
    out_dir: the root (created): train2017/ and annotations/person_keypoints_train2017.json.
    seed: everything is a function of the arguments: the same seed gives identical files.
    num_images: images to write (below 10^6).
    width, height: image size in pixels.
    max_people: each image has 1 to max_people people (those entirely hidden are not
      annotated).
    limb_code: the share (0 to 1) of the synthetic videos' colour per limb (warm on the left,
      cool on the right, one hue per segment) in each arm and leg segment's colour, the rest
      the clothes'. The videos' people tell left from right and one limb from another by those
      colours, as real people by their anatomy; 0 leaves the stills only the weak cues above,
      and the calibration of this share is in docs/quickstart.md, section 5.6.
    jpeg_quality: the JPEG quality of the images.

  Returns:
    {'root', 'images', 'annotations', 'annotations_without_keypoints', 'keypoints_visible'
    (v = 2), 'keypoints_occluded' (v = 1), 'people_per_image': {count: images}}.
  """
  root = pathlib.Path(out_dir)
  (root / IMAGES).mkdir(parents=True, exist_ok=True)
  (root / ANNOTATIONS).parent.mkdir(parents=True, exist_ok=True)
  images, annotations = [], []
  per_image: collections.Counter = collections.Counter()
  for still in make_stills(seed=seed, num_images=num_images, width=width, height=height,
                           max_people=max_people, limb_code=limb_code):
    img, anns = still.render()
    anns = [a for a in anns if a is not None]
    ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
      raise RuntimeError(f'JPEG encoding failed for image {still.image_id}')
    (root / IMAGES / still.file_name).write_bytes(buf.tobytes())
    images.append({'id': still.image_id, 'file_name': still.file_name, 'width': width,
                   'height': height})
    for ann in anns:
      annotations.append({'id': len(annotations) + 1, **ann})
    per_image[len(anns)] += 1
  data = {'info': dict(_INFO), 'images': images, 'annotations': annotations,
          'categories': [coco_category()]}
  with open(root / ANNOTATIONS, 'w') as f:
    json.dump(data, f, separators=(',', ':'))
  v = np.array([a['keypoints'][2::3] for a in annotations]).reshape(-1)
  return {'root': str(root), 'images': len(images), 'annotations': len(annotations),
          'annotations_without_keypoints': sum(a['num_keypoints'] == 0 for a in annotations),
          'keypoints_visible': int((v == 2).sum()), 'keypoints_occluded': int((v == 1).sum()),
          'people_per_image': dict(sorted(per_image.items()))}


def coco_category() -> dict[str, Any]:
  """COCO's person category, as in person_keypoints_*.json."""
  return {'supercategory': 'person', 'id': 1, 'name': 'person', 'keypoints': list(COCO_JOINTS),
          'skeleton': [list(limb) for limb in COCO_SKELETON]}


# --- COCO -> PoseTrack18 ---------------------------------------------------------------------

# Head box (w, h) in units of the standing height: a box 1.1x the head, which is about 0.1-0.12
# wide and 0.13-0.145 tall in people (and 0.116 x 0.144 as drawn here).
_HEAD_BOX = (0.13, 0.16)
_FACE_MARGIN = 1.1  # the labeled face joints' extent x this: the ears lie on the head's sides
# Typical 2D lengths (units of the standing height) of limbs between COCO joints. A projected
# limb is never longer than its 3D length, so the largest length / typical length over a person's
# labeled limbs is a (tight, for a limb seen side-on) lower bound of their height.
_BONES: tuple[tuple[int, int, float], ...] = (
    (5, 7, 0.175), (6, 8, 0.175), (7, 9, 0.15), (8, 10, 0.15), (11, 13, 0.25), (12, 14, 0.25),
    (13, 15, 0.25), (14, 16, 0.25), (5, 11, 0.3), (6, 12, 0.3), (5, 6, 0.25), (11, 12, 0.18),
    (3, 4, 0.12), (5, 12, 0.34), (6, 11, 0.34))
_HEAD_JOINT_IDS = (0, 1, 2, 3, 4)


def head_box(keypoints: Sequence[float], bbox: Sequence[float] | None) -> list[float]:
  """A PoseTrack bbox_head [x, y, w, h] for a COCO person (keypoints 17 x (x, y, v) flat, at
  least one labeled), which COCO does not have.

  Its size (all that the PCKh and mAP thresholds use: 0.6 x the diagonal) is _HEAD_BOX x the
  person's height, estimated as the largest ratio of a labeled limb's image length to its typical
  length (_BONES; projection only shortens), at least the extent of the labeled face joints x
  _FACE_MARGIN (ears and eyes lie inside the head); without either, the COCO bbox's longer
  side. Its centre is the mean of the labeled face joints; without one, 0.135 heights above the
  shoulders (away from the hips when they are labeled); else above the labeled joints' extent.
  """
  points = np.asarray(keypoints, np.float64).reshape(17, 3)
  labeled = points[:, 2] > 0
  xy = points[:, :2]
  height = max((float(np.hypot(*(xy[a] - xy[b]))) / length for a, b, length in _BONES
                if labeled[a] and labeled[b]), default=0.0)
  face = [j for j in _HEAD_JOINT_IDS if labeled[j]]
  width, tall = _HEAD_BOX[0] * height, _HEAD_BOX[1] * height
  if len(face) > 1:
    spread = np.ptp(xy[face], axis=0) * _FACE_MARGIN
    width, tall = max(width, float(spread.max())), max(tall, float(spread.max()))
  if width <= 0 and bbox is not None:
    height = max(float(bbox[2]), float(bbox[3]))
    width, tall = _HEAD_BOX[0] * height, _HEAD_BOX[1] * height
  if width <= 0:  # one labeled joint and no box: a nominal 1 px head (it is some size)
    width = tall = 1.0
  if face:
    centre = xy[face].mean(axis=0)
  elif labeled[5] or labeled[6]:
    shoulders = xy[[j for j in (5, 6) if labeled[j]]].mean(axis=0)
    up = np.array([0.0, -1.0])
    if labeled[11] or labeled[12]:
      spine = shoulders - xy[[j for j in (11, 12) if labeled[j]]].mean(axis=0)
      if np.hypot(*spine) > 0:
        up = spine / np.hypot(*spine)
    centre = shoulders + up * 0.135 * max(height, tall / _HEAD_BOX[1])
  else:
    centre = np.array([xy[labeled, 0].mean(), xy[labeled, 1].min() - tall])
  return [round(float(centre[0] - width / 2), 2), round(float(centre[1] - tall / 2), 2),
          round(width, 2), round(tall, 2)]


def to_posetrack18(coco_dir: str | os.PathLike, out_dir: str | os.PathLike) -> pathlib.Path:
  """Converts a COCO keypoint directory (train2017/ and annotations/person_keypoints_train2017
  .json: this module's stand-in or the real COCO) into PoseTrack18's official layout under
  out_dir, each image one labeled one-frame video of the train split:

    images/train/<seq>/000000.jpg      a hard link to the COCO image (a copy where links fail)
    annotations/train/<seq>.json       synthetic.py's schema (Video.to_json)

  <seq> is '<6-digit COCO image id>_coco_train' (as synthetic.sequence_name, the source named):
  the video number is the image id, so every video is unique; image id = frame_id =
  int('1' + number + '0000'), annotation id = image id x 100 + the person's index.

  Converted: images with at least one person with a labeled keypoint (HRNet trains on no other).
  Keypoints slot by slot, COCO's meaning kept (slots 1 and 2 stay the eyes, where PoseTrack has
  head_bottom and head_top), v > 0 -> 1 and unlabeled joints (0, 0, 0); bbox = COCO's box (the
  visible extent, what HRNet crops COCO people by); bbox_head from `head_box`; track_id the
  person's index in the image; categories = the COCO file's own (COCO's joint names). People
  without labeled keypoints are left out; crowd annotations (iscrowd 1) become ignore regions
  (their box as a polygon), PoseTrack's mark for people that are there but not annotated.

  The builder reads a train-only directory (it builds the splits whose annotation folder
  exists), so no val split is written. Files of the same names in out_dir are replaced, others
  are left alone.

  Returns the PoseTrack18 root (out_dir).
  """
  coco_dir, root = pathlib.Path(coco_dir), pathlib.Path(out_dir)
  with open(coco_dir / ANNOTATIONS) as f:
    data = json.load(f)
  people, crowds = collections.defaultdict(list), collections.defaultdict(list)
  for ann in data['annotations']:
    if ann.get('iscrowd'):
      crowds[ann['image_id']].append(ann)
    elif any(v > 0 for v in ann['keypoints'][2::3]):
      people[ann['image_id']].append(ann)
  category = next((c for c in data.get('categories', []) if c.get('id') == 1), coco_category())
  images_dir, annotations_dir = root / 'images' / 'train', root / 'annotations' / 'train'
  annotations_dir.mkdir(parents=True, exist_ok=True)
  for image in sorted(data['images'], key=lambda im: im['id']):
    anns = sorted(people.get(image['id'], []), key=lambda a: a['id'])
    if not anns:
      continue
    number = image['id']
    if not 0 <= number < 10**6:
      raise ValueError(f'image id {number} does not fit a 6-digit PoseTrack video number')
    if len(anns) >= 100:
      raise ValueError(f'image {number} has {len(anns)} people: annotation ids allow 99')
    seq = sequence_name('train', number).replace('_mpii_', '_coco_')
    vid_id = f'{number:06d}'
    iid = posetrack_image_id(vid_id, 0)
    frame_dir = images_dir / seq
    frame_dir.mkdir(parents=True, exist_ok=True)
    target = frame_dir / '000000.jpg'
    target.unlink(missing_ok=True)
    try:
      os.link(coco_dir / IMAGES / image['file_name'], target)
    except OSError:  # another file system, or links not allowed
      shutil.copyfile(coco_dir / IMAGES / image['file_name'], target)
    entry: dict[str, Any] = {
        'has_no_densepose': True, 'is_labeled': True,
        'file_name': f'images/train/{seq}/000000.jpg', 'nframes': 1, 'frame_id': iid,
        'vid_id': vid_id}
    if image['id'] in crowds:
      boxes = [c['bbox'] for c in crowds[image['id']]]
      entry['ignore_regions_y'] = [[y, y, y + h, y + h] for _, y, _, h in boxes]
      entry['ignore_regions_x'] = [[x, x + w, x + w, x] for x, _, w, _ in boxes]
    entry['id'] = iid
    out = []
    for k, ann in enumerate(anns):
      flat = []
      for x, y, v in zip(*(ann['keypoints'][i::3] for i in range(3)), strict=True):
        flat += [x, y, 1] if v > 0 else [0, 0, 0]
      out.append({'bbox_head': head_box(ann['keypoints'], ann.get('bbox')), 'keypoints': flat,
                  'track_id': k, 'image_id': iid, 'bbox': list(ann['bbox']), 'scores': [],
                  'category_id': 1, 'id': iid * 100 + k})
    with open(annotations_dir / f'{seq}.json', 'w') as f:
      json.dump({'categories': [category], 'images': [entry], 'annotations': out}, f, indent=4)
  return root


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m posewarper_jax.data.stills',
      description='Write a COCO stand-in (labeled stills of posed people) in COCO\'s keypoint '
                  'layout, and optionally its PoseTrack18 conversion.')
  parser.add_argument('--out', required=True, help='COCO-layout root to write')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--num_images', '--num-images', type=int, default=3000)
  parser.add_argument('--width', type=int, default=384)
  parser.add_argument('--height', type=int, default=288)
  parser.add_argument('--max_people', '--max-people', type=int, default=6)
  parser.add_argument('--quality', type=int, default=JPEG_QUALITY, help='JPEG quality')
  parser.add_argument('--posetrack18', metavar='DIR',
                      help='also write its PoseTrack18-layout conversion (to_posetrack18) here')
  args = parser.parse_args(argv)
  start = time.perf_counter()
  summary = generate_stills(args.out, seed=args.seed, num_images=args.num_images,
                            width=args.width, height=args.height, max_people=args.max_people,
                            jpeg_quality=args.quality)
  print(f'{summary["images"]} images, {summary["annotations"]} people '
        f'({summary["annotations_without_keypoints"]} without keypoints), '
        f'{summary["keypoints_visible"]} visible and {summary["keypoints_occluded"]} occluded '
        f'keypoints; people per image: {summary["people_per_image"]}')
  print(f'wrote {summary["root"]} in {time.perf_counter() - start:.1f} s')
  if args.posetrack18:
    start = time.perf_counter()
    root = to_posetrack18(args.out, args.posetrack18)
    videos = len(list((root / 'annotations' / 'train').glob('*.json')))
    print(f'wrote {root} ({videos} one-frame train videos) in '
          f'{time.perf_counter() - start:.1f} s')
  return 0


if __name__ == '__main__':
  sys.exit(main())
