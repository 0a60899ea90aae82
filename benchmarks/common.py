"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import platform
import re
import statistics
import sys
import time

import jax

# The scripts run as files (python benchmarks/x.py): make the project importable.
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)


@contextlib.contextmanager
def plain_formulation():
  """Within it, the network is traced without the speed rewrites (tests/test_formulations.py
  proves each the same function): what a benchmark compiles here is the step as it was before
  them, for a before/after ratio measured in the same run."""
  from jax import lax

  from posewarper_jax.models import hrnet, posewarper

  materialize, offset_conv = hrnet.materialize, posewarper.tap_product_conv
  hrnet.materialize = lambda x: x
  posewarper.tap_product_conv = lax.conv_general_dilated
  try:
    yield
  finally:
    hrnet.materialize, posewarper.tap_product_conv = materialize, offset_conv


@contextlib.contextmanager
def kernel_gradients_everywhere(form: str):
  """Within it, every stride-1 convolution of HRNet and of the warping head's offset network
  takes ops/conv.py's kernel gradient formulation `form` ('taps', 'rows'; the offset
  convolutions themselves keep their per-tap products): a candidate measured against the
  chosen formulation in the same run (docs/benchmarks.md, issue 39). The same function
  (tests/test_formulations.py)."""
  from posewarper_jax.models import hrnet, posewarper
  from posewarper_jax.ops import conv

  make_conv = hrnet.make_conv
  hrnet.make_conv = posewarper.make_conv = functools.partial(
      make_conv, conv_general_dilated=functools.partial(conv.conv_general_dilated,
                                                        kernel_gradient=form))
  try:
    yield
  finally:
    hrnet.make_conv = posewarper.make_conv = make_conv


@contextlib.contextmanager
def default_compiler_options():
  """Within it, backend.compiler_options() is XLA's defaults on the CPU too: the step as it
  compiled before backend.CPU_COMPILER_OPTIONS, for a ratio measured in the same run."""
  from posewarper_jax.ops import backend

  # The project's own switch (what run.py users set), read by compiler_options at each compile.
  before = os.environ.get(backend.DEFAULTS_VARIABLE)
  os.environ[backend.DEFAULTS_VARIABLE] = 'default'
  try:
    yield
  finally:
    if before is None:
      del os.environ[backend.DEFAULTS_VARIABLE]
    else:
      os.environ[backend.DEFAULTS_VARIABLE] = before


def median_ms(fn, warmup: int, repeats: int) -> float:
  """Median wall time of fn() in milliseconds, after `warmup` untimed calls."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def peak_mib(compiled) -> float | None:
  """XLA's planned peak memory of a compiled computation (arguments + outputs + temporaries)."""
  stats = compiled.memory_analysis()
  if stats is None:
    return None
  total = (stats.argument_size_in_bytes + stats.output_size_in_bytes
           + stats.temp_size_in_bytes - stats.alias_size_in_bytes)
  return total / 2**20


def machine_line() -> str:
  device = jax.devices()[0].device_kind
  return (f'jax {jax.__version__} on {jax.default_backend()} ({device}); {os.cpu_count()} CPU '
          f'cores; {platform.processor() or platform.machine()}')


def hlo_census(hlo_text: str) -> dict[str, int]:
  """Op name -> count in an optimized HLO module's text (fusions' bodies included), the ops
  that decide a step's cost and its lowering on a TPU (gathers, scatters) first."""
  ops = collections.Counter(re.findall(r'\s([a-z][a-z0-9-]*)\(', hlo_text))
  first = ('convolution', 'dot', 'gather', 'scatter', 'dynamic-slice', 'dynamic-update-slice',
           'transpose', 'fusion', 'custom-call', 'all-reduce', 'reduce', 'copy')
  return {**{k: ops[k] for k in first if ops[k]},
          **{k: v for k, v in sorted(ops.items()) if k not in first}}
