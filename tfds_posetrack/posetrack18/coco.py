"""COCO keypoints -> PoseTrack18: each COCO image one labeled one-frame video of the train split.

    python -m tfds_posetrack.posetrack18.coco --coco COCO_DIR --out POSETRACK18_DIR

COCO_DIR is a COCO keypoint directory: IMAGES/ (train2017/, the images) and ANNOTATIONS
(annotations/person_keypoints_train2017.json: {images, annotations, categories}), the real
COCO's or the project's stand-in (posewarper_jax/data/stills). `to_posetrack18` writes the
PoseTrack18 official layout that the dataset builder reads (posetrack18_dataset_builder.py):

  images/train/<seq>/000000.jpg      a hard link to the COCO image (a copy where links fail)
  annotations/train/<seq>.json       {categories, images, annotations} of the one frame
  converted_from_coco.json           MARKER: what was converted (written last)

<seq> is formats.sequence_name(<COCO image id>, 'coco', 'train'), '<6-digit id>_coco_train':
the video number is the image id, so every video is unique; image id = frame_id =
int('1' + number + '0000'), annotation id = image id x 100 + the person's index.

Converted: images with at least one person with a labeled keypoint (HRNet trains on no other).
Keypoints slot by slot, COCO's meaning kept (slots 1 and 2 stay the eyes, where PoseTrack18 has
head_bottom and head_top: a COCO-pretraining set flips with keypoints.COCO_FLIP_PAIRS), v > 0 -> 1
and unlabeled joints (0, 0, 0); bbox = COCO's box (the visible extent, what HRNet crops COCO
people by); bbox_head from `head_box` (COCO has none); track_id the person's index in the
image; categories = the COCO file's own person category (COCO's joint names). People without
labeled keypoints are left out; crowd annotations (iscrowd 1) become ignore regions (their box
as a polygon), PoseTrack's mark for people that are there but not annotated. No val split is
written: the builder builds the splits whose annotation folder exists.

Checked before anything is written, every problem collected into one ValueError that names the
annotations file and the annotation or image id (the first MAX_PROBLEMS listed): a missing
annotations file (FileNotFoundError) or one that is not JSON; an annotation that is not an
object, lacks a field the conversion reads, has a category other than 1 (person: the
person_keypoints files hold no other), iscrowd other than 0 or 1, keypoints that are not
17 x 3 finite numbers with v in {0, 1, 2}, a bbox that is not 4 finite numbers with width and
height >= 0, an image_id not among the images, an id another annotation has; an image without
an integer id or a plain file_name, an id another image has; and, of the images to convert, an
id beyond 6 digits, more than 99 people, or no image file.

Written into a temporary sibling folder (.<out name>.partial-*) and renamed to out_dir at the
end, so that a failed or interrupted conversion leaves no half-written out_dir (a killed process
can leave that hidden sibling, never out_dir). out_dir must be new or empty: a folder with other
contents is refused (FileExistsError), so that two conversions never mix, except one holding
MARKER of the same input (the annotations file's SHA-256): that conversion is done, and nothing
is written. The images are not hashed (real COCO's are 18 GB): an image changed in place after
a conversion is not noticed, and with hard links the converted frame changes with it.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import secrets
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tfds_posetrack.posetrack18 import formats
from tfds_posetrack.posetrack18 import keypoints as kp

IMAGES = 'train2017'
ANNOTATIONS = 'annotations/person_keypoints_train2017.json'
MARKER = 'converted_from_coco.json'
MAX_PROBLEMS = 20
# The marker's 'format': raise it when the output of the same input changes, so that a folder
# converted before is refused rather than taken as done.
FORMAT = 1

COCO_JOINTS: tuple[str, ...] = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
    'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
    'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle',
)
# COCO's skeleton is PoseTrack18's (1-based, the same 19 pairs in the same order).
COCO_SKELETON: tuple[tuple[int, int], ...] = kp.SKELETON
PERSON = 1  # COCO's person category id
MAX_PEOPLE = 99  # annotation ids (image id x 100 + index) leave two digits per image


def category() -> dict[str, Any]:
  """COCO's person category, as in person_keypoints_*.json (a fresh dict)."""
  return {'supercategory': 'person', 'id': PERSON, 'name': 'person',
          'keypoints': list(COCO_JOINTS), 'skeleton': [list(limb) for limb in COCO_SKELETON]}


