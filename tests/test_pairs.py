"""The pair view and evaluation views over a split's frame table."""

from __future__ import annotations

import numpy as np
import pytest

from tfds_posetrack.posetrack18.pairs import (
    PROPAGATION_MIN_RUN,
    FrameTable,
    neighbours,
    propagation_protocol,
    sparse_labels,
    training_pairs,
)


def _table(videos):
  """videos: {name: (nframes, stored frames, labeled frames, people per labeled frame)}."""
  out = {'video_id': [], 'frame_index': [], 'nframes': [], 'is_labeled': [], 'people': []}
  for name, (nframes, stored, labeled, people) in videos.items():
    for f in stored:
      out['video_id'].append(name)
      out['frame_index'].append(f)
      out['nframes'].append(nframes)
      out['is_labeled'].append(f in labeled)
      out['people'].append(people if f in labeled else 0)
  return FrameTable.from_metadata(out)


# Video a: 40 frames, 10..29 labeled, stored within 7 of a label (3..36) minus a hole at 31.
# Video b: 12 frames, all stored, 0..11 labeled with 2 people (pairs clip at both ends).
VIDEOS = {
    'a': (40, [f for f in range(3, 37) if f != 31], set(range(10, 30)), 1),
    'b': (12, list(range(12)), set(range(12)), 2),
}


@pytest.fixture
def table():
  return _table(VIDEOS)


def test_lookup(table):
  assert table.lookup([0, 0, 0, 1], [3, 31, 37, 11]).tolist() == [0, -1, -1, len(table) - 1]


@pytest.mark.parametrize('k', [0, 1, 3, 7, 12])
def test_pairs_stay_within_k_and_fall_back(table, k):
  pairs = training_pairs(table, k, seed=0, epoch=0)
  a, person, b = pairs.T
  assert len(pairs) == 20 * 1 + 12 * 2
  assert (table.is_labeled[a]).all() and (table.video[a] == table.video[b]).all()
  assert (person < table.people[a]).all()
  assert set(person[table.video[a] == 1]) == {0, 1}
  gap = table.frame_index[b] - table.frame_index[a]
  assert np.abs(gap).max() <= k
  if k == 0:
    assert (a == b).all()
  if k >= 7:
    # Video b clips at its ends: frame 0 never pairs with a negative frame.
    in_b = table.frame_index[b][table.video[b] == 1]
    assert in_b.min() == 0 and in_b.max() == 11
    # Frame 31 of video a is missing: a pair aiming there falls back to A itself.
    assert 31 not in table.frame_index[b]


def test_pairs_fall_back_where_the_support_is_not_stored():
  # Frames 0..4 stored, labeled 2; frames beyond are listed (nframes 100) but were not kept.
  table = _table({'v': (100, range(5), {2}, 1)})
  pairs = training_pairs(table, 20, seed=0, epoch=0)
  draws = np.concatenate([training_pairs(table, 20, seed=s, epoch=0) for s in range(200)])
  gaps = table.frame_index[draws[:, 2]] - table.frame_index[draws[:, 0]]
  assert set(gaps) == {-2, -1, 0, 1, 2}  # every other delta fell back to 0
  assert (gaps == 0).mean() > 0.5
  assert pairs.shape == (1, 3)


def test_pairs_are_deterministic_per_seed_and_epoch(table):
  first = training_pairs(table, 3, seed=1, epoch=4)
  np.testing.assert_array_equal(first, training_pairs(table, 3, seed=1, epoch=4))
  assert not np.array_equal(first, training_pairs(table, 3, seed=1, epoch=5))
  assert not np.array_equal(first, training_pairs(table, 3, seed=2, epoch=4))
  # The same table serves every k: the A side does not depend on it.
  np.testing.assert_array_equal(first[:, :2], training_pairs(table, 1, seed=1, epoch=4)[:, :2])


def test_bad_gap_is_named(table):
  with pytest.raises(ValueError, match='config.data.max_gap'):
    training_pairs(table, -1, seed=0, epoch=0)


def test_neighbours_clip_and_fall_back(table):
  deltas = (0, -1, -2, 1, 2)
  b_first = int(np.flatnonzero((table.video == 1) & (table.frame_index == 0))[0])
  a_30 = int(np.flatnonzero((table.video == 0) & (table.frame_index == 30))[0])
  rows = neighbours(table, [b_first, a_30], deltas)
  assert table.frame_index[rows[0]].tolist() == [0, 0, 0, 1, 2]  # clipped at frame 0
  assert table.frame_index[rows[1]].tolist() == [30, 29, 28, 30, 32]  # 31 missing: itself


