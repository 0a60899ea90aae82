"""Reads PoseTrack 2018 annotation files (one JSON per video) into per-frame records.

The official layout (POSEWARPER_SPEC.md section 4):

    <root>/images/{train,val,test}/<seq>/<6-digit 0-based frame>.jpg
    <root>/annotations/{train,val,test}/<seq>.json   {images, annotations, categories}

Real files are untidy, and a reader must take them as they are: frames listed but missing on
disk, people without keypoints or without a box, keypoints outside the image, fields that some
tools add (width, height, mask_file, ...), test files without annotations. Nothing here needs
those extra fields, and what cannot be used is skipped and counted in a `Counter` (the caller
reports it). What is malformed is an error that names the file, the entry (image or annotation
id) and the field: not JSON, a required field missing, a string or a non-finite number where a
number belongs, an is_labeled that is not a boolean, a keypoint list of the wrong length, a
duplicate image or annotation id, a video id that is not a plain file name or a file_name that
leaves the dataset root (names from the files become paths: the reader is where they are
checked).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import pathlib
import re

import numpy as np

from tfds_posetrack.posetrack18 import formats
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS

_FRAME_FILE = re.compile(r'(\d+)\.jpg$')
_REQUIRED_IMAGE_FIELDS = ('file_name', 'id', 'is_labeled', 'nframes')
_REQUIRED_PERSON_FIELDS = ('image_id', 'id', 'track_id')
# Frame files have six digits (and the pair view's lookup relies on it).
MAX_FRAMES = 10**6
_INT32, _INT64 = (-2**31, 2**31 - 1), (0, 2**63 - 1)
# A file name's limit on common file systems (ext4, APFS, NTFS), in bytes.
_NAME_BYTES = 255


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
  """The parsed file as a 2018-format dict (a PoseTrack17 file converted: formats.py); a clear
  error naming it when it is not a PoseTrack annotation file."""
  data, _ = formats.read(path)
  if not isinstance(data, dict) or not isinstance(data.get('images'), list):
    raise ValueError(f'{path}: expected a JSON object with an "images" list (PoseTrack18 / 21) '
                     'or an "annolist" (PoseTrack17)')
  if not isinstance(data.get('annotations') or [], list):
    raise ValueError(f'{path}: "annotations" must be a list, got '
                     f'{type(data["annotations"]).__name__}')
  for key in ('images', 'annotations'):
    for i, entry in enumerate(data.get(key) or []):
      if not isinstance(entry, dict):
        raise ValueError(f'{path}: {key}[{i}] must be a JSON object, got {entry!r:.80}')
  return data


def _field(entry: dict, name: str, path: pathlib.Path, what: str):
  if name not in entry:
    raise ValueError(f'{path}: {what} has no field {name!r}')
  return entry[name]


def number(value, where: str, field: str, *, integer: bool = False,
           bounds: tuple[float, float] | None = None) -> int | float:
  """A JSON number as an int (integer: ints, or floats without a fraction) or a finite float.

  Every number the reader takes from a file goes through here (or `numbers`), so that a
  string, null, boolean, NaN or infinity is an error that starts with `where` (the file and the
  entry) and names the field, instead of a bare ValueError or a NaN that trains as a target.
  bounds: inclusive (low, high).
  """
  # bool is an int subclass; JSON's true is no number.
  ok = type(value) is int or (type(value) is float and math.isfinite(value)
                              and (not integer or value.is_integer()))
  if not ok:
    kind = 'an integer' if integer else 'a finite number'
    raise ValueError(f'{where}: {field} must be {kind}, got {value!r:.80}')
  try:
    value = int(value) if integer else float(value)
  except OverflowError:
    raise ValueError(f'{where}: {field} must be a finite number, got an integer too large for '
                     'a float') from None
  if bounds is not None and not bounds[0] <= value <= bounds[1]:
    raise ValueError(f'{where}: {field} must be in [{bounds[0]}, {bounds[1]}], got {value}')
  return value


def why_not_a_finite_number(value) -> str | None:
  """Why a value read from JSON is not a finite number, for an error message ("'0.5' (str)",
  'nan', 'None (null)'), or None when it is one. bool is refused, although Python counts it as
  an int: JSON's true is no number. The reader, the metric and the boxes files all ask this."""
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return f'{value!r:.60} ({"null" if value is None else type(value).__name__})'
  try:
    return None if math.isfinite(value) else repr(value)
  except OverflowError:  # an integer too large for a float
    return f'{value!r:.60} (too large)'


