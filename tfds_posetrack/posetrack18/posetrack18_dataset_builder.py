"""TFDS builder for PoseTrack 2018: one ArrayRecord record per frame, JPEG bytes as they are.

The directory it is given may be in any of PoseTrack's three layouts (layouts.py: PoseTrack18,
PoseTrack21, PoseTrack17); it detects which and builds the same records from each, and
`info.metadata['layout']` says which it was.

    builder = prepare(ROOT, DATA_DIR, max_gap=7)   # builds once, reuses an existing build
    records = builder.as_data_source('train')      # random access, no TensorFlow

Every frame within `max_gap` of a labeled frame is stored, labeled or not, so that any pair
(labeled t, support t + delta) with |delta| <= max_gap can be formed at read time (pairs.py):
the frame gap k of training is a config value, not a property of the build.

Records are written in generation order (videos sorted by file name, frames in the
annotation file's order), and `info.metadata['frames']` holds, per split, the small table
(video, frame index, is_labeled, people) that the pair view needs without reading images.
What the build skipped is counted per split in `info.metadata['skipped']` and logged.
`info.metadata['source']` records what the build was made from (source_fingerprint): `prepare`
refuses to reuse a build whose source directory has changed since. `info.metadata['shard_bytes']`
({split: {shard file name: bytes}}) and `info.metadata['manual_dir']` (the directory it was built
from) let damage.check_shards tell a missing or truncated shard, and say how to rebuild, without
reading the data; `prepare` checks them before reusing a build (builds made before record no
sizes: their shards are checked for existence only).

When stdout or stderr is not a terminal (a log file, a pipe), the build shows no TFDS progress
bars (interactive_console): their carriage-return redraws and escape codes would fill the log.

Building and reading need no TensorFlow: the features avoid TFDS's TF-backed image codec (the
JPEG is stored as bytes and decoded by the input pipeline with OpenCV).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import pathlib
import sys

import cv2
import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from tfds_posetrack.posetrack18.annotations import Frame, read_video
from tfds_posetrack.posetrack18.damage import check_shards, shard_sizes
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS
from tfds_posetrack.posetrack18.layouts import SPLITS, DirectoryLayout, detect


def interactive_console() -> bool:
  """Whether progress bars belong on the console: stdout and stderr both terminals.

  stderr is where tqdm draws; a redirected stdout (`> log.txt`, a pipe) means the run is being
  logged, and a bar on the terminal beside it would be noise. A stream without a file
  descriptor (captured by a test, a notebook) counts as no terminal.
  """
  for stream in (sys.stdout, sys.stderr):
    try:
      if stream is None or not stream.isatty():
        return False
    except (AttributeError, ValueError):  # no isatty, or a closed stream
      return False
  return True


def split_directory(split: str, field: str = 'split') -> str:
  """The official folder (annotations/<folder>, images/<folder>) of a TFDS split name
  ('validation' -> 'val'); a ValueError naming `field` for another name."""
  folders = {name: folder for folder, name in SPLITS.items()}
  if split not in folders:
    raise ValueError(f'{field} must be one of {", ".join(folders)}, got {split!r}')
  return folders[split]
_JPEG_START, _JPEG_END = b'\xff\xd8', b'\xff\xd9'
# What a build reports per split (info.metadata['skipped']), zeros included.
REPORTED_COUNTS = ('frames_stored', 'frames_missing', 'frames_corrupt', 'frames_beyond_max_gap',
                   'people_on_missing_frames', 'people_on_corrupt_frames',
                   'people_without_keypoints', 'people_without_bbox', 'people_without_bbox_head',
                   'people_with_bbox_without_area', 'annotations_without_image',
                   'keypoints_outside_image', 'videos_without_annotations',
                   'frames_past_nframes')
# How many names an error or a notice lists before it says "and N more".
_FEW = 5

_DESCRIPTION = """PoseTrack 2018 multi-person pose tracking videos: one record per frame kept
within max_gap frames of a labeled frame, with its people (17 keypoints, boxes, track ids) and
ignore regions. Labeled frames: 30 consecutive middle frames per training video; validation and
test add every 4th frame (test annotations are not public)."""

_CITATION = """@inproceedings{andriluka2018posetrack,
  title={PoseTrack: A Benchmark for Human Pose Estimation and Tracking},
  author={Andriluka, Mykhaylo and Iqbal, Umar and Insafutdinov, Eldar and Pishchulin, Leonid and
          Milan, Anton and Gall, Juergen and Schiele, Bernt},
  booktitle={CVPR}, year={2018}}"""


@dataclasses.dataclass
class PoseTrack18Config(tfds.core.BuilderConfig):
  """max_gap: frames farther than this from every labeled frame of their video are not stored
  (None: store every frame)."""

  max_gap: int | None = 7


def make_config(max_gap: int | None) -> str | PoseTrack18Config:
  """The builder config for a max_gap: 'default' (by name) for 7, else a config named
  'all_frames' (None) or 'gap<n>'. By name, because TFDS refuses a config object that equals a
  registered one without being it (as after unpickling in a Grain worker)."""
  if max_gap is not None and (not isinstance(max_gap, int) or max_gap < 0):
    raise ValueError(f'max_gap must be an integer >= 0 or None, got {max_gap!r}')
  if max_gap == 7:
    return Builder.BUILDER_CONFIGS[0].name
  name = 'all_frames' if max_gap is None else f'gap{max_gap}'
  return PoseTrack18Config(name=name, max_gap=max_gap,
                           description=f'frames within {max_gap} of a label' if max_gap is not None
                           else 'every frame')


class Builder(tfds.core.GeneratorBasedBuilder):
  """PoseTrack 2018 from a manually downloaded copy in the official layout."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'One record per frame; JPEG bytes stored unchanged.'}
  BUILDER_CONFIGS = [PoseTrack18Config(name='default', description='frames within 7 of a label')]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  PoseTrack cannot be downloaded automatically. Its original site (posetrack.net) is
  offline; the 2018 videos are redistributed with PoseTrack21
  (https://github.com/anDoer/PoseTrack21), which asks you to sign an agreement for access.
  Point `manual_dir` at the dataset in one of its official layouts:

      PoseTrack21: manual_dir/images/{train,val}/<sequence>/<6-digit frame>.jpg
                   manual_dir/posetrack_data/{train,val}/<sequence>.json
      PoseTrack18: manual_dir/images/{train,val,test}/<sequence>/<6-digit frame>.jpg
                   manual_dir/annotations/{train,val,test}/<sequence>.json  (v0.45: 593/170/375)
      PoseTrack17: manual_dir/annotations/{train,val,test}/<sequence>.json  (2017 format)
                   manual_dir/images/...  (as the files name them; the download's posetrack_data)

  Splits whose annotations directory is absent are left out. For a dataset in the same layout
  without any download, `python -m posewarper_jax.data.synthetic --out DIR` writes a
  synthetic one.
  """

  def __init__(self, *, file_format: str | tfds.core.FileFormat = 'array_record', **kwargs):
    # ArrayRecord: random access for the pair view, and no TensorFlow to write or read it.
    super().__init__(file_format=file_format, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    # Float64 as raw bytes: TFDS's default serialization keeps floats as float32, which would
    # round the annotations' decimals.
    f64 = lambda shape: tfds.features.Tensor(shape=shape, dtype=np.float64,
                                             encoding=tfds.features.Encoding.BYTES)
    return tfds.core.DatasetInfo(
        builder=self,
        description=_DESCRIPTION,
        features=tfds.features.FeaturesDict({
            # The file's bytes, unchanged (no re-encoding): decoded by the input pipeline.
            'image': tfds.features.Tensor(shape=(), dtype=np.object_),
            'video_id': tfds.features.Text(),
            'frame_index': np.int32,
            'nframes': np.int32,
            'image_id': np.int64,
            'is_labeled': np.bool_,
            'width': np.int32,
            'height': np.int32,
            # Polygons, flattened: vertices of polygon i are the next num_vertices[i] of x, y.
            # Coordinates in float64, so that they equal the JSON's decimals exactly.
            'ignore_regions': {'x': f64((None,)), 'y': f64((None,)),
                               'num_vertices': tfds.features.Tensor(shape=(None,),
                                                                   dtype=np.int32)},
            'people': tfds.features.Sequence({
                'keypoints': f64((NUM_JOINTS, 3)),
                'bbox': f64((4,)),
                'has_bbox': np.bool_,
                'bbox_head': f64((4,)),
                'track_id': np.int32,
                'annotation_id': np.int64,
            }),
        }),
        homepage='https://github.com/anDoer/PoseTrack21',
        citation=_CITATION,
        metadata=tfds.core.MetadataDict(),
        # Generation order is kept: the frame table in the metadata indexes the records.
        disable_shuffling=True,
    )

  def download_and_prepare(self, **kwargs) -> None:
    if not interactive_console():
      # TFDS's tqdm bars redraw with '\r' and cursor-up escapes: in a log file or a pipe each
      # redraw would be kept. Process-wide (TFDS has no per-build switch), and never turned
      # back on: the console does not become a terminal later.
      tfds.disable_progress_bar()
    super().download_and_prepare(**kwargs)

  def _download_and_prepare(self, dl_manager, download_config=None):
    super()._download_and_prepare(dl_manager, download_config)
    # The shards are written and the metadata not yet (TFDS writes it next): their sizes let a
    # truncated shard be told by a stat when the build is opened (damage.check_shards).
    self.info.metadata['shard_bytes'] = shard_sizes(self.info)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = pathlib.Path(dl_manager.manual_dir)
    try:
      layout = detect(root)
    except FileNotFoundError as e:
      raise FileNotFoundError(f'{e}\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}') from None
    present = layout.present_splits(root)
    if not present:
      raise FileNotFoundError(
          f'no PoseTrack annotations under {root / layout.annotations}/'
          f'{{{",".join(layout.splits)}}}: {self.MANUAL_DOWNLOAD_INSTRUCTIONS}')
    for directory in sorted(set(layout.splits) - present.keys()):
      folders = _video_folders(root / 'images' / directory)
      if folders:
        print(f'posetrack18: {root / "images" / directory} has {len(folders)} video folders but '
              f'there is no {layout.annotation_dir(root, directory)}: that split is left out')
    print(f'posetrack18: {root} is in the {layout.name} layout', flush=True)
    self.info.metadata['layout'] = layout.name
    # For the remedy of a damaged build (damage.py): where to rebuild it from.
    self.info.metadata['manual_dir'] = str(root.absolute())
    # Before reading anything: a file changed during the build makes the next prepare() refuse.
    self.info.metadata['source'] = source_fingerprint(root, present, layout)
    self.info.metadata.setdefault('frames', {})
    self.info.metadata.setdefault('skipped', {})
    return {split: self._generate_examples(root, layout, directory, split)
            for directory, split in present.items()}

  def _generate_examples(self, root: pathlib.Path, layout: DirectoryLayout, directory: str,
                         split: str):
    counts = collections.Counter(dict.fromkeys(REPORTED_COUNTS, 0))
    table = {'video_id': [], 'frame_index': [], 'nframes': [], 'is_labeled': [], 'people': []}
    annotation_dir = layout.annotation_dir(root, directory)
    paths = sorted(annotation_dir.glob('*.json'))
    unannotated = sorted(_video_folders(root / 'images' / directory) - {p.stem for p in paths})
    counts['videos_without_annotations'] = len(unannotated)
    # Image and video ids are keys later (image_id -> record, video -> frames): one file each.
    file_of_image, file_of_video = {}, {}
    on_disk = 0
    for path in paths:
      frames = read_video(path, root, counts)
      on_disk += len(frames)
      for frame in frames:
        other = file_of_image.setdefault(frame.image_id, path)
        if other != path:
          raise ValueError(f'{path}: image id {frame.image_id} is also in {other}: image ids '
                           f'must be unique within a split ({directory})')
        other = file_of_video.setdefault(frame.video_id, path)
        if other != path:
          raise ValueError(f'{path}: video id {frame.video_id!r} is also the video id of {other}:'
                           f' two files of the {directory} split would be one video')
      for frame in keep_near_labels(frames, self.builder_config.max_gap, counts):
        data = (root / frame.file_name).read_bytes()
        size = jpeg_size(data)
        if size is None:
          counts['frames_corrupt'] += 1
          counts['people_on_corrupt_frames'] += len(frame.people)
          continue
        counts['keypoints_outside_image'] += _outside(frame, *size)
        for key, value in (('video_id', frame.video_id), ('frame_index', frame.frame_index),
                           ('nframes', frame.nframes), ('is_labeled', frame.is_labeled),
                           ('people', len(frame.people))):
          table[key].append(value)
        yield f'{frame.video_id}/{frame.frame_index:06d}', _record(frame, data, *size)
    counts['frames_stored'] = len(table['video_id'])
    self.info.metadata['frames'][split] = table
    self.info.metadata['skipped'][split] = dict(sorted(counts.items()))
    logging.info('PoseTrack18 %s: %s', split, dict(sorted(counts.items())))
    print(f'posetrack18 {split}: ' + ', '.join(f'{k} {v}' for k, v in sorted(counts.items())))
    if unannotated:
      print(f'posetrack18 {split}: video folders in {root / "images" / directory} without '
            f'{annotation_dir}/<folder>.json (not stored): {_few(unannotated)}')
    if not table['video_id']:
      # TFDS would stop with "No examples were yielded", the reason out of sight.
      raise ValueError(_why_empty(split, annotation_dir, len(paths), on_disk, counts,
                                  self.builder_config.max_gap))


def _why_empty(split: str, annotation_dir: pathlib.Path, files: int, on_disk: int,
               counts: collections.Counter, max_gap: int | None) -> str:
  """Why a split has no frame to store, in the counts that tell it."""
  if not files:
    return (f'posetrack18 {split}: {annotation_dir} has no annotation file (<video>.json): '
            'nothing to build; remove the folder to leave the split out')
  listed = on_disk + counts['frames_missing']
  parts = [f'{counts["frames_missing"]} missing on disk (file_name is relative to '
           f'{annotation_dir.parent.parent})', f'{counts["frames_corrupt"]} corrupt JPEGs']
  if max_gap is not None:
    parts.append(f'{counts["frames_beyond_max_gap"]} farther than max_gap={max_gap} from every '
                 'labeled frame of their video (is_labeled)')
  return (f'posetrack18 {split}: no frame to store from {annotation_dir}: its {files} annotation '
          f'file{"s" * (files != 1)} list{"s" * (files == 1)} {listed} frames, of which '
          + ', '.join(parts))


def _video_folders(directory: pathlib.Path) -> set[str]:
  """Names of the folders in `directory` (none when it does not exist)."""
  if not directory.is_dir():
    return set()
  with os.scandir(directory) as entries:
    return {e.name for e in entries if e.is_dir()}


def _few(names) -> str:
  names = list(names)
  more = f' and {len(names) - _FEW} more' if len(names) > _FEW else ''
  return ', '.join(names[:_FEW]) + more


def source_fingerprint(root: str | pathlib.Path, directories,
                       layout: DirectoryLayout | None = None) -> dict:
  """What a build is made from, per split directory (e.g. 'val'):

      {'annotations': {'<video>.json': sha256 of its bytes},
       'images': {'<video folder>': [number of .jpg files, sha256 of their sorted
                                     "<relative path>\t<size>" lines]}}

  layout: where the annotation files are (detect(root) when None). Images are those of
  images/<directory>; PoseTrack17 does not sort its frames by split (images/<source>/<seq>), so
  there every split lists all of images/.

  Images are fingerprinted by relative path and size, not content: hashing every JPEG of
  PoseTrack18 (~100k frames, tens of GB) would take minutes on each training run, and the
  failures this is for (frames restored or added, videos added or removed) change the listing.
  An image rewritten in place with the same size goes unnoticed. Only .jpg files count (the
  reader takes nothing else), so a stray thumbnail file does not invalidate a build. A file_name
  that points outside images/<split> is read but not fingerprinted.
  """
  root = pathlib.Path(root)
  layout = layout or detect(root)
  out, listings = {}, {}
  for directory in sorted(directories):
    annotations = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                   for p in sorted(layout.annotation_dir(root, directory).glob('*.json'))}
    images = layout.image_dir(root, directory)
    if images not in listings:
      listings[images] = _image_listing(images)
    out[directory] = {'annotations': annotations, 'images': listings[images]}
  return out


def _image_listing(directory: pathlib.Path) -> dict[str, list]:
  """{first path component under `directory` ('.' for files in it): [count, sha256]} of its
  .jpg files, symbolic links followed (the tests and users link splits in)."""
  lines = collections.defaultdict(list)
  if not directory.is_dir():
    return {}
  stack, visited = [(str(directory), '')], set()
  while stack:
    path, relative = stack.pop()
    stat = os.stat(path)
    if (stat.st_dev, stat.st_ino) in visited:  # a link cycle
      continue
    visited.add((stat.st_dev, stat.st_ino))
    with os.scandir(path) as entries:
      for entry in entries:
        name = f'{relative}/{entry.name}' if relative else entry.name
        if entry.is_dir():
          stack.append((entry.path, name))
        elif entry.name.endswith('.jpg') and entry.is_file():
          group = name.split('/', 1)[0] if relative else '.'
          lines[group].append(f'{name}\t{entry.stat().st_size}')
  return {group: [len(v), hashlib.sha256('\n'.join(sorted(v)).encode()).hexdigest()]
          for group, v in sorted(lines.items())}


def source_changes(built: dict, now: dict, annotations: str = 'annotations') -> list[str]:
  """What differs between two source_fingerprint results, one line per kind of change;
  annotations: the layout's annotation folder (DirectoryLayout.annotations), as the lines name
  it."""
  changes = []
  for directory in sorted(built.keys() | now.keys()):
    if directory not in now:
      changes.append(f'{annotations}/{directory} is gone (the build has that split)')
      continue
    if directory not in built:
      changes.append(f'{annotations}/{directory} is new (the build has no such split)')
      continue
    old, new = built[directory]['annotations'], now[directory]['annotations']
    for what, names in (('added', sorted(new.keys() - old.keys())),
                        ('removed', sorted(old.keys() - new.keys())),
                        ('changed', sorted(k for k in old.keys() & new.keys()
                                           if old[k] != new[k]))):
      if names:
        changes.append(f'{annotations}/{directory}: {len(names)} files {what} ({_few(names)})')
    old, new = built[directory]['images'], now[directory]['images']
    folders = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if folders:
      count = lambda listing, k: listing.get(k, [0])[0]
      # Counted per folder (the fingerprint keeps counts, not names): a file renamed within a
      # folder, or rewritten with another size, changes the folder without a count.
      added = sum(max(0, count(new, k) - count(old, k)) for k in folders)
      removed = sum(max(0, count(old, k) - count(new, k)) for k in folders)
      same = sum(count(new, k) == count(old, k) for k in folders)
      changes.append(f'images/{directory}: {added} .jpg files added and {removed} removed in '
                     f'{len(folders)} folders ({_few(folders)})'
                     + (f', {same} of them with as many files as before but other names or '
                        'sizes' if same else ''))
  return changes


def check_source(builder: Builder, manual_dir: str | pathlib.Path) -> None:
  """Refuses (ValueError) an existing build whose source has changed since it was made.

  A build without a recorded source (made before fingerprints existed) or a source directory
  that is gone cannot be checked: a warning says so, and the build is used.
  """
  root = pathlib.Path(manual_dir)
  built = dict(builder.info.metadata.items()).get('source')
  try:
    layout = detect(root)
  except (FileNotFoundError, ValueError) as e:
    layout, problem = None, str(e)
  if built is None or layout is None:
    reason = ('it records no source (built before fingerprints existed)' if built is None
              else problem)
    message = (f'WARNING: posetrack18: reusing the build in {builder.data_dir} unchecked: '
               f'{reason}. If {root} changed since, delete {builder.data_dir} to rebuild.')
    logging.info(message)  # for log files; the print is what a user sees (as the counts)
    print(message, file=sys.stderr, flush=True)
    return
  changes = source_changes(built, source_fingerprint(root, layout.present_splits(root), layout),
                           layout.annotations)
  if changes:
    raise ValueError(
        f'posetrack18: the build in {builder.data_dir} was made from another state of {root}: '
        + '; '.join(changes) + f'. To rebuild, delete {builder.data_dir} (or pass another '
        'data_dir / config.data.tfds_dir).')


def prepare(manual_dir: str | pathlib.Path, data_dir: str | pathlib.Path | None = None,
            max_gap: int | None = 7) -> Builder:
  """The builder for `max_gap` (make_config), built from `manual_dir` unless already built.

  An existing build is reused only when `manual_dir` is what it was built from (check_source):
  a changed source is a ValueError that says what changed and how to rebuild. A build with a
  shard missing or of another size than written is a damage.DamagedDatasetError that names the
  shard and the folder to delete (check_shards; nothing is deleted).
  """
  builder = Builder(data_dir=None if data_dir is None else str(data_dir),
                    config=make_config(max_gap))
  # The same test that download_and_prepare makes before reusing a build.
  if builder.data_path.exists():
    check_source(builder, manual_dir)
    for split in builder.info.splits:
      check_shards(builder, split)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def keep_near_labels(frames: list[Frame], max_gap: int | None,
                     counts: collections.Counter | None = None) -> list[Frame]:
  """The frames within max_gap of a labeled frame of the same video (all with None)."""
  if max_gap is None:
    return frames
  labeled = np.array([f.frame_index for f in frames if f.is_labeled])
  if labeled.size == 0:
    kept = []
  else:
    kept = [f for f in frames if np.abs(labeled - f.frame_index).min() <= max_gap]
  if counts is not None:
    counts['frames_beyond_max_gap'] += len(frames) - len(kept)
  return kept


def jpeg_size(data: bytes) -> tuple[int, int] | None:
  """(height, width) of a complete, decodable JPEG; None for a corrupt or truncated one.

  OpenCV decodes a truncated JPEG without complaint (the missing rows come out grey), so the
  end-of-image marker is checked as well.
  """
  if not data.startswith(_JPEG_START) or not data.rstrip(b'\x00').endswith(_JPEG_END):
    return None
  # Decoding at 1/8 scale is several times faster and enough to validate; the header gives the
  # true size, which must agree with the reduced one.
  image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_8)
  size = _header_size(data)
  if image is None or size is None or image.shape[:2] != (-(-size[0] // 8), -(-size[1] // 8)):
    return None
  return size


def _header_size(data: bytes) -> tuple[int, int] | None:
  """(height, width) from the JPEG's start-of-frame marker."""
  i = 2
  while i + 9 < len(data):
    if data[i] != 0xFF:
      return None
    marker = data[i + 1]
    if marker == 0xFF:  # fill byte
      i += 1
      continue
    if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
      i += 2
      continue
    length = int.from_bytes(data[i + 2:i + 4], 'big')
    if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
      return (int.from_bytes(data[i + 5:i + 7], 'big'), int.from_bytes(data[i + 7:i + 9], 'big'))
    i += 2 + length
  return None


def _outside(frame: Frame, height: int, width: int) -> int:
  """Annotated keypoints outside the image (kept: the targets give them weight 0)."""
  total = 0
  for person in frame.people:
    x, y, v = person.keypoints.T
    total += int(np.sum((v > 0) & ((x < 0) | (y < 0) | (x >= width) | (y >= height))))
  return total


def _record(frame: Frame, data: bytes, height: int, width: int) -> dict:
  polygons = frame.ignore_regions
  vertices = np.concatenate(polygons) if polygons else np.zeros((0, 2), np.float64)
  return {
      'image': data,
      'video_id': frame.video_id,
      'frame_index': frame.frame_index,
      'nframes': frame.nframes,
      'image_id': frame.image_id,
      'is_labeled': frame.is_labeled,
      'width': width,
      'height': height,
      'ignore_regions': {'x': vertices[:, 0], 'y': vertices[:, 1],
                         'num_vertices': np.array([len(p) for p in polygons], np.int32)},
      'people': [{'keypoints': p.keypoints, 'bbox': p.bbox, 'has_bbox': p.has_bbox,
                  'bbox_head': p.bbox_head, 'track_id': p.track_id,
                  'annotation_id': p.annotation_id} for p in frame.people],
  }
