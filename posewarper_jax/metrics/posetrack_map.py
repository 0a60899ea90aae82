"""The official PoseTrack multi-person pose mAP (poseval's evaluateAP), exactly, vectorized.

    result = evaluate('annotations/val', 'predictions/')   # per-video 2018-format JSON files
    result['ap']          # 16 numbers in poseval's joint order (POSEVAL_JOINTS), then Total
    result['groups']      # {'Head', 'Shoulder', ..., 'Ankle', 'Total'}
    print(markdown_table(result))

    python -m posewarper_jax.metrics.posetrack_map --gt annotations/val --pred predictions/

The rules (POSEWARPER_SPEC.md section 5; checked against the official evaluator's outputs in
shared/reference/poseval_golden):

- Files in either of PoseTrack's formats, ground truth and predictions alike, each read as
  poseval reads it (2017: an annolist; 2018: images and annotations; tfds_posetrack/posetrack18/
  formats.py converts between them, as poseval does): the same data in either gives the same
  numbers.
- Videos are the ground truth's *.json files in sorted order; each needs a prediction file of
  the same name listing as many frames as the ground truth (frames pair by position).
- A frame is evaluated when the ground truth has at least one annotation object on it (its
  is_labeled flag is not read); predictions on other frames are ignored.
- A joint is absent when x == y == v == 0. People without joints are dropped; then every joint
  strictly inside an ignore region of the frame (ground truth and predictions alike) is
  dropped, and people left without joints with it.
- Head size = 0.6 * the diagonal of bbox_head; a predicted joint matches a ground-truth joint
  within 0.5 head sizes. pck[i, j] = matched joints of prediction i on person j / annotated
  joints of j; each prediction keeps only its best person (first on ties), each person takes
  the remaining prediction with the highest pck (first on ties), pck 0 assigns nothing. The
  joints of an unassigned prediction are false positives.
- Per joint type one ranking over all videos and frames, in the order videos (sorted), frames
  (ground-truth order), predictions (file order), ranked by numpy's default argsort of the
  scores, reversed (ties between a true and a false positive depend on that order); precision,
  recall, VOC all-point interpolated AP, x100. Total is the mean of the 15 joint APs, leaving
  out NaN ones (a joint predicted but never annotated: recall 0 / 0), as poseval does.

Predictions must carry a `scores` list with one score per keypoint (poseval would silently
score a joint without one at -9999). PoseTrack 2018's head_bottom is poseval's "neck".

Every number the metric reads from a file (keypoints, scores, bbox_head, ignore-region
coordinates) must be a finite JSON number: a NaN score would rank above every other (numpy sorts
NaN last, and the ranking is reversed), a string would be read as whatever it parses to. Anything
else is an EvaluationError naming the file, the frame, the annotation and the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfds_posetrack.posetrack18 import formats
from tfds_posetrack.posetrack18.annotations import finite_array, ignore_polygons
from tfds_posetrack.posetrack18.keypoints import (
    NUM_JOINTS,
    POSETRACK17_JOINTS,
    POSETRACK17_TO_18,
)

# poseval's 15 joints, in its order (PoseTrack 2017's joint ids); 'neck' is PoseTrack 2018's
# head_bottom. POSEVAL_TO_POSETRACK[i] = the PoseTrack 2018 keypoint index of poseval joint i.
POSEVAL_JOINTS: tuple[str, ...] = POSETRACK17_JOINTS
POSEVAL_TO_POSETRACK: tuple[int, ...] = POSETRACK17_TO_18
GROUPS: dict[str, tuple[str, ...]] = {
    'Head': ('head_top', 'neck', 'nose'),
    'Shoulder': ('right_shoulder', 'left_shoulder'),
    'Elbow': ('right_elbow', 'left_elbow'),
    'Wrist': ('right_wrist', 'left_wrist'),
    'Hip': ('right_hip', 'left_hip'),
    'Knee': ('right_knee', 'left_knee'),
    'Ankle': ('right_ankle', 'left_ankle'),
}
HEAD_SIZE_FACTOR = 0.6   # head size = 0.6 * diagonal of bbox_head
MATCH_THRESHOLD = 0.5    # in head sizes

_J = len(POSEVAL_JOINTS)


def head_size(bbox_head) -> float:
  """The metric's head size of a person: HEAD_SIZE_FACTOR x the diagonal of bbox_head [x, y, w,
  h]; a joint within MATCH_THRESHOLD head sizes of the ground truth is correct."""
  # As poseval: corners first, then the diagonal of their difference.
  x1, y1 = float(bbox_head[0]), float(bbox_head[1])
  x2, y2 = x1 + float(bbox_head[2]), y1 + float(bbox_head[3])
  return HEAD_SIZE_FACTOR * float(np.linalg.norm([x2 - x1, y2 - y1]))


class EvaluationError(ValueError):
  """A ground-truth or prediction file cannot be evaluated; the message names it."""


@dataclasses.dataclass
class Frame:
  """One evaluated frame, joints in poseval order, people without joints already dropped.

  gt_xy [G, 15, 2], gt_has [G, 15] bool, head_size [G]; pred_xy [P, 15, 2], pred_has [P, 15],
  pred_score [P, 15] (NaN where absent); file_name: the ground truth's image file name.
  """

  gt_xy: np.ndarray
  gt_has: np.ndarray
  head_size: np.ndarray
  pred_xy: np.ndarray
  pred_has: np.ndarray
  pred_score: np.ndarray
  file_name: str = ''


# --- Reading ------------------------------------------------------------------------------------

def _load_json(path: pathlib.Path) -> dict[str, Any]:
  """A ground-truth or prediction file in either format, as the 2018 dict (formats.py)."""
  try:
    data, _ = formats.read(path)
  except ValueError as e:
    raise EvaluationError(str(e)) from None
  for key in ('images', 'annotations'):
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
      raise EvaluationError(f'{path}: no "{key}" list (a PoseTrack 2018 file has images and '
                            'annotations, a PoseTrack 2017 file an annolist)')
  return data


def _short(value: Any, limit: int = 60) -> str:
  """repr(value), cut to `limit` characters: an error message quotes a value, not a file."""
  text = repr(value)
  return text if len(text) <= limit else text[:limit - 3] + '...'


def _finite_numbers(values: Any, where: str, field: str, what: str) -> np.ndarray:
  """[N] float64 of a JSON list of finite numbers; otherwise an EvaluationError that names
  `where` (the file, the frame, the annotation), `field` and the first bad entry. `what` says
  what the field must be ('17 finite numbers, one per keypoint')."""
  if not isinstance(values, list):
    raise EvaluationError(f'{where}: {field} must be a list of {what}, got {_short(values)}')
  array, k, reason = finite_array(values)
  if array is None:
    raise EvaluationError(f'{where}: {field}[{k}] is {reason}; {field} must be {what}')
  return array


def _keypoints(annotation: dict, where: str) -> np.ndarray | None:
  """[17, 3] float64, or None for a person without keypoints."""
  keypoints = annotation.get('keypoints')
  if keypoints is None or (isinstance(keypoints, list) and len(keypoints) == 0):
    return None
  what = f'{3 * NUM_JOINTS} finite numbers (x, y, v for each of the {NUM_JOINTS} joints)'
  if not isinstance(keypoints, list) or len(keypoints) != 3 * NUM_JOINTS:
    got = f'{len(keypoints)} values' if isinstance(keypoints, list) else _short(keypoints)
    raise EvaluationError(f'{where}: keypoints must be {what}, got {got}')
  return _finite_numbers(keypoints, where, 'keypoints', what).reshape(NUM_JOINTS, 3)


def _people(annotations: list[dict], with_scores: bool, where: str):
  """(xy [N, 15, 2], has [N, 15], extra [N, ...]) of the people that have a joint; extra is the
  scores [N, 15] (predictions) or the head sizes [N] (ground truth)."""
  xys, hases, extras = [], [], []
  for annotation in annotations:
    here = f'{where}, annotation {annotation.get("id", "?")}'
    keypoints = _keypoints(annotation, here)
    if keypoints is None:
      continue
    k = keypoints[list(POSEVAL_TO_POSETRACK)]
    has = ~((k[:, 0] == 0) & (k[:, 1] == 0) & (k[:, 2] == 0))
    if not has.any():
      continue
    if with_scores:
      scores = annotation.get('scores')
      if not isinstance(scores, list) or len(scores) != NUM_JOINTS:
        got = len(scores) if isinstance(scores, list) else _short(scores)
        raise EvaluationError(f'{here}: a prediction needs "scores", one per keypoint '
                              f'({NUM_JOINTS}), got {got}')
      # Every score, also of an absent joint: a NaN or a string is a broken file either way.
      extra = _finite_numbers(scores, here, 'scores',
                              f'{NUM_JOINTS} finite numbers, one per keypoint')
      extra = np.where(has, extra[list(POSEVAL_TO_POSETRACK)], np.nan)
    else:
      box = annotation.get('bbox_head')
      if not isinstance(box, list) or len(box) != 4:
        raise EvaluationError(f'{here}: a ground-truth person with keypoints needs bbox_head '
                              f'[x, y, w, h] (the head size of the metric), got {_short(box)}')
      extra = head_size(_finite_numbers(box, here, 'bbox_head', '4 finite numbers [x, y, w, h]'))
    xys.append(k[:, :2])
    hases.append(has)
    extras.append(extra)
  if not xys:
    shape = (0, _J) if with_scores else (0,)
    return np.zeros((0, _J, 2)), np.zeros((0, _J), bool), np.zeros(shape)
  return np.stack(xys), np.stack(hases), np.stack(extras)


def strictly_inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
  """[N] bool: points [N, 2] strictly inside polygon [V, 2] (even-odd rule; the boundary is
  outside), as shapely's Polygon.contains decides for the ignore regions."""
  if len(points) == 0:
    return np.zeros(0, bool)
  x, y = points[:, 0:1], points[:, 1:2]                       # [N, 1]
  x1, y1 = polygon[:, 0], polygon[:, 1]                        # [V]
  x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
  # Crossings of the ray to the right of each point (half-open in y: each vertex counted once).
  straddles = (y1 > y) != (y2 > y)
  with np.errstate(divide='ignore', invalid='ignore'):
    x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
  inside = (np.sum(straddles & (x < x_cross), axis=1) % 2) == 1
  # On an edge: collinear with it and within its extent.
  cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
  on_edge = ((cross == 0) & (np.minimum(x1, x2) <= x) & (x <= np.maximum(x1, x2))
             & (np.minimum(y1, y2) <= y) & (y <= np.maximum(y1, y2)))
  return inside & ~on_edge.any(axis=1)