def finite_array(values: list) -> tuple[np.ndarray | None, int, str | None]:
  """(values as [N] float64, -1, None) for a list of finite JSON numbers, else (None, the index
  of the first value that is not one, why). One type test per element and one array in the
  common case: a real split has ~10^5 people, a prediction file as many."""
  if all(type(v) is int or type(v) is float for v in values):
    try:
      array = np.asarray(values, np.float64)
    except OverflowError:  # an int beyond float64
      array = None
    if array is not None and np.isfinite(array).all():
      return array, -1, None
  for i, v in enumerate(values):
    why = why_not_a_finite_number(v)
    if why is not None:
      return None, i, why
  raise AssertionError('unreachable: every value is a finite number')


def numbers(values, where: str, field: str, length: int | None = None) -> np.ndarray:
  """A JSON list of finite numbers as [N] float64 (N == length when given); errors as `number`'s,
  with the position in the list."""
  if not isinstance(values, list):
    raise ValueError(f'{where}: {field} must be a list of numbers, got {values!r:.80}')
  if length is not None and len(values) != length:
    raise ValueError(f'{where}: {field} must have {length} numbers, got {len(values)}')
  array, i, _ = finite_array(values)
  if array is None:
    number(values[i], where, f'{field}[{i}]')  # raises, in number()'s words
  return array


def _box(value, path: pathlib.Path, what: str, field: str) -> np.ndarray:
  """[4] float64 (x, y, w, h); w, h >= 0 (zero: PoseTrack's rule for one annotated joint)."""
  if not isinstance(value, list) or len(value) != 4:
    raise ValueError(f'{path}: {what}: {field} must be [x, y, w, h], got {value!r:.80}')
  box = numbers(value, f'{path}: {what}', field, 4)
  if (box[2:] < 0).any():
    raise ValueError(f'{path}: {what}: {field} has a negative width or height: {value!r}')
  return box


def check_name(name, where: str, field: str) -> str:
  """`name` when it is a plain file-name component; a ValueError starting with `where` if not.

  Video ids become paths (<workdir>/render/<video id>, keys of per-video outputs): "../x", "a/b",
  "." or a name with control characters would write outside the folder meant for it.
  """
  if not isinstance(name, str):
    raise ValueError(f'{where}: {field} must be a string, got {name!r:.80}')
  problem = (
      'is empty' if not name
      else 'is "." or ".."' if name in ('.', '..')
      else 'contains a path separator ("/" or "\\")' if '/' in name or '\\' in name
      else 'contains a control or other non-printable character'
      if not all(c.isprintable() for c in name)
      else f'is longer than {_NAME_BYTES} bytes' if len(name.encode('utf-8', 'replace'))
      > _NAME_BYTES else None)
  if problem:
    raise ValueError(f'{where}: {field} {name!r:.80} {problem}: it must be a plain file name')
  return name


def _check_file_name(file_name, where: str) -> str:
  """An image's file_name, relative to the dataset root and staying inside it."""
  if not isinstance(file_name, str):
    raise ValueError(f'{where}: file_name must be a string, got {file_name!r:.80}')
  if file_name.startswith(('/', '\\')):
    raise ValueError(f'{where}: file_name {file_name!r} is absolute: it must be relative to the '
                     'dataset root (images/<split>/<video>/<frame>.jpg)')
  # Either separator: a backslash is part of a file name on Linux, but a separator on Windows.
  if '..' in re.split(r'[/\\]', file_name):
    raise ValueError(f'{where}: file_name {file_name!r} has a ".." component: it would read '
                     'outside the dataset root')
  if not all(c.isprintable() for c in file_name):
    raise ValueError(f'{where}: file_name {file_name!r} contains a control or other '
                     'non-printable character')
  return file_name


def _is_labeled(value, where: str) -> bool:
  # bool('false') is True: only JSON booleans, and the 0/1 that some tools write.
  if type(value) is bool:
    return value
  if type(value) is int and value in (0, 1):
    return bool(value)
  raise ValueError(f'{where}: is_labeled must be true or false (or 0 or 1), got {value!r:.80}')


