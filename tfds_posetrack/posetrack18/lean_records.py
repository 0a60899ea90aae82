"""The fields a crop needs, read straight from the stored tf.train.Example.

TFDS's data source turns every feature of a record into NumPy through its Python-level feature
connectors: about 0.3 ms a record, two records a pair, a sixth of what the training stream spent
besides decoding JPEGs. The stream needs the JPEG bytes, the frame size and the people's
keypoints, boxes and track ids (evaluation also the image id); parsing the Example proto and
converting only those takes about 0.1 ms (docs/benchmarks.md, input pipeline).

    records = LeanRecords(builder.as_data_source('train'))
    record = records[i]   # {'image': bytes, 'image_id': int, 'width': int, 'height': int,
                          #  'people': {'keypoints': [P, J, 3] float64, 'bbox': [P, 4] float64,
                          #             'has_bbox': [P] bool, 'track_id': [P] int32}}

The values equal the data source's own for those fields (tests/test_lean_records.py checks
every record of a build); the layout they rely on is the builder's features
(posetrack18_dataset_builder.Builder._info: float64 tensors stored as raw bytes, one bytes entry
per person).

A record of a damaged shard (missing, truncated, bytes flipped: ArrayRecord's checksums) raises
damage.DamagedDatasetError naming the shard file and the folder to delete, also from Grain's
worker processes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tensorflow_datasets.proto import tf_example_pb2

from tfds_posetrack.posetrack18.damage import read_serialized
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS


class LeanRecords:
  """Sequence view of a PoseTrack18 TFDS data source with the crop fields only; picklable (it
  holds the data source, which Grain's worker processes re-open)."""

  def __init__(self, source):
    if not hasattr(source, 'data_source'):
      raise TypeError(f'LeanRecords reads a TFDS ArrayRecord data source (builder.as_data_source'
                      f'), got {type(source).__name__}')
    self.source = source

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict[str, Any]:
    serialized = read_serialized(self.source, index)
    feature = tf_example_pb2.Example.FromString(serialized).features.feature
    people = {
        'keypoints': _float64_rows(feature, 'people/keypoints', (NUM_JOINTS, 3), index),
        'bbox': _float64_rows(feature, 'people/bbox', (4,), index),
        'has_bbox': np.asarray(feature['people/has_bbox'].int64_list.value, np.bool_),
        'track_id': np.asarray(feature['people/track_id'].int64_list.value, np.int32),
    }
    return {'image': feature['image'].bytes_list.value[0],
            'image_id': np.int64(feature['image_id'].int64_list.value[0]),
            'width': np.int32(feature['width'].int64_list.value[0]),
            'height': np.int32(feature['height'].int64_list.value[0]),
            'people': people}


def _float64_rows(feature, name: str, shape: tuple[int, ...], index: int) -> np.ndarray:
  """One raw float64 tensor of `shape` per person -> [P, *shape]."""
  rows = feature[name].bytes_list.value
  out = np.empty((len(rows), *shape), np.float64)
  for i, row in enumerate(rows):
    if len(row) != out[i].nbytes:
      raise ValueError(f'record {index}: {name} holds {len(row)} bytes per person, expected '
                       f'{out[i].nbytes} (float64 {shape}); was the dataset built by another '
                       'version of tfds_posetrack?')
    out[i] = np.frombuffer(row, np.float64).reshape(shape)
  return out