def _drop_ignored(xy: np.ndarray, has: np.ndarray, polygons: list[np.ndarray]) -> np.ndarray:
  """`has` with the joints inside any polygon removed."""
  if not polygons or not has.any():
    return has
  flat = xy.reshape(-1, 2)
  ignored = np.zeros(len(flat), bool)
  for polygon in polygons:
    ignored |= strictly_inside(flat, polygon)
  return has & ~ignored.reshape(has.shape)


def _ignore_regions(image: dict, where: str) -> list[np.ndarray]:
  """The image's ignore regions that enclose something: [V, 2] float64 (x, y), V >= 3. Each
  coordinate must be a finite number (a NaN vertex would make the even-odd test decide at
  random); `where` names the file and the frame."""
  for field in ('ignore_regions_x', 'ignore_regions_y'):
    regions = image.get(field) or []
    if not isinstance(regions, list):
      raise EvaluationError(f'{where}: {field} must be a list of polygons (lists of numbers), '
                            f'got {_short(regions)}')
    for k, region in enumerate(regions):
      _finite_numbers(region, where, f'{field}[{k}]', 'a list of finite numbers (one polygon)')
  try:
    polygons = ignore_polygons(image, where)
  except ValueError as e:
    raise EvaluationError(str(e)) from None
  return [p for p in polygons if len(p) >= 3]  # fewer vertices enclose nothing


