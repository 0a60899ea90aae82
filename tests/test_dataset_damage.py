"""A damaged TFDS build (a shard deleted, truncated, or with bytes flipped) is one clear error:
DamagedDatasetError naming the shard file and the folder to delete, raised when the split is
opened (missing, wrong size) or when the damaged record is read (checksums), also from Grain's
worker processes; nothing in the build is changed."""

from __future__ import annotations

import hashlib
import json
import pathlib
import pickle
import re
import shutil

import grain
import numpy as np
import pytest
import tensorflow_datasets as tfds
from absl import flags

from tfds_posetrack.posetrack18 import (
    Builder,
    CheckedDataSource,
    DamagedDatasetError,
    PairSource,
    check_shards,
    make_config,
    open_records,
    prepare,
)
from tfds_posetrack.posetrack18.lean_records import LeanRecords

SHARDS = 3  # per split: a damaged record must be told apart from its neighbours in other shards
DAMAGED = 1  # the shard of train each test damages


@pytest.fixture(scope='module')
def build(synthetic_root, tmp_path_factory):
  """The TFDS folder (data_dir) of synthetic_root built in SHARDS shards per split, as prepare
  builds it (the same builder and config) but with a shard count of its own."""
  data_dir = tmp_path_factory.mktemp('tfds')
  builder = Builder(data_dir=str(data_dir), config=make_config(7))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(synthetic_root), num_shards=SHARDS))
  return data_dir


@pytest.fixture
def builder(build, tmp_path) -> Builder:
  """A builder over this test's own copy of the build (the tests damage it)."""
  shutil.copytree(build, tmp_path / 'tfds')
  return Builder(data_dir=str(tmp_path / 'tfds'), config=make_config(7))


def _shard(builder: Builder, split: str = 'train', index: int = DAMAGED) -> pathlib.Path:
  return pathlib.Path(builder.info.splits[split].filepaths[index])


def _records_of(builder: Builder, split: str, shard: int) -> range:
  """The indices of the split's records stored in shard `shard`."""
  lengths = builder.info.splits[split].shard_lengths
  return range(sum(lengths[:shard]), sum(lengths[:shard + 1]))


def _snapshot(directory: pathlib.Path) -> dict[str, str]:
  """{relative path: sha256} of every file under `directory`."""
  return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(directory.rglob('*')) if p.is_file()}


def _assert_names(error: pytest.ExceptionInfo | DamagedDatasetError, builder: Builder,
                  problem: str, where: str = '') -> None:
  """The error names the shard and the problem (a regular expression), the folder to delete
  and the rebuild, in its message and its fields; `where`: how it was read, for a failure."""
  error = getattr(error, 'value', error)
  shard, data_dir = str(_shard(builder)), str(builder.data_dir)
  message = str(error)
  assert re.search(f'the PoseTrack18 build in {re.escape(data_dir)} is damaged: its shard '
                   f'{re.escape(shard)} {problem}', message), (where, message)
  assert (f'To rebuild it, delete {data_dir} and rerun the same command: it builds the dataset '
          'again from the PoseTrack18 directory it was built from') in message, where
  assert 'Nothing was deleted' in message, where
  assert (error.shard, error.data_dir) == (shard, data_dir), where
  assert error.manual_dir and error.manual_dir in error.remedy and error.remedy in message, where


def test_an_intact_build_opens_and_reads(builder, synthetic_root):
  sizes = builder.info.metadata['shard_bytes']
  for split in ('train', 'validation'):
    assert len(sizes[split]) == SHARDS
    for path in builder.info.splits[split].filepaths:
      assert sizes[split][pathlib.Path(path).name] == pathlib.Path(path).stat().st_size
    check_shards(builder, split)
    records = open_records(builder, split)
    assert isinstance(records, CheckedDataSource) and len(records) == len(
        builder.as_data_source(split))
    lean = LeanRecords(records)
    assert all(lean[i]['image'] == records[i]['image'] for i in range(len(records)))
  assert builder.info.metadata['manual_dir'] == str(synthetic_root)
  assert len(prepare(synthetic_root, builder.data_dir_root).as_data_source('train')) == len(lean)


def test_a_deleted_shard(builder, synthetic_root):
  _shard(builder).unlink()
  before = _snapshot(pathlib.Path(builder.data_dir))
  for opening in (lambda: check_shards(builder, 'train'), lambda: open_records(builder, 'train'),
                  lambda: check_shards(builder, 'train[5:]'),
                  lambda: prepare(synthetic_root, builder.data_dir_root)):
    with pytest.raises(DamagedDatasetError) as error:
      opening()
    _assert_names(error, builder, 'is missing')
  check_shards(builder, 'validation')  # the other split is intact
  # Read without the check (a data source opened before the shard went): the same error.
  record = _records_of(builder, 'train', DAMAGED)[0]
  for records in (LeanRecords(builder.as_data_source('train')),
                  CheckedDataSource(builder.info, 'train')):
    with pytest.raises(DamagedDatasetError) as error:
      records[record]
    _assert_names(error, builder, 'is missing')
  assert _snapshot(pathlib.Path(builder.data_dir)) == before


