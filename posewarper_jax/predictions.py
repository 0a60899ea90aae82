"""Poses as PoseTrack prediction files (2018 or 2017 format), and what HRNet does to them first.

    keep = nms_per_frame(image_ids, xy, scores, areas, 0.9)   # HRNet's OKS-NMS
    xy, scores = neck_from_shoulders(xy, scores)              # the release's "neck"
    write_predictions(out_dir, gt_dir, image_ids, xy, scores)

Poses come from the heatmap codec (codec.decode, frame pixels); a joint's score is its peak
value, times the box score for detector boxes (POSEWARPER_SPEC.md section 3).
"""

from __future__ import annotations

import collections
import pathlib
from collections.abc import Sequence

import numpy as np

from tfds_posetrack.posetrack18 import formats
from tfds_posetrack.posetrack18.keypoints import JOINT_INDEX, NUM_JOINTS, OKS_SIGMAS, categories


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
                      image_ids: Sequence[int], xy: np.ndarray, scores: np.ndarray,
                      annotation_format: str | None = None) -> int:
  """Per-video PoseTrack prediction files for every ground-truth file in gt_dir.

  image_ids [N] (the frames' ids as in the ground truth, or as formats.py numbers a 2017
  file's frames), xy [N, 17, 2], scores [N, 17]. Each file copies its ground truth's frames
  (the evaluator pairs them by position) and holds one person per pose with keypoints (x, y, 1),
  per-joint scores and a track id unique in its frame. Videos without predictions get a file
  with no people. annotation_format: 'posetrack18' or 'posetrack17' (formats.FORMATS); None
  writes each file in its ground truth's format, as poseval expects. Returns the number of
  files written.
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
    gt, gt_format = formats.read(path)
    images = gt['images']
    annotations = []
    for image in images:
      image_id = int(image.get('id', image.get('frame_id')))
      for track, i in enumerate(people.get(image_id, ())):
        keypoints = np.concatenate([xy[i], np.ones((NUM_JOINTS, 1))], 1)
        annotations.append({'image_id': image_id, 'id': len(annotations), 'category_id': 1,
                            'track_id': track, 'keypoints': keypoints.ravel().tolist(),
                            'scores': scores[i].tolist()})
        written_ids.add(image_id)
    formats.write(out_dir / path.name,
                  {'images': images, 'annotations': annotations, 'categories': categories()},
                  annotation_format or gt_format)
  missing = set(people) - written_ids
  if missing:
    raise ValueError(f'{len(missing)} predicted frames are in no ground-truth file of {gt_dir} '
                     f'(image ids such as {sorted(missing)[:3]})')
  return len(gt_files)
