"""PairSource: the training pairs of a built split as records, row for row the pair view's."""

from __future__ import annotations

import itertools
import pickle

import grain
import numpy as np
import pytest

from posewarper_jax.data.pipeline import PairExamples, TrainingInput, training_dataset
from tfds_posetrack.posetrack18 import (
    FrameTable,
    PairSource,
    prepare,
    sparse_labels,
    training_pairs,
)


@pytest.fixture(scope='module')
def builder(synthetic_root, tmp_path_factory):
  """synthetic_root built (2 train videos: 80 frames, 60 labeled)."""
  return prepare(synthetic_root, tmp_path_factory.mktemp('tfds'))


@pytest.fixture(scope='module')
def train(builder):
  return builder.as_data_source('train'), FrameTable.from_builder(builder, 'train')


def _same(x, y) -> bool:
  """Deep equality of records (dicts of lists, arrays, bytes and scalars)."""
  if isinstance(x, dict):
    return isinstance(y, dict) and x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
  if isinstance(x, (list, tuple)):
    return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))
  return np.array_equal(np.asarray(x), np.asarray(y))


def test_every_element_is_its_row_of_training_pairs(builder, train):
  records, table = train
  source = PairSource.from_builder(builder, 'train', k=2, seed=3, epoch=1)
  rows = training_pairs(table, 2, seed=3, epoch=1)
  assert len(source) == len(rows) == table.people[table.is_labeled].sum() > 0
  np.testing.assert_array_equal(source.pairs, rows)
  assert not source.pairs.flags.writeable
  for i, (a, person, b) in enumerate(rows):
    pair = source[i]
    assert (pair['record_a'], pair['person_index'], pair['record_b']) == (a, person, b)
    assert _same(pair['frame_a'], records[int(a)]) and _same(pair['frame_b'], records[int(b)])
    frame_a, frame_b = pair['frame_a'], pair['frame_b']
    assert frame_a['is_labeled'] and frame_a['video_id'] == frame_b['video_id']
    assert pair['delta'] == frame_b['frame_index'] - frame_a['frame_index'] == source.deltas[i]
    assert abs(pair['delta']) <= 2
    assert pair['person'].keys() == frame_a['people'].keys()
    for name, value in pair['person'].items():
      np.testing.assert_array_equal(value, frame_a['people'][name][person])
    assert pair['person']['keypoints'].shape == (17, 3) and pair['person']['bbox'].shape == (4,)
    if a == b:
      assert pair['frame_b'] is not pair['frame_a']  # two reads, two dicts
  assert set(source.deltas.tolist()) == {-2, -1, 0, 1, 2}


def test_indexing_is_a_sequence(builder):
  source = PairSource.from_builder(builder, 'train', k=1)
  n = len(source)
  assert _same(source[-1], source[n - 1]) and _same(source[np.int64(-n)], source[0])
  for index in (n, -n - 1):
    with pytest.raises(IndexError, match=f'out of range for {n} pairs'):
      source[index]
  with pytest.raises(TypeError):
    source[1.0]
  assert [p['record_a'] for p in source[n - 2:]] == source.pairs[n - 2:, 0].tolist()
  assert len(list(itertools.islice(iter(source), 3))) == 3
  assert repr(source) == f'PairSource({n} pairs of 80 records, k=1, seed=0, epoch=0)'


def test_deterministic_per_seed_and_epoch(builder):
  source = PairSource.from_builder(builder, 'train', k=3, seed=1, epoch=0)
  np.testing.assert_array_equal(source.pairs,
                                PairSource.from_builder(builder, 'train', 3, 1, 0).pairs)
  later = source.with_epoch(1)
  assert (later.k, later.seed, later.epoch, len(later)) == (3, 1, 1, len(source))
  np.testing.assert_array_equal(later.pairs[:, :2], source.pairs[:, :2])  # the same A, people
  assert not np.array_equal(later.deltas, source.deltas)
  np.testing.assert_array_equal(later.pairs, training_pairs(source.table, 3, seed=1, epoch=1))
  other_seed = PairSource.from_builder(builder, 'train', k=3, seed=2, epoch=0)
  assert not np.array_equal(other_seed.deltas, source.deltas)
  assert (PairSource.from_builder(builder, 'train', k=0).deltas == 0).all()


