"""The three directory layouts PoseTrack comes in, and which one a directory is (spec 4 and 8).

    layout = detect(root)                       # 'posetrack18', 'posetrack21' or 'posetrack17'
    layout.annotation_dir(root, 'val')          # where that split's <video>.json files are
    layout.present_splits(root)                 # {'train': 'train', 'val': 'validation', ...}

- posetrack18: images/{train,val,test}/<seq>/<frame>.jpg, annotations/{train,val,test}/<seq>.json
  in the 2018 format (the original download; also what --mode=augment writes).
- posetrack21: images/{train,val}/... and posetrack_data/{train,val}/<seq>.json, the 2018 format
  plus person_id and has_labeled_person (ignored, as every field the reader does not need) and
  many people with a box and no keypoints (counted and not stored, as in PoseTrack18). No test
  split. The only source of the 2018 videos today.
- posetrack17: annotations/{train,val,test}/<seq>.json in the 2017 format (formats.py), image
  names relative to the root (the official download's posetrack_data/ folder).

Image paths always come from the annotation files, relative to the root, so the layouts differ
only in where those files are and in their format. Each file is read in its own format
(formats.read), so a directory that mixes them (an enlarged PoseTrack17 training set written by
--mode=augment beside the original validation files) reads as it is.
"""

from __future__ import annotations

import dataclasses
import pathlib

from tfds_posetrack.posetrack18 import formats
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS

# Directory names of the official layouts -> TFDS split names (the one place for both).
SPLITS = {'train': 'train', 'val': 'validation', 'test': 'test'}


@dataclasses.dataclass(frozen=True)
class DirectoryLayout:
  """name: 'posetrack18' | 'posetrack21' | 'posetrack17'; annotations: the folder under the
  root that holds <split folder>/<seq>.json; splits: the split folders it can have;
  images_by_split: whether frames lie in images/<split folder> (PoseTrack17 sorts them by
  source, images/<source>/<seq>, whatever the split)."""

  name: str
  annotations: str
  splits: tuple[str, ...]
  images_by_split: bool = True

  def annotation_dir(self, root: str | pathlib.Path, folder: str) -> pathlib.Path:
    """root/<annotations>/<folder> (folder: 'train', 'val' or 'test')."""
    return pathlib.Path(root) / self.annotations / folder

  def present_splits(self, root: str | pathlib.Path) -> dict[str, str]:
    """{split folder: TFDS split name} of the splits whose annotation folder exists."""
    return {d: SPLITS[d] for d in self.splits if self.annotation_dir(root, d).is_dir()}

  def image_dir(self, root: str | pathlib.Path, folder: str) -> pathlib.Path:
    """Where a split's frames are: root/images/<folder>, or all of root/images."""
    return pathlib.Path(root) / 'images' / (folder if self.images_by_split else '')


POSETRACK18 = DirectoryLayout('posetrack18', 'annotations', ('train', 'val', 'test'))
POSETRACK21 = DirectoryLayout('posetrack21', 'posetrack_data', ('train', 'val'))
POSETRACK17 = DirectoryLayout('posetrack17', 'annotations', ('train', 'val', 'test'), False)
LAYOUTS = {layout.name: layout for layout in (POSETRACK18, POSETRACK21, POSETRACK17)}

_EXPECTED = ('images/ and one of annotations/{train,val,test}/<seq>.json (PoseTrack18 in the '
             '2018 format, PoseTrack17 in the 2017 format) or posetrack_data/{train,val}/'
             '<seq>.json (PoseTrack21)')


def _first_file(layout: DirectoryLayout, root: pathlib.Path) -> pathlib.Path | None:
  for folder in layout.splits:
    files = sorted(layout.annotation_dir(root, folder).glob('*.json'))
    if files:
      return files[0]
  return None


def detect(root: str | pathlib.Path) -> DirectoryLayout:
  """The layout of a dataset directory. FileNotFoundError naming the directory and what was
  looked for when it is none of them; ValueError when it looks like two at once."""
  root = pathlib.Path(root)
  has_18 = any((root / 'annotations' / d).is_dir() for d in POSETRACK18.splits)
  has_21 = any((root / 'posetrack_data' / d).is_dir() for d in POSETRACK21.splits)
  if has_18 and has_21:
    raise ValueError(f'{root} has both annotations/ (PoseTrack18 / 17) and posetrack_data/ '
                     '(PoseTrack21): point config.data.root at a directory with one of them')
  if has_21:
    return POSETRACK21
  if not has_18:
    nested = root / 'posetrack_data' / 'annotations'
    hint = (f' {nested} exists: for PoseTrack17, the dataset root is {nested.parent}.'
            if nested.is_dir() else '')
    raise FileNotFoundError(f'{root} is no PoseTrack directory: expected {_EXPECTED}.{hint}')
  first = _first_file(POSETRACK18, root)
  if first is None:
    return POSETRACK18  # empty split folders: the builder says what is missing
  _, annotation_format = formats.read(first)
  return POSETRACK17 if annotation_format == 'posetrack17' else POSETRACK18