def load_video(gt_path: str | pathlib.Path, pred_path: str | pathlib.Path) -> list[Frame]:
  """The evaluated frames of one video, in the ground truth's images order."""
  gt_path, pred_path = pathlib.Path(gt_path), pathlib.Path(pred_path)
  video = gt_path.stem
  if not pred_path.exists():
    raise EvaluationError(f'video {video}: no prediction file {pred_path}')
  gt, pred = _load_json(gt_path), _load_json(pred_path)
  if len(gt['images']) != len(pred['images']):
    raise EvaluationError(
        f'video {video}: the prediction file has {len(pred["images"])} images, the ground truth '
        f'{len(gt["images"])} (frames pair by position: copy the ground truth\'s images list)')

  def by_frame(data: dict, path: pathlib.Path) -> list[list[dict]]:
    position = {}
    for index, image in enumerate(data['images']):
      if not isinstance(image, dict):
        raise EvaluationError(f'{path}: image {index} is {_short(image)}, not an object')
      if 'id' not in image and 'frame_id' not in image:
        raise EvaluationError(f'{path}: image {index} has no id')
      key = image.get('id', image.get('frame_id'))
      if isinstance(key, (list, dict)):  # unhashable: no annotation can name this frame
        raise EvaluationError(f'{path}: image {index}: id {_short(key)} is not a number or a '
                              'string')
      position[key] = index
    frames: list[list[dict]] = [[] for _ in data['images']]
    for k, annotation in enumerate(data['annotations']):
      if not isinstance(annotation, dict):
        raise EvaluationError(f'{path}: annotation {k} (in file order) is {_short(annotation)}, '
                              'not an object')
      key = annotation.get('image_id')
      index = None if isinstance(key, (list, dict)) else position.get(key)
      if index is None:
        raise EvaluationError(f'{path}: annotation {annotation.get("id", "?")} has image_id '
                              f'{annotation.get("image_id")}, which is not in its images list')
      frames[index].append(annotation)
    return frames

  gt_frames, pred_frames = by_frame(gt, gt_path), by_frame(pred, pred_path)
  frames = []
  for index, image in enumerate(gt['images']):
    if not gt_frames[index]:
      continue  # no ground-truth annotation object: not evaluated
    where = f'video {video}, frame {index}'
    gt_xy, gt_has, head = _people(gt_frames[index], False, f'{gt_path} ({where})')
    pr_xy, pr_has, score = _people(pred_frames[index], True, f'{pred_path} ({where})')
    polygons = _ignore_regions(image, f'{gt_path} ({where})')
    gt_has, pr_has = _drop_ignored(gt_xy, gt_has, polygons), _drop_ignored(pr_xy, pr_has, polygons)
    keep_gt, keep_pr = gt_has.any(1), pr_has.any(1)
    frames.append(Frame(gt_xy[keep_gt], gt_has[keep_gt], head[keep_gt], pr_xy[keep_pr],
                        pr_has[keep_pr], np.where(pr_has, score, np.nan)[keep_pr],
                        str(image.get('file_name', ''))))
  return frames