def test_sparse_labels_keep_only_their_frames_as_a(builder, train):
  _, table = train
  sparse = sparse_labels(table, videos=1, frames_per_video=3, seed=0)
  source = PairSource.from_builder(builder, 'train', k=2, seed=0, epoch=0, table=sparse)
  kept = set(np.flatnonzero(sparse.is_labeled & (sparse.people > 0)).tolist())
  assert len(kept) == 3 and len(source) == sparse.people[sparse.is_labeled].sum()
  assert {int(source[i]['record_a']) for i in range(len(source))} == kept
  np.testing.assert_array_equal(source.pairs, training_pairs(sparse, 2, seed=0, epoch=0))
  assert source.with_epoch(4).table is sparse


def test_delta_is_the_one_used_where_the_support_is_not_stored(synthetic_root, tmp_path):
  # max_gap 0 stores the labeled frames only: validation labels the middle 30 frames and every
  # 4th, so a support frame drawn next to an isolated one is not there and B falls back to A.
  built = prepare(synthetic_root, tmp_path, max_gap=0)
  source = PairSource.from_builder(built, 'validation', k=2, seed=0, epoch=0)
  table = source.table
  drawn = np.random.default_rng([0, 0]).integers(-2, 3, size=len(source))  # training_pairs' draw
  fell_back = (drawn != 0) & (source.deltas == 0)
  assert fell_back.any()
  np.testing.assert_array_equal(source.pairs[fell_back, 0], source.pairs[fell_back, 2])
  for i in np.flatnonzero(fell_back)[:3].tolist() + [int(np.argmax(source.deltas != 0))]:
    pair = source[i]
    assert pair['delta'] == pair['frame_b']['frame_index'] - pair['frame_a']['frame_index']
    assert pair['delta'] == table.frame_index[pair['record_b']] - table.frame_index[
        pair['record_a']]


def test_grain_reads_it_and_workers_can_unpickle_it(builder):
  source = PairSource.from_builder(builder, 'train', k=2, seed=0, epoch=0)
  dataset = grain.MapDataset.source(source)
  assert len(dataset) == len(source) and _same(dataset[5], source[5])
  order = grain.MapDataset.range(len(source)).shuffle(seed=0)
  firsts = [order[i] for i in range(2)]
  taken = list(itertools.islice(iter(dataset.shuffle(seed=0).to_iter_dataset()), 2))
  assert all(_same(x, source[j]) for x, j in zip(taken, firsts, strict=True))
  again = pickle.loads(pickle.dumps(source))
  np.testing.assert_array_equal(again.pairs, source.pairs)
  assert _same(again[len(source) - 1], source[-1])


def test_the_training_stream_trains_on_the_same_pairs(train):
  records, table = train
  config = TrainingInput(image_size=(32, 24), k=2, seed=4, num_epochs=1, global_batch=8)
  source = PairSource(records, table, k=config.k, seed=config.seed, epoch=0)
  examples = PairExamples(records, table, config)
  for epoch in range(3):
    np.testing.assert_array_equal(source.with_epoch(epoch).pairs, examples.pairs(epoch))
  # The stream's epoch 0, element by element: a shuffle of the source's rows.
  streamed = [np.stack([batch[name].ravel() for name in ('record_a', 'person', 'record_b')], 1)
              for batch in training_dataset(records, table, config)]
  streamed = np.concatenate(streamed)
  assert len(streamed) == len(source) // 8 * 8 and len(streamed) > 0
  rows = {tuple(row) for row in source.pairs.tolist()}
  assert len(rows) == len(source)  # one row per (A, person): a shuffle is a permutation
  assert len({tuple(row) for row in streamed.tolist()} & rows) == len(streamed)  # each once


@pytest.mark.parametrize('kwargs, message', [
    (dict(k=-1), 'frame gap k'), (dict(k=1.5), 'frame gap k'), (dict(seed=-1), 'the seed must'),
    (dict(epoch=True), 'the epoch must'), (dict(split='test'), "no frame table for split 'test'"),
])
def test_bad_arguments_are_named(builder, kwargs, message):
  kwargs = {'split': 'train', **kwargs}
  with pytest.raises(ValueError, match=message):
    PairSource.from_builder(builder, **kwargs)


def test_a_table_of_another_split_is_refused(builder, train):
  records, _ = train
  other = FrameTable.from_builder(builder, 'validation')
  other = FrameTable(other.video_names, other.video[:-1], other.frame_index[:-1],
                     other.nframes[:-1], other.is_labeled[:-1], other.people[:-1])
  with pytest.raises(ValueError, match="table has 79 records, split 'train'"):
    PairSource.from_builder(builder, 'train', table=other)
  with pytest.raises(ValueError, match=r'records \(80\) and the frame table \(79'):
    PairSource(records, other)
