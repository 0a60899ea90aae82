"""Where a run's PoseTrack18 comes from: the user's copy or generated videos, built once by TFDS.

    records, table = open_split(config, workdir, 'train')

config.data.root (or $POSETRACK18_DIR) names a directory in one of PoseTrack's official layouts
(PoseTrack18, PoseTrack21 or PoseTrack17: tfds_posetrack/posetrack18/layouts.py, detected); with
config.data.synthetic the videos are generated into <workdir>/data/<config.data.synthetic_layout>
first. Either way
the TFDS build (tfds_posetrack/posetrack18) is made once and reused. With several processes,
process 0 prepares and the others wait for it.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

import jax
import ml_collections
from jax.experimental import multihost_utils

from posewarper_jax import paths, provenance
from posewarper_jax.data import synthetic
from tfds_posetrack.posetrack18 import (
  Builder,
  FrameTable,
  layouts,
  open_records,
  prepare,
  sparse_labels,
)

ROOT_ENV = 'POSETRACK18_DIR'
# Written last by the generator's caller, with the generation settings (provenance.make_once): a
# half-written set is generated again, and a set made with other settings is refused.
_SYNTHETIC_DONE = 'GENERATED'


def dataset_root(config, workdir: str | os.PathLike) -> pathlib.Path:
  """The PoseTrack18 directory this config reads (not created here)."""
  if config.data.synthetic:
    return pathlib.Path(workdir) / 'data' / config.data.synthetic_layout
  root = config.data.root or os.environ.get(ROOT_ENV, '')
  if not root:
    raise FileNotFoundError(
        'config.data.root is empty and $POSETRACK18_DIR is not set: no PoseTrack18 to read. '
        f'Point either at an official layout (images/ and annotations/ or posetrack_data/; how '
        f'to get it: '
        f'{_how_to_get()}), or run the synthetic variant: '
        '--config=configs/posewarper.py:synthetic')
  return pathlib.Path(paths.absolute(root))  # $POSETRACK18_DIR may be relative


def _how_to_get() -> str:
  return ' '.join(Builder.MANUAL_DOWNLOAD_INSTRUCTIONS.split())


def _synthetic_settings(config) -> dict:
  """What a synthetic set is generated from: synthetic.generate's arguments."""
  num_train, num_val = config.data.synthetic_videos
  height, width = config.data.synthetic_frame_size
  return dict(seed=config.seed, num_train=num_train, num_val=num_val, num_test=0, width=width,
              height=height, layout=config.data.synthetic_layout)


# How provenance names the settings of a synthetic set, and the value of `layout` in sets
# generated before there were layouts (PoseTrack18's).
_SYNTHETIC_FIELDS = ('config.seed / config.data.synthetic_videos / synthetic_frame_size / '
                     'synthetic_layout')
_SYNTHETIC_ADDED = {'layout': 'posetrack18'}


def _generate(root: pathlib.Path, config) -> None:
  settings = _synthetic_settings(config)
  provenance.make_once(
      root, _SYNTHETIC_DONE, settings, lambda: synthetic.generate(root, **settings),
      what=_SYNTHETIC_FIELDS, added=_SYNTHETIC_ADDED,
      announce=(f'generating a synthetic PoseTrack18 in {root} ({settings["num_train"]} train / '
                f'{settings["num_val"]} val videos, {settings["width"]}x{settings["height"]}, '
                f'{settings["layout"]} layout)'))


def annotation_dir(config, workdir: str | os.PathLike, folder: str) -> pathlib.Path:
  """The folder of one split's per-video annotation files (folder: 'train', 'val', 'test') in
  the run's dataset, whichever its layout: the ground truth the metric reads."""
  root = dataset_root(config, workdir)
  return layouts.detect(root).annotation_dir(root, folder)