# --- Matching and AP ----------------------------------------------------------------------------

def match_frame(frame: Frame) -> np.ndarray:
  """[P, 15] bool: whether each predicted joint is a true positive (poseval's assignGTmulti)."""
  num_pred, num_gt = len(frame.pred_has), len(frame.gt_has)
  if num_pred == 0 or num_gt == 0:
    return np.zeros((num_pred, _J), bool)
  diff = frame.pred_xy[:, None] - frame.gt_xy[None]                        # [P, G, 15, 2]
  dist = np.sqrt(diff[..., 0] ** 2 + diff[..., 1] ** 2) / frame.head_size[None, :, None]
  both = frame.pred_has[:, None] & frame.gt_has[None]
  match = both & (dist <= MATCH_THRESHOLD)                                 # [P, G, 15]
  pck = match.sum(2) / frame.gt_has.sum(1)[None].astype(np.float64)        # [P, G]
  # Each prediction keeps its best person only (first on ties) ...
  best = np.argmax(pck, axis=1)
  kept = np.where(np.arange(num_gt)[None] == best[:, None], pck, 0.0)
  # ... then each person takes its best remaining prediction; pck 0 assigns nothing.
  owner = np.argmax(kept, axis=0)                                          # [G]
  owner[np.max(kept, axis=0) == 0] = -1
  labels = np.zeros((num_pred, _J), bool)
  for person, prediction in enumerate(owner):
    if prediction >= 0:
      labels[prediction] = match[prediction, person]
  return labels


def precision_recall(scores: np.ndarray, labels: np.ndarray, num_gt: float
                     ) -> tuple[np.ndarray, np.ndarray]:
  """poseval's computeRPC: the ranking is numpy's default argsort of scores, reversed."""
  order = np.argsort(scores)[::-1]
  true_positives = np.cumsum(labels[order] == 1)
  with np.errstate(divide='ignore', invalid='ignore'):
    recall = true_positives / num_gt
  precision = true_positives / np.arange(1, len(scores) + 1)
  return precision, recall


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
  """VOC all-point interpolated average precision (recall ends at 1 with precision 0)."""
  mrec = np.concatenate([[0.0], recall, [1.0]])
  mpre = np.concatenate([[0.0], precision, [0.0]])
  mpre = np.maximum.accumulate(mpre[::-1])[::-1]
  change = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
  return float(np.sum((mrec[change] - mrec[change - 1]) * mpre[change]))