# --- bbox_head -------------------------------------------------------------------------------

# Head box (w, h) in units of the standing height: a box 1.1x the head, which is about 0.1-0.12
# wide and 0.13-0.145 tall in people (and 0.116 x 0.144 as the stand-in draws it).
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


# --- Checking the input ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Video:
  """One image to convert: its COCO image entry, its people (labeled, by annotation id) and
  its crowd annotations."""

  image: dict[str, Any]
  people: list[dict[str, Any]]
  crowds: list[dict[str, Any]]


class _Problems:
  """The problems found in one annotations file: all counted, the first MAX_PROBLEMS kept."""

  def __init__(self, path: pathlib.Path):
    self.path, self.kept, self.count = path, [], 0

  def add(self, where: str, what: str) -> None:
    self.count += 1
    if len(self.kept) < MAX_PROBLEMS:
      self.kept.append(f'{where}: {what}')

  def raise_any(self) -> None:
    if not self.count:
      return
    more = f' (the first {MAX_PROBLEMS} below)' if self.count > MAX_PROBLEMS else ''
    lines = '\n'.join(f'  {p}' for p in self.kept)
    raise ValueError(f'{self.path}: {self.count} problem{"s" * (self.count > 1)} in the COCO '
                     f'annotations{more}; nothing was written:\n{lines}')


def _is_int(value: Any) -> bool:
  return type(value) is int  # not bool, which JSON's true would give


def _finite(values: Any, length: int) -> bool:
  """Whether values is a list of `length` finite JSON numbers (NaN and Infinity parse)."""
  return (isinstance(values, list) and len(values) == length
          and all(type(v) in (int, float) and math.isfinite(v) for v in values))


def _check_annotation(ann: Any, where: str, image_ids: set, problems: _Problems) -> bool:
  """Adds ann's problems; whether it is usable (then the conversion may read every field)."""
  if not isinstance(ann, dict):
    problems.add(where, f'not a JSON object: {ann!r:.60}')
    return False
  crowd = ann.get('iscrowd')
  # Crowds' keypoints are not read: only a person's are required.
  needed = ('id', 'image_id', 'category_id', 'iscrowd', 'bbox') + (() if crowd else ('keypoints',))
  missing = [k for k in needed if k not in ann]
  if missing:
    problems.add(where, f'no field {", ".join(map(repr, missing))}')
    return False
  ok = True
  if not _is_int(ann['category_id']) or ann['category_id'] != PERSON:
    problems.add(where, f'category_id {ann["category_id"]!r:.60}, not {PERSON} (person): a COCO '
                        'person_keypoints file holds people only')
    ok = False
  if crowd not in (0, 1) or type(crowd) is bool:
    problems.add(where, f'iscrowd must be 0 or 1, got {crowd!r:.60}')
    ok = False
  if not _is_int(ann['image_id']) or ann['image_id'] not in image_ids:
    problems.add(where, f'image_id {ann["image_id"]!r:.60} is not among the file\'s images')
    ok = False
  bbox = ann['bbox']
  if not _finite(bbox, 4) or bbox[2] < 0 or bbox[3] < 0:
    problems.add(where, f'bbox must be [x, y, width, height], 4 finite numbers with width and '
                        f'height >= 0, got {bbox!r:.80}')
    ok = False
  if 'keypoints' in ann:
    points = ann['keypoints']
    if not _finite(points, 3 * len(COCO_JOINTS)):
      problems.add(where, f'keypoints must be {len(COCO_JOINTS)} x (x, y, v): '
                          f'{3 * len(COCO_JOINTS)} finite numbers, got {points!r:.80}')
      ok = False
    elif any(v not in (0, 1, 2) for v in points[2::3]):
      problems.add(where, f'keypoint visibilities (every third number) must be 0, 1 or 2, got '
                          f'{points[2::3]}')
      ok = False
  return ok


