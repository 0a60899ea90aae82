"""The stand-in for COCO pretraining on synthetic videos: stills generated, pretrained once.

    config = pretrain.with_standin(config, workdir)   # stage1.init -> <workdir>/pretrain
    pretrain.pretrain(config, workdir)                # generate, convert, build, train, score

The paper's networks start from an HRNet pretrained on COCO: many labeled still images of
another domain, which the sparse video labels then adapt. On the synthetic videos the analog is
a set of labeled stills drawn unlike the videos (posewarper_jax/data/stills.py says how). With
config.pretrain.stills > 0, a run (the train mode, or every run of the augmentation grid) starts
stage 1 from a network trained on that many stills, made in its workdir:

  <workdir>/data/stills/              the stills in COCO's layout (generated once; GENERATED)
  <workdir>/data/stills_posetrack18/  the same as one-frame PoseTrack18 videos (CONVERTED)
  <workdir>/data/stills_tfds/         their TFDS build
  <workdir>/pretrain/                 stage 1 on them (config.pretrain.stage1's schedule, from
                                      scratch), and with config.pretrain.evaluate its single-frame
                                      mAP on the run's own validation videos (eval/, results.md)

Each part is made once and reused: the generation and the conversion are marked done by a file
written last with their settings (a set made with other settings is refused), the training
resumes and stops as every stage does, and the evaluation is skipped when done with the same
checkpoint (report.py).
"""

from __future__ import annotations

import pathlib

import jax
import ml_collections
from jax.experimental import multihost_utils

from posewarper_jax import report, train
from posewarper_jax.data import source, stills

RUN = 'pretrain'


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
  run = ml_collections.ConfigDict(config.to_dict())
  run.stage1.init = str(run_dir(workdir))
  return run


def pretrain_config(config, workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  """The stand-in run's config: stage 1 alone on the converted stills with
  config.pretrain.stage1's schedule, from scratch."""
  workdir = pathlib.Path(workdir)
  run = ml_collections.ConfigDict(config.to_dict())
  run.data.update(synthetic=False, root=str(workdir / 'data' / 'stills_posetrack18'),
                  tfds_dir=str(workdir / 'data' / 'stills_tfds'), labeled_videos=-1,
                  labeled_frames_per_video=-1, joints='coco')  # the stills' eyes flip
  run.stages = (1,)
  run.stage1.update(config.pretrain.stage1.to_dict())
  run.stage1.init = run.stage2.init = ''
  run.after_training = ()
  return run


def evaluation_config(run, videos: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The stand-in run's evaluation: its single frame (it has no warping head) on the
  validation split of `videos` (source.shared_data: the run's own videos)."""
  evaluation = ml_collections.ConfigDict(run.to_dict())
  evaluation.data = ml_collections.ConfigDict(videos.to_dict())  # PoseTrack's joints again
  evaluation.eval.update(aggregate=False, checkpoint='')
  evaluation.after_training = ('eval',)
  return evaluation


def pretrain(config, workdir: str | pathlib.Path) -> pathlib.Path | None:
  """Makes (or finds) the stand-in network of `workdir` (see the module docstring); its run
  directory, or None when config.pretrain.stills is 0."""
  if not config.pretrain.stills:
    return None
  workdir = pathlib.Path(workdir)
  height, width = config.data.synthetic_frame_size
  settings = dict(seed=config.pretrain.seed, num_images=config.pretrain.stills, width=width,
                  height=height, max_people=config.pretrain.max_people,
                  limb_code=config.pretrain.limb_code)
  coco, converted = workdir / 'data' / 'stills', workdir / 'data' / 'stills_posetrack18'
  def refusal(root):
    return lambda saved, requested: (
        f'{root} was made with {saved}, but config.pretrain now asks for {requested}: use '
        f'another --workdir (or delete {root} to make it again)')

  if jax.process_index() == 0:  # the others wait: one writer per file system
    source.made_once(coco, settings, lambda: stills.generate_stills(coco, **settings),
                     marker='GENERATED', refusal=refusal(coco),
                     announce=f'pretrain: generating {config.pretrain.stills} labeled stills '
                              f'(the COCO stand-in) in {coco}')
    source.made_once(converted, settings, lambda: stills.to_posetrack18(coco, converted),
                     marker='CONVERTED', refusal=refusal(converted),
                     announce=f'pretrain: the stills as one-frame PoseTrack18 videos in '
                              f'{converted}')
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('posewarper_jax stand-in made')
  run = pretrain_config(config, workdir)
  out = run_dir(workdir)
  train.check_resume(run, out)
  train.write_config(run, out)
  train.train_stage(run, out, 1)
  if config.pretrain.evaluate:
    report.run_after_training(evaluation_config(run, source.shared_data(config, workdir)), out)
  return out