def test_propagation_protocol_on_a_30_frame_run():
  # Labeled: the 30-frame middle run 20..49 plus every 4th elsewhere (as validation videos).
  labeled = set(range(20, 50)) | set(range(0, 80, 4))
  table = _table({'v': (80, range(80), labeled, 1)})
  rows = propagation_protocol(table)
  target, source, delta = rows.T
  assert sorted(table.frame_index[target]) == list(range(20, 50))
  sources = sorted(set(table.frame_index[source]))
  assert sources == [23, 30, 37, 44, 49]  # 4th frame, every 7th, and the last (5 after 44)
  assert np.abs(delta).max() == 3
  np.testing.assert_array_equal(delta, table.frame_index[target] - table.frame_index[source])
  # The nearest source: 46 is 2 after 44 (3 before 49), 47 is 2 before 49.
  by_target = dict(zip(table.frame_index[target], table.frame_index[source], strict=True))
  assert by_target[46] == 44 and by_target[47] == 49 and by_target[20] == 23


def test_propagation_protocol_short_runs_and_ties():
  table = _table({'a_short': (10, range(10), {5, 6}, 1), 'b_none': (5, range(5), set(), 0),
                  'c_tie': (8, range(8), set(range(8)), 1)})
  rows = propagation_protocol(table)
  short = rows[table.video[rows[:, 0]] == 0]
  assert table.frame_index[short[:, 0]].tolist() == [5, 6]
  assert table.frame_index[short[:, 1]].tolist() == [6, 6]
  # 8 frames: sources 3 and 7 (4 after 3); frame 5 is 2 from each and takes the earlier.
  tie = rows[table.video[rows[:, 0]] == 2]
  by_target = dict(zip(table.frame_index[tie[:, 0]], table.frame_index[tie[:, 1]], strict=True))
  assert by_target == {0: 3, 1: 3, 2: 3, 3: 3, 4: 3, 5: 3, 6: 7, 7: 7}
  # The release's experiment leaves out runs of three frames or fewer; four are kept.
  table = _table({'a': (10, range(10), {1, 2, 3}, 1), 'b': (10, range(10), {1, 2, 3, 4}, 1)})
  rows = propagation_protocol(table, min_run=PROPAGATION_MIN_RUN)
  assert set(table.video[rows[:, 0]].tolist()) == {1} and len(rows) == 4


# --- The paper's sparse labels (spec 7) ---------------------------------------------------------

# Six videos of 40 frames, 30 labeled (5..34), 2 people each, every frame stored.
SPARSE = {f'v{i}': (40, list(range(40)), set(range(5, 35)), 2) for i in range(6)}


def _kept(table):
  """{video name: labeled frame indices}."""
  out = {}
  for r in np.flatnonzero(table.is_labeled):
    out.setdefault(table.video_names[table.video[r]], []).append(int(table.frame_index[r]))
  return out


def test_sparse_labels_keep_v_videos_and_n_frames_spread_over_each():
  table = _table(SPARSE)
  sparse = sparse_labels(table, videos=2, frames_per_video=5, seed=0)
  kept = _kept(sparse)
  assert len(kept) == 2
  # Labeled positions 3, 9, 15, 21, 27 of 30: frames 8, 14, 20, 26, 32.
  assert all(frames == [8, 14, 20, 26, 32] for frames in kept.values())
  assert _kept(sparse_labels(table, 2, 1, seed=0)).keys() == kept.keys()  # one video draw
  assert all(f == [20] for f in _kept(sparse_labels(table, 2, 1, seed=0)).values())  # the middle
  # Deterministic per seed; another seed draws other videos (for these six, seeds 0 and 1 do).
  assert _kept(sparse_labels(table, 2, 5, seed=0)) == kept
  assert _kept(sparse_labels(table, 2, 5, seed=1)).keys() != kept.keys()
  # -1 keeps everything; N above a video's labeled frames keeps them all; V above the videos too.
  assert sparse_labels(table, -1, -1) is table
  assert _kept(sparse_labels(table, 10, 50)) == _kept(table)
  assert len(_kept(sparse_labels(table, -1, 2))) == 6
  # The frames stay stored (they are the frames B); only the labels go.
  assert len(sparse) == len(table) and (sparse.people == table.people).all()


