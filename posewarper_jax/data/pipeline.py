"""Grain input pipeline over the PoseTrack18 TFDS records: PoseWarper's training pairs, and the
one crop stream of evaluation, propagation and inference.

    records = builder.as_data_source('train'); table = FrameTable.from_builder(builder, 'train')
    dataset = training_dataset(records, table, TrainingInput(image_size=(384, 288), k=2, ...))
    iterator = iter(dataset)          # batches {'frames_a', 'frames_b', 'targets', ...}
    stream = crop_stream(record_frames(records), Crops(box, frames), (384, 288), batch=32)

Each element is one labeled person of a labeled frame A with its support frame B (the pair view,
tfds_posetrack/posetrack18/pairs.py, drawn anew every epoch). Both frames are decoded, and one
random crop (box, scale, rotation, half body, flip: transforms.sample_augmentation) is applied
to both; targets come from A only (spec 2.2, 2.3). The single-frame stream of stage 1 is the
same with `single_frame=True` (A alone).

A TFDS data source is read through LeanRecords (the JPEG, frame size, keypoints and boxes, not
every feature), and keep_freed_memory lets glibc reuse decoded frames' buffers: decoding JPEGs
is the stream's cost, the rest is kept small (docs/benchmarks.md, input pipeline).

Frames come out as uint8 RGB crops [..., H, W, 3]: the train step normalizes them on the
device (ImageNet mean and std, `transforms.normalize`'s constants), which costs the host nothing
and moves a quarter of the bytes.

Determinism and scale: the order is a seeded shuffle per epoch, every element's randomness is
derived from (seed, its global index), the global stream is split across processes by striding
(process p takes elements p, p + P, ...), so runs with the same seed see the same batches and
processes never share an element. The iterator's state (`get_state` / `set_state`) resumes at
exactly the next batch. Batches are [local_devices, per_device_batch, ...] for pmap.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import os
import platform
import re
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import grain
import numpy as np
from absl import flags

from posewarper_jax.data import codec, transforms
from tfds_posetrack.posetrack18.annotations import why_not_a_finite_number
from tfds_posetrack.posetrack18.keypoints import (
  FLIP_PAIRS,
  NUM_JOINTS,
  box_has_area,
  keypoint_box,
)
from tfds_posetrack.posetrack18.lean_records import LeanRecords
from tfds_posetrack.posetrack18.pairs import FrameTable, neighbours, training_pairs


@dataclasses.dataclass(frozen=True)
class TrainingInput:
  """What the training stream needs to know.

  image_size: crop (height, width); heatmaps are a quarter of it.
  k: the frame gap; B is t + delta, delta uniform in [-k, k].
  global_batch: pairs per step over all processes and devices.
  num_devices / process_index / process_count: the layout (jax.local_device_count(), ...).
  """

  image_size: tuple[int, int] = (384, 288)
  k: int = 2
  seed: int = 0
  num_epochs: int | None = None
  global_batch: int = 64
  num_devices: int = 1
  process_index: int = 0
  process_count: int = 1
  single_frame: bool = False
  num_workers: int = 0
  sigma: float = 3.0
  # Decode JPEGs at 1/2, 1/4 or 1/8 size (libjpeg's DCT scaling) when the crop shrinks the
  # frame by at least that much anyway: decoding is the pipeline's main cost.
  reduced_decode: bool = False
  # Threads per process that compute elements (None: the process's cores, shared among its
  # workers: read_options). 1 makes a process use one core, which per-core measurements need.
  read_threads: int | None = None
  # The joints a flip swaps: PoseTrack's, or COCO's (its eyes too) for a COCO-labeled set
  # (keypoints.JOINT_SETS, config.data.joints).
  flip_pairs: tuple[tuple[int, int], ...] = FLIP_PAIRS
  # A diagnostic (config.stage2.warp_input='ground_truth'): also 'targets_b', frame B's own
  # ground truth of A's person in A's crop, and 'has_targets_b' (support_targets).
  support_targets: bool = False

  def per_process_batch(self) -> int:
    if self.global_batch % (self.process_count * self.num_devices):
      raise ValueError(f'the global batch ({self.global_batch}) must divide evenly over '
                       f'{self.process_count} processes x {self.num_devices} devices')
    return self.global_batch // self.process_count


# imdecode flags: RGB straight from libjpeg (no channel swap afterwards, which made the batches
# non-contiguous and their stacking 9% of the pipeline), at 1/1, 1/2, 1/4 or 1/8 size.
_DECODE_FLAGS = {f: (flag & ~cv2.IMREAD_COLOR) | cv2.IMREAD_COLOR_RGB for f, flag in (
    (1, cv2.IMREAD_COLOR), (2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4),
    (8, cv2.IMREAD_REDUCED_COLOR_8))}


def decode_rgb(jpeg: bytes, factor: int = 1) -> np.ndarray:
  """JPEG bytes -> [H / factor, W / factor, 3] uint8 RGB (factor 1, 2, 4 or 8; rounded up)."""
  image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), _DECODE_FLAGS[factor])
  if image is None:
    raise ValueError('a stored frame does not decode as a JPEG')
  return image


def decode_factor(scale: np.ndarray, output_width: int) -> int:
  """The largest of 1, 2, 4, 8 that does not go below the crop's own resolution.

  The crop maps scale[0] * 200 frame pixels onto output_width pixels; decoding at 1/f keeps
  every pixel the crop can show while scale[0] * 200 / f >= output_width.
  """
  ratio = scale[0] * transforms.PIXEL_STD / output_width
  return max((f for f in _DECODE_FLAGS if f <= ratio), default=1)


def reduced_matrix(matrix: np.ndarray, factor: int) -> np.ndarray:
  """The crop's [2, 3] map for a frame decoded at 1/factor.

  Reduced pixel i averages full pixels factor * i .. factor * i + factor - 1, so its centre is
  at factor * i + (factor - 1) / 2 in the full frame.
  """
  offset = (factor - 1) / 2
  to_full = np.array([[factor, 0.0, offset], [0.0, factor, offset], [0.0, 0.0, 1.0]])
  return matrix @ to_full


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def keep_freed_memory() -> None:
  """Lets glibc's malloc reuse freed frame buffers instead of faulting fresh pages in each time.

  A decoded 1080p frame is a 6 MB buffer that lives a few milliseconds. With glibc's defaults,
  in the thread that computes elements, each one came as freshly mapped memory that the decoder
  faults in page by page: the training stream ran 10-15% slower than with both thresholds fixed
  (docs/benchmarks.md, input pipeline; fixing only one of them halved the decode speed, since
  setting either turns glibc's adaptive thresholds off). Blocks under 32 MB come from the heap,
  and up to 128 MB of free memory stays with it. Process-wide; a no-op without glibc.
  """
  if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
    return
  libc = ctypes.CDLL(None)
  libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
  libc.mallopt(_M_TRIM_THRESHOLD, 128 << 20)


def crop_records(records: Sequence[dict]) -> Sequence[dict]:
  """A TFDS data source read through LeanRecords (the fields the crops need, about a third of the
  cost of the data source's full decoding); any other sequence of records as it is."""
  return LeanRecords(records) if hasattr(records, 'data_source') else records


def person_box(record: dict, person: int) -> np.ndarray:
  """The person's ground-truth [x, y, w, h] as the release uses it for training and for
  ground-truth-box evaluation: the annotation's box (when it had none, PoseTrack's own rule
  gives it back from the keypoints; the people stored all have some), sanitised to the frame
  (transforms.sanitize_box; [0, 0, 0, 0] for a person the release drops)."""
  people = record['people']
  if people['has_bbox'][person]:
    box = people['bbox'][person]
  else:
    box = keypoint_box(people['keypoints'][person])
  return transforms.sanitize_box(box, int(record['width']), int(record['height']))


def support_targets(record_a: dict, person: int, record_b: dict, matrix: np.ndarray, flip: bool,
                    config: TrainingInput) -> tuple[np.ndarray, np.bool_]:
  """Frame B's ground-truth heatmaps [h, w, J] of frame A's person (the same track id), under
  A's crop `matrix` (and flip), encoded as A's targets are; and whether B has that person with a
  labeled joint (all zeros and False when not: an unlabeled frame, a person not in it).

  What propagation warps is such a map of the labeled frame; a warper trained to warp B's
  predicted heatmaps meets one only then. This reads the labels of frames B, which a sparse
  subset drops (the table hides them, the records keep them): a diagnostic, never the protocol.
  """
  height, width = config.image_size
  size = codec.heatmap_size((width, height))
  # Records without track ids (a KeyError here) could not say which person of B is A's.
  match = np.flatnonzero(np.asarray(record_b['people']['track_id'])
                         == record_a['people']['track_id'][person])
  keypoints = (np.asarray(record_b['people']['keypoints'][match[0]], np.float64) if len(match)
               else np.zeros((NUM_JOINTS, 3)))
  if not (keypoints[:, 2] > 0).any():
    return np.zeros((size[1], size[0], NUM_JOINTS), np.float32), np.bool_(False)
  moved = transforms.transform_keypoints(keypoints, matrix, flip=flip,
                                         flip_pairs=config.flip_pairs)
  heatmaps, _ = codec.encode(moved, (width, height), size, config.sigma)
  return heatmaps, np.bool_(True)


class PairExamples:
  """(epoch, slot) + rng -> one training example; picklable for Grain's worker processes."""

  def __init__(self, records: Sequence[dict], table: FrameTable, config: TrainingInput):
    self.records = records
    self.table = table
    self.config = config

  @functools.lru_cache(maxsize=2)  # noqa: B019 (one instance per pipeline; the cache is small)
  def pairs(self, epoch: int) -> np.ndarray:
    return training_pairs(self.table, self.config.k, self.config.seed, epoch)

  def __call__(self, epoch_slot: tuple[int, int], rng: np.random.Generator) -> dict[str, Any]:
    epoch, slot = epoch_slot
    record_a, person, record_b = (int(x) for x in self.pairs(epoch)[slot])
    if self.config.single_frame:
      record_b = record_a
    a = self.records[record_a]
    keypoints = np.asarray(a['people']['keypoints'][person], np.float64)
    height, width = self.config.image_size
    aspect = width / height
    box = person_box(a, person)
    trainable = box_has_area(box)
    if not trainable:
      # Nothing to crop (one annotated joint): the whole frame, every target weight 0 below, so
      # the example adds nothing to the loss, as HRNet's loader drops it, while the stream keeps
      # its length and determinism.
      box = np.array([0.0, 0.0, float(a['width']), float(a['height'])])
    aug = transforms.sample_augmentation(rng, box, keypoints, aspect)
    matrix = transforms.crop_transform(aug.center, aug.scale, aug.rotation, (width, height),
                                       flip_width=int(a['width']) if aug.flip else None)
    factor = decode_factor(aug.scale, width) if self.config.reduced_decode else 1
    # One map for both frames (B gets exactly A's crop), adapted to the decoded size.
    decoded = reduced_matrix(matrix, factor) if factor > 1 else matrix
    # uint8 RGB out: a quarter of the bytes of float32 to batch and to copy to the device, and
    # the ImageNet normalization runs there (transforms.normalize's constants).
    crop = lambda record: transforms.warp_image(decode_rgb(record['image'], factor), decoded,
                                                (width, height))
    moved = transforms.transform_keypoints(keypoints, matrix, flip=aug.flip,
                                           flip_pairs=self.config.flip_pairs)
    targets, weights = codec.encode(moved, (width, height), codec.heatmap_size((width, height)),
                                    self.config.sigma)
    if not trainable:
      targets, weights = np.zeros_like(targets), np.zeros_like(weights)
    example = {'frames_a': crop(a), 'targets': targets, 'target_weights': weights,
               'record_a': np.int64(record_a), 'person': np.int64(person),
               'record_b': np.int64(record_b)}
    if not self.config.single_frame:
      b = a if record_b == record_a else self.records[record_b]
      example['frames_b'] = example['frames_a'] if b is a else crop(b)
      if self.config.support_targets:
        example['targets_b'], example['has_targets_b'] = support_targets(
            a, person, b, matrix, aug.flip, self.config)
    return example


def _for_devices(batch: dict[str, np.ndarray], num_devices: int) -> dict[str, np.ndarray]:
  return {k: v.reshape(num_devices, v.shape[0] // num_devices, *v.shape[1:])
          for k, v in batch.items()}


def read_options(threads: int | None, workers: int = 0) -> grain.ReadOptions:
  """`threads` element threads (None: this process's share of the cores it may run on, split
  over `workers` worker processes) and a prefetch buffer of 4 elements per thread.

  An element is a whole batch. Grain's defaults (16 threads, 500 elements ahead) read ten
  thousand examples ahead of a step: a short run decoded 4,000 crops to train on 32, a W48 batch
  of 32 pairs is 21 MB (10 GB buffered), and the surplus threads take cores from the step
  (docs/benchmarks.md, "The input pipeline's read-ahead").
  """
  if threads is None:
    # sched_getaffinity honours a container's or taskset's limit; macOS has only cpu_count.
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
             else os.cpu_count() or 1)
    threads = max(1, cores // max(1, workers))
  return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=4 * threads)


def _init_worker(worker_index: int, worker_count: int) -> None:
  del worker_index, worker_count
  # One core per worker: OpenCV's own thread pool would oversubscribe the machine.
  cv2.setNumThreads(1)
  keep_freed_memory()


def epoch_size(table: FrameTable, config: TrainingInput) -> int:
  """Training examples per epoch: one per labeled person (the pair view's rows; the same count
  every epoch, only the support frames are drawn anew)."""
  return len(training_pairs(table, config.k, config.seed, 0))


def training_dataset(records: Sequence[dict], table: FrameTable,
                     config: TrainingInput) -> grain.IterDataset:
  """The training stream of this process: batches [num_devices, per_device, ...]."""
  per_process = config.per_process_batch()
  keep_freed_memory()  # for elements computed in this process (no workers)
  examples = PairExamples(crop_records(records), table, config)
  num_slots = epoch_size(table, config)
  if num_slots == 0:
    raise ValueError('the split has no labeled person to train on')
  dataset = (grain.MapDataset.range(num_slots)
             .shuffle(seed=config.seed)
             .repeat(config.num_epochs)
             .map_with_index(lambda index, slot: (index // num_slots, slot)))
  # Randomness first, the process's share second: an element's augmentation is drawn from its
  # index in the global stream, so it does not depend on how many processes read it.
  dataset = dataset.random_map(examples, seed=config.seed)
  dataset = (dataset[config.process_index::config.process_count]
             .batch(per_process, drop_remainder=True)
             .map(functools.partial(_for_devices, num_devices=config.num_devices)))
  iterable = dataset.to_iter_dataset(read_options(config.read_threads, config.num_workers))
  if config.num_workers > 0:
    if not flags.FLAGS.is_parsed():
      # Grain's workers read absl flags; outside an absl app (notebooks, tests) use defaults.
      flags.FLAGS.mark_as_parsed()
    iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.num_workers),
                                    worker_init_fn=_init_worker)
  return iterable


# --- Evaluation -------------------------------------------------------------------------------

# The release's detection files name frames by path: .../<6-digit video>_<...>/<6-digit frame>.jpg
_FRAME_PATH = re.compile(r'(\d{6})_[^/]*/(\d+)\.jpg$')


@dataclasses.dataclass(frozen=True)
class Boxes:
  """Boxes to evaluate, [B] each: record index, [B, 4] box (x, y, w, h), score, and the
  annotation id of a ground-truth box (-1 for a detection)."""

  record: np.ndarray
  box: np.ndarray
  score: np.ndarray
  annotation_id: np.ndarray


def ground_truth_boxes(records: Sequence[dict], table: FrameTable) -> Boxes:
  """One box per annotated person of every labeled frame, score 1 (people whose box has no
  area, one annotated joint, are left out as HRNet leaves them out)."""
  rows = []
  for r in np.flatnonzero(table.is_labeled & (table.people > 0)):
    record = records[int(r)]
    for p, annotation_id in enumerate(record['people']['annotation_id']):
      box = person_box(record, p)
      if box_has_area(box):  # as HRNet: a box without area cannot be cropped
        rows.append((int(r), box, 1.0, int(annotation_id)))
  return _boxes(rows)


def box_from_json(bbox: Any, where: str) -> np.ndarray:
  """[4] float64 (x, y, w, h) from a boxes or detection file's bbox: four finite numbers with
  w, h > 0 (a box without area has nothing to crop); a ValueError starting with `where` (the
  file and the entry) otherwise."""
  reasons = ([why_not_a_finite_number(v) for v in bbox]
             if isinstance(bbox, list) and len(bbox) == 4 else ['not a list of 4'])
  if any(reasons) or bbox[2] <= 0 or bbox[3] <= 0:
    why = next((r for r in reasons if r), 'w or h not positive')
    raise ValueError(f'{where}: bbox must be [x, y, w, h], four finite numbers with w, h > 0, '
                     f'got {bbox!r:.80} ({why})')
  return np.asarray(bbox, np.float64)


def score_from_json(score: Any, where: str) -> float:
  """A finite score from a boxes or detection file (a NaN would fail every threshold and vanish
  in silence); a ValueError starting with `where` otherwise."""
  why = why_not_a_finite_number(score)
  if why is not None:
    raise ValueError(f'{where}: score must be a finite number, got {why}')
  return float(score)


def detection_boxes(path: str, records: Sequence[dict], table: FrameTable,
                    min_score: float = 0.0) -> Boxes:
  """Boxes of a detection file on the labeled frames, score >= min_score (the release: 0.2).

  Two formats: COCO results ([{image_id, bbox, score, ...}]) and the release's
  ([{image_name, bbox, score}], image_name ending in <video>_<...>/<frame>.jpg). Detections of
  frames that are not labeled, or not in the split, are ignored. Every detection must have an
  integer image_id (or a string image_name), a bbox of four finite numbers with w, h > 0 and a
  finite score; anything else is a ValueError naming the file, the detection and the field.
  """
  with open(path) as f:
    try:
      entries = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path}: not valid JSON ({e})') from e
  if not isinstance(entries, list):
    raise ValueError(f'{path}: expected a list of detections')
  labeled = np.flatnonzero(table.is_labeled)
  by_image_id = {int(records[int(r)]['image_id']): int(r) for r in labeled}
  by_frame = {(table.video_names[table.video[r]], int(table.frame_index[r])): int(r)
              for r in labeled}
  rows = []
  for i, entry in enumerate(entries):
    if not isinstance(entry, dict) or 'bbox' not in entry or 'score' not in entry:
      raise ValueError(f'{path}: detection {i} needs "bbox" and "score" (and "image_id" or '
                       f'"image_name"), got {entry!r}')
    if 'image_id' in entry:
      image_id = entry['image_id']
      # int('12') or int(3.7) would quietly name some frame; 3.0 is the integer it spells.
      why = why_not_a_finite_number(image_id)
      if why is None and image_id != int(image_id):
        why = f'{image_id!r} (not an integer)'
      if why is not None:
        raise ValueError(f'{path}: detection {i}: image_id must be an integer (the frame\'s '
                         f'id), got {why}')
      record = by_image_id.get(int(image_id))
    elif 'image_name' in entry:
      match = _FRAME_PATH.search(str(entry['image_name']))
      if match is None:
        raise ValueError(f'{path}: detection {i}: image_name {entry["image_name"]!r} is not '
                         '.../<video>_<...>/<frame>.jpg')
      record = by_frame.get((match[1], int(match[2])))
    else:
      raise ValueError(f'{path}: detection {i} has neither "image_id" nor "image_name"')
    box = box_from_json(entry['bbox'], f'{path}: detection {i}')
    score = score_from_json(entry['score'], f'{path}: detection {i}')
    if record is not None and score >= min_score:
      rows.append((record, box, score, -1))
  return _boxes(rows)


def _boxes(rows) -> Boxes:
  if not rows:
    return Boxes(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
  record, box, score, annotation_id = zip(*rows, strict=True)
  return Boxes(np.asarray(record, np.int64), np.stack(box), np.asarray(score),
               np.asarray(annotation_id, np.int64))


def image_ids_of(records: Sequence[dict], record_index: np.ndarray) -> np.ndarray:
  """The PoseTrack image ids of records (each record read once, through the lean records)."""
  records = crop_records(records)
  ids = {int(r): int(records[int(r)]['image_id']) for r in np.unique(record_index)}
  return np.asarray([ids[int(r)] for r in record_index], np.int64)


def propagation_items(records: Sequence[dict], protocol: np.ndarray,
                      kept: bool = False) -> np.ndarray:
  """[M, 3] (target record, source record, person) for every kept person of a moved frame of the
  propagation protocol (pairs.propagation_protocol: rows (target, source, delta)); with `kept`,
  of the kept frames too (target = source: the release scores them, warped with d = 0)."""
  records, rows = crop_records(records), []
  for target, src, delta in protocol:
    if delta != 0 or kept:
      record = records[int(src)]
      keypoints = np.asarray(record['people']['keypoints'])
      # A person whose box has no area (one annotated joint) cannot be cropped: not propagated.
      rows += [(target, src, p) for p in range(len(keypoints))
               if keypoints[p, :, 2].any() and box_has_area(person_box(record, p))]
  return np.asarray(rows, np.int64).reshape(-1, 3)


# --- Crops of boxes in several frames: evaluation, propagation, inference ----------------------

@dataclasses.dataclass(frozen=True)
class Crops:
  """What to crop: box i ([x, y, w, h] in frame pixels) in each of frames[i] (indices of the
  frame source: records, or frames in memory), and optionally keypoints [17, 3] (frame pixels)
  whose Gaussian heatmaps in that crop come along (codec.encode).

  box [N, 4], frames [N, T] int64, keypoints [N, 17, 3] or None.
  """

  box: np.ndarray
  frames: np.ndarray
  keypoints: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.box)


class CropExamples:
  """Index i -> {'frames' [T, H, W, 3] uint8 RGB: box i cropped from each of frames[i] with one
  affine map; 'center' [2], 'scale' [2]: the crop, for decoding; 'heatmaps' [h, w, J] with
  keypoints}. `frame(index)` gives a frame [H, W, 3] uint8 RGB."""

  def __init__(self, frame: Callable[[int], np.ndarray], crops: Crops,
               image_size: tuple[int, int], sigma: float = 3.0):
    self.frame, self.crops, self.image_size, self.sigma = frame, crops, image_size, sigma

  def __call__(self, index: int) -> dict[str, Any]:
    height, width = self.image_size
    center, scale, matrix = transforms.box_crop(self.crops.box[index], (width, height))
    cropped = {}  # a frame repeated (clipped at the video's ends) is cropped once
    for f in self.crops.frames[index]:
      if f not in cropped:
        cropped[f] = transforms.warp_image(self.frame(int(f)), matrix, (width, height))
    example = {'frames': np.stack([cropped[f] for f in self.crops.frames[index]]),
               'center': center, 'scale': scale}
    if self.crops.keypoints is not None:
      moved = transforms.transform_keypoints(self.crops.keypoints[index], matrix)
      example['heatmaps'], _ = codec.encode(moved, (width, height),
                                            codec.heatmap_size((width, height)), self.sigma)
    return example


def box_crops(table: FrameTable, boxes: Boxes, deltas: Sequence[int]) -> Crops:
  """Each box in its frame and the frames `deltas` away (pairs.neighbours: clipped to the
  video, a frame not stored falls back to the box's own)."""
  return Crops(boxes.box, neighbours(table, boxes.record, deltas))


def propagation_crops(records: Sequence[dict], items: np.ndarray) -> Crops:
  """For propagation_items: the kept person's box in its source frame and in the target frame
  (frames [M, 2] = source, target), with its keypoints for the Gaussians that are warped."""
  records = crop_records(records)
  box, keypoints = [], []
  for _, src, person in items:
    record = records[int(src)]
    box.append(person_box(record, int(person)))
    keypoints.append(np.asarray(record['people']['keypoints'][int(person)], np.float64))
  shape = (len(items), NUM_JOINTS, 3)
  return Crops(np.asarray(box, np.float64).reshape(-1, 4), items[:, [1, 0]].astype(np.int64),
               np.asarray(keypoints, np.float64).reshape(shape))


def propagation_stream(records: Sequence[dict], items: np.ndarray, image_size: tuple[int, int],
                       batch: int, sigma: float) -> grain.IterDataset:
  """The crop stream of propagation_items: per item the kept person's box in the source and the
  target frame, with its ground-truth Gaussians (sigma: the maps the head learned to move)."""
  return crop_stream(record_frames(records), propagation_crops(records, items), image_size,
                     batch, sigma)


def record_frames(records: Sequence[dict]) -> Callable[[int], np.ndarray]:
  """Record index -> its decoded frame, read through the lean records."""
  lean = crop_records(records)
  return lambda r: decode_rgb(lean[r]['image'])


def crop_stream(frame: Callable[[int], np.ndarray], crops: Crops, image_size: tuple[int, int],
                batch: int, sigma: float = 3.0,
                read_threads: int | None = None) -> grain.IterDataset:
  """CropExamples of every crop once, in order, in batches of `batch` (the last one shorter):
  {'frames' [B, T, H, W, 3] uint8, 'center' [B, 2], 'scale' [B, 2], ('heatmaps' [B, h, w, J])}.
  Padding to a fixed batch is the predictor's (predictor.py), which knows the devices."""
  keep_freed_memory()
  examples = CropExamples(frame, crops, image_size, sigma)
  dataset = grain.MapDataset.range(len(crops)).map(examples).batch(batch)
  return dataset.to_iter_dataset(read_options(read_threads))
