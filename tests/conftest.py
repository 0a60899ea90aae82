"""Four CPU devices for the whole suite, so that pmap'd code runs as it does on a GPU box, and
the fixtures several test modules share.

The environment is set before anything imports JAX (pytest loads this file first); single-device
code is unaffected.
"""

import gc
import os
import tempfile

from posewarper_jax.accelerators import COMPILE_ONLY_ENVIRONMENT

# Four devices; and XLA:CPU's code generation without LLVM's optimizations. The suite's networks
# are tiny and run a few steps each, so its time is compilation, not execution
# (tests/test_models.py: 81 s with LLVM's optimizations, 45 s without; docs/benchmarks.md, "The
# test suite"). The optimizations change how fast the code runs, not what it computes (no fast
# math either way), and every comparison in the suite is between programs compiled alike or
# within float tolerances.
_FLAGS = ('--xla_force_host_platform_device_count=4', '--xla_backend_optimization_level=0',
          '--xla_llvm_disable_expensive_passes=true')
for _flag in _FLAGS:
  if _flag.split('=')[0] not in os.environ.get('XLA_FLAGS', ''):
    os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} {_flag}'.strip()

# JAX's backend is the CPU, also in the venv with libtpu and the CUDA plugin (.venv-accel), where
# tests/test_aot.py compiles for TPUs and GPUs through compile-only devices.
for _key, _value in COMPILE_ONLY_ENVIRONMENT.items():
  os.environ.setdefault(_key, _value)

# The suite compiles with XLA:CPU's default options (posewarper_jax/ops/backend.py): its networks
# are tiny, where oneDNN's per-call weight reorders cost more than its convolutions save
# (test_train.py and test_quickstart.py: 187 s with the defaults, 266 s with oneDNN), and JAX's
# persistent cache below cannot store an executable with oneDNN's custom calls. What the options
# compute is tested with them: test_formulations.py (each convolution and gradient) and
# test_train.py (the whole step of each stage).
os.environ.setdefault('POSEWARPER_CPU_COMPILER_OPTIONS', 'default')

# One persistent compilation cache per test session (the run.py subprocesses inherit it): the
# training tests compile the same steps again and again (resume, two processes, each stage).
# Measured on the resume test: 63 s without, 44 s with, starting from an empty cache.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', tempfile.mkdtemp(prefix='jax_cache_'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.5')

import pytest  # noqa: E402 (after the flag, before anything that imports JAX)


def pytest_collection_finish(session):
  """Every test module is imported (JAX, Flax, TFDS, TensorFlow): their objects live as long as
  the process, and Python's full collections would traverse them again at every collection
  while the tests trace their programs. Frozen, the collector leaves them out: the collections'
  own time in tests/test_models.py, one process, 4.7 s without, 3.2 s with (docs/benchmarks.md,
  "The test suite")."""
  del session
  gc.collect()
  gc.freeze()


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
  """A small synthetic PoseTrack18 (2 train, 2 val videos of 40 frames at 192x144)."""
  from posewarper_jax.data.synthetic import generate

  root = tmp_path_factory.mktemp('posetrack18_small')
  generate(root, seed=7, num_train=2, num_val=2, num_test=0, frames=40, width=192, height=144)
  return root


@pytest.fixture(scope='session')
def identity_run(synthetic_root, tmp_path_factory):
  """(config, workdir) of a tiny run trained one step per stage on synthetic_root, its warping
  head still the identity it starts as (stage-2 learning rate 0, spec 1.5). The evaluation,
  propagation and inference tests share it: one training instead of one per module."""
  from posewarper_jax import train
  from tests.helpers import tiny_config

  workdir = tmp_path_factory.mktemp('identity_run')
  config = tiny_config(synthetic_root, stages=(1, 2), num_steps=1, checkpoint_every=1)
  config.stage2.learning_rate = 0.0
  for stage in (1, 2):
    train.train_stage(config, workdir, stage)
  return config, workdir
