"""The Grain training stream on synthetic PoseTrack18 and on the real sample."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import time
import types

import numpy as np
import pytest

from posewarper_jax.data import pipeline, transforms
from posewarper_jax.data.pipeline import (
  PairExamples,
  TrainingInput,
  box_crops,
  crop_stream,
  decode_factor,
  decode_rgb,
  detection_boxes,
  ground_truth_boxes,
  person_box,
  record_frames,
  reduced_matrix,
  training_dataset,
)
from posewarper_jax.data.synthetic import generate
from tests.shared_data import SAMPLE
from tfds_posetrack.posetrack18 import FrameTable, prepare
from tfds_posetrack.posetrack18.keypoints import box_has_area

CONFIG = TrainingInput(image_size=(128, 96), k=2, seed=0, global_batch=4, num_devices=2)


@pytest.fixture(scope='module')
def train_split(tmp_path_factory):
  root = tmp_path_factory.mktemp('synthetic')
  generate(root, seed=5, num_train=2, num_val=0, num_test=0, frames=36, width=192, height=144)
  builder = prepare(root, tmp_path_factory.mktemp('tfds'))
  return builder.as_data_source('train'), FrameTable.from_builder(builder, 'train')


def _batches(split, config, n):
  return list(itertools.islice(iter(training_dataset(*split, config)), n))


def _equal(x, y):
  return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def test_batches_are_shaped_for_pmap(train_split):
  batch = _batches(train_split, CONFIG, 1)[0]
  assert batch['frames_a'].shape == batch['frames_b'].shape == (2, 2, 128, 96, 3)
  assert batch['frames_a'].dtype == np.uint8  # normalized on the device
  assert batch['targets'].shape == (2, 2, 32, 24, 17)
  assert batch['target_weights'].shape == (2, 2, 17)
  assert batch['target_weights'].sum() > 0
  # A weighted joint has (part of) its Gaussian in the map, mostly the peak; the ears never.
  weights, peaks = batch['target_weights'], batch['targets'].max(axis=(2, 3))
  assert (peaks[weights > 0] > 0).all() and np.mean(peaks[weights > 0] == 1.0) > 0.8
  assert weights[..., 3:5].max() == 0 and (peaks[weights == 0] == 0).all()


def _drawn_map(examples: PairExamples, example: dict, seed: int):
  """The crop map (and flip) of an example drawn with `seed`, made here: the augmentation drawn
  with the same seed (a person whose box has no area is cropped as the whole frame)."""
  a = examples.records[int(example['record_a'])]
  person = int(example['person'])
  keypoints = np.asarray(a['people']['keypoints'][person], np.float64)
  box = person_box(a, person)
  if not box_has_area(box):
    box = np.array([0.0, 0.0, float(a['width']), float(a['height'])])
  height, width = examples.config.image_size
  aug = transforms.sample_augmentation(np.random.default_rng(seed), box, keypoints, width / height)
  matrix = transforms.crop_transform(aug.center, aug.scale, aug.rotation, (width, height),
                                     flip_width=int(a['width']) if aug.flip else None)
  return matrix, aug.flip


def _example_and_its_crops(examples: PairExamples, slot: int, seed: int):
  """The example in `slot` drawn with `seed`, and the crops it must hold, made here from the
  decoded frames: A's and B's frame through one map (_drawn_map)."""
  example = examples((0, slot), np.random.default_rng(seed))
  matrix, _ = _drawn_map(examples, example, seed)
  height, width = examples.config.image_size
  crop = lambda r: transforms.warp_image(decode_rgb(examples.records[r]['image']), matrix,
                                         (width, height))
  return example, crop(int(example['record_a'])), crop(int(example['record_b']))


def test_k0_pairs_a_frame_with_itself(train_split):
  """With k = 0 every pair's support frame is A's own record, and both crops are A's decoded
  frame through the drawn map."""
  batch = _batches(train_split, dataclasses.replace(CONFIG, k=0), 1)[0]
  np.testing.assert_array_equal(batch['record_a'], batch['record_b'])
  examples = PairExamples(*train_split, dataclasses.replace(CONFIG, k=0))
  for slot in (0, 7, 13):
    example, crop_a, _ = _example_and_its_crops(examples, slot, seed=slot)
    assert example['record_b'] == example['record_a']
    np.testing.assert_array_equal(example['frames_a'], crop_a)
    np.testing.assert_array_equal(example['frames_b'], crop_a)


def test_support_frame_is_its_own_frame_through_as_map(train_split):
  """B's crop is B's decoded frame through A's map, not A's frame again."""
  examples = PairExamples(*train_split, dataclasses.replace(CONFIG, k=3))
  apart = [s for s in range(len(examples.pairs(0)))
           if examples.pairs(0)[s][0] != examples.pairs(0)[s][2]][:3]
  assert len(apart) == 3, 'the pair view with k = 3 should pick other frames'
  for slot in apart:
    example, crop_a, crop_b = _example_and_its_crops(examples, slot, seed=slot)
    assert example['record_b'] != example['record_a']
    np.testing.assert_array_equal(example['frames_a'], crop_a)
    np.testing.assert_array_equal(example['frames_b'], crop_b)
    assert not np.array_equal(crop_a, crop_b)  # the people moved: the check tells them apart


def test_support_targets_are_frame_bs_own_labels_of_the_person(train_split):
  """config.stage2.warp_input='ground_truth' (a diagnostic): 'targets_b' is frame B's own
  ground truth of A's person (the same track) through A's map, encoded as A's targets are; with
  k = 0 exactly A's targets; none for a person B does not hold."""
  config = dataclasses.replace(CONFIG, support_targets=True)
  same = PairExamples(*train_split, dataclasses.replace(config, k=0))
  for slot in (0, 7):
    example = same((0, slot), np.random.default_rng(slot))
    assert example['has_targets_b']
    np.testing.assert_array_equal(example['targets_b'], example['targets'])
  examples = PairExamples(*train_split, dataclasses.replace(config, k=3))
  apart = [s for s in range(len(examples.pairs(0)))
           if examples.pairs(0)[s][0] != examples.pairs(0)[s][2]][:8]
  height, width = config.image_size
  compared = 0
  for slot in apart:
    example = examples((0, slot), np.random.default_rng(slot))
    matrix, flip = _drawn_map(examples, example, slot)
    a, b = (examples.records[int(example[f'record_{x}'])] for x in 'ab')
    tracks_b = list(b['people']['track_id'])
    track = a['people']['track_id'][int(example['person'])]
    if track not in tracks_b:  # the person left the frame (or has no labeled joint in it)
      assert not example['has_targets_b'] and not example['targets_b'].any()
      continue
    compared += 1
    keypoints = b['people']['keypoints'][tracks_b.index(track)]
    moved = transforms.transform_keypoints(keypoints, matrix, flip=flip)
    expected, _ = pipeline.codec.encode(moved, (width, height), (width // 4, height // 4),
                                        config.sigma)
    assert example['has_targets_b']
    np.testing.assert_array_equal(example['targets_b'], expected)
    assert not np.array_equal(example['targets_b'], example['targets'])  # the person moved
  assert compared >= 4
  a = examples.records[int(examples.pairs(0)[0][0])]
  stranger = {'people': {'track_id': np.array([10**6], np.int32),
                         'keypoints': np.ones((1, 17, 3))}}
  heatmaps, has = pipeline.support_targets(a, 0, stranger, np.eye(2, 3), False, config)
  assert not has and heatmaps.shape == (32, 24, 17) and not heatmaps.any()
  batch = _batches(train_split, config, 1)[0]
  assert batch['targets_b'].shape == batch['targets'].shape
  assert batch['has_targets_b'].shape == (2, 2) and batch['has_targets_b'].dtype == bool
  assert batch['has_targets_b'].any()


def test_support_frames_within_k(train_split):
  _, table = train_split
  for batch in _batches(train_split, dataclasses.replace(CONFIG, k=3), 5):
    a, b = batch['record_a'].ravel(), batch['record_b'].ravel()
    assert np.abs(table.frame_index[a] - table.frame_index[b]).max() <= 3
    assert (table.video[a] == table.video[b]).all()


def test_deterministic_and_seeded(train_split):
  first = _batches(train_split, CONFIG, 3)
  again = _batches(train_split, CONFIG, 3)
  assert all(_equal(x, y) for x, y in zip(first, again, strict=True))
  other = _batches(train_split, dataclasses.replace(CONFIG, seed=1), 3)
  assert not _equal(first[0], other[0])


def test_process_shards_are_disjoint(train_split):
  _, table = train_split
  one_epoch = dataclasses.replace(CONFIG, num_epochs=1, global_batch=2, num_devices=1)
  seen = []
  for p in range(2):
    config = dataclasses.replace(one_epoch, process_index=p, process_count=2)
    ids = {(int(a), int(k)) for batch in training_dataset(*train_split, config)
           for a, k in zip(batch['record_a'].ravel(), batch['person'].ravel(), strict=True)}
    seen.append(ids)
  assert not seen[0] & seen[1]
  total = int(table.people[table.is_labeled].sum())
  assert len(seen[0] | seen[1]) >= total - 2  # drop_remainder may leave out the last ones


def test_process_shards_together_are_the_single_process_stream(train_split):
  """Augmentations come from the global index: two processes see exactly one process's pairs."""
  single = _batches(train_split, dataclasses.replace(CONFIG, num_devices=1), 2)
  shards = [_batches(train_split, dataclasses.replace(CONFIG, num_devices=1, process_index=p,
                                                      process_count=2), 2) for p in range(2)]
  for step, batch in enumerate(single):
    for key, value in batch.items():
      # Process p holds elements p, p + 2, ... of each global batch.
      joined = np.empty_like(value)
      joined[:, 0::2], joined[:, 1::2] = shards[0][step][key], shards[1][step][key]
      np.testing.assert_array_equal(joined, value, err_msg=key)


def test_iterator_state_resumes_at_the_next_batch(train_split):
  iterator = iter(training_dataset(*train_split, CONFIG))
  for _ in range(2):
    next(iterator)
  state = iterator.get_state()
  expected = next(iterator)
  resumed = iter(training_dataset(*train_split, CONFIG))
  resumed.set_state(state)
  assert _equal(next(resumed), expected)


def test_the_stream_reads_a_few_batches_ahead_not_the_epochs(train_split, monkeypatch):
  """Two batches taken, then time for the prefetch to fill: the examples computed are those two
  batches and a few ahead (4 per thread buffered, 2 threads, plus what the threads have in
  flight: bounded here by twice the buffer, since how many are in flight is Grain's business
  and was measured up to 12.5 batches under load), not Grain's default 500 (which read and
  decoded a short run's every epoch while its steps waited for the cores: 1,000 here)."""
  computed = []
  call = PairExamples.__call__

  def counting(self, epoch_slot, rng):
    computed.append(epoch_slot)
    return call(self, epoch_slot, rng)

  monkeypatch.setattr(PairExamples, '__call__', counting)
  config = dataclasses.replace(CONFIG, num_epochs=20, read_threads=2)
  iterator = iter(training_dataset(*train_split, config))
  for _ in range(2):
    next(iterator)
  time.sleep(2.0)
  assert 2 * CONFIG.global_batch <= len(computed) <= (2 + 2 * 4 * 2) * CONFIG.global_batch


def test_by_default_a_process_reads_with_its_cores(train_split):
  """read_threads=None: one thread per core this process may use, shared among its workers."""
  cores = len(os.sched_getaffinity(0))
  for workers, threads in ((0, cores), (cores, 1), (2 * cores, 1)):
    options = pipeline.read_options(None, workers)
    assert (options.num_threads, options.prefetch_buffer_size) == (threads, 4 * threads)


def test_single_frame_stream(train_split):
  batch = _batches(train_split, dataclasses.replace(CONFIG, single_frame=True), 1)[0]
  assert 'frames_b' not in batch and batch['frames_a'].shape == (2, 2, 128, 96, 3)


def test_worker_processes_give_the_same_batches(train_split):
  expected = _batches(train_split, CONFIG, 2)
  with_workers = _batches(train_split, dataclasses.replace(CONFIG, num_workers=1), 2)
  assert all(_equal(x, y) for x, y in zip(expected, with_workers, strict=True))


class _FullRecords:
  """The data source behind a plain sequence: records decoded by TFDS itself, every field."""

  def __init__(self, source):
    self.source = source

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    return self.source[index]


def test_lean_records_give_the_same_batches(train_split):
  records, table = train_split
  lean = _batches(train_split, CONFIG, 3)  # a TFDS source is read through LeanRecords
  full = _batches((_FullRecords(records), table), CONFIG, 3)
  assert all(_equal(x, y) for x, y in zip(lean, full, strict=True))


def test_bad_batch_layout_is_named(train_split):
  with pytest.raises(ValueError, match='global batch .5. must divide evenly over 1 processes x 2'):
    training_dataset(*train_split, dataclasses.replace(CONFIG, global_batch=5))


def test_real_sample(tmp_path):
  if not SAMPLE.is_dir():
    pytest.skip(f'the PoseTrack18 sample is not at {SAMPLE}')
  builder = prepare(SAMPLE, tmp_path)
  split = builder.as_data_source('validation'), FrameTable.from_builder(builder, 'validation')
  config = TrainingInput(image_size=(256, 192), k=2, global_batch=7, num_epochs=1)
  batches = list(training_dataset(*split, config))
  assert len(batches) == 2  # 14 people, batches of 7
  for batch in batches:
    # Only frame 0 is stored: every support frame falls back to A itself.
    np.testing.assert_array_equal(batch['record_a'], batch['record_b'])
    assert batch['frames_a'].shape == (1, 7, 256, 192, 3)
    assert batch['target_weights'].sum() > 0
  # The crops are the real frames through the drawn maps.
  examples = PairExamples(*split, config)
  for slot in (0, 13):
    example, crop_a, _ = _example_and_its_crops(examples, slot, seed=slot)
    assert example['record_b'] == example['record_a'] and crop_a.std() > 10
    np.testing.assert_array_equal(example['frames_a'], crop_a)
    np.testing.assert_array_equal(example['frames_b'], crop_a)


def test_reduced_decode_matches_the_full_decode(tmp_path):
  generate(tmp_path, seed=2, num_train=1, num_val=0, num_test=0, frames=30, width=1920,
           height=1080)
  jpeg = sorted((tmp_path / 'images' / 'train').glob('*/000015.jpg'))[0].read_bytes()
  full = decode_rgb(jpeg).astype(np.float32)
  center, scale = np.array([960.0, 540.0]), np.array([3.2, 3.2 / 0.75])  # 640 px -> 96 px
  matrix = transforms.crop_transform(center, scale, 20.0, (96, 128))
  assert decode_factor(scale, 96) == 4
  reference = transforms.warp_image(full, matrix, (96, 128))
  for factor in (2, 4):
    reduced = decode_rgb(jpeg, factor).astype(np.float32)
    assert reduced.shape == (1080 // factor, 1920 // factor, 3)
    good = transforms.warp_image(reduced, reduced_matrix(matrix, factor), (96, 128))
    # Without the half-pixel centre offset the crop would be shifted.
    shifted = transforms.warp_image(reduced, matrix @ np.diag([factor, factor, 1.0]), (96, 128))
    err, err_shifted = np.abs(good - reference).mean(), np.abs(shifted - reference).mean()
    assert err < 4 and err < 0.8 * err_shifted, (factor, err, err_shifted)
  assert decode_factor(np.array([1.0, 1.33]), 288) == 1  # 200 px onto 288: full resolution


def test_reduced_decode_stream(train_split):
  batch = _batches(train_split, dataclasses.replace(CONFIG, reduced_decode=True), 1)[0]
  plain = _batches(train_split, CONFIG, 1)[0]
  np.testing.assert_array_equal(batch['record_a'], plain['record_a'])
  assert np.abs(batch['frames_a'].astype(float) - plain['frames_a']).mean() < 8


# --- Evaluation stream ---------------------------------------------------------------------


@pytest.fixture(scope='module')
def sample_val(tmp_path_factory):
  if not SAMPLE.is_dir():
    pytest.skip(f'the PoseTrack18 sample is not at {SAMPLE}')
  builder = prepare(SAMPLE, tmp_path_factory.mktemp('tfds'))
  return builder.as_data_source('validation'), FrameTable.from_builder(builder, 'validation')


def test_ground_truth_boxes_stream(sample_val):
  records, table = sample_val
  boxes = ground_truth_boxes(records, table)
  assert len(boxes.record) == 14 and (boxes.score == 1).all()
  expected_ids = [i for r in records for i in r['people']['annotation_id']]
  assert boxes.annotation_id.tolist() == expected_ids
  batches = list(crop_stream(record_frames(records), box_crops(table, boxes, (0,)), (128, 96),
                             batch=4))
  assert len(batches) == 4  # every box once, in order; the last batch shorter
  assert [len(b['frames']) for b in batches] == [4, 4, 4, 2]
  first = batches[0]
  assert first['frames'].shape == (4, 1, 128, 96, 3) and first['frames'].dtype == np.uint8
  center, _ = transforms.box_to_center_scale(boxes.box[0], 96 / 128)
  np.testing.assert_allclose(first['center'][0], center)


def test_detection_files_both_formats(sample_val, tmp_path):
  records, table = sample_val
  path = SAMPLE / 'annotations' / 'test_posetrack18_human_detections.json'
  coco = detection_boxes(str(path), records, table)
  raw = json.loads(path.read_text())
  assert len(coco.record) == len(raw) and (coco.annotation_id == -1).all()
  strong = detection_boxes(str(path), records, table, min_score=0.2)
  assert len(strong.record) == sum(d['score'] >= 0.2 for d in raw) < len(raw)
  # The release's format names frames by path.
  video = lambda r: r['video_id'].decode() if isinstance(r['video_id'], bytes) else r['video_id']
  names = {r['image_id']: f'images/val/{video(r)}_mpii_test/000000.jpg' for r in records}
  release = [{'image_name': names[d['image_id']], 'bbox': d['bbox'], 'score': d['score']}
             for d in raw]
  (tmp_path / 'release.json').write_text(json.dumps(release))
  again = detection_boxes(str(tmp_path / 'release.json'), records, table, min_score=0.2)
  np.testing.assert_array_equal(again.record, strong.record)
  np.testing.assert_array_equal(again.box, strong.box)
  (tmp_path / 'bad.json').write_text(json.dumps([{'bbox': [1, 2, 3, 4], 'score': 0.5}]))
  with pytest.raises(ValueError, match='bad.json: detection 0 has neither'):
    detection_boxes(str(tmp_path / 'bad.json'), records, table)


# detection_boxes reads only the records' image ids and the table's frame layout: a stand-in for
# one video of two frames, the first labeled.
_RECORDS = [{'image_id': 10000010000}, {'image_id': 10000010001}]
_TABLE = types.SimpleNamespace(is_labeled=np.array([True, False]), video=np.array([0, 0]),
                               video_names=['000001'], frame_index=np.array([0, 1]))
_GOOD = {'image_id': 10000010000, 'bbox': [1, 2, 3, 4], 'score': 0.5}


def test_detection_boxes_keep_valid_input_and_refuse_a_box_without_area(tmp_path):
  path = tmp_path / 'detections.json'
  path.write_text(json.dumps([
      _GOOD,
      {'image_id': 10000010000.0, 'bbox': [-1.5, 0, 3, 4], 'score': 1},  # an integral float id
      {'image_name': 'images/val/000001_mpii_test/000000.jpg', 'bbox': [1, 2, 3, 4],
       'score': 0.1},
      {'image_id': 10000010001, 'bbox': [1, 2, 3, 4], 'score': 0.9},    # not labeled: ignored
      {'image_id': 99, 'bbox': [1, 2, 3, 4], 'score': 0.9},             # not in the split
  ]))
  boxes = detection_boxes(str(path), _RECORDS, _TABLE)
  assert boxes.record.tolist() == [0, 0, 0] and boxes.score.tolist() == [0.5, 1.0, 0.1]
  assert boxes.box.tolist() == [[1, 2, 3, 4], [-1.5, 0, 3, 4], [1, 2, 3, 4]]
  assert detection_boxes(str(path), _RECORDS, _TABLE, min_score=0.2).record.tolist() == [0, 0]
  # A box without area has nothing to crop (ground_truth_boxes leaves such people out).
  path.write_text(json.dumps([_GOOD, {**_GOOD, 'bbox': [1, 2, 0, 0]}]))
  with pytest.raises(ValueError, match=rf'{re.escape(str(path))}: detection 1: bbox must be .*'
                                       r'w, h > 0.*\(w or h not positive\)'):
    detection_boxes(str(path), _RECORDS, _TABLE)


@pytest.mark.parametrize('bad, message', [
    ({'bbox': [1, float('nan'), 3, 4]}, r'bbox must be .*\(nan\)'),
    ({'bbox': [1, 2, float('inf'), 4]}, r'bbox must be .*\(inf\)'),
    ({'bbox': [1, '2', 3, 4]}, r"bbox must be .*\('2' \(str\)\)"),
    ({'bbox': [1, 2, 3, None]}, r'bbox must be .*\(None \(null\)\)'),
    ({'bbox': [1, 2, 3, -4]}, r'bbox must be .*\(w or h not positive\)'),
    ({'score': float('nan')}, r'score must be a finite number, got nan'),
    ({'score': float('-inf')}, r'score must be a finite number, got -inf'),
    ({'score': '0.9'}, r"score must be a finite number, got '0.9' \(str\)"),
    ({'score': None}, r'score must be a finite number, got None \(null\)'),
    ({'score': True}, r'score must be a finite number, got True \(bool\)'),
    ({'image_id': '10000010000'}, r"image_id must be an integer .*'10000010000' \(str\)"),
    ({'image_id': 10000010000.5}, r'image_id must be an integer .*not an integer'),
    ({'image_id': True}, r'image_id must be an integer .*True \(bool\)'),
    ({'image_id': None}, r'image_id must be an integer .*None \(null\)'),
    # Also on a frame the split does not have: the file is broken all the same.
    ({'image_id': 99, 'score': float('nan')}, r'score must be a finite number'),
], ids=['nan', 'inf', 'string', 'null', 'negative_height', 'nan_score',
        'inf_score', 'string_score', 'null_score', 'bool_score', 'string_id', 'fractional_id',
        'bool_id', 'null_id', 'nan_score_elsewhere'])
def test_bad_detections_name_the_file_detection_and_field(tmp_path, bad, message):
  path = tmp_path / 'detections.json'
  path.write_text(json.dumps([_GOOD, {**_GOOD, **bad}]))
  with pytest.raises(ValueError, match=rf'{re.escape(str(path))}: detection 1: {message}'):
    detection_boxes(str(path), _RECORDS, _TABLE)


def test_neighbour_crops_share_the_box(tmp_path):
  root = tmp_path / 'synthetic'
  generate(root, seed=1, num_train=0, num_val=1, num_test=0, frames=36, width=192, height=144)
  builder = prepare(root, tmp_path / 'tfds')
  records, table = builder.as_data_source('validation'), FrameTable.from_builder(
      builder, 'validation')
  boxes = ground_truth_boxes(records, table)
  deltas = (0, -1, -2, 1, 2)
  batch = next(iter(crop_stream(record_frames(records), box_crops(table, boxes, deltas), (64, 48),
                                batch=len(boxes.record))))
  frames = batch['frames']                          # [B, 5, 64, 48, 3]
  assert frames.shape[1] == 5
  moved = 0
  for i in (0, len(boxes.record) // 2, len(boxes.record) - 1):
    record = int(boxes.record[i])
    center, scale = transforms.box_to_center_scale(boxes.box[i], 48 / 64)
    matrix = transforms.crop_transform(center, scale, 0.0, (48, 64))
    for t, delta in enumerate(deltas):
      frame = np.clip(table.frame_index[record] + delta, 0, table.nframes[record] - 1)
      other = int(table.lookup(table.video[record], frame))
      expected = transforms.warp_image(decode_rgb(records[other]['image']), matrix, (48, 64))
      np.testing.assert_array_equal(frames[i, t], expected)  # the current frame's box
    moved += not np.array_equal(frames[i, 3], frames[i, 0])  # the next frame, if any, moved
  assert moved >= 2


def test_people_whose_box_has_no_area_train_nothing_and_get_no_evaluation_box(synthetic_root):
  """PoseTrack's box of a person with one annotated joint has no area (the synthetic set has
  one: a wrist entering the frame). HRNet drops such people; here their training examples
  weigh nothing and they get no ground-truth box."""
  builder = prepare(synthetic_root, synthetic_root / 'tfds')
  records = builder.as_data_source('validation')
  table = FrameTable.from_builder(builder, 'validation')
  examples = PairExamples(records, table, TrainingInput(image_size=(64, 48), k=2,
                                                        global_batch=8))
  pairs = examples.pairs(0)
  flat = [i for i, (r, p, _) in enumerate(pairs)
          if not box_has_area(person_box(records[int(r)], int(p)))]
  assert flat, 'the synthetic set no longer has a person with one joint'
  example, whole_frame, _ = _example_and_its_crops(examples, flat[0], seed=0)
  assert not example['target_weights'].any() and not example['targets'].any()
  np.testing.assert_array_equal(example['frames_a'], whole_frame)
  boxes = ground_truth_boxes(records, table)
  assert (boxes.box[:, 2] > 0).all() and (boxes.box[:, 3] > 0).all()