def test_a_truncated_shard(builder, synthetic_root):
  shard = _shard(builder)
  size = shard.stat().st_size
  shard.write_bytes(shard.read_bytes()[:size * 2 // 5])
  before = _snapshot(pathlib.Path(builder.data_dir))
  for opening in (lambda: check_shards(builder, 'train'), lambda: open_records(builder, 'train'),
                  lambda: prepare(synthetic_root, builder.data_dir_root)):
    with pytest.raises(DamagedDatasetError) as error:
      opening()
    _assert_names(error, builder, f'is {size * 2 // 5} bytes, the build wrote {size}')
  assert _snapshot(pathlib.Path(builder.data_dir)) == before


def test_a_truncated_shard_of_a_build_without_sizes(builder):
  # A build made before the sizes were recorded: opening cannot tell, reading does.
  metadata_file = pathlib.Path(builder.data_dir) / 'metadata.json'
  metadata = json.loads(metadata_file.read_text())
  del metadata['shard_bytes']
  metadata_file.write_text(json.dumps(metadata))
  shard = _shard(builder)
  shard.write_bytes(shard.read_bytes()[:shard.stat().st_size * 2 // 5])
  builder = Builder(data_dir=builder.data_dir_root, config=make_config(7))
  records = open_records(builder, 'train')
  with pytest.raises(DamagedDatasetError) as error:
    LeanRecords(records)[_records_of(builder, 'train', DAMAGED)[0]]
  _assert_names(error, builder, 'cannot be read')


def _flip_bytes(path: pathlib.Path) -> None:
  """Inverts 8 bytes in the middle of the shard's stored data, its size kept (a shard is padded
  with zeros to Riegeli's block size: the file's middle may hold none)."""
  data = np.frombuffer(path.read_bytes(), np.uint8).copy()
  stored = np.flatnonzero(data)
  middle = stored[len(stored) // 2]
  data[middle:middle + 8] ^= 0xFF
  path.write_bytes(data.tobytes())


def _width(record: dict) -> int:
  return int(record['width'])


def _grain_reads(records, which: tuple[str, ...]):
  """Ways the library reads records through Grain, in this process and in worker processes:
  {name: read every record}."""
  flags.FLAGS.mark_as_parsed()  # Grain's workers read absl flags (as pipeline.training_dataset)
  sampler = grain.samplers.IndexSampler(len(records), num_epochs=1, shuffle=False)
  loader = lambda workers: grain.DataLoader(data_source=records, sampler=sampler,
                                            operations=[_Width()], worker_count=workers)
  reads = {
      'MapDataset': lambda: list(grain.MapDataset.source(records).map(_width)),
      # The training stream's way (pipeline.training_dataset with num_workers=1).
      'mp_prefetch, 1 worker': lambda: list(
          grain.MapDataset.source(records).map(_width).to_iter_dataset()
          .mp_prefetch(grain.MultiprocessingOptions(num_workers=1))),
      'DataLoader, 0 workers': lambda: list(loader(0)),
      'DataLoader, 1 worker': lambda: list(loader(1)),
  }
  return {name: reads[name] for name in which}


class _Width(grain.transforms.Map):
  def map(self, element):
    return _width(element)


def test_flipped_bytes_in_a_shard(builder):
  shard = _shard(builder)
  size = shard.stat().st_size
  _flip_bytes(shard)
  assert shard.stat().st_size == size
  before = _snapshot(pathlib.Path(builder.data_dir))
  check_shards(builder, 'train')  # the size is right: only reading can tell
  records = open_records(builder, 'train')
  damaged = _records_of(builder, 'train', DAMAGED)
  failed = []
  for i in range(len(records)):
    try:
      records[i]
    except DamagedDatasetError as e:
      _assert_names(e, builder, f'cannot be read \\(record {i} of split train, record '
                                f'{i - damaged[0]} of the shard\\): Corrupted Riegeli')
      failed.append(i)
  assert failed and set(failed) <= set(damaged)  # the records of other shards read
  with pytest.raises(DamagedDatasetError) as error:
    records.__getitems__([0, *damaged])  # a batch read (as PyTorch's and Grain's loaders may)
  _assert_names(error, builder, 'cannot be read')
  # The error survives pickling (Grain sends it from its worker processes) with its fields.
  with pytest.raises(DamagedDatasetError) as error:
    LeanRecords(records)[failed[0]]
  again = pickle.loads(pickle.dumps(error.value))
  assert str(again) == str(error.value) and again.data_dir == error.value.data_dir
  _assert_names(again, builder, 'cannot be read')
  # What a user sees through Grain: the same error, also from a worker process.
  reads = {**_grain_reads(records, ('MapDataset', 'DataLoader, 0 workers', 'DataLoader, 1 worker')),
           **{f'LeanRecords, {k}': v for k, v in _grain_reads(
               LeanRecords(records), ('MapDataset', 'mp_prefetch, 1 worker')).items()}}
  for name, read in reads.items():
    with pytest.raises(DamagedDatasetError) as error:
      read()
    _assert_names(error, builder, 'cannot be read', name)
  # Through TFDS's own data source (read by LeanRecords), and the pair view's records.
  with pytest.raises(DamagedDatasetError):
    LeanRecords(builder.as_data_source('train'))[failed[0]]
  assert isinstance(PairSource.from_builder(builder, 'train').records, CheckedDataSource)
  assert _snapshot(pathlib.Path(builder.data_dir)) == before
