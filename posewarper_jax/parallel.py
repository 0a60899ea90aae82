"""How the training step spreads over devices: config.train.parallel.

    layout = Layout.of('jit')              # or 'pmap' (the default)
    step = layout.step(per_device_step)    # (state, batch) -> (state, metrics)
    state = layout.state(host_state)       # replicated on the layout's devices
    state, metrics = step(state, layout.batch(pipeline_batch))

The step function is the same for both: written for one device's share of the batch, with its
collectives (the gradients' pmean, BatchNorm's synchronized statistics) over the named axis
AXIS. The two layouts only map it:

- 'pmap': jax.pmap over this process's devices. The batch stays as the input pipeline gives it,
  [local devices, per device, ...]; with several processes (jax.distributed) the collectives
  span every device. In maintenance since JAX 0.8, and the default here.
- 'jit': jax.jit over a Mesh of every device of every process with one axis, AXIS. The batch
  becomes one global array [global batch, ...] sharded along AXIS by NamedSharding (each
  process contributes its own rows), the state is replicated, and the step body runs per
  device under jax.shard_map, so the collectives name the axis as under pmap. The form for
  TPU pods and current JAX.

The state enters and leaves both as the same host arrays (the loop saves jax.device_get of it),
so a checkpoint written under one layout resumes under the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from posewarper_jax.ops import backend

AXIS = 'data'
PARALLEL = ('pmap', 'jit')


@dataclasses.dataclass(frozen=True)
class Layout:
  """A way to run a per-device step: `kind` ('pmap' or 'jit') over `mesh` (axis AXIS: this
  process's devices for pmap, every device for jit)."""

  kind: str
  mesh: Mesh

  @classmethod
  def of(cls, kind: str) -> Layout:
    """ValueError naming config.train.parallel for anything but PARALLEL."""
    if kind not in PARALLEL:
      raise ValueError(f'config.train.parallel must be one of {PARALLEL}, got {kind!r}')
    devices = jax.local_devices() if kind == 'pmap' else jax.devices()
    return cls(kind, Mesh(np.array(devices), (AXIS,)))

  @classmethod
  def over(cls, devices) -> Layout:
    """The jit layout over `devices` (a sequence of jax.Device): a TPU slice's or GPUs'
    compile-only devices (posewarper_jax.aot), whatever this process's own are."""
    return cls('jit', Mesh(np.array(devices), (AXIS,)))

  @classmethod
  def of_config(cls, config) -> Layout:
    """The layout config.train.parallel names (run.py's training, the benchmarks)."""
    return cls.of(config.train.parallel)

  def step(self, per_device: Callable) -> Callable:
    """per_device(state, batch) -> (state, metrics), with collectives over AXIS, mapped:
    (state replicated, batch from `batch`) -> (state, metrics) replicated. The state's buffers
    are donated."""
    if self.kind == 'pmap':
      return backend.pmap(per_device, axis_name=AXIS, in_axes=(None, 0),
                          out_axes=(None, None), donate_argnums=(0,))
    replicated, split = PartitionSpec(), PartitionSpec(AXIS)
    # check_vma=False: the body is pmap's, with its own collectives. With JAX's varying-axis
    # typing on, the gradient of the replicated parameters would already be summed over the
    # axis (the transpose of their implicit broadcast), and the body's pmean would then give
    # the devices' sum, not their mean.
    mapped = jax.shard_map(per_device, mesh=self.mesh, in_specs=(replicated, split),
                           out_specs=(replicated, replicated), check_vma=False)
    return backend.jit(mapped, donate_argnums=(0,))

  def state(self, state: Any) -> Any:
    """`state` (host arrays, the same in every process) replicated on the layout's devices, as
    the mapped step returns it.

    The step is compiled for the kind of state it is given: host arrays and the replicated
    device arrays it returns are two different keys, so a loop that starts from host arrays
    compiles the whole step twice (measured under pmap: 3 s of a tiny run's 12). Placed like
    this, the first step's compilation serves the whole run."""
    return jax.device_put(state, NamedSharding(self.mesh, PartitionSpec()))

  def batch(self, batch: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
    """The input pipeline's batch of this process, [local devices, per device, ...], as the
    step takes it: unchanged for pmap; for jit one global array per field, [global batch,
    ...], sharded along AXIS, this process's rows on its own devices."""
    if self.kind == 'pmap':
      return batch
    sharding = NamedSharding(self.mesh, PartitionSpec(AXIS))
    return {k: jax.make_array_from_process_local_data(sharding, v.reshape(-1, *v.shape[2:]))
            for k, v in batch.items()}
