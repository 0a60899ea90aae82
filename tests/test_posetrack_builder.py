"""The TFDS PoseTrack18 builder on the real sample and on synthetic data with defects."""

from __future__ import annotations

import json
import os
import pathlib
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from posewarper_jax.data.synthetic import generate
from tests.shared_data import SAMPLE
from tfds_posetrack.posetrack18.pairs import FrameTable, training_pairs
from tfds_posetrack.posetrack18.posetrack18_dataset_builder import (
  Builder,
  jpeg_size,
  make_config,
  prepare,
)

TEST_VIDEO = '000001_mpiinew_test'


@pytest.fixture(scope='module')
def sample_root(tmp_path_factory):
  """The sample's three validation files, plus its unannotated clip as a test video."""
  if not SAMPLE.is_dir():
    pytest.skip(f'the PoseTrack18 sample is not at {SAMPLE}')
  root = tmp_path_factory.mktemp('posetrack18')
  for kind in ('images', 'annotations'):
    (root / kind).mkdir()
    (root / kind / 'val').symlink_to(SAMPLE / kind / 'val')
  (root / 'images' / 'test').mkdir()
  (root / 'images' / 'test' / TEST_VIDEO).symlink_to(SAMPLE / 'videos' / TEST_VIDEO)
  images = [{'file_name': f'images/test/{TEST_VIDEO}/{f:06d}.jpg', 'id': int(f'1000001{f:04d}'),
             'frame_id': int(f'1000001{f:04d}'), 'vid_id': '000001', 'nframes': 5,
             'is_labeled': f % 4 == 0, 'has_no_densepose': True} for f in range(5)]
  (root / 'annotations' / 'test').mkdir()
  (root / 'annotations' / 'test' / f'{TEST_VIDEO}.json').write_text(
      json.dumps({'images': images, 'categories': []}))
  return root


@pytest.fixture(scope='module')
def sample_build(sample_root, tmp_path_factory):
  return prepare(sample_root, tmp_path_factory.mktemp('tfds'))


def test_real_sample_records(sample_build):
  records = sample_build.as_data_source('validation')
  assert len(records) == 3
  for i, (vid, people, polygons) in enumerate([('003418', 1, 9), ('009473', 2, 2),
                                                ('012834', 11, 4)]):
    record = records[i]
    raw = json.loads((SAMPLE / 'annotations' / 'val' / f'{vid}_mpii_test.json').read_text())
    assert record['video_id'] in (vid, vid.encode())
    assert record['image_id'] == raw['images'][0]['id'] > 2**32  # 11 digits survive
    assert (record['height'], record['width']) == (1080, 1920)
    assert record['is_labeled'] and record['frame_index'] == 0 and record['nframes'] > 100
    jpeg = (SAMPLE / raw['images'][0]['file_name']).read_bytes()
    assert record['image'] == jpeg  # stored as is, not re-encoded
    assert len(record['ignore_regions']['num_vertices']) == polygons
    first = raw['images'][0]['ignore_regions_x'][0]
    assert record['ignore_regions']['num_vertices'][0] == len(first)
    np.testing.assert_array_equal(record['ignore_regions']['x'][:len(first)], first)
    keypoints = np.asarray(record['people']['keypoints'])
    assert keypoints.shape == (people, 17, 3)
    np.testing.assert_array_equal(
        keypoints.reshape(people, -1), [a['keypoints'] for a in raw['annotations']])
    assert list(record['people']['annotation_id']) == [a['id'] for a in raw['annotations']]
  assert sample_build.info.metadata['skipped']['validation']['frames_stored'] == 3