@pytest.mark.parametrize('videos, frames, name', [(0, -1, 'labeled_videos'),
                                                   (-2, -1, 'labeled_videos'),
                                                   (3, 0, 'labeled_frames_per_video'),
                                                   (True, -1, 'labeled_videos')])
def test_sparse_labels_refuse_what_cannot_be_meant(videos, frames, name):
  with pytest.raises(ValueError, match=f'config.data.{name} must be -1 .all. or a positive'):
    sparse_labels(_table(SPARSE), videos, frames)


def test_nothing_outside_the_subset_is_a_frame_a():
  table = _table(SPARSE)
  sparse = sparse_labels(table, videos=3, frames_per_video=2, seed=4)
  kept_records = set(np.flatnonzero(sparse.is_labeled).tolist())
  kept_videos = set(sparse.video[sparse.is_labeled].tolist())
  for epoch in range(3):
    pairs = training_pairs(sparse, k=3, seed=0, epoch=epoch)
    assert set(pairs[:, 0].tolist()) == kept_records   # every kept label, nothing else
    assert len(pairs) == 3 * 2 * 2                      # 3 videos x 2 frames x 2 people
    assert set(sparse.video[pairs[:, 2]].tolist()) <= kept_videos  # B from the same videos
  # B may be a frame whose label was dropped: an image, never a target.
  assert set(pairs[:, 2].tolist()) - kept_records


# Twelve videos in no name order, one of them without a labeled frame: the draw is over the
# eleven labeled ones in name order, and any change of that order, of the RNG or of its key
# changes which are kept.
NAMED = ('024158_mpii_train', '000001_bonn_train', '015302_mpii_train', '009473_mpii_train',
         '000522_mpii_train', '023717_mpii_train', '007684_mpii_train', '005067_mpii_train',
         '014313_mpii_train', '002276_mpii_train', '016236_mpii_train', '010919_mpii_train')


def test_sparse_labels_draw_these_videos_for_these_seeds():
  """The videos a (seed, V) keeps, golden: the first V of numpy's default_rng([seed, 7])
  permutation of the labeled videos in name order (V = 4 is V = 5 less its fifth)."""
  table = _table({name: (6, range(6), set() if name == '007684_mpii_train' else {1, 2, 3}, 1)
                  for name in NAMED})
  kept = lambda videos, seed: sorted(_kept(sparse_labels(table, videos, 1, seed)))
  assert kept(5, seed=0) == ['005067_mpii_train', '009473_mpii_train', '014313_mpii_train',
                             '016236_mpii_train', '024158_mpii_train']
  assert kept(4, seed=0) == ['005067_mpii_train', '009473_mpii_train', '014313_mpii_train',
                             '016236_mpii_train']
  assert kept(1, seed=0) == ['005067_mpii_train']
  assert kept(4, seed=1) == ['000522_mpii_train', '002276_mpii_train', '010919_mpii_train',
                             '023717_mpii_train']


@pytest.mark.parametrize('frames, chosen', [
    # Positions floor((i + 1/2) * 23 / 5) = floor(2.3, 6.9, 11.5, 16.1, 20.7).
    (5, [12, 16, 21, 26, 30]),
    # floor((i + 1/2) * 23 / 6) = floor(1.92, 5.75, 9.58, 13.42, 17.25, 21.08): position 21 is
    # frame 34, a label outside the run.
    (6, [11, 15, 19, 23, 27, 34]),
])
def test_sparse_labels_spread_n_frames_over_labeled_frames_that_n_does_not_divide(frames, chosen):
  """N of a video's L = 23 labeled frames (the run 10..30 and frames 34 and 38; stored out of
  frame order): the middles of N equal parts of the labeled frames in frame order, position
  floor((i + 1/2) * L / N), as pairs.sparse_labels's docstring states."""
  labeled = set(range(10, 31)) | {34, 38}
  table = _table({'v': (40, [f * 17 % 40 for f in range(40)], labeled, 1)})
  kept = _kept(sparse_labels(table, -1, frames))
  assert list(kept) == ['v'] and sorted(kept['v']) == chosen