def ignore_polygons(image: dict, where: str) -> list[np.ndarray]:
  """An official `images` entry's ignore regions: [V, 2] float64 (x, y) arrays, in file order
  (an empty list gives [0, 2]). Unequal x and y lists, or coordinates that are no finite
  numbers, raise a ValueError that starts with `where` (the file and the image). The reader and
  the metric share it."""
  xs, ys = image.get('ignore_regions_x') or [], image.get('ignore_regions_y') or []
  for name, value in (('ignore_regions_x', xs), ('ignore_regions_y', ys)):
    if not isinstance(value, list):
      raise ValueError(f'{where}: {name} must be a list of polygons, got {value!r:.80}')
  if len(xs) != len(ys):
    raise ValueError(f'{where}: ignore_regions_x has {len(xs)} polygons, '
                     f'ignore_regions_y {len(ys)}')
  polygons = []
  for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
    x = numbers(x, where, f'ignore_regions_x[{i}]')
    y = numbers(y, where, f'ignore_regions_y[{i}]')
    if len(x) != len(y):
      raise ValueError(f'{where}: an ignore region has {len(x)} x and {len(y)} y coordinates')
    polygons.append(np.stack([x, y], axis=1) if len(x) else np.zeros((0, 2), np.float64))
  return polygons


def _entry(kind: str, entry: dict, index: int) -> str:
  """How an error names an entry: by its id when it has a usable one, else by position."""
  entry_id = entry.get('id')
  if type(entry_id) is int:
    return f'{kind} {entry_id}'
  return f'{kind} number {index} in the file (id {entry_id!r:.40})'


def _person(annotation: dict, path: pathlib.Path, counts: collections.Counter,
            index: int) -> tuple[int, int, Person | None]:
  """(annotation id, image id, the person; None when it has no annotated keypoint)."""
  what = _entry('annotation', annotation, index)
  where = f'{path}: {what}'
  for name in _REQUIRED_PERSON_FIELDS:
    _field(annotation, name, path, what)
  annotation_id = number(annotation['id'], where, 'id', integer=True, bounds=_INT64)
  image_id = number(annotation['image_id'], where, 'image_id', integer=True, bounds=_INT64)
  track_id = number(annotation['track_id'], where, 'track_id', integer=True, bounds=_INT32)
  raw = annotation.get('keypoints')
  if not raw:
    counts['people_without_keypoints'] += 1
    return annotation_id, image_id, None
  if isinstance(raw, list) and len(raw) != 3 * NUM_JOINTS:
    raise ValueError(f'{where}: keypoints must have {3 * NUM_JOINTS} numbers (17 x (x, y, v)), '
                     f'got {len(raw)}')
  keypoints = numbers(raw, where, 'keypoints').reshape(NUM_JOINTS, 3)
  if not (keypoints[:, 2] > 0).any():
    counts['people_without_keypoints'] += 1
    return annotation_id, image_id, None
  # Absent, null and [] all mean no box; any other value must be a box.
  bbox, head = annotation.get('bbox'), annotation.get('bbox_head')
  has_bbox = bbox not in (None, [])
  if has_bbox:
    bbox = _box(bbox, path, what, 'bbox')
    if not (bbox[2:] > 0).all():
      # Kept (PoseTrack's rule gives one annotated joint such a box); the crops drop it.
      counts['people_with_bbox_without_area'] += 1
  else:
    counts['people_without_bbox'] += 1
  if head in (None, []):
    counts['people_without_bbox_head'] += 1
  return annotation_id, image_id, Person(
      keypoints=keypoints,
      bbox=bbox if has_bbox else np.zeros(4, np.float64),
      has_bbox=has_bbox,
      bbox_head=_box(head, path, what, 'bbox_head') if head not in (None, [])
      else np.zeros(4, np.float64),
      track_id=track_id,
      annotation_id=annotation_id)


