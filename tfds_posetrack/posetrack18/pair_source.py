"""PoseWarper's training pairs as records: a random-access source of (labeled, support) frames.

    source = PairSource.from_builder(builder, 'train', k=2, seed=0, epoch=0)
    pair = source[i]                # row i of training_pairs(table, 2, 0, 0), read
    dataset = grain.MapDataset.source(source)
    source = source.with_epoch(1)   # the next epoch's support frames

The pair view (pairs.training_pairs) gives an epoch's pairs as int64 [P, 3] record indices
(record A, person, record B); this reads them. Element i is row i of that array, so the
source's pairs are exactly the training stream's (posewarper_jax/data/pipeline.py,
PairExamples.pairs: the same function, k, seed and epoch; the stream shuffles the rows and
crops the frames, this source keeps record order and the records as stored):

    {'frame_a': record A, labeled (every field as the records give them: 'image' JPEG bytes,
                'video_id', 'frame_index', 'nframes', 'image_id', 'is_labeled', 'width',
                'height', 'ignore_regions', 'people' with every person of the frame),
     'frame_b': record B, the support frame (t + delta; may be unlabeled, may be A itself),
     'person': the person's fields picked out of frame_a['people']: 'keypoints' [17, 3]
               float64 (x, y, visibility), 'bbox' [4] and 'bbox_head' [4] float64 (x, y, w, h),
               'has_bbox' bool, 'track_id' int32, 'annotation_id' int64 (NumPy; the fields the
               records have),
     'person_index': int64, the person's index in frame_a['people'],
     'delta': int64, frame B's frame index - frame A's, as used: the drawn delta in [-k, k]
              after clipping to the video, 0 where the frame was not stored (B = A),
     'record_a', 'record_b': int64, the two records' indices in the split}

Both records are read when an element is (B is read again when it is A: the two dicts are
never the same object). The source is picklable, as Grain's worker processes need, when its
records are (a TFDS ArrayRecord data source is: each worker re-opens the files).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfds_posetrack.posetrack18.damage import open_records
from tfds_posetrack.posetrack18.pairs import FrameTable, _check_gap, training_pairs


def _check_draw(name: str, value: int) -> None:
  """ValueError naming `name` unless value is an integer >= 0 (numpy's default_rng([seed,
  epoch]) takes nothing else)."""
  if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
    raise ValueError(f'the {name} must be an integer >= 0, got {value!r}')


class PairSource(Sequence):
  """One epoch's training pairs of a split, element i = row i of training_pairs (see the module
  docstring for an element's layout).

  records: the split's records in record order (builder.as_data_source(split), or any sequence
    of record dicts, e.g. LeanRecords: an element then has the fields those records have).
  table: the split's FrameTable (FrameTable.from_builder), or a restriction of it such as
    sparse_labels(table, V, N, seed): only its labeled frames are frames A.
  k: the frame gap, delta uniform in [-k, k]; seed, epoch: the draw (numpy's
    default_rng([seed, epoch])), as the training stream's config.seed and epoch.
  """

  def __init__(self, records: Sequence[dict], table: FrameTable, k: int = 2, seed: int = 0,
               epoch: int = 0):
    _check_gap(k)
    _check_draw('seed', seed)
    _check_draw('epoch', epoch)
    if len(records) != len(table):
      raise ValueError(f'the records ({len(records)}) and the frame table ({len(table)} records) '
                       'are not of the same split')
    self.records, self.table = records, table
    self.k, self.seed, self.epoch = int(k), int(seed), int(epoch)
    self._pairs = training_pairs(table, self.k, self.seed, self.epoch)
    self._pairs.setflags(write=False)
    self._delta = table.frame_index[self._pairs[:, 2]] - table.frame_index[self._pairs[:, 0]]
    self._delta.setflags(write=False)

  @classmethod
  def from_builder(cls, builder, split: str, k: int = 2, seed: int = 0, epoch: int = 0,
                   table: FrameTable | None = None) -> PairSource:
    """Over split `split` of a prepared tfds_posetrack PoseTrack18 builder (its ArrayRecord data
    source, damage.open_records: a damaged shard is a DamagedDatasetError); `table`, when given,
    replaces the split's own frame table (sparse_labels)."""
    own = FrameTable.from_builder(builder, split)  # ValueError naming the split if there is none
    if table is not None and len(table) != len(own):
      raise ValueError(f'table has {len(table)} records, split {split!r} of {builder.data_dir} '
                       f'has {len(own)}: pass a table of that split (sparse_labels of '
                       'FrameTable.from_builder(builder, split))')
    return cls(open_records(builder, split), own if table is None else table, k, seed, epoch)

  def with_epoch(self, epoch: int) -> PairSource:
    """The same source with another epoch's deltas (the same frames A and people)."""
    return PairSource(self.records, self.table, self.k, self.seed, epoch)

  @property
  def pairs(self) -> np.ndarray:
    """int64 [P, 3] (record A, person, record B), read-only: training_pairs' array."""
    return self._pairs

  @property
  def deltas(self) -> np.ndarray:
    """int64 [P]: frame B's frame index - frame A's, per pair, read-only."""
    return self._delta

  def __len__(self) -> int:
    return len(self._pairs)

  def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
    if isinstance(index, slice):
      return [self[i] for i in range(*index.indices(len(self)))]
    i = operator.index(index)  # TypeError for a float or a string, as a list
    if not -len(self) <= i < len(self):
      raise IndexError(f'pair index {index} out of range for {len(self)} pairs')
    record_a, person, record_b = (int(x) for x in self._pairs[i])
    a = self.records[record_a]
    return {'frame_a': a, 'frame_b': self.records[record_b],
            'person': {name: np.asarray(values[person]) for name, values in a['people'].items()},
            'person_index': np.int64(person), 'delta': np.int64(self._delta[i]),
            'record_a': np.int64(record_a), 'record_b': np.int64(record_b)}

  def __repr__(self) -> str:
    return (f'PairSource({len(self)} pairs of {len(self.table)} records, k={self.k}, '
            f'seed={self.seed}, epoch={self.epoch})')

