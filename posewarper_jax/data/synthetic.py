"""A synthetic PoseTrack 2018: articulated figures in videos, in the official layout and schema.

`generate(out_dir, ...)` writes

  images/{train,val,test}/<seq>/<6-digit 0-based frame>.jpg
  annotations/{train,val,test}/<seq>.json          one file per video

with exactly the keys of the official files (POSEWARPER_SPEC.md section 4; the mmpose-only
fields width, height, mask_file, iscrowd and num_keypoints are not written), so that readers,
loaders and the evaluation can be developed and tested on it as on the real data:

- <seq> is '<6-digit video number>_mpii_train' in train and '..._mpii_test' in val and test (the
  PoseTrack 2018 validation sequences are named ..._test too); vid_id is the 6-digit string.
- image: file_name (relative to the dataset root), id = frame_id = int('1' + vid_id + 4-digit
  frame) (11 digits: int64), vid_id, nframes, is_labeled, has_no_densepose, and on videos with a
  distant crowd ignore_regions_x / ignore_regions_y (parallel lists of int polygons) on their
  labeled frames.
- annotation (labeled frames of train and val only): image_id, id = image_id * 100 + index in the
  frame (13 digits), track_id (stable over the video), category_id 1, keypoints 17 x (x, y, v)
  with v in {0, 1} and unannotated joints exactly (0, 0, 0), bbox_head [x, y, w, h] (may extend
  outside the image), bbox = the annotated-keypoint extent enlarged 1.3x about its centre (absent
  for a person with no annotated keypoint), scores [].
- test files have no annotations: their JSON is {categories, images}.
- is_labeled: train labels the 30 consecutive middle frames (all frames of a shorter video); val
  and test label those plus every 4th frame (frame % 4 == 0).

Each video has 1 to max_people stick figures (torso, head, two-segment arms and legs, one colour
per limb, left and right limbs in different colours) built from a small 3D skeleton that walks,
swings or raises its arms, turns about its vertical axis (left and right swap in the image as it
turns through a side view), translates across the frame by a few pixels per frame, and grows or
shrinks (approaching / receding). They are drawn far to near, so nearer people occlude farther
ones. The background is a smooth random texture with stripes and blobs, different per video, seen
through a slowly moving camera that shifts background and people together.

Some frames are degraded as real footage is, in ways their neighbours are not (what temporal
aggregation is for): about one frame in eight is blurred by camera shake (a linear motion blur) or
lost focus (a Gaussian blur), and foreground objects near the camera (poles, panels) sweep across
the view in a few frames, hiding whoever is behind them for a frame or two.

Labels. All 15 non-ear joints inside the image are annotated, occluded or not (PoseTrack annotates
joints it can infer), except the nose of a head turned away from the camera. A person appears in
a frame's annotations when any of their body lies in the image; one whose joints are all outside
(e.g. only a sliver of the head in the frame) is written with zero keypoints and no bbox, as
real files have such people. Crowds of small unannotated figures lie under the ignore regions.

Layouts: `generate(..., layout='posetrack21' | 'posetrack17')` writes the same videos as
PoseTrack21 (posetrack_data/, no test split) or PoseTrack17 (the 2017 format) lay them out
(tfds_posetrack/posetrack18/layouts.py), so each layout can be exercised without the real data.

Deterministic: the same arguments give byte-identical JSON and identical JPEG files. Everything in
pixels (sizes, speeds) scales with the frame size, so 384x288 (the default, the network input)
and 1920x1080 (the real data's size) give the same videos at different resolutions.
"""

from __future__ import annotations

import argparse
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
from tfds_posetrack.posetrack18 import formats, layouts
from tfds_posetrack.posetrack18 import keypoints as kp
from tfds_posetrack.posetrack18.formats import image_id

SPLITS = ('train', 'val', 'test')
LABELED_RUN = 30  # train videos label this many consecutive middle frames
LABEL_STRIDE = 4  # val / test also label every 4th frame
JPEG_QUALITY = 90
BLURRED_FRAMES = 0.12  # the share of frames blurred by camera shake or defocus
OCCLUDER_EVERY = 25  # frames per foreground occluder, on average

# Body model, in units of the body height h (pelvis centre at the origin; x to the person's left,
# y down, z forward). At rotation theta = 0 the person faces the camera, so their left side is on
# the image's right, as in PoseTrack.
_HIP_HALF = 0.085
_SHOULDER_HALF = 0.12
_SHOULDER_Y = -0.30
_NECK_Y = -0.355  # head_bottom
_HEAD_Y = -0.435  # head centre
_HEAD_R = 0.075
_UPPER_ARM, _FOREARM = 0.17, 0.15
_THIGH, _SHIN = 0.245, 0.245