def _check(coco_dir: pathlib.Path, path: pathlib.Path, data: Any) -> tuple[list[_Video], dict]:
  """(the images to convert, in image id order; the person category to write) of a parsed
  annotations file, or the ValueError listing its problems (module docstring)."""
  problems = _Problems(path)
  if not isinstance(data, dict):
    problems.add('the file', f'not a JSON object with images and annotations: {data!r:.60}')
    problems.raise_any()
  for key in ('images', 'annotations'):
    if not isinstance(data.get(key), list):
      problems.add(key, f'must be a list, got {data.get(key)!r:.60}')
  categories = data.get('categories', [])
  if not isinstance(categories, list) or not all(isinstance(c, dict) for c in categories):
    problems.add('categories', f'must be a list of objects, got {categories!r:.60}')
    categories = []
  person = next((c for c in categories if c.get('id') == PERSON), category())
  names = person.get('keypoints')
  if not (isinstance(names, list) and len(names) == len(COCO_JOINTS)
          and all(isinstance(n, str) for n in names)):
    problems.add(f'category {PERSON}', f'keypoints must be the {len(COCO_JOINTS)} joint names, '
                                       f'got {names!r:.80}')
  problems.raise_any()

  images: dict[int, dict[str, Any]] = {}  # the well-formed ones
  image_ids = set()
  for i, image in enumerate(data['images']):
    if not isinstance(image, dict) or not _is_int(image.get('id')):
      problems.add(f'images[{i}]', f'not an object with an integer id: {image!r:.80}')
      continue
    where = f'image {image["id"]}'
    if image['id'] in image_ids:
      problems.add(where, 'id used by more than one image')
      continue
    image_ids.add(image['id'])
    name = image.get('file_name')
    if not isinstance(name, str) or pathlib.PurePosixPath(name).name != name or name in (
        '', '.', '..'):
      problems.add(where, f'file_name must be a file name in {IMAGES}/, got {name!r:.80}')
    else:
      images[image['id']] = image

  people, crowds = collections.defaultdict(list), collections.defaultdict(list)
  seen = collections.Counter()
  for i, ann in enumerate(data['annotations']):
    has_id = isinstance(ann, dict) and _is_int(ann.get('id'))
    where = f'annotation {ann["id"]}' if has_id else f'annotations[{i}] (no integer id)'
    if has_id:
      seen[ann['id']] += 1
      if seen[ann['id']] == 2:
        problems.add(where, 'id used by more than one annotation')
    if not _check_annotation(ann, where, image_ids, problems) or not has_id:
      continue
    if ann['iscrowd']:
      crowds[ann['image_id']].append(ann)
    elif any(v > 0 for v in ann['keypoints'][2::3]):
      people[ann['image_id']].append(ann)

  videos = []
  for number in sorted(people):
    if number not in images:  # its entry is malformed: reported above
      continue
    where = f'image {number}'
    if not 0 <= number < 10**6:
      problems.add(where, 'the id does not fit a 6-digit PoseTrack video number')
    if len(people[number]) > MAX_PEOPLE:
      problems.add(where, f'{len(people[number])} people with keypoints: annotation ids allow '
                          f'{MAX_PEOPLE}')
    file = coco_dir / IMAGES / images[number]['file_name']
    if not file.is_file():
      problems.add(where, f'no image file {file}')
    videos.append(_Video(images[number], sorted(people[number], key=lambda a: a['id']),
                         crowds.get(number, [])))
  problems.raise_any()
  return videos, person