def test_real_test_video(sample_build):
  records = sample_build.as_data_source('test')
  assert len(records) == 5
  assert [r['frame_index'] for r in records] == list(range(5))
  assert all(len(r['people']['keypoints']) == 0 for r in records)
  assert (records[0]['height'], records[0]['width']) == (720, 1280)
  table = FrameTable.from_builder(sample_build, 'test')
  assert table.is_labeled.tolist() == [True, False, False, False, True]
  # By name, as users read it (importing tfds_posetrack.posetrack18 registers the builder).
  by_name = tfds.data_source('posetrack18', split='test', data_dir=sample_build.data_dir_root)
  assert [r['image_id'] for r in by_name] == [r['image_id'] for r in records]
  # A fresh builder reads the same metadata back, without TensorFlow.
  again = Builder(data_dir=sample_build.data_dir_root)
  assert again.info.metadata['frames']['test'] == sample_build.info.metadata['frames']['test']
  assert 'tensorflow' not in sys.modules


def test_jpeg_validation(tmp_path):
  if not SAMPLE.is_dir():
    pytest.skip(f'the PoseTrack18 sample is not at {SAMPLE}')
  data = (SAMPLE / 'videos' / TEST_VIDEO / '000000.jpg').read_bytes()
  assert jpeg_size(data) == (720, 1280)
  assert jpeg_size(data[: len(data) // 2]) is None  # truncated
  assert jpeg_size(b'not a jpeg') is None


def test_missing_data_says_where_it_looked(tmp_path):
  # No directory: TFDS's own message, with our instructions.
  with pytest.raises(AssertionError, match='(?s)nothing does not exist.*PoseTrack21'):
    prepare(tmp_path / 'nothing', tmp_path / 'tfds')
  # A directory without annotations/{train,val,test}.
  (tmp_path / 'other' / 'images').mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match='no PoseTrack 2018 annotations under .*other'):
    prepare(tmp_path / 'other', tmp_path / 'tfds')


def test_max_gap_config(sample_root, tmp_path):
  # Test clip: frames 0 and 4 labeled; max_gap 0 keeps only those two.
  builder = prepare(sample_root, tmp_path, max_gap=0)
  assert [r['frame_index'] for r in builder.as_data_source('test')] == [0, 4]
  assert builder.info.metadata['skipped']['test']['frames_beyond_max_gap'] == 3
  table = FrameTable.from_builder(builder, 'test')
  assert len(training_pairs(table, 2, seed=0, epoch=0)) == 0  # no people in a test video


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
  """A small synthetic set with the defects of real data: a listed frame missing on disk, a
  truncated JPEG, a person without keypoints, fields the builder does not know."""
  root = tmp_path_factory.mktemp('synthetic')
  generate(root, seed=3, num_train=2, num_val=1, num_test=1, frames=40, width=192, height=144)
  path = sorted((root / 'annotations' / 'train').glob('*.json'))[0]
  data = json.loads(path.read_text())
  labeled = [im for im in data['images'] if im['is_labeled']]
  missing, truncated, extra = labeled[3], labeled[10], labeled[12]
  (root / missing['file_name']).unlink()
  jpeg = root / truncated['file_name']
  jpeg.write_bytes(jpeg.read_bytes()[:-500])
  data['annotations'].append({'image_id': extra['id'], 'id': extra['id'] * 100 + 99,
                              'track_id': 99, 'category_id': 1, 'keypoints': [0] * 51,
                              'bbox_head': [0, 0, 1, 1], 'scores': []})
  data['images'][0]['a_field_from_another_tool'] = 'ignored'
  path.write_text(json.dumps(data))
  people = lambda im: sum(a['image_id'] == im['id'] and any(a['keypoints'][2::3])
                          for a in data['annotations'])
  defects = {'video': data['images'][0]['vid_id'], 'missing': missing, 'truncated': truncated,
             'people_missing': people(missing), 'people_truncated': people(truncated)}
  return root, prepare(root, tmp_path_factory.mktemp('tfds')), defects


def test_synthetic_build_counts_what_it_skipped(synthetic):
  root, builder, defects = synthetic
  skipped = builder.info.metadata['skipped']
  assert skipped['train']['frames_missing'] == 1
  assert skipped['train']['frames_corrupt'] == 1
  assert skipped['train']['people_on_missing_frames'] == defects['people_missing']
  assert skipped['train']['people_on_corrupt_frames'] == defects['people_truncated']
  assert skipped['train']['people_without_keypoints'] >= 1
  assert skipped['validation']['frames_missing'] == 0 == skipped['test'].get('frames_corrupt', 0)
  records = builder.as_data_source('train')
  stored = {(r['video_id'], r['frame_index']) for r in records}
  video = defects['video'].encode()
  for name in ('missing', 'truncated'):
    frame = int(pathlib.Path(defects[name]['file_name']).stem)
    assert (video, frame) not in stored and (defects['video'], frame) not in stored


def test_synthetic_records_match_the_files(synthetic):
  root, builder, _ = synthetic
  for split, directory in (('train', 'train'), ('validation', 'val'), ('test', 'test')):
    records = builder.as_data_source(split)
    table = FrameTable.from_builder(builder, split)
    assert len(records) == len(table) == builder.info.metadata['skipped'][split]['frames_stored']
    by_file = {}
    for path in sorted((root / 'annotations' / directory).glob('*.json')):
      data = json.loads(path.read_text())
      for im in data['images']:
        kept = [a for a in data.get('annotations', []) if a['image_id'] == im['id']
                and any(a['keypoints'][2::3])]
        by_file[im['id']] = (im, kept)
    for i in range(0, len(records), 7):
      record = records[i]
      im, kept = by_file[record['image_id']]
      assert record['is_labeled'] == im['is_labeled'] and record['nframes'] == im['nframes']
      assert (record['height'], record['width']) == (144, 192)
      assert record['image'] == (root / im['file_name']).read_bytes()
      assert list(record['people']['annotation_id']) == [a['id'] for a in kept]
      for keypoints, a in zip(record['people']['keypoints'], kept, strict=True):
        np.testing.assert_array_equal(np.asarray(keypoints).reshape(-1), a['keypoints'])
      assert table.frame_index[i] == record['frame_index']
    if split == 'validation':
      # 40-frame validation videos are labeled every 4th frame: every frame is within 7.
      assert len(records) == 40 and not table.is_labeled.all()


def test_pairs_on_a_built_split(synthetic):
  _, builder, defects = synthetic
  table = FrameTable.from_builder(builder, 'train')
  missing = int(pathlib.Path(defects['missing']['file_name']).stem)
  for k in (0, 2, 5):
    pairs = training_pairs(table, k, seed=0, epoch=1)
    gaps = table.frame_index[pairs[:, 2]] - table.frame_index[pairs[:, 0]]
    assert np.abs(gaps).max() <= k and (table.video[pairs[:, 0]] == table.video[pairs[:, 2]]).all()
    assert len(pairs) == table.people[table.is_labeled].sum()
    video = table.video_names.index(defects['video'])
    in_video = table.video[pairs[:, 2]] == video
    assert not (in_video & (table.frame_index[pairs[:, 2]] == missing)).any()


def test_build_command(synthetic, tmp_path, capsys, monkeypatch):
  from tfds_posetrack.posetrack18.__main__ import main

  root, _, _ = synthetic
  monkeypatch.chdir(tmp_path.parent)  # relative paths, as typed
  assert main(['--manual_dir', os.path.relpath(root, tmp_path.parent), '--data_dir',
               tmp_path.name, '--max_gap', '2']) == 0
  out = capsys.readouterr().out
  assert 'train: ' in out and 'frames_missing 1' in out and 'gap2' in out
  table = FrameTable.from_builder(Builder(data_dir=str(tmp_path), config=make_config(2)), 'train')
  # Every stored training frame is within 2 of a labeled one.
  for v in range(len(table.video_names)):
    frames = table.frame_index[table.video == v]
    labeled = table.frame_index[(table.video == v) & table.is_labeled]
    assert np.abs(frames[:, None] - labeled[None, :]).min(axis=1).max() <= 2
