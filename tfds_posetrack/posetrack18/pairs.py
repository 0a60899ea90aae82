"""Views of a PoseTrack18 split as the (labeled, unlabeled) pairs and the evaluation protocols.

The builder stores one record per frame; these functions turn the split's frame table (in the
dataset's metadata, so no image is read) into arrays of record indices:

- `training_pairs`: PoseWarper's training pairs (spec 2.2): every person with keypoints in a
  labeled frame t, with a support frame t + delta, delta uniform in [-k, k], clipped to the
  video, falling back to t itself when that frame is not stored. Deterministic for a (seed,
  epoch); k is an argument, so an ablation over the frame gap needs no rebuild (frames farther
  than the build's max_gap from every label are not stored and fall back too).
- `neighbours`: for given records, the records at fixed frame offsets (aggregation at test time:
  deltas 0, -1, -2, +1, +2), with the same clipping and fallback.
- `propagation_protocol`: spec 3's video pose propagation on validation videos.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

# Frame files are named with six digits.
_FRAME_LIMIT = 10**6
# Spec 3's propagation: every frame of a labeled run is at most this far from a kept label.
PROPAGATION_DISTANCE = 3
# The release's propagation experiment leaves out runs of three frames or fewer (spec 7).
PROPAGATION_MIN_RUN = 4


@dataclasses.dataclass(frozen=True)
class FrameTable:
  """One split's records, in record order. Arrays are [R]; `video` indexes `video_names`."""

  video_names: tuple[str, ...]
  video: np.ndarray
  frame_index: np.ndarray
  nframes: np.ndarray
  is_labeled: np.ndarray
  people: np.ndarray

  @classmethod
  def from_metadata(cls, table: Mapping[str, Sequence]) -> FrameTable:
    """From the builder's `info.metadata['frames'][split]` (lists per field)."""
    names, video = np.unique(np.asarray(table['video_id'], dtype=str), return_inverse=True)
    return cls(video_names=tuple(names), video=video.astype(np.int64),
               frame_index=np.asarray(table['frame_index'], np.int64),
               nframes=np.asarray(table['nframes'], np.int64),
               is_labeled=np.asarray(table['is_labeled'], bool),
               people=np.asarray(table['people'], np.int64))

  @classmethod
  def from_builder(cls, builder, split: str) -> FrameTable:
    """From a prepared tfds_posetrack PoseTrack18 builder."""
    frames = builder.info.metadata.get('frames', {})
    if split not in frames:
      raise ValueError(f'{builder.data_dir}: no frame table for split {split!r} (splits with one: '
                       f'{", ".join(frames) or "none"}); rebuild the dataset')
    return cls.from_metadata(frames[split])

  def __len__(self) -> int:
    return len(self.video)

  def lookup(self, video: np.ndarray, frame_index: np.ndarray) -> np.ndarray:
    """Record index of each (video, frame index), -1 where that frame is not stored."""
    video, frame_index = np.broadcast_arrays(np.asarray(video, np.int64),
                                             np.asarray(frame_index, np.int64))
    if not len(self.video):
      return np.full(video.shape, -1, np.int64)
    keys = self.video * _FRAME_LIMIT + self.frame_index
    order = np.argsort(keys, kind='stable')
    sorted_keys = keys[order]
    query = video * _FRAME_LIMIT + frame_index
    pos = np.searchsorted(sorted_keys, query).clip(max=len(keys) - 1)
    hit = (sorted_keys[pos] == query) & (frame_index >= 0) & (frame_index < _FRAME_LIMIT)
    return np.where(hit, order[pos], -1)


def _check_gap(k: int) -> None:
  if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
    raise ValueError(f'the frame gap k (config.data.max_gap) must be an integer >= 0, got {k!r}')


def neighbours(table: FrameTable, records: np.ndarray, deltas: Sequence[int]) -> np.ndarray:
  """[len(records), len(deltas)] record indices of frame t + delta in each record's video.

  t + delta is clipped to [0, nframes - 1]; a frame that is not stored falls back to the record
  itself (spec 2.2 and 3).
  """
  records = np.asarray(records, np.int64)
  deltas = np.asarray(deltas, np.int64)
  target = np.clip(table.frame_index[records, None] + deltas[None, :], 0,
                   table.nframes[records, None] - 1)
  found = table.lookup(np.broadcast_to(table.video[records, None], target.shape), target)
  return np.where(found >= 0, found, records[:, None])


def training_pairs(table: FrameTable, k: int, seed: int, epoch: int) -> np.ndarray:
  """PoseWarper's training pairs for one epoch: int64 [P, 3] (record A, person, record B).

  One row per person of every labeled record (the builder keeps only people with keypoints),
  in record order; the pipeline shuffles. delta is drawn uniformly from [-k, k] (0 included,
  B = A then) by numpy's default_rng([seed, epoch]).
  """
  _check_gap(k)
  labeled = np.flatnonzero(table.is_labeled & (table.people > 0))
  counts = table.people[labeled]
  record_a = np.repeat(labeled, counts)
  person = np.arange(len(record_a)) - np.repeat(np.cumsum(counts) - counts, counts)
  rng = np.random.default_rng([seed, epoch])
  delta = rng.integers(-k, k + 1, size=len(record_a))
  # One delta per row (neighbours() applies the same deltas to every record).
  target = np.clip(table.frame_index[record_a] + delta, 0, table.nframes[record_a] - 1)
  record_b = table.lookup(table.video[record_a], target)
  record_b = np.where(record_b >= 0, record_b, record_a)
  return np.stack([record_a, person, record_b], axis=1).astype(np.int64)


