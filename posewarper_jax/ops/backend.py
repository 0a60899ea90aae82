"""Which backend a program is being traced for, and the compiler's options for it: the one
place of the CPU-only choices.

    if backend.platform() == 'cpu': ...        # hrnet.materialize, ops.conv
    with backend.compiling_for('tpu'):         # posewarper_jax.aot: a TPU program, traced on a
      jax.jit(step).lower(...).compile()       # machine whose JAX backend is the CPU
    step = backend.jit(step, donate_argnums=(0,))   # compiled with compiler_options()

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
import os
from collections.abc import Callable, Iterator
from typing import Any

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


# XLA:CPU's options for every function the project compiles for the CPU (the training steps, the
# predictor's functions), chosen from the per-op tables (docs/benchmarks.md, issue 39): the
# convolutions run on oneDNN, the library PyTorch's CPU convolutions use, through XLA:CPU's
# `__onednn$convolution` custom call, instead of YNNPACK, which claims them first unless its
# fusion types leave convolutions out (the enum values spelled out: the option's list replaces
# the default one). Matrix products and reductions stay on YNNPACK. On HRNet's 3x3
# convolutions oneDNN's forward, input gradient and kernel gradient are each faster at the high
# resolutions that dominate a step (48 -> 48 at 96x72: 6 against 7.5 ms forward, 10 against
# 12.5 for the kernel gradient) and slower only at the lowest branch's (384 -> 384 at 12x9,
# kernel gradient), which is a small share of the step. Results are the same function to float
# rounding (tests/test_formulations.py: forward and every gradient against the default).
# No option that changes results (fast math) is here.
CPU_COMPILER_OPTIONS: dict[str, Any] = {
    'xla_cpu_experimental_onednn_custom_call': True,
    'xla_cpu_experimental_ynn_fusion_type':
        'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE',
}


# Set to 'default' (an environment variable), every function compiles with XLA's defaults: for
# JAX's persistent compilation cache, which cannot store an executable with oneDNN's custom calls
# (XLA's serializer fails on them, a warning per function), or to compare.
DEFAULTS_VARIABLE = 'POSEWARPER_CPU_COMPILER_OPTIONS'


def compiler_options(name: str | None = None) -> dict[str, Any]:
  """The compiler options of a program for platform `name` (default: platform())."""
  if (name or platform()) != 'cpu' or os.environ.get(DEFAULTS_VARIABLE) == 'default':
    return {}
  return dict(CPU_COMPILER_OPTIONS)


class _CompiledOnFirstCall:
  """A jitted (or pmapped) function compiled, on its first call with each shape of arguments,
  with the compiler options of the platform it runs on (compiler_options at that moment, so that
  `compiling_for` is respected); `lower` is the wrapped function's, for ahead-of-time use."""

  def __init__(self, jitted):
    self.jitted = jitted
    self._compiled: dict[Any, Any] = {}

  def lower(self, *args, **kwargs):
    return self.jitted.lower(*args, **kwargs)

  def __call__(self, *args):
    leaves, tree = jax.tree.flatten(args)
    key = (tree, tuple((getattr(x, 'shape', None), getattr(x, 'dtype', type(x)),
                        getattr(x, 'sharding', None)) for x in leaves))
    compiled = self._compiled.get(key)
    if compiled is None:
      compiled = self.jitted.lower(*args).compile(compiler_options=compiler_options() or None)
      self._compiled[key] = compiled
    return compiled(*args)


def jit(fn: Callable, **kwargs) -> Callable:
  """jax.jit(fn, **kwargs), compiled with compiler_options() for the platform it runs on."""
  return _CompiledOnFirstCall(jax.jit(fn, **kwargs))


def pmap(fn: Callable, **kwargs) -> Callable:
  """jax.pmap(fn, **kwargs), compiled with compiler_options() for the platform it runs on; with
  several processes, jax.pmap itself (XLA's default options): a pmap compiled ahead of time
  over several processes expects the global batch where its callers pass their local share."""
  mapped = jax.pmap(fn, **kwargs)
  return _CompiledOnFirstCall(mapped) if jax.process_count() == 1 else mapped
