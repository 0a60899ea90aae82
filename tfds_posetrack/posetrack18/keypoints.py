"""The PoseTrack 2018 keypoint definition: joint names and order, flip pairs, skeleton.

The one place for these facts in the project (POSEWARPER_SPEC.md section 4). The order is COCO's
with the two eyes replaced by head_bottom and head_top; the ears are in the list but never
annotated in PoseTrack 2018. Joint indices below are 0-based, except SKELETON, which is 1-based
exactly as in the official `categories` entry of every annotation file.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    'nose', 'head_bottom', 'head_top', 'left_ear', 'right_ear',
    'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
    'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle',
)
NUM_JOINTS = len(JOINT_NAMES)
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

# Left/right pairs swapped by a horizontal flip. head_bottom (1) and head_top (2) lie on the
# body's midline, like the nose: they are not swapped.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14),
                                           (15, 16))
# COCO's 17 joints fill the same slots but for 1 and 2, its left and right eye, which a flip
# swaps too: the pairs of a COCO-pretraining set (coco.py: real COCO or the stand-in).
COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 2),) + FLIP_PAIRS
# The joint sets a training set may label (config.data.joints) -> their flip pairs.
JOINT_SETS: dict[str, tuple[tuple[int, int], ...]] = {'posetrack18': FLIP_PAIRS,
                                                       'coco': COCO_FLIP_PAIRS}

# The 19 limbs of the official categories entry, 1-based joint numbers (copied from the files).
SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)

# Head, shoulders, elbows, wrists / hips, knees, ankles (HRNet's half-body augmentation split).
UPPER_BODY_JOINTS: tuple[int, ...] = tuple(range(0, 11))
LOWER_BODY_JOINTS: tuple[int, ...] = tuple(range(11, 17))

# Per-joint falloffs of the object keypoint similarity: COCO's, which HRNet's OKS-NMS applies
# to PoseTrack's joints slot for slot (head_bottom and head_top take the eyes' values).
OKS_SIGMAS: tuple[float, ...] = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
                                 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089)

# Never annotated in PoseTrack 2018 (always written as 0, 0, 0).
UNANNOTATED_JOINTS: tuple[int, ...] = (JOINT_INDEX['left_ear'], JOINT_INDEX['right_ear'])

_CATEGORY: dict[str, Any] = {
    'supercategory': 'person',
    'id': 1,
    'name': 'person',
    'keypoints': list(JOINT_NAMES),
    'skeleton': [list(limb) for limb in SKELETON],
}


def categories() -> list[dict[str, Any]]:
  """The official `categories` list of a PoseTrack 2018 annotation file (a fresh copy)."""
  return [copy.deepcopy(_CATEGORY)]


def flip_permutation(pairs: tuple[tuple[int, int], ...] = FLIP_PAIRS) -> tuple[int, ...]:
  """perm[j] = the joint that j becomes under a horizontal flip (identity off the pairs)."""
  perm = list(range(NUM_JOINTS))
  for a, b in pairs:
    perm[a], perm[b] = b, a
  return tuple(perm)


# PoseTrack's person box is the extent of the annotated keypoints enlarged by this about its
# centre (spec 4).
BOX_ENLARGEMENT = 1.3


def keypoint_box(keypoints) -> list[float] | None:
  """[x, y, w, h] of a person from keypoints [J, 3] (or the flat J x (x, y, v) list): the
  annotated-keypoint extent x BOX_ENLARGEMENT, PoseTrack's rule; None without annotated joints."""
  points = np.asarray(keypoints, np.float64).reshape(-1, 3)
  points = points[points[:, 2] > 0, :2]
  if not len(points):
    return None
  (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
  w, h = (x2 - x1) * BOX_ENLARGEMENT, (y2 - y1) * BOX_ENLARGEMENT
  return [float((x1 + x2) / 2 - w / 2), float((y1 + y2) / 2 - h / 2), float(w), float(h)]


def box_has_area(box) -> bool:
  """Whether [x, y, w, h] can be cropped: w > 0 and h > 0. PoseTrack's rule gives a person
  with one annotated joint (or joints on one line) a box without area; HRNet's loaders drop
  such people, and so do the project's crops."""
  return bool(box[2] > 0 and box[3] > 0)


# PoseTrack 2017's 15 joints (poseval's native format and order, spec 8): POSETRACK17_JOINTS[j]
# is the joint with id j in an annorect's annopoints. 'neck' is PoseTrack 2018's head_bottom;
# the ears have no 2017 id.
POSETRACK17_JOINTS: tuple[str, ...] = (
    'right_ankle', 'right_knee', 'right_hip', 'left_hip', 'left_knee', 'left_ankle',
    'right_wrist', 'right_elbow', 'right_shoulder', 'left_shoulder', 'left_elbow', 'left_wrist',
    'neck', 'nose', 'head_top')
# POSETRACK17_TO_18[j] = the 17-keypoint index of 2017 joint id j.
POSETRACK17_TO_18: tuple[int, ...] = tuple(
    JOINT_INDEX['head_bottom' if name == 'neck' else name] for name in POSETRACK17_JOINTS)