# --- Writing ---------------------------------------------------------------------------------


def _video_json(video: _Video, seq: str, vid_id: str, person: dict) -> dict[str, Any]:
  """One converted video's annotation file (module docstring)."""
  iid = formats.image_id(vid_id, 0)
  entry: dict[str, Any] = {
      'has_no_densepose': True, 'is_labeled': True,
      'file_name': f'images/train/{seq}/000000.jpg', 'nframes': 1, 'frame_id': iid,
      'vid_id': vid_id}
  if video.crowds:
    boxes = [c['bbox'] for c in video.crowds]
    entry['ignore_regions_y'] = [[y, y, y + h, y + h] for _, y, _, h in boxes]
    entry['ignore_regions_x'] = [[x, x + w, x + w, x] for x, _, w, _ in boxes]
  entry['id'] = iid
  out = []
  for k, ann in enumerate(video.people):
    flat = []
    for x, y, v in zip(*(ann['keypoints'][i::3] for i in range(3)), strict=True):
      flat += [x, y, 1] if v > 0 else [0, 0, 0]
    out.append({'bbox_head': head_box(ann['keypoints'], ann['bbox']), 'keypoints': flat,
                'track_id': k, 'image_id': iid, 'bbox': list(ann['bbox']), 'scores': [],
                'category_id': PERSON, 'id': iid * 100 + k})
  return {'categories': [person], 'images': [entry], 'annotations': out}


def write_videos(coco_dir: pathlib.Path, videos: list[_Video], person: dict,
                 root: pathlib.Path) -> None:
  """Writes the converted videos under root (an empty folder)."""
  images_dir, annotations_dir = root / 'images' / 'train', root / 'annotations' / 'train'
  annotations_dir.mkdir(parents=True)
  for video in videos:
    number = video.image['id']
    seq = formats.sequence_name(number, 'coco', 'train')
    frame_dir = images_dir / seq
    frame_dir.mkdir(parents=True)
    source, target = coco_dir / IMAGES / video.image['file_name'], frame_dir / '000000.jpg'
    try:
      os.link(source, target)
    except OSError:  # another file system, or links not allowed
      shutil.copyfile(source, target)
    data = _video_json(video, seq, f'{number:06d}', person)
    with open(annotations_dir / f'{seq}.json', 'w') as f:
      json.dump(data, f, indent=4)


def refuse_unless_empty(root: pathlib.Path, why: str) -> None:
  """FileExistsError unless root is new or an empty folder: a command that writes a whole
  folder never writes into one it did not make (`why`: what root holds instead). The remedy
  names another folder, never the deletion of this one."""
  root = pathlib.Path(root)
  if root.exists() and not root.is_dir():
    raise FileExistsError(f'{root} exists and is not a folder: not writing into it')
  if root.is_dir() and any(root.iterdir()):
    raise FileExistsError(f'{root} {why}: not writing into it; choose a new or empty folder')


def write_in_place(root: pathlib.Path, write: Callable[[pathlib.Path], Any]) -> Any:
  """write(staging) into a temporary sibling folder (.<root name>.partial-*), renamed to root
  (new or empty) when it returns: a failed or interrupted write leaves no half-written root.
  Returns what write returned."""
  root = pathlib.Path(root)
  root.parent.mkdir(parents=True, exist_ok=True)
  staging = root.parent / f'.{root.name}.partial-{os.getpid()}-{secrets.token_hex(4)}'
  staging.mkdir()
  try:
    result = write(staging)
    try:
      # Replaces an empty root (POSIX rename), fails on one that filled meanwhile.
      os.rename(staging, root)
    except OSError as e:
      raise FileExistsError(f'{root}: could not move the new folder into place ({e}); nothing '
                            'was written') from None
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return result


def _read_marker(root: pathlib.Path) -> dict | None:
  """The MARKER of root, or None when there is none (or it is not this converter's JSON)."""
  try:
    marker = json.loads((root / MARKER).read_text())
  except (OSError, ValueError):
    return None
  return marker if isinstance(marker, dict) else None