def _tfds_dir(config, root: pathlib.Path) -> pathlib.Path:
  """Where the TFDS build of the dataset at root goes (config.data.tfds_dir: '' = beside a
  generated set, inside the user's)."""
  if config.data.tfds_dir:
    return pathlib.Path(config.data.tfds_dir)
  return root.parent / 'tfds' if config.data.synthetic else root / 'tfds'


def readable_root(config, workdir: str | os.PathLike) -> pathlib.Path | None:
  """The user's PoseTrack18 directory this config reads, after checking that it is one of the
  official layouts (FileNotFoundError saying how to get one); None for a synthetic set."""
  if config.data.synthetic:
    return None
  root = dataset_root(config, workdir)
  try:
    layouts.detect(root)
  except (FileNotFoundError, ValueError) as e:
    raise FileNotFoundError(f'config.data.root: {e} {_how_to_get()} Or run the synthetic '
                            'variant: --config=configs/posewarper.py:synthetic') from None
  return root


def wait_for_process_0(name: str) -> None:
  """With several processes, every one waits here until all arrive (process 0 made something
  the others read); with one, nothing."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def prepare_dataset(config, workdir: str | os.PathLike) -> Builder:
  """Generates (synthetic) and builds the TFDS dataset unless already done; the builder."""
  root = dataset_root(config, workdir)
  tfds_dir = _tfds_dir(config, root)

  def build() -> Builder:
    if config.data.synthetic:
      _generate(root, config)
    else:
      readable_root(config, workdir)
    return prepare(root, tfds_dir, config.data.stored_gap)

  if jax.process_count() == 1:
    return build()
  builder = build() if jax.process_index() == 0 else None
  wait_for_process_0('posewarper_jax dataset prepared')
  return builder or build()


def check_synthetic(config, workdir: str | os.PathLike) -> None:
  """provenance.Refused when the workdir's synthetic set was generated with other settings than
  the config asks for; writes nothing."""
  if config.data.synthetic:
    provenance.check_once(dataset_root(config, workdir), _SYNTHETIC_DONE,
                          _synthetic_settings(config), what=_SYNTHETIC_FIELDS,
                          added=_SYNTHETIC_ADDED)


def shared_data_config(config, workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  """config.data as runs in other folders read the same data: a synthetic set of <workdir>/data
  named by its absolute root and TFDS folder; the user's root as given. Nothing is made."""
  data = ml_collections.ConfigDict(config.data.to_dict())
  if config.data.synthetic:
    root = dataset_root(config, workdir)
    data.update(synthetic=False, root=str(root), tfds_dir=str(_tfds_dir(config, root)))
  return data


def shared_data(config, workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  """shared_data_config, with a synthetic set generated and built first (once)."""
  if config.data.synthetic:
    prepare_dataset(config, workdir)
  return shared_data_config(config, workdir)


def labeled_seed(config) -> int:
  """The seed that draws a run's labeled videos: config.data.labeled_seed, or config.seed when
  that is -1."""
  seed = config.data.labeled_seed
  return config.seed if seed == -1 else seed


def labeled_subset(config, table: FrameTable) -> FrameTable:
  """The table with only the run's sparse labels labeled (config.data.labeled_videos and
  labeled_frames_per_video, drawn with labeled_seed: tfds_posetrack's sparse_labels, spec 7)."""
  return sparse_labels(table, config.data.labeled_videos, config.data.labeled_frames_per_video,
                       labeled_seed(config))


def open_split(config, workdir: str | os.PathLike,
               split: str) -> tuple[Sequence[dict], FrameTable]:
  """(records, frame table) of one split of the run's dataset (see the module docstring)."""
  builder = prepare_dataset(config, workdir)
  if split not in builder.info.splits:
    raise FileNotFoundError(f'the PoseTrack18 build in {builder.data_dir} has no {split!r} split '
                            f'(it has {", ".join(builder.info.splits)})')
  # open_records: a damaged or missing shard is refused naming it and the folder to rebuild.
  return open_records(builder, split), FrameTable.from_builder(builder, split)
