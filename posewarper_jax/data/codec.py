"""The heatmap codec: keypoints in a crop to heatmaps and back, HRNet's (mmpose 1.x keeps each
codec, encode and decode, in one place the same way).

    size = heatmap_size((288, 384))                              # (72, 96): (w, h) / STRIDE
    heatmaps, weights = encode(keypoints_in_crop, (288, 384), size, sigma=3.0)   # targets
    xy, peak = decode(heatmaps, center, scale)                   # frame pixels
    heatmaps = flip_back(heatmaps_of_flipped_crops)              # the flip test

Heatmaps are [..., h, w, J] (NHWC, joints last), a quarter of the crop in each direction.
Encoding is an unnormalized Gaussian per joint (spec 2.3); decoding is the argmax moved a
quarter pixel toward the larger neighbour, mapped back through the inverse of the crop's affine
transform (spec 3). A joint's score is its peak value.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from posewarper_jax.data import transforms
from tfds_posetrack.posetrack18.keypoints import flip_permutation

STRIDE = 4  # crop pixels per heatmap pixel


def heatmap_size(image_size: tuple[int, int]) -> tuple[int, int]:
  """(w, h) of the heatmaps of a crop of image_size = (w, h)."""
  return image_size[0] // STRIDE, image_size[1] // STRIDE


def encode(keypoints: np.ndarray, image_size: tuple[int, int], size: tuple[int, int],
           sigma: float = 3.0):
  """HRNet's targets: (heatmaps [h, w, J] float32, weights [J] float32).

  keypoints [J, 3] are in crop pixels (image_size = (w, h)); size is the heatmaps' (w, h),
  heatmap_size(image_size) but for tests. Joint j peaks at the heatmap pixel
  (int(x / stride + 0.5), int(y / stride + 0.5)) with an unnormalized Gaussian of std sigma,
  cut to a window of radius 3 sigma. Weight 0 for an unannotated joint and for one whose
  window lies wholly outside the heatmap.
  """
  w, h = size
  stride = np.asarray(image_size, np.float64) / np.asarray(size, np.float64)
  radius = sigma * 3
  # int() truncates toward zero, as the release does (it matters for joints left of the crop).
  mu = np.trunc(keypoints[:, :2] / stride + 0.5)
  upper_left = np.trunc(mu - radius)
  lower_right = np.trunc(mu + radius + 1)
  weights = (keypoints[:, 2] > 0).astype(np.float32)
  outside = ((upper_left[:, 0] >= w) | (upper_left[:, 1] >= h) | (lower_right[:, 0] < 0)
             | (lower_right[:, 1] < 0))
  weights[outside] = 0.0
  dx = np.arange(w)[:, None] - mu[:, 0]              # [w, J]
  dy = np.arange(h)[:, None] - mu[:, 1]              # [h, J]
  gx = np.where(np.abs(dx) <= radius, np.exp(-dx**2 / (2 * sigma**2)), 0.0)
  gy = np.where(np.abs(dy) <= radius, np.exp(-dy**2 / (2 * sigma**2)), 0.0)
  gy *= weights > 0
  # The separable window's outer product, written straight into the [h, w, J] layout.
  heatmaps = np.multiply(gy[:, None, :], gx[None, :, :], dtype=np.float32)
  return heatmaps, weights


def decode(heatmaps: np.ndarray, center: np.ndarray, scale: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
  """heatmaps [N, h, w, J], crops' center [N, 2] and scale [N, 2] -> (xy [N, J, 2] in frame
  pixels, peak [N, J]), as HRNet's get_final_preds (the release's decoding). A map whose peak
  is not positive decodes to the crop's (0, 0) corner mapped back, as there."""
  heatmaps = np.asarray(heatmaps, np.float32)
  n, h, w, joints = heatmaps.shape
  flat = heatmaps.transpose(0, 3, 1, 2).reshape(n, joints, h * w)
  index = np.argmax(flat, axis=2)
  peak = np.take_along_axis(flat, index[..., None], axis=2)[..., 0]
  x, y = (index % w).astype(np.float64), (index // w).astype(np.float64)
  x, y = np.where(peak > 0, x, 0.0), np.where(peak > 0, y, 0.0)
  # The quarter-pixel shift, where HRNet applies it: 1 < px < w - 1 and 1 < py < h - 1.
  px, py = np.floor(x + 0.5).astype(np.int64), np.floor(y + 0.5).astype(np.int64)
  inside = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
  maps = heatmaps.transpose(0, 3, 1, 2)                     # [N, J, h, w]
  nn_, jj = np.meshgrid(np.arange(n), np.arange(joints), indexing='ij')
  cx, cy = np.clip(px, 1, w - 2), np.clip(py, 1, h - 2)
  dx = maps[nn_, jj, cy, cx + 1] - maps[nn_, jj, cy, cx - 1]
  dy = maps[nn_, jj, cy + 1, cx] - maps[nn_, jj, cy - 1, cx]
  x = x + np.where(inside, 0.25 * np.sign(dx), 0.0)
  y = y + np.where(inside, 0.25 * np.sign(dy), 0.0)
  xy = np.empty((n, joints, 2))
  for i in range(n):
    back = transforms.crop_transform(center[i], scale[i], 0.0, (w, h), inverse=True)
    xy[i] = transforms.transform_points(np.stack([x[i], y[i]], -1), back)
  return xy, peak.astype(np.float64)


def flip_back(heatmaps):
  """Heatmaps [N, h, w, J] of horizontally flipped crops -> those of the original crops: mirror,
  swap left and right joints, and shift one pixel right, as HRNet's flip test does (its
  SHIFT_HEATMAP: the mirrored map is off by one pixel). Works on NumPy and JAX arrays (jit)."""
  back = jnp.asarray(heatmaps)[:, :, ::-1][..., list(flip_permutation())]
  return jnp.concatenate([back[:, :, :1], back[:, :, :-1]], axis=2)