def convert(coco_dir: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[dict, bool]:
  """to_posetrack18 that says what it did: (out_dir's MARKER record: {'converter', 'format',
  'annotations' (the absolute path read), 'annotations_sha256', 'videos', 'people'}, whether it
  was written now rather than found done)."""
  coco_dir, root = pathlib.Path(coco_dir), pathlib.Path(out_dir)
  path = coco_dir / ANNOTATIONS
  try:
    raw = path.read_bytes()
  except FileNotFoundError:
    raise FileNotFoundError(f'{path}: no such file (a COCO keypoint directory holds '
                            f'{ANNOTATIONS} and the images in {IMAGES}/)') from None
  except IsADirectoryError:
    raise FileNotFoundError(f'{path}: a folder, not the COCO annotations file') from None
  digest = hashlib.sha256(raw).hexdigest()
  marker = _read_marker(root) if root.is_dir() else None
  if marker and marker.get('annotations_sha256') == digest and marker.get('format') == FORMAT:
    return marker, False
  what = (f'holds the conversion of another COCO file ({marker.get("annotations")}, sha256 '
          f'{str(marker.get("annotations_sha256"))[:12]}..., format {marker.get("format")})'
          if marker else 'is not empty and not a COCO conversion')
  refuse_unless_empty(root, f'{what} (two sets must never mix)')
  try:
    data = json.loads(raw)
  # ValueError: JSONDecodeError, or not UTF-8.
  except (ValueError, RecursionError) as e:
    raise ValueError(f'{path}: not valid JSON ({e}); nothing was written') from None
  videos, person = _check(coco_dir, path, data)
  marker = {'converter': 'tfds_posetrack.posetrack18.coco', 'format': FORMAT,
            'annotations': str(path.absolute()), 'annotations_sha256': digest,
            'videos': len(videos), 'people': sum(len(v.people) for v in videos)}

  def write(staging: pathlib.Path) -> None:
    write_videos(coco_dir, videos, person, staging)
    (staging / MARKER).write_text(json.dumps(marker, indent=2) + '\n')

  write_in_place(root, write)
  return marker, True


def to_posetrack18(coco_dir: str | os.PathLike, out_dir: str | os.PathLike) -> pathlib.Path:
  """Converts the COCO keypoint directory coco_dir into PoseTrack18's layout in out_dir (the
  module docstring says what is written, what is checked first and when out_dir is refused);
  a no-op when out_dir holds the conversion of the same annotations file.

  Raises:
    FileNotFoundError: no annotations file.
    ValueError: the input's problems (all checked before anything is written).
    FileExistsError: out_dir is not empty and is not this input's conversion.

  Returns the PoseTrack18 root (out_dir).
  """
  convert(coco_dir, out_dir)
  return pathlib.Path(out_dir)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m tfds_posetrack.posetrack18.coco',
      description='Convert a COCO keypoint directory (train2017/ and annotations/'
                  'person_keypoints_train2017.json) into the PoseTrack18 layout, each image one '
                  'labeled one-frame train video. Checks the whole input first; writes nothing '
                  'on a problem; never writes into a folder with other contents.')
  parser.add_argument('--coco', required=True, help='the COCO keypoint directory to read')
  parser.add_argument('--out', required=True,
                      help='the PoseTrack18 root to write (new or empty; a finished conversion '
                           'of the same input is left as it is)')
  args = parser.parse_args(argv)
  try:
    marker, made = convert(args.coco, args.out)
  except (OSError, ValueError) as e:
    parser.exit(2, f'{parser.prog}: error: {e}\n')
  done = 'wrote' if made else 'already converted (nothing written):'
  print(f'{done} {args.out}: {marker["videos"]} one-frame train videos, {marker["people"]} people')
  return 0


if __name__ == '__main__':
  sys.exit(main())
