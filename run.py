"""PoseWarper in JAX: the entry point.

    python run.py --config=configs/posewarper.py --workdir=DIR              # stage 2 (paper)
    python run.py --config=configs/posewarper.py:stage1 --workdir=DIR       # stage 1
    python run.py --config=configs/posewarper.py:synthetic --workdir=DIR    # the quick start
    python run.py --config=configs/posewarper.py --config.data.max_gap=1 ...  # any field
    python run.py --config=configs/posewarper.py --workdir=DIR --mode=eval    # the mAP table
    python run.py --config=configs/posewarper.py --workdir=DIR --mode=propagate
    python run.py --config=configs/posewarper.py --workdir=DIR --mode=augment    # enlarged set
    python run.py --config=configs/posewarper.py:augmentation_grid --workdir=DIR \
        --mode=augment_grid                                                  # the paper's figure
    python run.py --config=configs/posewarper.py --workdir=DIR --mode=infer \
        --config.infer.input=clip.mp4                                        # own video

Several processes (GPU clusters, TPU pods): see posewarper_jax/multihost.py.
"""

import contextlib

from absl import app, flags, logging
from ml_collections import config_flags

from posewarper_jax import multihost, paths, workdir_lock

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'the experiment (configs/posewarper.py[:variants])',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'where checkpoints, logs and results go (resumes from it)')
flags.DEFINE_enum('mode', 'train',
                  ['train', 'eval', 'propagate', 'augment', 'augment_grid', 'infer'],
                  'train: the stages in config.stages, in order, then the steps in '
                  'config.after_training (eval, propagate, render) and their results table; '
                  'eval: single-frame and aggregated mAP on config.eval.split (<workdir>/eval); '
                  'propagate: video pose propagation against copying labels and the single-frame '
                  'network '
                  '(<workdir>/propagate); augment: training labels propagated to their '
                  'neighbours (<workdir>/augment); augment_grid: the augmentation experiment '
                  'for each (V, N) of config.grid.labels, its table and figure '
                  '(<workdir>/grid); infer: poses on config.infer.input, a video or '
                  'a frame folder (<workdir>/infer)')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO; -v 0 shows it
  multihost.initialize_from_environment()
  # Imported after the distributed runtime is up: nothing may touch the devices before it.
  import jax

  from posewarper_jax import (
    augment,
    config_checks,
    evaluate,
    infer,
    label_grid,
    pretrain,
    propagate,
    report,
    train,
  )

  config = FLAGS.config
  # Every path the user gave, absolute from here on (paths.py says why).
  paths.absolute_config(config)
  workdir = paths.absolute(FLAGS.workdir)
  print(f'posewarper_jax: {FLAGS.mode} in {workdir}; process {jax.process_index()} of '
        f'{jax.process_count()}, {jax.local_device_count()} local / {jax.device_count()} '
        f'{jax.default_backend()} devices', flush=True)
  # Everything that can only be wrong, before anything in the workdir changes.
  if FLAGS.mode in ('train', 'augment_grid'):
    config_checks.check_training(config)
  else:
    config_checks.check_inference(config)
  lock = (workdir_lock.hold(workdir, FLAGS.mode) if jax.process_index() == 0
          else contextlib.nullcontext())
  with lock:
    if FLAGS.mode == 'train':
      config = pretrain.with_standin(config, workdir)
      train.check_resume(config, workdir)
      train.write_config(config, workdir)
      pretrain.pretrain(config, workdir)
      for stage in config.stages:
        train.train_stage(config, workdir, stage)
      report.run_after_training(config, workdir)
    elif FLAGS.mode == 'eval':
      evaluate.evaluate(config, workdir)
    elif FLAGS.mode == 'propagate':
      propagate.propagate(config, workdir)
    elif FLAGS.mode == 'augment':
      augment.augment(config, workdir)
    elif FLAGS.mode == 'augment_grid':
      label_grid.run_grid(config, workdir)
    elif FLAGS.mode == 'infer':
      infer.infer(config, workdir)


if __name__ == '__main__':
  app.run(main)
