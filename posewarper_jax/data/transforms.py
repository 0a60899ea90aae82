"""Top-down crops and augmentation with HRNet's conventions (NumPy + OpenCV); the targets are
the heatmap codec's (codec.py).

The facts are in POSEWARPER_SPEC.md section 2.3; joint names and flip pairs in the dataset
package (tfds_posetrack/posetrack18/keypoints.py).
Conventions:
- A box is [x, y, w, h] in pixels. A crop is (center [2], scale [2]), scale in units of
  PIXEL_STD = 200 pixels, (w, h) padded to the crop's aspect ratio. Only scale[0] sets the
  zoom (as in HRNet); scale[1] follows from the aspect ratio.
- Output sizes are (width, height), as OpenCV takes them; arrays are [H, W, C].
- Keypoints are [J, 3] (x, y, v) with v > 0 for annotated joints.
- A horizontal flip maps x to width - 1 - x (HRNet flips the pixel array) and swaps FLIP_PAIRS.
  Here it is folded into the crop's affine transform (`crop_transform(..., flip_width=W)`), so
  the full frame is never flipped in memory; the result equals flipping the frame first.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from tfds_posetrack.posetrack18.keypoints import (
    FLIP_PAIRS,
    LOWER_BODY_JOINTS,
    UPPER_BODY_JOINTS,
    flip_permutation,
)

PIXEL_STD = 200.0
BOX_PADDING = 1.25          # a person box is enlarged by this before cropping
HALF_BODY_PADDING = 1.5
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # RGB
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def sanitize_box(box, width: int, height: int) -> np.ndarray:
  """The release's box sanitising of a ground-truth [x, y, w, h] on a width x height frame
  (spec 2.3): x1 = max(0, x), y1 = max(0, y), x2 = min(W - 1, x1 + max(0, w - 1)),
  y2 = min(H - 1, y1 + max(0, h - 1)) -> [x1, y1, x2 - x1, y2 - y1]. A box that leaves the
  frame on the left or top is therefore shifted in (its width kept), one that leaves it on the
  right or bottom clipped. The release drops a person whose box has no area or whose corners
  cross (x2 < x1, y2 < y1: a box wholly right of or below the frame); then [0, 0, 0, 0], which
  keypoints.box_has_area refuses like any box without area. Detector boxes are not sanitised.
  """
  x, y, w, h = (float(v) for v in box)
  x1, y1 = max(0.0, x), max(0.0, y)
  x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
  y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
  if w * h <= 0 or x2 < x1 or y2 < y1:
    return np.zeros(4, np.float64)
  return np.array([x1, y1, x2 - x1, y2 - y1], np.float64)


def box_to_center_scale(box, aspect_ratio: float, padding: float = BOX_PADDING):
  """[x, y, w, h] -> (center [2], scale [2]): the box padded to w / h = aspect_ratio, x padding."""
  x, y, w, h = (float(v) for v in box)
  center = np.array([x + 0.5 * w, y + 0.5 * h], np.float64)
  if w > aspect_ratio * h:
    h = w / aspect_ratio
  else:
    w = h * aspect_ratio
  return center, np.array([w, h], np.float64) / PIXEL_STD * padding


def box_crop(box, output_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The unaugmented crop of a box [x, y, w, h] (evaluation, propagation, inference): (center
  [2], scale [2], the [2, 3] frame -> crop map) for output_size = (w, h)."""
  width, height = output_size
  center, scale = box_to_center_scale(box, width / height)
  return center, scale, crop_transform(center, scale, 0.0, output_size)