# BGR limb colours: saturated, left limbs warm and right limbs cool, so that a network can tell
# left from right (and a flip test can tell them apart). Backgrounds are kept desaturated.
LIMBS: tuple[tuple[int, int, tuple[int, int, int], float], ...] = (
    # (joint a, joint b, colour, thickness in units of h)
    (5, 7, (30, 30, 225), 0.050),     # left upper arm: red
    (7, 9, (20, 150, 255), 0.040),    # left forearm: orange
    (6, 8, (225, 70, 20), 0.050),     # right upper arm: blue
    (8, 10, (240, 220, 40), 0.040),   # right forearm: cyan
    (11, 13, (170, 20, 160), 0.065),  # left thigh: purple
    (13, 15, (190, 130, 255), 0.050),  # left shin: pink
    (12, 14, (30, 150, 20), 0.065),   # right thigh: green
    (14, 16, (120, 250, 170), 0.050),  # right shin: light green
)


def labeled_frames(split: str, nframes: int) -> list[bool]:
  """The is_labeled flags of a video: 30 middle frames (+ every 4th frame in val and test)."""
  if split not in SPLITS:
    raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
  start = max(0, (nframes - LABELED_RUN) // 2)
  flags = [start <= t < start + LABELED_RUN for t in range(nframes)]
  if split != 'train':
    flags = [f or t % LABEL_STRIDE == 0 for t, f in enumerate(flags)]
  return flags


def sequence_name(split: str, number: int) -> str:
  """'<6-digit number>_mpii_train' in train, '<...>_mpii_test' in val and test."""
  return formats.sequence_name(number, 'mpii', split)


@dataclasses.dataclass(frozen=True)
class Person:
  """One figure's motion over a video; t_mid is the video's middle frame, pixels at full size."""

  track_id: int
  height: float  # body height h (px) at t_mid
  scale_rate: float  # h(t) = height * exp(scale_rate * (t - t_mid))
  x_mid: float  # pelvis x (px, camera-free) at t_mid
  vx: float  # px / frame
  ground: float  # feet y (px) at t_mid; moves down as the person grows (approaches)
  theta0: float  # body rotation about the vertical axis at t_mid (0 = facing the camera)
  omega: float  # turning speed, rad / frame
  phase0: float  # gait phase at t = 0
  freq: float  # gait, rad / frame
  leg_swing: float  # hip swing amplitude (rad)
  knee_bend: float
  arm_swing: float
  elbow_bend: float
  arm_raise: float  # extra arm abduction (rad) reached at the top of the raise cycle
  leg_spread: float  # extra leg abduction (rad), jumping-jack like, with the arm raise
  raise_phase0: float
  raise_freq: float
  torso_colour: tuple[int, int, int]
  skin_colour: tuple[int, int, int]
  limb_colours: tuple[tuple[int, int, int], ...]


@dataclasses.dataclass(frozen=True)
class Pose:
  """A person in one frame, image coordinates (px, camera applied).

  joints: [17, 2] float (x, y); depth: [17] (larger = nearer the camera, body units);
  head: (cx, cy, r); height: h(t) in px; facing: cos(theta) (1: facing the camera).
  """

  track_id: int
  joints: np.ndarray
  depth: np.ndarray
  head: tuple[float, float, float]
  height: float
  facing: float


def _body(p: Person, t: int) -> tuple[np.ndarray, float]:
  """3D joints [17, 3] in body units (before the vertical-axis rotation), and theta(t)."""
  phase = p.phase0 + p.freq * t
  rise = 0.5 - 0.5 * math.cos(p.raise_phase0 + p.raise_freq * t)  # 0..1
  j = np.zeros((kp.NUM_JOINTS, 3))
  j[0] = (0.0, _HEAD_Y + 0.005, _HEAD_R * 0.95)  # nose, on the front of the head
  j[1] = (0.0, _NECK_Y, 0.01)
  j[2] = (0.0, _HEAD_Y - _HEAD_R, 0.0)
  j[3] = (_HEAD_R * 0.95, _HEAD_Y, 0.0)
  j[4] = (-_HEAD_R * 0.95, _HEAD_Y, 0.0)
  for side, (sh, el, wr, hip, kn, an) in ((1.0, (5, 7, 9, 11, 13, 15)),
                                          (-1.0, (6, 8, 10, 12, 14, 16))):
    # Arms swing against the legs of the same side while walking.
    swing = math.sin(phase) * side
    j[sh] = (side * _SHOULDER_HALF, _SHOULDER_Y, 0.0)
    a = -p.arm_swing * swing
    b = 0.12 + p.arm_raise * rise
    e = p.elbow_bend * (0.6 + 0.4 * math.sin(phase + side))
    j[el] = j[sh] + _UPPER_ARM * limb_dir(side, b, a)
    j[wr] = j[el] + _FOREARM * limb_dir(side, b, a + e)
    a = p.leg_swing * swing
    b = 0.03 + p.leg_spread * rise
    k = p.knee_bend * (0.5 + 0.5 * math.sin(phase * side + 1.2)) + 0.05
    j[hip] = (side * _HIP_HALF, 0.0, 0.0)
    j[kn] = j[hip] + _THIGH * limb_dir(side, b, a)
    j[an] = j[kn] + _SHIN * limb_dir(side, b, a - k)
  # Walking bob: the pelvis is highest at mid-stance.
  j[:, 1] -= 0.012 * abs(math.cos(phase))
  return j, p.theta0 + p.omega * t


def limb_dir(side: float, abduction: float, forward: float) -> np.ndarray:
  """Unit direction of a limb hanging down, abducted sideways, then swung forward (+z)."""
  c = math.cos(abduction)
  return np.array([side * math.sin(abduction), c * math.cos(forward), c * math.sin(forward)])


@dataclasses.dataclass
class Video:
  """One synthetic video: its people, camera path and background seed (all drawn at creation).

  The background canvas (larger than a frame by the camera's travel) is rendered on demand by
  `background_canvas()` and passed back to `frame` / `background`, so that no video keeps an
  image in memory once written.
  """

  split: str
  number: int
  nframes: int
  width: int
  height: int
  people: list[Person]
  camera0: tuple[float, float]  # canvas position of the frame's top-left corner at t_mid
  camera_v: tuple[float, float]  # px / frame
  camera_wobble: tuple[float, float, float]  # amplitude (px), period (frames), phase
  margin: tuple[int, int]  # canvas margin (x, y) around a frame
  crowd: tuple[int, int, int, int] | None  # canvas box (x1, y1, x2, y2) of a distant crowd
  background_seed: int
  effects_seed: int  # the frame degradations (blur, foreground occluders): `effects()`

  @property
  def name(self) -> str:
    return sequence_name(self.split, self.number)

  @property
  def vid_id(self) -> str:
    return f'{self.number:06d}'

  @property
  def scale(self) -> float:
    """Pixel sizes and speeds relative to a 384x288 frame."""
    return frame_scale(self.width, self.height)

  @property
  def t_mid(self) -> float:
    return (self.nframes - 1) / 2

  def camera(self, t: int) -> tuple[float, float]:
    """Canvas position (x, y) of the frame's top-left corner; whole pixels (crops are exact)."""
    amp, period, ph = self.camera_wobble
    wob = amp * math.sin(2 * math.pi * t / period + ph)
    dt = t - self.t_mid
    return (float(round(self.camera0[0] + self.camera_v[0] * dt + wob)),
            float(round(self.camera0[1] + self.camera_v[1] * dt + 0.5 * wob)))

  def background_canvas(self) -> np.ndarray:
    """The video's background, [H + 2 * margin_y, W + 2 * margin_x, 3] uint8 BGR."""
    rng = np.random.default_rng(self.background_seed)
    ch, cw = self.height + 2 * self.margin[1], self.width + 2 * self.margin[0]
    scale = self.scale
    # Smooth, desaturated colour noise: a few random colours blended over the frame.
    base = rng.uniform(60, 200, 3)
    gh, gw = rng.integers(3, 8, 2)
    low = rng.normal(0, 35, (gh, gw, 3)) * rng.uniform(0.3, 1.0, 3)
    low = cv2.resize(low, (cw, ch), interpolation=cv2.INTER_CUBIC)
    # Finer texture: grey noise at a few pixels' scale.
    fh, fw = max(2, ch // int(rng.integers(4, 12))), max(2, cw // int(rng.integers(4, 12)))
    fine = cv2.resize(rng.normal(0, rng.uniform(4, 14), (fh, fw)), (cw, ch),
                      interpolation=cv2.INTER_LINEAR)
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    ang = rng.uniform(0, math.pi)
    period = rng.uniform(12, 60) * scale
    stripes = np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * 2 * math.pi / period)
    stripes = stripes * rng.uniform(0, 22) * (rng.random() < 0.7)
    img = base + low + (fine + stripes)[..., None]
    # A floor: the lower part of the scene in another tone, with a soft horizon.
    horizon = rng.uniform(0.3, 0.7) * ch
    floor = 1 / (1 + np.exp(-(yy - horizon) / (4 * scale)))
    img = img + floor[..., None] * rng.normal(0, 25, 3)
    img = np.clip(img, 0, 255).astype(np.uint8)
    # Blobs and boxes ("furniture"), desaturated so that limbs stand out.
    for _ in range(int(rng.integers(4, 12))):
      grey = rng.uniform(40, 220)
      colour = tuple(float(c) for c in np.clip(grey + rng.normal(0, 25, 3), 0, 255))
      cx, cy = int(rng.integers(0, cw)), int(rng.integers(0, ch))
      ax = int(rng.uniform(8, 60) * scale)
      ay = int(rng.uniform(8, 60) * scale)
      if rng.random() < 0.5:
        cv2.ellipse(img, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, colour, -1,
                    cv2.LINE_AA)
      else:
        cv2.rectangle(img, (cx - ax, cy - ay), (cx + ax, cy + ay), colour, -1)
    img = cv2.GaussianBlur(img, (0, 0), 1.0 * scale)
    if self.crowd is not None:
      _draw_crowd(img, self.crowd, rng, scale)
    return img

  def effects(self) -> tuple[list[tuple[str, float, float] | None], list[Occluder]]:
    """(per frame: None or a blur ('shake', length px, angle rad) / ('defocus', sigma px, 0),
    the foreground occluders), drawn from effects_seed."""
    rng = np.random.default_rng(self.effects_seed)
    scale = self.scale
    blurs: list[tuple[str, float, float] | None] = []
    for _ in range(self.nframes):
      if rng.random() >= BLURRED_FRAMES:
        blurs.append(None)
      elif rng.random() < 0.6:
        blurs.append(('shake', float(rng.uniform(5, 14) * scale), float(rng.uniform(0, math.pi))))
      else:
        blurs.append(('defocus', float(rng.uniform(1.5, 3.5) * scale), 0.0))
    occluders = []
    for _ in range(int(rng.poisson(self.nframes / OCCLUDER_EVERY))):
      width = rng.uniform(0.05, 0.14) * self.width
      frames = rng.uniform(4, 8)  # to cross the view
      speed = (self.width + width) / frames * rng.choice([-1.0, 1.0])
      grey = rng.uniform(20, 110)
      occluders.append(Occluder(
          t0=float(rng.uniform(-frames / 2, self.nframes)), width=float(width),
          speed=float(speed), tilt=float(rng.uniform(-0.25, 0.25)),
          colour=_jitter(rng, (grey, grey, grey), 12)))
    return blurs, occluders

  def background(self, t: int, canvas: np.ndarray) -> np.ndarray:
    """Frame t without its people: [H, W, 3] uint8 BGR (a view into `canvas`)."""
    x, y = (int(v) for v in self.camera(t))
    return canvas[y:y + self.height, x:x + self.width]

  def poses(self, t: int) -> list[Pose]:
    """Every person in frame t (in the image or not), far to near."""
    cx, cy = self.camera(t)
    out = []
    for p in self.people:
      dt = t - self.t_mid
      h = p.height * math.exp(p.scale_rate * dt)
      # Approaching people grow and come down the image (perspective on a ground plane).
      feet = p.ground + 0.8 * (h - p.height)
      j3, theta = _body(p, t)
      c, s = math.cos(theta), math.sin(theta)
      x = j3[:, 0] * c + j3[:, 2] * s
      depth = -j3[:, 0] * s + j3[:, 2] * c
      px = p.x_mid + p.vx * dt - (cx - self.margin[0])
      py = feet - 0.49 * h - (cy - self.margin[1])
      joints = np.stack([px + h * x, py + h * j3[:, 1]], axis=1)
      # The head circle hangs from head_top (on the vertical axis, so unmoved by turning).
      head = (float(joints[2, 0]), float(joints[2, 1]) + _HEAD_R * h, _HEAD_R * h)
      out.append(Pose(p.track_id, joints, depth, head, h, c))
    out.sort(key=lambda q: (q.height, q.track_id))
    return out

  def frame(self, t: int, canvas: np.ndarray) -> np.ndarray:
    """Frame t: [H, W, 3] uint8 BGR."""
    img = self.background(t, canvas).copy()
    for pose, person in ((q, self.people[q.track_id]) for q in self.poses(t)):
      _draw_person(img, pose, person)
    blurs, occluders = self.effects()
    for occluder in occluders:
      occluder.draw(img, t)
    if blurs[t] is not None:
      img = _blur(img, *blurs[t])
    return img

  def annotations(self, t: int) -> list[dict[str, Any]]:
    """The official annotation dicts of frame t (people whose body lies in the image)."""
    iid = image_id(self.vid_id, t)
    out = []
    for pose in sorted(self.poses(t), key=lambda q: q.track_id):
      if not self._in_image(pose):
        continue
      flat: list[float] = []
      for j, (x, y) in enumerate(pose.joints):
        x, y = round(float(x), 2), round(float(y), 2)
        visible = (0 <= x <= self.width - 1 and 0 <= y <= self.height - 1 and (x, y) != (0, 0)
                   and j not in kp.UNANNOTATED_JOINTS
                   and not (j == 0 and pose.facing < -0.25))  # the nose of a turned-away head
        flat += [x, y, 1] if visible else [0, 0, 0]
      hx, hy, r = pose.head
      ann: dict[str, Any] = {
          'bbox_head': [round(hx - 1.1 * r), round(hy - 1.15 * r), round(2.2 * r),
                        round(2.35 * r)],
          'keypoints': flat,
          'track_id': pose.track_id,
          'image_id': iid,
      }
      box = kp.keypoint_box(flat)
      if box is not None:
        ann['bbox'] = box
      ann.update(scores=[], category_id=1, id=iid * 100 + len(out))
      out.append(ann)
    return out

  def _in_image(self, pose: Pose) -> bool:
    pad = 0.02 * pose.height
    hx, hy, r = pose.head
    x1 = min(float(pose.joints[:, 0].min()), hx - r) - pad
    x2 = max(float(pose.joints[:, 0].max()), hx + r) + pad
    y1 = min(float(pose.joints[:, 1].min()), hy - r) - pad
    y2 = max(float(pose.joints[:, 1].max()), hy + r) + pad
    return x2 >= 0 and y2 >= 0 and x1 <= self.width - 1 and y1 <= self.height - 1

  def ignore_regions(self, t: int) -> list[list[list[int]]] | None:
    """[xs, ys]: the crowd's polygon in frame t (clipped to the image), or None."""
    if self.crowd is None:
      return None
    cx, cy = self.camera(t)
    x1, y1, x2, y2 = self.crowd
    x1, x2 = (int(np.clip(v - cx, 0, self.width - 1)) for v in (x1, x2))
    y1, y2 = (int(np.clip(v - cy, 0, self.height - 1)) for v in (y1, y2))
    if x2 - x1 < 2 or y2 - y1 < 2:
      return None
    # A hand-drawn-looking polygon: the box with midpoints on its long sides.
    xm = (x1 + x2) // 2
    return [[x1, xm, x2, x2, xm, x1], [y1, y1, y1, y2, y2, y2]]

  def to_json(self) -> dict[str, Any]:
    """The video's annotation file, keys in the order of the official files."""
    flags = labeled_frames(self.split, self.nframes)
    images, annotations = [], []
    for t in range(self.nframes):
      iid = image_id(self.vid_id, t)
      entry: dict[str, Any] = {
          'has_no_densepose': True,
          'is_labeled': flags[t],
          'file_name': f'images/{self.split}/{self.name}/{t:06d}.jpg',
          'nframes': self.nframes,
          'frame_id': iid,
          'vid_id': self.vid_id,
      }
      regions = self.ignore_regions(t) if flags[t] else None
      if regions is not None:
        entry['ignore_regions_y'] = [regions[1]]
        entry['ignore_regions_x'] = [regions[0]]
      entry['id'] = iid
      images.append(entry)
      if flags[t] and self.split != 'test':
        annotations += self.annotations(t)
    out: dict[str, Any] = {'categories': kp.categories(), 'images': images}
    if self.split != 'test':  # test files have no annotations
      out['annotations'] = annotations
    return out


@dataclasses.dataclass(frozen=True)
class Occluder:
  """A foreground pole sweeping across the view: its centre is at the left edge (speed > 0) or
  the right edge (speed < 0) at frame t0, moving `speed` px / frame, leaning by `tilt`."""

  t0: float
  width: float
  speed: float
  tilt: float  # horizontal shift per px of height, relative to the frame's centre row
  colour: tuple[int, ...]

  def centre_x(self, t: float, frame_width: int) -> float:
    """The pole's centre column (at the frame's centre row) in frame t."""
    start = -self.width / 2 if self.speed > 0 else frame_width + self.width / 2
    return start + self.speed * (t - self.t0)

  def draw(self, img: np.ndarray, t: int) -> None:
    height, width = img.shape[:2]
    x = self.centre_x(t, width)
    reach = self.width / 2 + abs(self.tilt) * height / 2
    if x + reach < 0 or x - reach > width:
      return
    dx = self.tilt * height / 2
    quad = np.array([pt(x - dx - self.width / 2, 0), pt(x - dx + self.width / 2, 0),
                     pt(x + dx + self.width / 2, height), pt(x + dx - self.width / 2, height)],
                    np.int32)
    cv2.fillConvexPoly(img, quad, self.colour, cv2.LINE_AA, SHIFT)


def _blur(img: np.ndarray, kind: str, amount: float, angle: float) -> np.ndarray:
  """Camera shake (a line kernel `amount` px long at `angle`) or defocus (Gaussian, sigma)."""
  if kind == 'defocus':
    return cv2.GaussianBlur(img, (0, 0), amount)
  size = int(math.ceil(amount)) | 1
  kernel = np.zeros((size, size), np.float32)
  c, half = size // 2, (amount - 1) / 2
  cv2.line(kernel, pt(c - half * math.cos(angle), c - half * math.sin(angle)),
           pt(c + half * math.cos(angle), c + half * math.sin(angle)), 1.0, 1, cv2.LINE_AA,
           SHIFT)
  return cv2.filter2D(img, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def _draw_person(img: np.ndarray, pose: Pose, person: Person) -> None:
  """Draws a figure: limbs, torso and head in depth order (far parts first)."""
  h = pose.height
  j, d = pose.joints, pose.depth
  items: list[tuple[float, int, Any]] = []
  for k, (a, b, _, thick) in enumerate(LIMBS):
    items.append(((d[a] + d[b]) / 2, k, ('limb', a, b, person.limb_colours[k], thick)))
  items.append((0.0, 100, ('torso',)))
  items.append((0.001, 101, ('head',)))
  for _, _, item in sorted(items, key=lambda i: (i[0], i[1])):
    if item[0] == 'limb':
      _, a, b, colour, thick = item
      cv2.line(img, pt(*j[a]), pt(*j[b]), colour, max(1, round(thick * h)), cv2.LINE_AA,
               SHIFT)
    elif item[0] == 'torso':
      pelvis = (j[11] + j[12]) / 2
      chest = (j[5] + j[6]) / 2
      quad = np.array([pt(*j[5]), pt(*j[6]), pt(*j[12]), pt(*j[11])], np.int32)
      cv2.fillConvexPoly(img, quad, person.torso_colour, cv2.LINE_AA, SHIFT)
      # The torso keeps some width in a side view, where the quad collapses.
      cv2.line(img, pt(*chest), pt(*pelvis), person.torso_colour, max(1, round(0.11 * h)),
               cv2.LINE_AA, SHIFT)
      cv2.line(img, pt(*j[1]), pt(*chest), person.skin_colour, max(1, round(0.04 * h)),
               cv2.LINE_AA, SHIFT)
    else:
      hx, hy, r = pose.head
      cv2.circle(img, pt(hx, hy), int(round(r * ONE)), person.skin_colour, -1, cv2.LINE_AA,
                 SHIFT)
      hair = tuple(0.35 * c for c in person.skin_colour)
      if pose.facing > 0:  # a face: the nose, marked dark
        cv2.circle(img, pt(*j[0]), int(round(0.018 * h * ONE)), hair, -1, cv2.LINE_AA,
                   SHIFT)
      else:  # the back of the head: hair
        cv2.circle(img, pt(hx, hy - 0.1 * r), int(round(0.8 * r * ONE)), hair, -1,
                   cv2.LINE_AA, SHIFT)


def _draw_crowd(img: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator,
                scale: float) -> None:
  """Small dim stick figures in `box` (canvas coordinates): unannotated people, ignored."""
  x1, y1, x2, y2 = box
  hh = (y2 - y1) * 0.8
  for _ in range(int(rng.integers(4, 10))):
    h = hh * rng.uniform(0.6, 1.0)
    cx = rng.uniform(x1 + 0.1 * h, x2 - 0.1 * h)
    feet = rng.uniform(y1 + h, y2)
    col = tuple(float(c) for c in np.clip(rng.uniform(50, 150) + rng.normal(0, 30, 3), 0, 255))
    t = max(1, round(0.08 * h))
    hip = (cx, feet - 0.5 * h)
    neck = (cx, feet - 0.82 * h)
    for a, b in ((hip, neck), (hip, (cx - 0.1 * h, feet)), (hip, (cx + 0.1 * h, feet)),
                 (neck, (cx - 0.15 * h, feet - 0.5 * h)), (neck, (cx + 0.15 * h, feet - 0.5 * h))):
      cv2.line(img, pt(*a), pt(*b), col, t, cv2.LINE_AA, SHIFT)
    cv2.circle(img, pt(cx, feet - 0.9 * h), int(round(0.09 * h * ONE)), col, -1, cv2.LINE_AA,
               SHIFT)


def _jitter(rng: np.random.Generator, colour: Sequence[int], amount: float) -> tuple[int, ...]:
  return tuple(int(c) for c in np.clip(np.asarray(colour) + rng.normal(0, amount, 3), 0, 255))


def _make_person(rng: np.random.Generator, track_id: int, nframes: int, width: int, height: int,
                 scale: float) -> Person:
  """Draws one person's motion parameters (see `Person`)."""
  h = rng.uniform(0.35, 0.8) * height
  speed = rng.uniform(1.2, 3.5) * scale * rng.choice([-1.0, 1.0])
  travel = abs(speed) * (nframes - 1) / 2
  if rng.random() < 0.35 and travel > 0:
    # Enters or leaves: the pelvis crosses a frame edge (plus half a body) at a random frame.
    t_edge = rng.uniform(0.15, 0.85) * (nframes - 1)
    edge = rng.choice([-0.35 * h, width + 0.35 * h])
    x_mid = edge + speed * ((nframes - 1) / 2 - t_edge)
  else:
    x_mid = rng.uniform(0.15, 0.85) * width
  # Bigger (nearer) people stand lower in the image.
  ground = height * (0.6 + 0.45 * (h / height - 0.35) / 0.45) + rng.normal(0, 0.04) * height
  action = rng.choice(['walk', 'wave', 'mixed'], p=[0.5, 0.2, 0.3])
  walk = {'walk': 1.0, 'wave': 0.25, 'mixed': 0.7}[action]
  wave = {'walk': 0.0, 'wave': 1.0, 'mixed': 0.6}[action]
  return Person(
      track_id=track_id, height=h, scale_rate=rng.uniform(-0.008, 0.008),
      x_mid=float(x_mid), vx=float(speed * (0.4 if action == 'wave' else 1.0)),
      ground=float(ground), theta0=rng.uniform(-math.pi, math.pi),
      omega=rng.uniform(-0.05, 0.05), phase0=rng.uniform(0, 2 * math.pi),
      freq=2 * math.pi / rng.uniform(14, 26), leg_swing=walk * rng.uniform(0.35, 0.6),
      knee_bend=walk * rng.uniform(0.3, 0.8), arm_swing=walk * rng.uniform(0.3, 0.7),
      elbow_bend=rng.uniform(0.2, 0.9), arm_raise=wave * rng.uniform(1.2, 2.6),
      leg_spread=wave * rng.uniform(0.0, 0.35), raise_phase0=rng.uniform(0, 2 * math.pi),
      raise_freq=2 * math.pi / rng.uniform(12, 30),
      torso_colour=_jitter(rng, rng.uniform(30, 230, 3), 0),
      skin_colour=_jitter(rng, (150, 180, 225), 25),
      limb_colours=tuple(_jitter(rng, c, 12) for _, _, c, _ in LIMBS))


def frame_scale(width: int, height: int) -> float:
  return math.sqrt(width * height / (384 * 288))


def _make_video(rng: np.random.Generator, split: str, number: int, nframes: int, width: int,
                height: int, max_people: int, crowd_prob: float) -> Video:
  scale = frame_scale(width, height)
  people = [_make_person(rng, i, nframes, width, height, scale)
            for i in range(int(rng.integers(1, max_people + 1)))]
  cam_v = (rng.uniform(-1.0, 1.0) * scale, rng.uniform(-0.3, 0.3) * scale)
  wobble = (rng.uniform(0, 3) * scale, rng.uniform(20, 60), rng.uniform(0, 2 * math.pi))
  half = (nframes - 1) / 2
  margin = (int(math.ceil(abs(cam_v[0]) * half + wobble[0])) + 2,
            int(math.ceil(abs(cam_v[1]) * half + 0.5 * wobble[0])) + 2)
  crowd = None
  if rng.random() < crowd_prob:
    # A distant crowd in the upper part of the scene, somewhere the camera sees it.
    cw, ch = rng.uniform(0.15, 0.35) * width, rng.uniform(0.08, 0.15) * height
    x1 = margin[0] + rng.uniform(0, width - cw)
    y1 = margin[1] + rng.uniform(0.05, 0.35) * height
    crowd = (int(x1), int(y1), int(x1 + cw), int(y1 + ch))
  return Video(split=split, number=number, nframes=nframes, width=width, height=height,
               people=people, camera0=(float(margin[0]), float(margin[1])), camera_v=cam_v,
               camera_wobble=wobble, margin=margin, crowd=crowd,
               background_seed=int(rng.integers(2**63)), effects_seed=int(rng.integers(2**63)))


def make_videos(*, seed: int = 0, num_train: int = 12, num_val: int = 4, num_test: int = 4,
                frames: int | tuple[int, int] = (40, 80), width: int = 384, height: int = 288,
                max_people: int = 3, crowd_prob: float = 0.35) -> list[Video]:
  """The videos `generate` writes with the same arguments (cheap: backgrounds are lazy)."""
  lo, hi = (frames, frames) if isinstance(frames, int) else tuple(frames)
  if not 1 <= lo <= hi or max_people < 1 or width < 16 or height < 16:
    raise ValueError(f'need 1 <= frames min <= max, max_people >= 1 and a frame of at least '
                     f'16x16; got frames={frames!r}, max_people={max_people}, {width}x{height}')
  counts = dict(train=num_train, val=num_val, test=num_test)
  total = sum(counts.values())
  rng = np.random.default_rng(seed)
  # Distinct video numbers across splits, in the range of the real ones.
  numbers = rng.choice(np.arange(1, 30000), size=total, replace=False)
  children = np.random.SeedSequence(seed).spawn(total)
  videos, i = [], 0
  for split in SPLITS:
    for _ in range(counts[split]):
      vrng = np.random.default_rng(children[i])
      nframes = int(vrng.integers(lo, hi + 1))
      videos.append(_make_video(vrng, split, int(numbers[i]), nframes, width, height, max_people,
                                crowd_prob))
      i += 1
  return videos


def write_video(video: Video, root: str | os.PathLike, jpeg_quality: int = JPEG_QUALITY
                ) -> dict[str, Any]:
  """Writes one video's frames and annotation file under `root`; returns its annotation dict."""
  root = pathlib.Path(root)
  img_dir = root / 'images' / video.split / video.name
  img_dir.mkdir(parents=True, exist_ok=True)
  canvas = video.background_canvas()
  for t in range(video.nframes):
    ok, buf = cv2.imencode('.jpg', video.frame(t, canvas), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
      raise RuntimeError(f'JPEG encoding failed for {video.name} frame {t}')
    (img_dir / f'{t:06d}.jpg').write_bytes(buf.tobytes())
  data = video.to_json()
  ann_dir = root / 'annotations' / video.split
  ann_dir.mkdir(parents=True, exist_ok=True)
  with open(ann_dir / f'{video.name}.json', 'w') as f:
    json.dump(data, f, indent=4)
  return data


def generate(out_dir: str | os.PathLike, *, seed: int = 0, num_train: int = 12, num_val: int = 4,
             num_test: int = 4, frames: int | tuple[int, int] = (40, 80), width: int = 384,
             height: int = 288, max_people: int = 3, crowd_prob: float = 0.35,
             jpeg_quality: int = JPEG_QUALITY, layout: str = 'posetrack18') -> dict[str, Any]:
  """Writes a synthetic PoseTrack 2018 under `out_dir` (see the module docstring).

  Args:
    out_dir: the dataset root (created; existing files of the same names are overwritten, others
      are left alone).
    seed: everything is a function of the arguments: the same seed gives identical files.
    num_train, num_val, num_test: videos per split.
    frames: frames per video, an int or an inclusive (min, max) range drawn per video.
    width, height: frame size in pixels (all videos of a set have the same size).
    max_people: each video has 1 to max_people annotated people.
    crowd_prob: the probability that a video has a distant unannotated crowd (ignore regions).
    jpeg_quality: the JPEG quality of the frames.
    layout: 'posetrack18' (the official 2018 layout), or the same videos as PoseTrack21
      ('posetrack21': posetrack_data/, no test split) or PoseTrack17 ('posetrack17': the 2017
      format, frames renamed %08d from 1) lay them out (tfds_posetrack/posetrack18/layouts.py,
      write_layout).

  Returns:
    {'root': str, 'splits': {split: {'videos', 'frames', 'labeled_frames', 'annotations',
    'annotations_without_keypoints'}}}: the annotation counts are 0 for test (not written).
  """
  videos = make_videos(seed=seed, num_train=num_train, num_val=num_val, num_test=num_test,
                       frames=frames, width=width, height=height, max_people=max_people,
                       crowd_prob=crowd_prob)
  if layout not in layouts.LAYOUTS:
    raise ValueError(f'layout must be one of {", ".join(layouts.LAYOUTS)}, got {layout!r}')
  root = pathlib.Path(out_dir)
  root.mkdir(parents=True, exist_ok=True)
  # Another layout is written as PoseTrack18 first, then converted (its frames moved).
  staging = root if layout == 'posetrack18' else root / '.posetrack18'
  splits = {s: dict(videos=0, frames=0, labeled_frames=0, annotations=0,
                    annotations_without_keypoints=0) for s in SPLITS}
  for video in videos:
    data = write_video(video, staging, jpeg_quality)
    stats = splits[video.split]
    stats['videos'] += 1
    stats['frames'] += video.nframes
    stats['labeled_frames'] += sum(im['is_labeled'] for im in data['images'])
    anns = data.get('annotations', [])
    stats['annotations'] += len(anns)
    stats['annotations_without_keypoints'] += sum('bbox' not in a for a in anns)
  if staging != root:
    written = layouts.write_layout(staging, root, layout, move=True)
    shutil.rmtree(staging)
    splits = {s: v for s, v in splits.items() if s in written or not v['videos']}
  return {'root': str(root), 'layout': layout, 'splits': splits}


def _frames_arg(text: str) -> int | tuple[int, int]:
  """'60' or '40,80' (an inclusive range)."""
  parts = [int(p) for p in text.split(',')]
  if len(parts) == 1:
    return parts[0]
  if len(parts) == 2:
    return (parts[0], parts[1])
  raise argparse.ArgumentTypeError(f'expected N or MIN,MAX, got {text!r}')


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m posewarper_jax.data.synthetic',
      description='Write a synthetic PoseTrack 2018 dataset in the official layout and schema.')
  parser.add_argument('--out', required=True, help='dataset root to write')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--train', type=int, default=12, help='train videos')
  parser.add_argument('--val', type=int, default=4, help='val videos')
  parser.add_argument('--test', type=int, default=4, help='test videos')
  parser.add_argument('--frames', type=_frames_arg, default=(40, 80),
                      help='frames per video: N, or MIN,MAX (default 40,80)')
  parser.add_argument('--width', type=int, default=384)
  parser.add_argument('--height', type=int, default=288)
  parser.add_argument('--max-people', type=int, default=3)
  parser.add_argument('--crowd-prob', type=float, default=0.35)
  parser.add_argument('--quality', type=int, default=JPEG_QUALITY, help='JPEG quality')
  parser.add_argument('--layout', choices=sorted(layouts.LAYOUTS), default='posetrack18',
                      help='the directory layout and annotation format to write')
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out)
  if out.exists() and (not out.is_dir() or any(out.iterdir())):
    # The generator replaces files of its names: never in a folder it did not make.
    parser.error(f'--out {out} exists and is not empty: name a new folder')
  start = time.perf_counter()
  summary = generate(args.out, seed=args.seed, num_train=args.train, num_val=args.val,
                     num_test=args.test, frames=args.frames, width=args.width,
                     height=args.height, max_people=args.max_people, crowd_prob=args.crowd_prob,
                     jpeg_quality=args.quality, layout=args.layout)
  for split, s in summary['splits'].items():
    print(f'{split:5s}: {s["videos"]} videos, {s["frames"]} frames, {s["labeled_frames"]} '
          f'labeled, {s["annotations"]} person annotations '
          f'({s["annotations_without_keypoints"]} without keypoints)')
  print(f'wrote {summary["root"]} in {time.perf_counter() - start:.1f} s')
  return 0


if __name__ == '__main__':
  sys.exit(main())
