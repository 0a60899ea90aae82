"""The stand-in for COCO pretraining on synthetic videos: its stills and its run's config.

    config = pretrain.with_standin(config, workdir)   # stage1.init -> <workdir>/pretrain
    pretrain.make_stills(config, workdir)             # generated and converted once
    run = pretrain.standin_run(config, workdir)       # what experiment.train trains and scores

The paper's networks start from an HRNet pretrained on COCO: many labeled still images of
another domain, which the sparse video labels then adapt. On the synthetic videos the analog is
a set of labeled stills drawn unlike the videos (posewarper_jax/data/stills says how). With
config.pretrain.stills > 0, a run (the train mode, or every run of the augmentation grid) starts
stage 1 from a network trained on that many stills, made in its workdir (experiment.py runs
it):

  <workdir>/data/stills/              the stills in COCO's layout (generated once; GENERATED)
  <workdir>/data/stills_posetrack18/  the same as one-frame PoseTrack18 videos (CONVERTED)
  <workdir>/data/stills_tfds/         their TFDS build
  <workdir>/pretrain/                 stage 1 on them (config.pretrain.stage1's schedule, from
                                      scratch), and with config.pretrain.evaluate its single-frame
                                      mAP on the run's own validation videos (eval/, results.md)

Each part is made once and reused by provenance.py's rule: the stills and their conversion are
recorded with their settings when finished (a set made with other settings is refused), the
training resumes as every stage does, and the evaluation is skipped when done with the same
checkpoint.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import ml_collections

from posewarper_jax import provenance
from posewarper_jax.data import source
from posewarper_jax.data.stills import GENERATED, JPEG_QUALITY, SETTINGS_ADDED, generate_stills
from tfds_posetrack.posetrack18.coco import to_posetrack18

RUN = 'pretrain'
CONVERTED = 'CONVERTED'


def run_dir(workdir: str | pathlib.Path) -> pathlib.Path:
  """Where a workdir's stand-in network is trained: stage1.init of its runs."""
  return pathlib.Path(workdir) / RUN


def with_standin(config, workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  """The config with stage1.init naming <workdir>/pretrain when config.pretrain.stills > 0 (the
  config itself otherwise). Nothing is written: this comes before the resume check."""
  if not config.pretrain.stills or config.stage1.init == str(run_dir(workdir)):
    return config
  if config.stage1.init:
    raise ValueError(f'config.pretrain.stills={config.pretrain.stills} starts stage 1 from the '
                     f'stand-in, but config.stage1.init={config.stage1.init!r} names another '
                     'network: set one of them')
  run_config = ml_collections.ConfigDict(config.to_dict())
  run_config.stage1.init = str(run_dir(workdir))
  return run_config


def _folders(workdir: str | pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
  """(COCO-layout stills, their PoseTrack18 conversion, its TFDS build) of a workdir."""
  data = pathlib.Path(workdir) / 'data'
  return data / 'stills', data / 'stills_posetrack18', data / 'stills_tfds'


def stills_settings(config) -> dict:
  """What the stills are made from: generate_stills' arguments."""
  height, width = config.data.synthetic_frame_size
  return dict(seed=config.pretrain.seed, num_images=config.pretrain.stills, width=width,
              height=height, max_people=config.pretrain.max_people,
              limb_code=config.pretrain.limb_code, jpeg_quality=JPEG_QUALITY)


def check_stills(config, workdir: str | pathlib.Path) -> None:
  """provenance.Refused when the workdir's stills or their conversion were made with other
  settings than config.pretrain asks for; writes nothing."""
  settings = stills_settings(config)
  for folder, marker in zip(_folders(workdir)[:2], (GENERATED, CONVERTED), strict=True):
    provenance.check_once(folder, marker, settings, what='config.pretrain',
                          added=SETTINGS_ADDED)


def make_stills(config, workdir: str | pathlib.Path) -> None:
  """Generates the stills and converts them once (process 0; the others wait)."""
  coco, converted, _ = _folders(workdir)
  settings = stills_settings(config)
  if jax.process_index() == 0:
    provenance.make_once(
        coco, GENERATED, settings, lambda: generate_stills(coco, **settings),
        what='config.pretrain', added=SETTINGS_ADDED,
        announce=f'pretrain: generating {config.pretrain.stills} labeled stills (the COCO '
                 f'stand-in) in {coco}')
    provenance.make_once(
        converted, CONVERTED, settings, lambda: to_posetrack18(coco, converted),
        what='config.pretrain', added=SETTINGS_ADDED,
        announce=f'pretrain: the stills as one-frame PoseTrack18 videos in {converted}')
  source.wait_for_process_0('posewarper_jax stand-in made')


@dataclasses.dataclass(frozen=True)
class StandinRun:
  """The stand-in's training run: `config` (stage 1 alone on the converted stills, with
  config.pretrain.stage1's schedule, from scratch) in `workdir`, and `after` the config of its
  steps after training (its single frame scored on the run's own validation videos), or None."""

  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  after: ml_collections.ConfigDict | None


def standin_run(config, workdir: str | pathlib.Path) -> StandinRun:
  """The stand-in's run in <workdir>/pretrain (see StandinRun)."""
  _, converted, built = _folders(workdir)
  run_config = ml_collections.ConfigDict(config.to_dict())
  run_config.data.update(synthetic=False, root=str(converted), tfds_dir=str(built),
                         labeled_videos=-1, labeled_frames_per_video=-1,
                         joints='coco')  # the stills' eyes flip
  run_config.stages = (1,)
  run_config.stage1.update(config.pretrain.stage1.to_dict())
  run_config.stage1.init = run_config.stage2.init = ''
  run_config.after_training = ()
  after = None
  if config.pretrain.evaluate:
    after = ml_collections.ConfigDict(run_config.to_dict())
    # The run's own videos, PoseTrack's joints again; it has no warping head: single frame.
    after.data = source.shared_data_config(config, workdir)
    after.eval.update(aggregate=False, checkpoint='')
    after.after_training = ('eval',)
  return StandinRun(run_config, run_dir(workdir), after)