def _metrics(frames: Sequence[Frame]) -> dict[str, Any]:
  scores = [[] for _ in range(_J)]
  labels = [[] for _ in range(_J)]
  num_gt = np.zeros(_J)
  for frame in frames:
    matched = match_frame(frame)
    num_gt += frame.gt_has.sum(0)
    for j in range(_J):
      present = frame.pred_has[:, j]
      scores[j].append(frame.pred_score[present, j])
      labels[j].append(matched[present, j])
  ap, pre, rec = np.zeros(_J + 1), np.zeros(_J + 1), np.zeros(_J + 1)
  for j in range(_J):
    s = np.concatenate(scores[j]) if scores[j] else np.zeros(0)
    if len(s) == 0:
      continue  # no prediction of this joint: AP, precision and recall 0
    precision, recall = precision_recall(s, np.concatenate(labels[j]), num_gt[j])
    ap[j] = voc_ap(recall, precision) * 100
    pre[j], rec[j] = precision[-1] * 100, recall[-1] * 100
  for values in (ap, pre, rec):
    # As poseval's computeMetrics: Total is the mean over the joints whose value is a number. A
    # joint predicted but never in the ground truth has recall 0 / 0, so a NaN AP (poseval's
    # too), which a plain mean would turn into a NaN Total.
    joints = values[:_J][~np.isnan(values[:_J])]
    values[_J] = joints.mean() if len(joints) else np.nan
  names = {str(i): name for i, name in enumerate(POSEVAL_JOINTS)} | {str(_J): 'total'}
  return {'ap': ap.tolist(), 'pre': pre.tolist(), 'rec': rec.tolist(), 'names': names,
          'groups': groups(ap.tolist()), 'num_frames': len(frames),
          'num_gt_joints': num_gt.astype(int).tolist()}


def frame_errors(frame: Frame, min_score: float = 0.2) -> np.ndarray:
  """[15] mistakes per joint type in one frame: ground-truth joints no assigned prediction
  matched, plus predicted joints scoring at least min_score that matched nothing."""
  matched = match_frame(frame)
  confident = frame.pred_has & (np.nan_to_num(frame.pred_score, nan=-np.inf) >= min_score)
  return (frame.gt_has.sum(0) - matched.sum(0)) + (confident & ~matched).sum(0)


def groups(ap: Sequence[float]) -> dict[str, float]:
  """Head .. Ankle (means of their joints) and Total (the mean of the 15 joints) from the 16
  numbers in poseval order."""
  out = {name: float(np.mean([ap[POSEVAL_JOINTS.index(j)] for j in joints]))
         for name, joints in GROUPS.items()}
  out['Total'] = float(ap[_J])
  return out


def evaluate(gt_dir: str | pathlib.Path, pred_dir: str | pathlib.Path,
             per_sequence: bool = False) -> dict[str, Any]:
  """The official mAP of the prediction files in pred_dir against the ground truth in gt_dir.

  Returns {'ap', 'pre', 'rec': 16 floats each (POSEVAL_JOINTS, then Total), 'names', 'groups',
  'num_frames', 'num_gt_joints'}, and with per_sequence also 'sequences': {video: the same
  computed on that video alone}.
  """
  gt_dir, pred_dir = pathlib.Path(gt_dir), pathlib.Path(pred_dir)
  gt_files = sorted(gt_dir.glob('*.json'))
  if not gt_files:
    raise EvaluationError(f'no ground-truth *.json files in {gt_dir}')
  videos = {path.stem: load_video(path, pred_dir / path.name) for path in gt_files}
  result = _metrics([frame for frames in videos.values() for frame in frames])
  if per_sequence:
    result['sequences'] = {video: _metrics(frames) for video, frames in videos.items()}
  return result


def markdown_table(result: dict[str, Any], title: str = 'mAP') -> str:
  """| title | Head | Shoulder | ... | Ankle | Total | with one row of `result`'s groups."""
  names = [*GROUPS, 'Total']
  values = ' | '.join(f'{result["groups"][n]:.1f}' for n in names)
  return (f'| {title} | ' + ' | '.join(names) + ' |\n|' + '---|' * (len(names) + 1)
          + f'\n| {result.get("label", "")} | {values} |')


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--gt', required=True, help='folder of ground-truth per-video JSON files')
  parser.add_argument('--pred', required=True, help='folder of prediction files, same names')
  parser.add_argument('--per_sequence', action='store_true', help='also one result per video')
  parser.add_argument('--out', help='write the results JSON here')
  args = parser.parse_args(argv)
  try:
    result = evaluate(args.gt, args.pred, per_sequence=args.per_sequence)
  except EvaluationError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  result['label'] = pathlib.Path(args.pred).name
  print(markdown_table(result, 'predictions'))
  print(f'\n{result["num_frames"]} frames evaluated')
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
  return 0


if __name__ == '__main__':
  sys.exit(main())
