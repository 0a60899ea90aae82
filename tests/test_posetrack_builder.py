"""The TFDS PoseTrack18 builder on the real sample and on synthetic data with defects."""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_posetrack.posetrack18.pairs import FrameTable, training_pairs
from tfds_posetrack.posetrack18.posetrack18_dataset_builder import (
    Builder,
    PoseTrack18Config,
    jpeg_size,
)

SAMPLE = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'posetrack18_sample'
TEST_VIDEO = '000001_mpiinew_test'


def build(manual_dir, data_dir, config='default'):
  builder = Builder(data_dir=str(data_dir), config=config)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


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
  return build(sample_root, tmp_path_factory.mktemp('tfds'))


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
    build(tmp_path / 'nothing', tmp_path / 'tfds')
  # A directory without annotations/{train,val,test}.
  (tmp_path / 'other' / 'images').mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match='no PoseTrack 2018 annotations under .*other'):
    build(tmp_path / 'other', tmp_path / 'tfds')


def test_max_gap_config(sample_root, tmp_path):
  # Test clip: frames 0 and 4 labeled; max_gap 0 keeps only those two.
  builder = build(sample_root, tmp_path, PoseTrack18Config(name='gap0', max_gap=0))
  assert [r['frame_index'] for r in builder.as_data_source('test')] == [0, 4]
  assert builder.info.metadata['skipped']['test']['frames_beyond_max_gap'] == 3
  table = FrameTable.from_builder(builder, 'test')
  assert len(training_pairs(table, 2, seed=0, epoch=0)) == 0  # no people in a test video