def crop_transform(center, scale, rotation: float, output_size: tuple[int, int],
                   flip_width: int | None = None, inverse: bool = False) -> np.ndarray:
  """The [2, 3] affine map from frame pixels to crop pixels (or back, with inverse=True).

  The crop of output_size = (w, h) shows scale[0] * PIXEL_STD frame pixels across, centred on
  `center`, rotated by `rotation` degrees (counter-clockwise in the image, as HRNet). With
  flip_width, the frame is first mirrored (x -> flip_width - 1 - x); center is given in the
  unflipped frame.
  """
  center = np.array(center, np.float64)
  if flip_width is not None:
    # HRNet mirrors the frame and the centre, then crops with the same rotation.
    center[0] = flip_width - 1 - center[0]
  out_w, out_h = output_size
  src_w = scale[0] * PIXEL_STD
  theta = np.deg2rad(rotation)
  # Three point pairs fix the map: the centre, a point up the rotated vertical, and a third
  # point at a right angle (the construction of HRNet's get_affine_transform).
  src_dir = np.array([0.5 * src_w * np.sin(theta), -0.5 * src_w * np.cos(theta)])
  src = np.stack([center, center + src_dir, np.zeros(2)])
  dst = np.array([[out_w * 0.5, out_h * 0.5], [out_w * 0.5, out_h * 0.5 - out_w * 0.5],
                  [0.0, 0.0]])
  src[2] = _third_point(src[0], src[1])
  dst[2] = _third_point(dst[0], dst[1])
  matrix = cv2.getAffineTransform(src.astype(np.float32), dst.astype(np.float32))
  matrix = matrix.astype(np.float64)
  if flip_width is not None:
    mirror = np.array([[-1.0, 0.0, flip_width - 1], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    matrix = matrix @ mirror
  if inverse:
    matrix = cv2.invertAffineTransform(matrix)
  return matrix


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  d = a - b
  return b + np.array([-d[1], d[0]])


def warp_image(image: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
  """Bilinear affine warp of an [H, W, C] image to output_size = (w, h), zeros outside."""
  return cv2.warpAffine(image, matrix, output_size, flags=cv2.INTER_LINEAR)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
  """[..., 2] points through a [2, 3] affine matrix."""
  points = np.asarray(points, np.float64)
  return points @ matrix[:, :2].T + matrix[:, 2]


def transform_keypoints(keypoints: np.ndarray, matrix: np.ndarray, flip: bool = False,
                        flip_pairs: tuple[tuple[int, int], ...] = FLIP_PAIRS) -> np.ndarray:
  """[J, 3] keypoints into the crop; with flip, the joints of flip_pairs swap (the matrix
  mirrors)."""
  out = np.array(keypoints, np.float64)
  out[:, :2] = transform_points(out[:, :2], matrix)
  if flip:
    out = out[list(flip_permutation(flip_pairs))]
  out[out[:, 2] <= 0, :2] = 0.0
  return out


def half_body_box(keypoints: np.ndarray, rng: np.random.Generator, aspect_ratio: float):
  """HRNet's half-body crop: (center, scale) around the upper or the lower annotated joints.

  The upper body is chosen when rng.standard_normal() < 0.5 (about 69% of the time: the
  release's draw, kept) and it has more than 2 joints; else the lower body if it has more than
  2, else the upper. Returns None when the chosen part has fewer than 2 joints.
  """
  visible = keypoints[:, 2] > 0
  upper = [j for j in UPPER_BODY_JOINTS if visible[j]]
  lower = [j for j in LOWER_BODY_JOINTS if visible[j]]
  if rng.standard_normal() < 0.5 and len(upper) > 2:
    chosen = upper
  else:
    chosen = lower if len(lower) > 2 else upper
  if len(chosen) < 2:
    return None
  points = keypoints[chosen, :2]
  low, high = points.min(axis=0), points.max(axis=0)
  center = points.mean(axis=0)
  w, h = high - low
  box = [center[0] - 0.5 * w, center[1] - 0.5 * h, w, h]
  _, scale = box_to_center_scale(box, aspect_ratio, HALF_BODY_PADDING)
  return center, scale


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """One random crop shared by frames A and B (spec 2.2: B gets exactly A's crop)."""

  center: np.ndarray
  scale: np.ndarray
  rotation: float
  flip: bool


def sample_augmentation(rng: np.random.Generator, box, keypoints: np.ndarray,
                        aspect_ratio: float, *, scale_factor: float = 0.35,
                        rotation_factor: float = 45.0, rotation_prob: float = 0.6,
                        flip_prob: float = 0.5, half_body_prob: float = 0.3,
                        half_body_min_joints: int = 8) -> Augmentation:
  """The release's training augmentation, drawn from rng (spec 2.3).

  Half body with probability half_body_prob when more than half_body_min_joints joints are
  annotated; scale x clip(N(0,1) * 0.35 + 1, 0.65, 1.35); rotation clip(N(0,1) * 45, -90, 90)
  with probability 0.6; horizontal flip with probability 0.5.
  """
  center, scale = box_to_center_scale(box, aspect_ratio)
  if (np.sum(keypoints[:, 2] > 0) > half_body_min_joints and rng.random() < half_body_prob):
    half = half_body_box(keypoints, rng, aspect_ratio)
    if half is not None:
      center, scale = half
  scale = scale * np.clip(rng.standard_normal() * scale_factor + 1, 1 - scale_factor,
                          1 + scale_factor)
  rotation = 0.0
  if rng.random() <= rotation_prob:
    rotation = float(np.clip(rng.standard_normal() * rotation_factor, -2 * rotation_factor,
                             2 * rotation_factor))
  flip = bool(rng.random() <= flip_prob)
  return Augmentation(center, scale, rotation, flip)


def normalize(frames_uint8, dtype=np.float32):
  """[..., 3] RGB uint8 -> ImageNet-normalized `dtype` (spec 2.3), computed in float32.

  Written with array methods only, so it runs on NumPy arrays and, traced, on the device: the
  train step and the predictor normalize there (a quarter of the bytes cross to the device).
  """
  x = frames_uint8.astype(np.float32) / 255.0
  return ((x - IMAGENET_MEAN) / IMAGENET_STD).astype(dtype)
