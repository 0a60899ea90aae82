"""From heatmaps to PoseTrack 2018 prediction files (POSEWARPER_SPEC.md section 3).

    xy, peak = decode(heatmaps, center, scale)            # frame pixels, [N, J, 2] and [N, J]
    heatmaps = flip_back(model_output_on_flipped_crops)   # for the flip test
    write_predictions(out_dir, gt_dir, image_ids, xy, scores)

Decoding is HRNet's (and the release's): the argmax of each joint's heatmap, moved a quarter
pixel toward the larger neighbour in x and y separately when the peak is at least two pixels
inside the map, then mapped back through the inverse of the crop's affine transform. A joint's
score is its peak value, times the box score for detector boxes.
"""

from __future__ import annotations

import collections
import json
import pathlib
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from posewarper_jax.data import transforms
from posewarper_jax.data.keypoints import (
  JOINT_INDEX,
  NUM_JOINTS,
  OKS_SIGMAS,
  categories,
  flip_permutation,
)


def decode(heatmaps: np.ndarray, center: np.ndarray, scale: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
  """heatmaps [N, h, w, J], crops' center [N, 2] and scale [N, 2] -> (xy [N, J, 2] in frame
  pixels, peak [N, J]). A map whose peak is not positive decodes to the crop's (0, 0) corner
  mapped back, as HRNet's get_final_preds does."""
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


def oks_nms(xy: np.ndarray, scores: np.ndarray, areas: np.ndarray, threshold: float = 0.9,
            min_joint_score: float = 0.2) -> np.ndarray:
  """HRNet's OKS non-maximum suppression of one frame's poses: indices kept, best first.

  xy [N, 17, 2], scores [N, 17], areas [N] (the boxes' w * h). A pose's score is the mean of its
  joint scores above min_joint_score (0 without any); going down that ranking, a pose is dropped
  when its object keypoint similarity to a kept one exceeds `threshold`.
  """
  xy, scores, areas = np.asarray(xy, np.float64), np.asarray(scores), np.asarray(areas)
  confident = scores > min_joint_score
  pose_score = np.where(confident.any(1), np.sum(scores * confident, 1)
                        / np.maximum(confident.sum(1), 1), 0.0)
  variances = (2 * np.asarray(OKS_SIGMAS)) ** 2
  order = np.argsort(-pose_score, kind='stable')
  keep = []
  while len(order):
    best, rest = order[0], order[1:]
    keep.append(int(best))
    d2 = np.sum((xy[rest] - xy[best]) ** 2, axis=2)                         # [R, 17]
    e = d2 / variances / ((areas[rest, None] + areas[best]) / 2 + np.spacing(1)) / 2
    oks = np.exp(-e).mean(axis=1)
    order = rest[oks <= threshold]
  return np.asarray(keep, np.int64)


def nms_per_frame(image_ids: np.ndarray, xy: np.ndarray, scores: np.ndarray, areas: np.ndarray,
                  threshold: float) -> np.ndarray:
  """[N] bool: the poses oks_nms keeps, frame by frame."""
  keep = np.zeros(len(image_ids), bool)
  for image_id in np.unique(image_ids):
    members = np.flatnonzero(image_ids == image_id)
    keep[members[oks_nms(xy[members], scores[members], areas[members], threshold)]] = True
  return keep


def neck_from_shoulders(xy: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The release's scoring of "neck": head_bottom replaced by the shoulders' midpoint (score:
  their mean). Only to compare with the published tables; it costs accuracy (spec 5)."""
  xy, scores = xy.copy(), scores.copy()
  left, right = JOINT_INDEX['left_shoulder'], JOINT_INDEX['right_shoulder']
  xy[:, JOINT_INDEX['head_bottom']] = (xy[:, left] + xy[:, right]) / 2
  scores[:, JOINT_INDEX['head_bottom']] = (scores[:, left] + scores[:, right]) / 2
  return xy, scores


def write_predictions(out_dir: str | pathlib.Path, gt_dir: str | pathlib.Path,
                      image_ids: Sequence[int], xy: np.ndarray, scores: np.ndarray) -> int:
  """Per-video PoseTrack 2018 prediction files for every ground-truth file in gt_dir.

  image_ids [N] (the frames' ids as in the ground truth), xy [N, 17, 2], scores [N, 17]. Each
  file copies its ground truth's images list (the evaluator pairs frames by position) and holds
  one annotation per person with keypoints (x, y, 1), per-joint scores and a track id unique
  in its frame. Videos without predictions get a file with no annotations. Returns the number
  of files written.
  """
  out_dir, gt_dir = pathlib.Path(out_dir), pathlib.Path(gt_dir)
  gt_files = sorted(gt_dir.glob('*.json'))
  if not gt_files:
    raise FileNotFoundError(f'no ground-truth *.json files in {gt_dir}')
  xy, scores = np.asarray(xy, np.float64), np.asarray(scores, np.float64)
  if xy.shape != (len(image_ids), NUM_JOINTS, 2) or scores.shape != xy.shape[:2]:
    raise ValueError(f'write_predictions: xy {xy.shape} and scores {scores.shape} must be '
                     f'[{len(image_ids)}, {NUM_JOINTS}, 2] and [{len(image_ids)}, {NUM_JOINTS}]')
  people = collections.defaultdict(list)
  for i, image_id in enumerate(image_ids):
    people[int(image_id)].append(i)
  out_dir.mkdir(parents=True, exist_ok=True)
  written_ids = set()
  for path in gt_files:
    with open(path) as f:
      images = json.load(f)['images']
    annotations = []
    for image in images:
      image_id = int(image.get('id', image.get('frame_id')))
      for track, i in enumerate(people.get(image_id, ())):
        keypoints = np.concatenate([xy[i], np.ones((NUM_JOINTS, 1))], 1)
        annotations.append({'image_id': image_id, 'id': len(annotations), 'category_id': 1,
                            'track_id': track, 'keypoints': keypoints.ravel().tolist(),
                            'scores': scores[i].tolist()})
        written_ids.add(image_id)
    with open(out_dir / path.name, 'w') as f:
      json.dump({'images': images, 'annotations': annotations, 'categories': categories()}, f)
  missing = set(people) - written_ids
  if missing:
    raise ValueError(f'{len(missing)} predicted frames are in no ground-truth file of {gt_dir} '
                     f'(image ids such as {sorted(missing)[:3]})')
  return len(gt_files)
