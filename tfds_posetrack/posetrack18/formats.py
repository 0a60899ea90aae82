"""PoseTrack's two annotation formats (one JSON file per video) and the conversion between them.

- 2018 (PoseTrack18, PoseTrack21; POSEWARPER_SPEC.md section 4): {images, annotations,
  categories}, COCO-like, 17 keypoints per person as a flat x, y, v list.
- 2017 (PoseTrack17, poseval's native format; spec 8): {"annolist": [one entry per frame]},
  every scalar wrapped in a one-element list; per frame "image": [{"name"}], "imgnum" (1-based),
  "is_labeled", optional "ignore_regions" ([{"point": [{"x": [..], "y": [..]}, ..]}] per
  polygon) and "annorect" (one per person: the HEAD box x1, y1, x2, y2, track_id, optional
  score, and "annopoints": [{"point": [{"id", "x", "y", optional "score", "is_visible"}]}], only
  the annotated joints, 15 ids: keypoints.POSETRACK17_JOINTS).

`from_posetrack17` turns a 2017 file into the 2018 dict that the reader (annotations.py) and the
metric (posewarper_jax/metrics/posetrack_map.py) take, as poseval converts between the two
before it evaluates; `to_posetrack17` writes the other way (predictions, tests, the synthetic
generator's PoseTrack17 layout). What the 2017 format does not have, the conversion derives:

- the person box: the annotated-keypoint extent x 1.3 about its centre (keypoints.keypoint_box,
  as poseval and PoseTrack derive it);
- image ids: int('1' + vid_id + 4-digit 0-based frame), as PoseTrack18 numbers its frames;
  annotation ids: image id * 100 + the person's position in the frame; vid_id: the file name's
  leading digits ('000342' of 000342_mpii_relpath_5sec_testsub.json);
- frames: the 0-based frame of a 2017 entry is imgnum - 1 (the file's own numbering; its image
  names are 1-based, 00000001.jpg): the 2018 dict's images keep "imgnum", so that the reader
  numbers frames by it and not by the name; nframes: the largest imgnum of the file;
- joints: (x, y, 1) for each listed point, the ears (no 2017 id) absent as (0, 0, 0); per-joint
  "score"s become the 2018 "scores" list (0 for absent joints) when any point has one.

Malformed input is a ValueError that names the file, the frame (its position in annolist), the
person and the field.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS, POSETRACK17_TO_18, keypoint_box

_NUM_17 = len(POSETRACK17_TO_18)


FORMATS = ('posetrack18', 'posetrack17')


def read(path: str | pathlib.Path) -> tuple[dict, str]:
  """(the file as a 2018-format dict, its format: 'posetrack18' or 'posetrack17'). A file that
  is not JSON, or a 2017 file that is malformed, is a ValueError naming it; a 2018 file is
  returned as parsed (its readers check it)."""
  try:
    data = json.loads(pathlib.Path(path).read_text())
  # ValueError: also not UTF-8, or an integer beyond Python's 4300 digits.
  except (ValueError, RecursionError) as e:
    raise ValueError(f'{path}: not valid JSON ({e})') from e
  if is_posetrack17(data):
    return from_posetrack17(data, path), 'posetrack17'
  return data, 'posetrack18'


def write(path: str | pathlib.Path, data: dict, annotation_format: str) -> None:
  """Writes a 2018-format dict to path in `annotation_format` (FORMATS)."""
  if annotation_format not in FORMATS:
    raise ValueError(f'annotation format must be one of {", ".join(FORMATS)}, got '
                     f'{annotation_format!r}')
  out = to_posetrack17(data) if annotation_format == 'posetrack17' else data
  pathlib.Path(path).write_text(json.dumps(out))


def is_posetrack17(data: Any) -> bool:
  """Whether a parsed annotation file is in the 2017 format (an "annolist")."""
  return isinstance(data, dict) and 'annolist' in data


def _scalar(value: Any, where: str, field: str) -> Any:
  """A 2017 scalar: [v] -> v (a bare v is taken too: some tools unwrap)."""
  if isinstance(value, list):
    if len(value) != 1:
      raise ValueError(f'{where}: {field} must be a one-element list, got {value!r:.80}')
    value = value[0]
  if isinstance(value, (list, dict)):
    raise ValueError(f'{where}: {field} must be a number or a string, got {value!r:.80}')
  return value


def _number(value: Any, where: str, field: str, *, integer: bool = False) -> int | float:
  value = _scalar(value, where, field)
  ok = type(value) is int or (type(value) is float and np.isfinite(value)
                              and (not integer or value.is_integer()))
  if not ok:
    raise ValueError(f'{where}: {field} must be {"an integer" if integer else "a finite number"}'
                     f', got {value!r:.80}')
  return int(value) if integer else float(value)


def _list(entry: dict, name: str, where: str) -> list:
  value = entry.get(name) or []
  if not isinstance(value, list):
    raise ValueError(f'{where}: {name} must be a list, got {value!r:.80}')
  for i, item in enumerate(value):
    if not isinstance(item, dict):
      raise ValueError(f'{where}: {name}[{i}] must be a JSON object, got {item!r:.80}')
  return value


def video_id_of(path: str | pathlib.Path) -> str:
  """The video id of an annotation file: the leading field of its name ('000342')."""
  return pathlib.Path(path).stem.split('_')[0]


def sequence_name(number: int, source: str, split: str) -> str:
  """PoseTrack18's name of a video (its annotation file's stem and its image folder):
  '<6-digit number>_<source>_train' in train, '..._test' in val and test (PoseTrack18 names its
  validation videos ..._test too). source: where the video comes from, as the official names
  say it ('mpii', 'bonn'); the project's own sets name theirs ('mpii': the synthetic videos,
  'coco': COCO images converted to one-frame videos, coco.py). The number is the vid_id."""
  if not 0 <= number < 10**6:
    raise ValueError(f'a video number has 6 digits (0 .. 999999), got {number}')
  if not source or '_' in source or '/' in source:
    raise ValueError(f'a video source is one word without "_" or "/", got {source!r}')
  return f'{number:06d}_{source}_{"train" if split == "train" else "test"}'


def image_id(video_id: str, frame: int) -> int:
  """PoseTrack18's image id of a frame: int('1' + vid_id + 4-digit 0-based frame)."""
  return int(f'1{video_id}{frame:04d}')


