"""Reads PoseTrack 2018 annotation files (one JSON per video) into per-frame records.

The official layout (POSEWARPER_SPEC.md section 4):

    <root>/images/{train,val,test}/<seq>/<6-digit 0-based frame>.jpg
    <root>/annotations/{train,val,test}/<seq>.json   {images, annotations, categories}

Real files are untidy, and a reader must take them as they are: frames listed but missing on
disk, people without keypoints or without a box, keypoints outside the image, fields that some
tools add (width, height, mask_file, ...), test files without annotations. Nothing here needs
those extra fields, and what cannot be used is skipped and counted in a `Counter` (the caller
reports it). What is malformed (not JSON, a required field missing, a keypoint list of the
wrong length) is an error that names the file and the field.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
import re

import numpy as np

from posewarper_jax.data.keypoints import NUM_JOINTS

_FRAME_FILE = re.compile(r'(\d+)\.jpg$')
_REQUIRED_IMAGE_FIELDS = ('file_name', 'id', 'is_labeled', 'nframes')
_REQUIRED_PERSON_FIELDS = ('image_id', 'id', 'track_id')


@dataclasses.dataclass(frozen=True)
class Person:
  """One annotated person.

  keypoints: [17, 3] float64 (x, y, v), unannotated joints (0, 0, 0).
  bbox: [4] float64 (x, y, w, h); zeros when the annotation has none (has_bbox False).
  bbox_head: [4] float64 (x, y, w, h), drawn by hand, may leave the image; zeros if absent.
  """

  keypoints: np.ndarray
  bbox: np.ndarray
  has_bbox: bool
  bbox_head: np.ndarray
  track_id: int
  annotation_id: int


@dataclasses.dataclass(frozen=True)
class Frame:
  """One frame of a video, with its people (empty when unlabeled or a test video).

  ignore_regions: polygons, each [K, 2] float64 (x, y).
  """

  video_id: str
  frame_index: int
  nframes: int
  image_id: int
  is_labeled: bool
  file_name: str
  ignore_regions: list[np.ndarray]
  people: list[Person]


def load_json(path: pathlib.Path) -> dict:
  """The parsed file; a clear error naming it when it is not a PoseTrack JSON object."""
  try:
    data = json.loads(pathlib.Path(path).read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f'{path}: not valid JSON ({e})') from e
  if not isinstance(data, dict) or not isinstance(data.get('images'), list):
    raise ValueError(f'{path}: expected a JSON object with an "images" list')
  return data


def _field(entry: dict, name: str, path: pathlib.Path, what: str):
  if name not in entry:
    raise ValueError(f'{path}: {what} has no field {name!r}')
  return entry[name]


def _box(value, path: pathlib.Path, what: str) -> np.ndarray:
  box = np.asarray(value, np.float64).reshape(-1)
  if box.shape != (4,):
    raise ValueError(f'{path}: {what} must be [x, y, w, h], got {value!r}')
  return box


def ignore_polygons(image: dict, where: str) -> list[np.ndarray]:
  """An official `images` entry's ignore regions: [V, 2] float64 (x, y) arrays, in file order
  (an empty list gives [0, 2]). Unequal x and y lists raise a ValueError that starts with
  `where` (the file and the image). The reader and the metric share it."""
  xs, ys = image.get('ignore_regions_x') or [], image.get('ignore_regions_y') or []
  if len(xs) != len(ys):
    raise ValueError(f'{where}: ignore_regions_x has {len(xs)} polygons, '
                     f'ignore_regions_y {len(ys)}')
  polygons = []
  for x, y in zip(xs, ys, strict=True):
    if len(x) != len(y):
      raise ValueError(f'{where}: an ignore region has {len(x)} x and {len(y)} y coordinates')
    polygons.append(np.stack([np.asarray(x, np.float64), np.asarray(y, np.float64)], axis=1)
                    if x else np.zeros((0, 2), np.float64))
  return polygons


def _person(annotation: dict, path: pathlib.Path, counts: collections.Counter) -> Person | None:
  what = f'annotation {annotation.get("id")}'
  for name in _REQUIRED_PERSON_FIELDS:
    _field(annotation, name, path, what)
  raw = annotation.get('keypoints')
  if not raw:
    counts['people_without_keypoints'] += 1
    return None
  if len(raw) != 3 * NUM_JOINTS:
    raise ValueError(f'{path}: {what}: keypoints must have {3 * NUM_JOINTS} numbers '
                     f'(17 x (x, y, v)), got {len(raw)}')
  keypoints = np.asarray(raw, np.float64).reshape(NUM_JOINTS, 3)
  if not (keypoints[:, 2] > 0).any():
    counts['people_without_keypoints'] += 1
    return None
  has_bbox = annotation.get('bbox') is not None and len(annotation['bbox']) == 4
  if not has_bbox:
    counts['people_without_bbox'] += 1
  head = annotation.get('bbox_head')
  if head is None:
    counts['people_without_bbox_head'] += 1
  return Person(
      keypoints=keypoints,
      bbox=_box(annotation['bbox'], path, what + ' bbox') if has_bbox else np.zeros(4, np.float64),
      has_bbox=has_bbox,
      bbox_head=_box(head, path, what + ' bbox_head') if head is not None
      else np.zeros(4, np.float64),
      track_id=int(annotation['track_id']),
      annotation_id=int(annotation['id']))


def read_video(json_path: str | pathlib.Path, root: str | pathlib.Path,
               counts: collections.Counter | None = None) -> list[Frame]:
  """All frames the annotation file lists whose image exists under `root`, in file order.

  Args:
    json_path: annotations/<split>/<seq>.json.
    root: the dataset root (file_name is relative to it).
    counts: skipped and noteworthy items are added here (frames_missing, people_on_missing_frames,
      people_without_*, annotations_without_image).
  """
  json_path = pathlib.Path(json_path)
  root = pathlib.Path(root)
  counts = collections.Counter() if counts is None else counts
  data = load_json(json_path)
  people_by_image = collections.defaultdict(list)
  for annotation in data.get('annotations') or []:
    person = _person(annotation, json_path, counts)
    if person is not None:
      people_by_image[int(annotation['image_id'])].append(person)

  frames, seen = [], set()
  for image in data['images']:
    what = f'image {image.get("id", "?")}'
    for name in _REQUIRED_IMAGE_FIELDS:
      _field(image, name, json_path, what)
    match = _FRAME_FILE.search(image['file_name'])
    if match is None:
      raise ValueError(f'{json_path}: {what}: file_name {image["file_name"]!r} is not '
                       '<frame>.jpg')
    image_id = int(image['id'])
    seen.add(image_id)
    # Malformed or not, whether the file exists or not.
    polygons = ignore_polygons(image, f'{json_path}: image {image["id"]}')
    if not (root / image['file_name']).is_file():
      counts['frames_missing'] += 1
      counts['people_on_missing_frames'] += len(people_by_image.get(image_id, []))
      continue
    frames.append(Frame(
        video_id=str(image.get('vid_id', json_path.stem.split('_')[0])),
        frame_index=int(match[1]),
        nframes=int(image['nframes']),
        image_id=image_id,
        is_labeled=bool(image['is_labeled']),
        file_name=image['file_name'],
        ignore_regions=polygons,
        people=people_by_image.get(image_id, [])))
  counts['annotations_without_image'] += sum(
      len(p) for i, p in people_by_image.items() if i not in seen)
  return frames

