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
import signal

from absl import app, flags, logging
from ml_collections import config_flags

from posewarper_jax import config_checks, multihost, paths, workdir_lock

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'the experiment (configs/posewarper.py[:variants])',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'where checkpoints, logs and results go (resumes from it)')
flags.DEFINE_enum('mode', 'train', list(config_checks.MODES),
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


def _stop_on_sigterm(signum, frame):
  """SIGTERM outside a training loop (which saves first: train.py): stop, saying how to go on.
  Whatever was finished is recorded (provenance.py), so the same command goes on from there."""
  del signum, frame
  from posewarper_jax import train
  print(f'posewarper_jax: SIGTERM; stopped. Run the same command again to go on from what was '
        f'finished (exit status {train.EXIT_PREEMPTED})', flush=True)
  raise SystemExit(train.EXIT_PREEMPTED)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO; -v 0 shows it
  signal.signal(signal.SIGTERM, _stop_on_sigterm)
  multihost.initialize_from_environment()
  # Imported after the distributed runtime is up: nothing may touch the devices before it.
  import jax

  from posewarper_jax import (
    augment,
    evaluate,
    experiment,
    infer,
    label_grid,
    propagate,
  )
  from posewarper_jax.data import source

  config = FLAGS.config
  # Every path the user gave, absolute from here on (paths.py says why).
  paths.absolute_config(config)
  workdir = paths.absolute(FLAGS.workdir)
  print(f'posewarper_jax: {FLAGS.mode} in {workdir}; process {jax.process_index()} of '
        f'{jax.process_count()}, {jax.local_device_count()} local / {jax.device_count()} '
        f'{jax.default_backend()} devices', flush=True)
  # Everything that can only be wrong, before the workdir is created or touched: the config's
  # values, then the ones the data decides (the experiment checks what the workdir holds).
  config_checks.check(config, FLAGS.mode, jax.device_count())
  if FLAGS.mode in config_checks.TRAINING_MODES:
    config_checks.check_data(config, FLAGS.mode, source.readable_root(config, workdir))
  lock = (workdir_lock.hold(workdir, FLAGS.mode) if jax.process_index() == 0
          else contextlib.nullcontext())
  modes = {'train': experiment.run, 'eval': evaluate.evaluate, 'propagate': propagate.propagate,
           'augment': augment.augment, 'augment_grid': label_grid.run_grid, 'infer': infer.infer}
  with lock:
    modes[FLAGS.mode](config, workdir)


if __name__ == '__main__':
  app.run(main)