def _frame_number(file_name: str) -> int:
  return int(pathlib.PurePosixPath(file_name).stem)


def write_layout(source: str | pathlib.Path, out: str | pathlib.Path, layout: str, *,
                 move: bool = False) -> dict[str, int]:
  """Writes a PoseTrack18-layout dataset (source) to `out` in another layout, as its official
  download has it: what the synthetic generator and the tests use to exercise each layout
  without the real data. Returns {split folder: videos written}.

  - 'posetrack21': posetrack_data/{train,val}/<seq>.json (no test split), each person with a
    person_id (one per video and track, unique over the dataset), each image with
    has_labeled_person, and on every labeled frame one more person with a box and no keypoints,
    as PoseTrack21 has many.
  - 'posetrack17': annotations/<split>/<seq>.json in the 2017 format, frames renamed to
    images/<split>/<seq>/%08d.jpg numbered from 1 (imgnum = the 2018 frame + 1).
  - 'posetrack18': a copy.

  Frames are symbolic links to the source's (move: moved instead, for a source about to be
  deleted). The source is read with the 2018 reader's rules only as far as the conversion needs.
  """
  if layout not in LAYOUTS:
    raise ValueError(f'layout must be one of {", ".join(LAYOUTS)}, got {layout!r}')
  source, out = pathlib.Path(source), pathlib.Path(out)
  target = LAYOUTS[layout]
  written, person_ids = {}, {}
  for folder in target.splits:
    annotation_files = sorted(POSETRACK18.annotation_dir(source, folder).glob('*.json'))
    if not annotation_files:
      continue
    target.annotation_dir(out, folder).mkdir(parents=True, exist_ok=True)
    for path in annotation_files:
      data, _ = formats.read(path)
      renamed = {}
      for image in data['images']:
        name = image['file_name']
        if layout == 'posetrack17':
          parent = pathlib.PurePosixPath(name).parent
          renamed[name] = str(parent / f'{_frame_number(name) + 1:08d}.jpg')
          image['imgnum'] = _frame_number(name) + 1
        else:
          renamed[name] = name
        image['file_name'] = renamed[name]
      if layout == 'posetrack21':
        _as_posetrack21(data, path.stem, person_ids)
      formats.write(target.annotation_dir(out, folder) / path.name, data,
                    'posetrack17' if layout == 'posetrack17' else 'posetrack18')
      for old, new in renamed.items():
        src, dst = source / old, out / new
        if not src.is_file():
          continue  # listed but absent: absent in the copy too
        dst.parent.mkdir(parents=True, exist_ok=True)
        if move:
          src.replace(dst)
        else:
          dst.symlink_to(src.resolve())
    written[folder] = len(annotation_files)
  return written


def _as_posetrack21(data: dict, video: str, person_ids: dict) -> None:
  """PoseTrack21's additions to a 2018-format video, in place (write_layout)."""
  people_on = {}
  for annotation in data.get('annotations') or []:
    key = (video, annotation['track_id'])
    annotation['person_id'] = person_ids.setdefault(key, len(person_ids))
    people_on.setdefault(annotation['image_id'], []).append(annotation)
  extra = []
  for image in data['images']:
    ident = image.get('id', image.get('frame_id'))
    image['has_labeled_person'] = bool(people_on.get(ident))
    if image.get('is_labeled'):
      # A small person PoseTrack21 boxed without keypoints (the reader counts and skips them).
      extra.append({'image_id': ident, 'id': ident * 100 + 99, 'category_id': 1,
                    'track_id': 999, 'person_id': -1, 'keypoints': [0.0] * 3 * NUM_JOINTS,
                    'bbox': [1.0, 1.0, 8.0, 16.0], 'bbox_head': [], 'scores': []})
  data['annotations'] = (data.get('annotations') or []) + extra