def check_sparse_labels(videos: int, frames_per_video: int) -> None:
  """ValueError naming config.data.labeled_videos / labeled_frames_per_video unless each is -1
  (all) or a positive integer."""
  for name, value in (('labeled_videos', videos), ('labeled_frames_per_video', frames_per_video)):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value == 0 \
        or value < -1:
      raise ValueError(f'config.data.{name} must be -1 (all) or a positive integer, got '
                       f'{value!r}')


def sparse_labels(table: FrameTable, videos: int = -1, frames_per_video: int = -1,
                  seed: int = 0) -> FrameTable:
  """The paper's sparse-label training set (spec 7): the table with only V videos' N labeled
  frames still labeled (-1: all). The frames stay stored, so every frame of a kept video is
  still there as a frame B; a frame that lost its label is never a frame A, so its people reach
  no loss.

  The rule (the release ships its subsets as files and says nothing of how they were drawn):
  - videos: those with a labeled frame, in name order, permuted by numpy's
    default_rng([seed, 7]); the first V of the permutation are kept;
  - frames: in each kept video its L labeled frames in frame order, cut into N equal parts, the
    middle one of each part: positions floor((i + 1/2) * L / N), i = 0 .. N - 1 (all of them
    when N >= L). N = 1 keeps the middle labeled frame; N = 5 of PoseTrack18's 30 keeps
    3, 9, 15, 21, 27.
  """
  check_sparse_labels(videos, frames_per_video)
  if videos == -1 and frames_per_video == -1:
    return table
  labeled = np.flatnonzero(table.is_labeled)
  candidates = np.unique(table.video[labeled])
  if videos != -1 and videos < len(candidates):
    order = np.random.default_rng([seed, 7]).permutation(len(candidates))
    candidates = np.sort(candidates[order[:videos]])
  keep = np.zeros(len(table), bool)
  for video in candidates:
    records = labeled[table.video[labeled] == video]
    records = records[np.argsort(table.frame_index[records], kind='stable')]
    n = len(records) if frames_per_video == -1 else min(frames_per_video, len(records))
    keep[records[((np.arange(n) + 0.5) * len(records) / n).astype(np.int64)]] = True
  return dataclasses.replace(table, is_labeled=keep)


def augmentation_targets(table: FrameTable, distance: int = PROPAGATION_DISTANCE) -> np.ndarray:
  """The release's augmentation with propagated poses (spec 7): int64 [Q, 3] (target record,
  source record, delta) for every labeled frame with people (the source) and each of the frames
  delta = -distance .. -1, 1 .. distance away in its video that are stored and not labeled
  themselves (a labeled frame keeps its own labels). A frame near several sources appears once
  per source: it gets every source's poses. Rows in source order, then delta order.
  """
  sources = np.flatnonzero(table.is_labeled & (table.people > 0))
  deltas = np.array([d for d in range(-distance, distance + 1) if d != 0], np.int64)
  frame = table.frame_index[sources, None] + deltas[None, :]
  inside = (frame >= 0) & (frame < table.nframes[sources, None])
  target = table.lookup(np.broadcast_to(table.video[sources, None], frame.shape), frame)
  valid = inside & (target >= 0)
  valid[valid] &= ~table.is_labeled[target[valid]]
  source = np.broadcast_to(sources[:, None], frame.shape)
  delta = np.broadcast_to(deltas[None, :], frame.shape)
  return np.stack([target[valid], source[valid], delta[valid]], axis=1).astype(np.int64)


def labeled_records(table: FrameTable) -> np.ndarray:
  """The labeled records (the frames evaluated), in record order."""
  return np.flatnonzero(table.is_labeled)


def longest_labeled_run(table: FrameTable, video: int) -> np.ndarray:
  """The records of video `video`'s longest run of consecutive labeled frames, in frame order
  (the first of equally long runs); empty when the video has no labeled frame."""
  labeled = labeled_records(table)
  records = labeled[table.video[labeled] == video]
  if not len(records):
    return records
  records = records[np.argsort(table.frame_index[records], kind='stable')]
  breaks = np.flatnonzero(np.diff(table.frame_index[records]) != 1) + 1
  return max(np.split(records, breaks), key=len)  # max() keeps the first of equal runs


def propagation_protocol(table: FrameTable, max_distance: int = PROPAGATION_DISTANCE,
                         min_run: int = 1) -> np.ndarray:
  """Spec 3's propagation protocol: int64 [Q, 3] (target record, source record, delta).

  In each video's longest run of consecutive labeled frames (the first on ties), run position 3
  (the 4th frame) and then every 7th are the labeled sources, plus the run's last frame when it
  is more than `max_distance` frames after the previous source. Every frame of the run takes its
  nearest source (the earlier one on ties); delta = target frame - source frame, 0 for the
  sources themselves. Runs shorter than `min_run` frames are left out (the release's
  propagation experiment: PROPAGATION_MIN_RUN).
  """
  rows = []
  for v in range(len(table.video_names)):
    run = longest_labeled_run(table, v)
    if not len(run) or len(run) < min_run:
      continue
    n = len(run)
    sources = list(range(min(3, n - 1), n, 2 * max_distance + 1))
    if n - 1 - sources[-1] > max_distance:
      sources.append(n - 1)
    sources = np.asarray(sources)
    nearest = sources[np.argmin(np.abs(np.arange(n)[:, None] - sources[None, :]), axis=1)]
    rows.append(np.stack([run, run[nearest], np.arange(n) - nearest], axis=1))
  return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 3), np.int64)
