"""Where the test suite's time goes in JAX: tracing, lowering and XLA compiling, per test file.

A pytest plugin and its report. Loaded into the suite, it listens to JAX's own monitoring
events (`jax.monitoring`: the duration of every trace to a jaxpr, every lowering to StableHLO
and every compilation, the last including the persistent cache's lookups; and each cache hit)
and records them with the test that caused them, one file of records per process (each xdist
worker) in SUITE_COMPILES_DIR. Run as a script on that folder, it prints them per test file.
The run.py subprocesses the end-to-end tests start are not in it: their time is in pytest's
--durations.

    SUITE_COMPILES_DIR=/tmp/compiles PYTHONPATH=benchmarks \
        .venv/bin/python -m pytest tests -p suite_compiles --durations=15
    .venv/bin/python benchmarks/suite_compiles.py /tmp/compiles
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import sys

# JAX's event names (jax/_src/dispatch.py, jax/_src/compiler.py) -> the report's columns.
_DURATIONS = {'/jax/core/compile/jaxpr_trace_duration': 'trace',
              '/jax/core/compile/jaxpr_to_mlir_module_duration': 'lower',
              '/jax/core/compile/backend_compile_duration': 'compile'}
_CACHE_HIT = '/jax/compilation_cache/cache_hits'


def pytest_configure(config):
  """The plugin's entry: records into SUITE_COMPILES_DIR (required)."""
  del config
  import jax

  folder = os.environ.get('SUITE_COMPILES_DIR')
  if not folder:
    raise RuntimeError('suite_compiles: set SUITE_COMPILES_DIR to the folder for its records')
  path = pathlib.Path(folder)
  path.mkdir(parents=True, exist_ok=True)
  out = (path / f'records.{os.getpid()}.jsonl').open('a')

  def record(phase: str, seconds: float) -> None:
    test = os.environ.get('PYTEST_CURRENT_TEST', '?').split(' ')[0]
    out.write(json.dumps({'test': test, 'phase': phase, 'seconds': seconds}) + '\n')
    out.flush()

  def on_duration(event: str, seconds: float, **kwargs) -> None:
    del kwargs
    if event in _DURATIONS:
      record(_DURATIONS[event], seconds)

  def on_event(event: str, **kwargs) -> None:
    del kwargs
    if event == _CACHE_HIT:
      record('cache hit', 0.0)

  jax.monitoring.register_event_duration_secs_listener(on_duration)
  jax.monitoring.register_event_listener(on_event)


def report(folder: pathlib.Path) -> str:
  """A markdown table: per test file, seconds tracing, lowering and compiling; compilations and
  how many of them the persistent cache served."""
  totals: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for path in sorted(folder.glob('records.*.jsonl')):
    for line in path.read_text().splitlines():
      record = json.loads(line)
      row = totals[record['test'].split('::')[0]]
      row[record['phase']] += record['seconds']
      row['compilations'] += record['phase'] == 'compile'
      row['hits'] += record['phase'] == 'cache hit'
  if not totals:
    raise SystemExit(f'suite_compiles: no records in {folder}')
  phases = tuple(_DURATIONS.values())
  lines = ['| test file | trace s | lower s | compile s | compilations | of them cache hits |',
           '|---|---:|---:|---:|---:|---:|']
  everything = collections.Counter()
  for name in sorted(totals, key=lambda f: -sum(totals[f][p] for p in phases)):
    row = totals[name]
    everything.update(row)
    lines.append(f'| {name} | {row["trace"]:.1f} | {row["lower"]:.1f} | {row["compile"]:.1f} '
                 f'| {row["compilations"]} | {row["hits"]} |')
  lines.append(f'| all | {everything["trace"]:.1f} | {everything["lower"]:.1f} | '
               f'{everything["compile"]:.1f} | {everything["compilations"]} | '
               f'{everything["hits"]} |')
  return '\n'.join(lines)


if __name__ == '__main__':
  if len(sys.argv) != 2:
    raise SystemExit(__doc__)
  print(report(pathlib.Path(sys.argv[1])))
