"""LeanRecords gives the TFDS data source's own values for the fields it reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tensorflow_datasets.proto import tf_example_pb2

from posewarper_jax.data.synthetic import generate
from tests.shared_data import SAMPLE
from tfds_posetrack.posetrack18 import prepare
from tfds_posetrack.posetrack18.lean_records import LeanRecords

PEOPLE_FIELDS = ('keypoints', 'bbox', 'has_bbox', 'track_id')


def _assert_same_as_tfds(source):
  lean = LeanRecords(source)
  assert len(lean) == len(source)
  for i in range(len(source)):
    full, fast = source[i], lean[i]
    assert fast['image'] == full['image']
    assert (fast['width'], fast['height']) == (full['width'], full['height'])
    assert fast['image_id'] == full['image_id']
    for name in PEOPLE_FIELDS:
      expected = np.asarray(full['people'][name])
      if expected.size:  # (TFDS gives a frame without people float64 empties)
        assert fast['people'][name].dtype == expected.dtype, name
      np.testing.assert_array_equal(fast['people'][name].reshape(expected.shape), expected)
      assert fast['people'][name].shape[0] == len(full['people']['annotation_id'])


def test_synthetic_every_record(tmp_path):
  root = tmp_path / 'posetrack18'
  generate(root, seed=4, num_train=1, num_val=1, num_test=1, frames=16, width=64, height=48)
  # A person without a box (has_bbox False, zeros stored), as real files have.
  path = sorted((root / 'annotations' / 'train').glob('*.json'))[0]
  data = json.loads(path.read_text())
  without_box = next(a for a in data['annotations'] if any(a['keypoints'][2::3]))
  del without_box['bbox']
  path.write_text(json.dumps(data))
  builder = prepare(root, tmp_path / 'tfds')
  for split in ('train', 'validation', 'test'):
    _assert_same_as_tfds(builder.as_data_source(split))
  has_bbox = np.concatenate([LeanRecords(builder.as_data_source('train'))[i]['people']['has_bbox']
                             for i in range(len(builder.as_data_source('train')))])
  assert (~has_bbox).sum() == 1 and has_bbox.sum() > 10


def test_real_sample_every_record(tmp_path):
  if not SAMPLE.is_dir():
    pytest.skip(f'the PoseTrack18 sample is not at {SAMPLE}')
  source = prepare(SAMPLE, tmp_path).as_data_source('validation')
  _assert_same_as_tfds(source)
  assert [len(LeanRecords(source)[i]['people']['keypoints']) for i in range(3)] == [1, 2, 11]


class _Serialized:
  """A stand-in data source holding serialized Examples, as ArrayRecord's reader does."""

  def __init__(self, examples):
    self.data_source = [e.SerializeToString() for e in examples]

  def __len__(self):
    return len(self.data_source)


def test_a_record_of_another_layout_is_named():
  example = tf_example_pb2.Example()
  feature = example.features.feature
  feature['image'].bytes_list.value.append(b'jpeg')
  feature['width'].int64_list.value.append(64)
  feature['height'].int64_list.value.append(48)
  feature['people/has_bbox'].int64_list.value.append(1)
  feature['people/bbox'].bytes_list.value.append(np.zeros(4).tobytes())
  feature['people/keypoints'].bytes_list.value.append(np.zeros((15, 3)).tobytes())  # not 17
  with pytest.raises(ValueError, match='record 0: people/keypoints holds 360 bytes per person, '
                                       r'expected 408 \(float64 \(17, 3\)\)'):
    LeanRecords(_Serialized([example]))[0]
  with pytest.raises(TypeError, match='TFDS ArrayRecord data source'):
    LeanRecords([{'image': b''}])