def _polygons(entry: dict, where: str) -> tuple[list[list[float]], list[list[float]]]:
  xs, ys = [], []
  for i, region in enumerate(_list(entry, 'ignore_regions', where)):
    here = f'{where}, ignore_regions[{i}]'
    points = _list(region, 'point', here)
    xs.append([_number(p.get('x'), f'{here}, point {k}', 'x') for k, p in enumerate(points)])
    ys.append([_number(p.get('y'), f'{here}, point {k}', 'y') for k, p in enumerate(points)])
  return xs, ys


def _person_17(rect: dict, where: str) -> tuple[list[float], list[float] | None, bool]:
  """(keypoints 17 x (x, y, v) flat, scores or None, whether any joint is annotated)."""
  keypoints = np.zeros((NUM_JOINTS, 3))
  scores = np.zeros(NUM_JOINTS)
  has_score = False
  annopoints = _list(rect, 'annopoints', where)
  if len(annopoints) > 1:
    raise ValueError(f'{where}: annopoints must hold one object with the "point" list, got '
                     f'{len(annopoints)}')
  points = _list(annopoints[0], 'point', f'{where}, annopoints[0]') if annopoints else []
  for k, point in enumerate(points):
    here = f'{where}, point {k}'
    if 'id' not in point:
      raise ValueError(f'{here}: no field "id" (the joint, 0 .. {_NUM_17 - 1})')
    joint = _number(point['id'], here, 'id', integer=True)
    if not 0 <= joint < _NUM_17:
      raise ValueError(f'{here}: id must be a PoseTrack 2017 joint id, 0 .. {_NUM_17 - 1}, '
                       f'got {joint}')
    index = POSETRACK17_TO_18[joint]
    if keypoints[index, 2]:
      raise ValueError(f'{here}: joint id {joint} is listed twice')
    for field in ('x', 'y'):
      if field not in point:
        raise ValueError(f'{here}: no field {field!r}')
    keypoints[index] = (_number(point['x'], here, 'x'), _number(point['y'], here, 'y'), 1)
    if 'score' in point:
      scores[index] = _number(point['score'], here, 'score')
      has_score = True
  return keypoints.ravel().tolist(), scores.tolist() if has_score else None, bool(points)


