"""A damaged build (a shard missing, truncated or with flipped bytes) as one clear error.

ArrayRecord's reader detects damage by itself (Riegeli checksums every chunk), but what it raises
is a RuntimeError from deep in Grain's stack that names neither the dataset's folder nor what to
do, and a missing shard surfaces only when a record of it is first read. This module turns both
into DamagedDatasetError, naming the shard file, the folder to delete and how to rebuild:

    check_shards(builder, 'train')         # when a split is opened: every shard file the
                                           # split lists exists, with the size the build wrote
    records = open_records(builder, 'train')   # the check, and a data source whose reads say
    records[i]                                 # which shard a checksum error came from

The check is cheap (one stat per shard, no read: PoseTrack18 is tens of GB), so it cannot see
flipped bytes that keep a shard's size; those are caught when the damaged record is read (by
CheckedDataSource and by LeanRecords, through read_serialized). Nothing is ever deleted here.

The sizes come from the build: the builder records them in info.metadata['shard_bytes']
({split: {shard file name: bytes}}, see shard_sizes). A build made before that records none;
its shards are checked for existence only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from tensorflow_datasets.core.data_sources.array_record import ArrayRecordDataSource

# Words of the ArrayRecord/Riegeli reader's errors for a damaged file (RuntimeError, from C++):
# 'Corrupted Riegeli/records file: chunk data hash mismatch ...', 'ArrayRecord file should be at
# least 64KB big', 'Invalid postscript ...', 'open() failed: No such file or directory; opening
# <path>'. Another RuntimeError (a permission denied, a network file system's I/O error) is not
# damage: deleting the build would not help, so it is raised as it is.
_DAMAGE_WORDS = ('corrupt', 'riegeli', 'hash mismatch', 'arrayrecord file', 'postscript',
                 'footer', 'no such file')


class DamagedDatasetError(ValueError):
  """A shard of a TFDS build is missing, of the wrong size or unreadable; the message names the
  shard and gives the remedy.

  Attributes (also after pickling, as from a Grain worker process):
    shard: the shard file's path.
    data_dir: the build's folder, the one to delete to rebuild it.
    manual_dir: the PoseTrack18 directory the build was made from ('' when the build does not
      record it).
    remedy: the sentence that says what to do.
  """

  def __init__(self, message: str, *, shard: str = '', data_dir: str = '', manual_dir: str = '',
               remedy: str = ''):
    # The message alone in args: an exception pickles as (type, args) plus its __dict__, so the
    # keywords must not be needed to construct it again (Grain sends it between processes).
    super().__init__(message)
    self.shard, self.data_dir, self.manual_dir, self.remedy = shard, data_dir, manual_dir, remedy


def shard_sizes(info) -> dict[str, dict[str, int]]:
  """{split: {shard file name: size in bytes}} of the shards a DatasetInfo lists (as they are on
  disk now: the builder calls it once they are written)."""
  return {split: {os.path.basename(os.fspath(i.filename)): os.stat(os.fspath(i.filename)).st_size
                  for i in split_info.file_instructions}
          for split, split_info in info.splits.items()}


def _recorded_size(info, split: str, shard: str) -> int | None:
  """The size the build wrote for `shard` of `split` (None if the build records none)."""
  base_split = str(split).split('[', 1)[0]  # 'train[:10%]' reads shards of 'train'
  sizes = dict(info.metadata.items()).get('shard_bytes') if info.metadata else None
  size = (sizes or {}).get(base_split, {}).get(os.path.basename(shard))
  return None if size is None else int(size)


def _problem(info, split: str, shard: str) -> str | None:
  """What is wrong with the shard file on disk ('is missing', 'is N bytes, ...'), or None."""
  try:
    size = os.stat(shard).st_size
  except FileNotFoundError:
    return 'is missing'
  expected = _recorded_size(info, split, shard)
  if expected is not None and size != expected:
    return f'is {size} bytes, the build wrote {expected}'
  return None


def damaged_error(info, shard: str, problem: str) -> DamagedDatasetError:
  """The error for shard file `shard` of the build `info` describes, `problem` saying what is
  wrong with it ('is missing', ...)."""
  data_dir = os.fspath(info.data_dir)
  metadata = dict(info.metadata.items()) if info.metadata else {}
  manual_dir = str(metadata.get('manual_dir', ''))
  source = (f'the PoseTrack18 directory it was built from ({manual_dir})' if manual_dir
            else 'the PoseTrack18 directory')
  remedy = (f'To rebuild it, delete {data_dir} and rerun the same command: it builds the '
            f'dataset again from {source}.')
  message = (f'the PoseTrack18 build in {data_dir} is damaged: its shard {shard} {problem}. '
             f'{remedy} (Nothing was deleted.)')
  return DamagedDatasetError(message, shard=shard, data_dir=data_dir, manual_dir=manual_dir,
                             remedy=remedy)


def check_shards(builder, split: str) -> None:
  """Raises DamagedDatasetError if a shard file of `split` (a split name or slice, e.g.
  'train[:10%]') is missing or, where the build recorded it, not of the size it was written.

  One stat per shard, no data read. A split the build does not have is TFDS's own error (as from
  builder.as_data_source).
  """
  info = builder.info
  for shard in dict.fromkeys(os.fspath(i.filename) for i in info.splits[split].file_instructions):
    problem = _problem(info, split, shard)
    if problem:
      raise damaged_error(info, shard, problem)


def _shard_of(info, split: str, index: int) -> tuple[str, int]:
  """(shard file, position in that file) of record `index` of the split, as the reader maps it
  (the split's file instructions: per shard, `take` records from position `skip`)."""
  remaining = index
  for instruction in info.splits[split].file_instructions:
    if remaining < instruction.take:
      return os.fspath(instruction.filename), instruction.skip + remaining
    remaining -= instruction.take
  raise IndexError(f'record {index} is past the end of split {split!r}')


def read_error(source, index: int, error: Exception) -> Exception:
  """The error to raise for `error`, raised by reading record `index` of a TFDS ArrayRecord data
  source (builder.as_data_source): a DamagedDatasetError naming the shard when the shard is
  missing, of the wrong size, or the reader found it corrupt; `error` itself otherwise."""
  info, split = getattr(source, 'dataset_info', None), getattr(source, 'split', None)
  if not isinstance(error, (RuntimeError, OSError)) or info is None or split is None:
    return error  # not a reader's error, or not a TFDS data source (no shards to name)
  try:
    shard, position = _shard_of(info, split, index)
  except (IndexError, KeyError, ValueError, TypeError):
    return error
  problem = _problem(info, split, shard)
  if problem is None and any(word in str(error).lower() for word in _DAMAGE_WORDS):
    problem = (f'cannot be read (record {index} of split {split}, record {position} of the '
               f'shard): {error}')
  return error if problem is None else damaged_error(info, shard, problem)


def _raise_for(source, index: int, error: Exception) -> None:
  """Raises read_error's error, chained to `error` (or `error` itself, as it was)."""
  damaged = read_error(source, index, error)
  if damaged is error:
    raise error
  raise damaged from error


def read_serialized(source, index: int) -> bytes:
  """The stored bytes of record `index` of a TFDS ArrayRecord data source, a damaged shard a
  DamagedDatasetError (read_error)."""
  try:
    return source.data_source[index]
  except (RuntimeError, OSError) as e:
    _raise_for(source, index, e)


@dataclasses.dataclass(repr=False)
class CheckedDataSource(ArrayRecordDataSource):
  """builder.as_data_source(split) whose reads raise DamagedDatasetError for a damaged shard
  (read_error); everything else as TFDS's data source (records, len, pickling for Grain's
  worker processes: each re-opens the files)."""

  def __getitem__(self, key) -> Any:
    try:
      return super().__getitem__(key)
    except (RuntimeError, OSError) as e:
      _raise_for(self, key.__index__(), e)

  def __getitems__(self, keys: Sequence[int]) -> Sequence[Any]:
    try:
      return super().__getitems__(keys)
    except (RuntimeError, OSError) as e:
      # The batch read does not say which key failed: find it by reading them one at a time
      # (only on this error path).
      for key in keys:
        self[key]
      raise e


def open_records(builder, split: str) -> CheckedDataSource:
  """The split's records (as builder.as_data_source(split)) after check_shards; a damaged record
  read later raises DamagedDatasetError too."""
  source = builder.as_data_source(split)  # TFDS's checks first (file format, split name)
  check_shards(builder, split)
  return CheckedDataSource(dataset_info=source.dataset_info, split=source.split,
                           decoders=source.decoders, deserialize_method=source.deserialize_method)

