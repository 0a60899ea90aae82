"""Which backend a program is being traced for: the one fact behind the CPU-only formulations.

    if backend.platform() == 'cpu': ...        # hrnet.materialize, ops.conv
    with backend.compiling_for('tpu'):         # posewarper_jax.aot: a TPU program, traced on a
      jax.jit(step).lower(...).compile()       # machine whose JAX backend is the CPU

Some formulations pay off on one backend only (an optimization barrier at HRNet's block outputs,
the per-tap kernel gradient of ops/conv.py: XLA:CPU's fusions and its convolution library). They
choose by `platform()`: the platform named by an enclosing `compiling_for`, else JAX's default
backend. Ahead-of-time compilation for a TPU or a GPU runs with JAX's backend on the CPU
(compile-only devices), so without `compiling_for` it would compile the CPU's formulation into
the accelerator's program.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import jax

PLATFORMS = ('cpu', 'gpu', 'tpu')  # as jax.default_backend() names them
_TARGET: contextvars.ContextVar[str | None] = contextvars.ContextVar('target_platform',
                                                                     default=None)


def platform() -> str:
  """'cpu', 'gpu' or 'tpu': what the program being traced will run on."""
  return _TARGET.get() or jax.default_backend()


@contextlib.contextmanager
def compiling_for(name: str) -> Iterator[None]:
  """Traces inside the block are for `name` (one of PLATFORMS), whatever JAX's backend is."""
  if name not in PLATFORMS:
    raise ValueError(f'compiling_for: platform must be one of {PLATFORMS}, got {name!r}')
  token = _TARGET.set(name)
  try:
    yield
  finally:
    _TARGET.reset(token)