def from_posetrack17(data: dict, path: str | pathlib.Path) -> dict:
  """A 2017-format file (parsed) as the 2018 dict {images, annotations} of the same video.

  path: the file (its name gives the video id; errors name it). Raises ValueError for what is
  malformed, naming the file, the annolist entry and the field.
  """
  annolist = data.get('annolist')
  if not isinstance(annolist, list):
    raise ValueError(f'{path}: "annolist" must be a list of frames, got {annolist!r:.80}')
  video = video_id_of(path)
  if not video.isdigit():
    raise ValueError(f'{path}: a PoseTrack17 file is named after its video number '
                     f'(<number>_<source>...json), got {pathlib.Path(path).name!r}: its image ids '
                     'are made from that number')
  entries = []
  for i, entry in enumerate(annolist):
    where = f'{path}: annolist[{i}]'
    if not isinstance(entry, dict):
      raise ValueError(f'{where} must be a JSON object, got {entry!r:.80}')
    image = _list(entry, 'image', where)
    if len(image) != 1 or 'name' not in image[0]:
      raise ValueError(f'{where}: image must be [{{"name": <frame file>}}], got '
                       f'{entry.get("image")!r:.80}')
    name = _scalar(image[0]['name'], where, 'image name')
    if 'imgnum' not in entry:
      raise ValueError(f'{where}: no field "imgnum" (the 1-based frame number)')
    imgnum = _number(entry['imgnum'], where, 'imgnum', integer=True)
    if not 1 <= imgnum <= 10**4:
      raise ValueError(f'{where}: imgnum must be in [1, 10000] (frames are numbered from 1, and '
                       f'an image id holds four digits of the frame), got {imgnum}')
    entries.append((where, entry, name, imgnum))
  nframes = max((imgnum for *_, imgnum in entries), default=1)
  images, annotations = [], []
  for where, entry, name, imgnum in entries:
    frame = imgnum - 1
    ident = image_id(video, frame)
    xs, ys = _polygons(entry, where)
    # Without the flag, a frame is labeled when it has people (the frames poseval scores).
    labeled = entry.get('is_labeled', [int(bool(entry.get('annorect')))])
    images.append({'file_name': name, 'id': ident, 'frame_id': ident, 'vid_id': video,
                   'nframes': nframes, 'imgnum': imgnum,
                   'is_labeled': _scalar(labeled, where, 'is_labeled'),
                   **({'ignore_regions_x': xs, 'ignore_regions_y': ys} if xs else {})})
    for k, rect in enumerate(_list(entry, 'annorect', where)):
      here = f'{where}, annorect[{k}]'
      keypoints, scores, annotated = _person_17(rect, here)
      annotation = {'image_id': ident, 'id': ident * 100 + k, 'category_id': 1,
                    'keypoints': keypoints if annotated else [], 'scores': scores or []}
      if 'track_id' in rect:
        annotation['track_id'] = _number(rect['track_id'], here, 'track_id', integer=True)
      corners = [f for f in ('x1', 'y1', 'x2', 'y2') if f in rect]
      if corners:
        if len(corners) != 4:
          raise ValueError(f'{here}: a head box needs x1, y1, x2 and y2, got only '
                           f'{", ".join(corners)}')
        x1, y1, x2, y2 = (_number(rect[f], here, f) for f in ('x1', 'y1', 'x2', 'y2'))
        annotation['bbox_head'] = [x1, y1, x2 - x1, y2 - y1]
      box = keypoint_box(keypoints) if annotated else None
      if box is not None:
        annotation['bbox'] = box
      if 'score' in rect:
        annotation['score'] = _number(rect['score'], here, 'score')
      annotations.append(annotation)
  return {'images': images, 'annotations': annotations}


def to_posetrack17(data: dict) -> dict:
  """A 2018-format video (parsed, well formed) as a 2017 file: {"annolist": [...]}.

  Frames in the images' order, imgnum = the image's own (from a 2017 file), else the number of
  its file name + 1; each annotation an annorect (its head box as corners, its
  annotated joints with their scores when the annotation has a "scores" list); the person box
  is dropped (the 2017 format derives it); people without keypoints keep an empty annopoints.
  """
  people: dict[Any, list[dict]] = {}
  for annotation in data.get('annotations') or []:
    people.setdefault(annotation['image_id'], []).append(annotation)
  annolist = []
  for image in data['images']:
    imgnum = image.get('imgnum') or int(pathlib.PurePosixPath(image['file_name']).stem) + 1
    entry: dict[str, Any] = {'image': [{'name': image['file_name']}], 'imgnum': [imgnum],
                             'is_labeled': [int(bool(image.get('is_labeled')))]}
    xs, ys = image.get('ignore_regions_x') or [], image.get('ignore_regions_y') or []
    if xs:
      entry['ignore_regions'] = [
          {'point': [{'x': [x], 'y': [y]} for x, y in zip(px, py, strict=True)]}
          for px, py in zip(xs, ys, strict=True)]
    rects = []
    for annotation in people.get(image.get('id', image.get('frame_id')), []):
      rect: dict[str, Any] = {}
      head = annotation.get('bbox_head')
      if head:
        x, y, w, h = head
        rect.update(x1=[x], y1=[y], x2=[x + w], y2=[y + h])
      if 'track_id' in annotation:
        rect['track_id'] = [annotation['track_id']]
      if 'score' in annotation:
        rect['score'] = [annotation['score']]
      keypoints = np.asarray(annotation.get('keypoints') or np.zeros(3 * NUM_JOINTS),
                             np.float64).reshape(NUM_JOINTS, 3)
      scores = annotation.get('scores') or []
      points = []
      for j, index in enumerate(POSETRACK17_TO_18):
        x, y, v = keypoints[index]
        if x == y == v == 0:
          continue
        point: dict[str, Any] = {'id': [j], 'x': [float(x)], 'y': [float(y)]}
        if len(scores) == NUM_JOINTS:
          point['score'] = [float(scores[index])]
        points.append(point)
      rect['annopoints'] = [{'point': points}] if points else []
      rects.append(rect)
    entry['annorect'] = rects
    annolist.append(entry)
  return {'annolist': annolist}
