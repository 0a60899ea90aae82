"""Joining a multi-process JAX run (GPU clusters, TPU pods) from the environment.

Set by hand (any launcher, or several processes on one machine):

    JAX_COORDINATOR_ADDRESS=host:port JAX_NUM_PROCESSES=N JAX_PROCESS_ID=i python run.py ...

Under Slurm or Open MPI with more than one task, and on multi-host Cloud TPU, JAX finds these by
itself. A single process does nothing here. On a TPU pod, the same command on every host, with
the step under jax.jit over one Mesh of every device (posewarper_jax/parallel.py):

    python run.py --config=configs/posewarper.py --workdir=/shared/w48 --config.train.parallel=jit
"""

from __future__ import annotations

import os

import jax

_CLUSTER_SIZE_VARS = ('SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE')


def _detected_cluster() -> bool:
  if any(int(os.environ.get(v, '1') or 1) > 1 for v in _CLUSTER_SIZE_VARS):
    return True
  return ',' in os.environ.get('TPU_WORKER_HOSTNAMES', '')


def initialize_from_environment() -> bool:
  """jax.distributed.initialize() when the environment describes several processes; whether it
  did. Call before anything else touches JAX's devices."""
  address = os.environ.get('JAX_COORDINATOR_ADDRESS')
  if address:
    missing = [v for v in ('JAX_NUM_PROCESSES', 'JAX_PROCESS_ID') if v not in os.environ]
    if missing:
      raise ValueError(f'JAX_COORDINATOR_ADDRESS is set but {" and ".join(missing)} is not')
    kwargs = dict(coordinator_address=address,
                  num_processes=int(os.environ['JAX_NUM_PROCESSES']),
                  process_id=int(os.environ['JAX_PROCESS_ID']))
  elif _detected_cluster():
    kwargs = {}
  else:
    return False
  # Cross-process collectives on CPU devices (tests, CPU clusters) need gloo; GPUs and TPUs
  # ignore this setting.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(**kwargs)
  return True