def read_video(json_path: str | pathlib.Path, root: str | pathlib.Path,
               counts: collections.Counter | None = None) -> list[Frame]:
  """All frames the annotation file lists whose image exists under `root`, in file order.

  Args:
    json_path: annotations/<split>/<seq>.json.
    root: the dataset root (file_name is relative to it).
    counts: skipped and noteworthy items are added here (frames_missing, people_on_missing_frames,
      people_without_*, people_with_bbox_without_area, annotations_without_image).

  Raises:
    ValueError naming the file, the entry and the field, for what is malformed (the module's
    docstring lists it).
  """
  json_path = pathlib.Path(json_path)
  root = pathlib.Path(root)
  counts = collections.Counter() if counts is None else counts
  data = load_json(json_path)
  people_by_image = collections.defaultdict(list)
  annotation_ids = {}
  for i, annotation in enumerate(data.get('annotations') or []):
    annotation_id, image_id, person = _person(annotation, json_path, counts, i)
    if annotation_id in annotation_ids:
      raise ValueError(f'{json_path}: annotation id {annotation_id} appears twice (annotations '
                       f'number {annotation_ids[annotation_id]} and {i} in the file)')
    annotation_ids[annotation_id] = i
    if person is not None:
      people_by_image[image_id].append(person)

  frames, seen = [], {}
  stem_id = formats.video_id_of(json_path)
  video_id, frame_files = None, {}
  for i, image in enumerate(data['images']):
    what = _entry('image', image, i)
    where = f'{json_path}: {what}'
    for name in _REQUIRED_IMAGE_FIELDS:
      _field(image, name, json_path, what)
    image_id = number(image['id'], where, 'id', integer=True, bounds=_INT64)
    if image_id in seen:
      # The frames would share one list of people.
      raise ValueError(f'{json_path}: image id {image_id} appears twice (images number '
                       f'{seen[image_id]} and {i} in the file): image ids must be unique')
    seen[image_id] = i
    file_name = _check_file_name(image['file_name'], where)
    match = _FRAME_FILE.search(file_name)
    if match is None:
      raise ValueError(f'{where}: file_name {file_name!r} is not <frame>.jpg')
    # A PoseTrack17 frame is numbered by its imgnum (formats.py), not by its 1-based name.
    frame_index = image['imgnum'] - 1 if 'imgnum' in image else int(match[1])
    nframes = number(image['nframes'], where, 'nframes', integer=True, bounds=(1, MAX_FRAMES))
    if frame_index >= MAX_FRAMES:
      raise ValueError(f'{where}: file_name {file_name!r} is frame {frame_index}: frame files '
                       f'have six digits (below {MAX_FRAMES})')
    if frame_index >= nframes:
      # The pair view clips support frames to [0, nframes - 1]: it would pair backwards. The
      # frames on disk are the truth; the count reports the file's wrong nframes.
      counts['frames_past_nframes'] += 1
    if frame_index in frame_files:
      raise ValueError(f'{where}: frame {frame_index} is listed twice ({frame_files[frame_index]!r}'
                       f' and {file_name!r})')
    frame_files[frame_index] = file_name
    raw_vid = image.get('vid_id', stem_id)
    if type(raw_vid) is int and raw_vid >= 0:  # some conversions write the number itself
      raw_vid = str(raw_vid)
    vid = check_name(raw_vid, where, 'vid_id' if 'vid_id' in image else
                     f'the video id from the file name ({json_path.name})')
    if video_id is not None and vid != video_id:
      # One file is one video; the frame table groups frames by video id.
      raise ValueError(f'{where}: vid_id {vid!r} differs from the file\'s other images '
                       f'({video_id!r}): one annotation file is one video')
    video_id = vid
    is_labeled = _is_labeled(image['is_labeled'], where)
    # Malformed or not, whether the file exists or not.
    polygons = ignore_polygons(image, where)
    if not (root / file_name).is_file():
      counts['frames_missing'] += 1
      counts['people_on_missing_frames'] += len(people_by_image.get(image_id, []))
      continue
    frames.append(Frame(
        video_id=video_id,
        frame_index=frame_index,
        nframes=nframes,
        image_id=image_id,
        is_labeled=is_labeled,
        file_name=file_name,
        ignore_regions=polygons,
        people=people_by_image.get(image_id, [])))
  counts['annotations_without_image'] += sum(
      len(p) for i, p in people_by_image.items() if i not in seen)
  if frame_files:  # nframes at least past the last listed frame (frames_past_nframes)
    last = max(frame_files) + 1
    frames = [f if f.nframes >= last else dataclasses.replace(f, nframes=last) for f in frames]
  return frames
