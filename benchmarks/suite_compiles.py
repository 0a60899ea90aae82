"""Where the test suite's time goes in JAX: tracing, lowering and XLA compiling, per test file.

A pytest plugin and its report. Loaded into the suite, it records JAX's own timings of every
function it traces, lowers to StableHLO and compiles (the messages JAX logs at DEBUG level,
`jax._src.dispatch` and `jax._src.interpreters.pxla`; a persistent-cache hit logs no compile)
with the test that caused them, one file of records per process (each xdist worker) in
SUITE_COMPILES_DIR. Run as a script on that folder, it prints them per test file. The run.py
subprocesses the end-to-end tests start are not in it: their time is in pytest's --durations.

    SUITE_COMPILES_DIR=/tmp/compiles PYTHONPATH=benchmarks \
        .venv/bin/python -m pytest tests -p suite_compiles --durations=30
    .venv/bin/python benchmarks/suite_compiles.py /tmp/compiles
"""

from __future__ import annotations

import collections
import json
import logging
import os
import pathlib
import re
import sys

_PHASES = {
    'trace': re.compile(r'Finished tracing .* in ([\d.e+-]+) sec'),
    'lower': re.compile(r'Finished jaxpr to MLIR module conversion .* in ([\d.e+-]+) sec'),
    'compile': re.compile(r'Finished XLA compilation of .* in ([\d.e+-]+) sec'),
}
_LOGGERS = ('jax._src.dispatch', 'jax._src.interpreters.pxla')


class _Recorder(logging.Handler):
  """Appends {'test', 'phase', 'seconds'} per timing message to one JSON-lines file."""

  def __init__(self, path: pathlib.Path):
    super().__init__(logging.DEBUG)
    self.out = path.open('a')

  def emit(self, record: logging.LogRecord) -> None:
    message = record.getMessage()
    for phase, pattern in _PHASES.items():
      match = pattern.match(message)
      if match:
        test = os.environ.get('PYTEST_CURRENT_TEST', '?').split(' ')[0]
        self.out.write(json.dumps({'test': test, 'phase': phase,
                                   'seconds': float(match.group(1))}) + '\n')
        self.out.flush()
        return


def pytest_configure(config):
  """The plugin's entry: records into SUITE_COMPILES_DIR (required)."""
  del config
  folder = os.environ.get('SUITE_COMPILES_DIR')
  if not folder:
    raise RuntimeError('suite_compiles: set SUITE_COMPILES_DIR to the folder for its records')
  path = pathlib.Path(folder)
  path.mkdir(parents=True, exist_ok=True)
  handler = _Recorder(path / f'records.{os.getpid()}.jsonl')
  for name in _LOGGERS:
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # JAX's messages stay out of the captured output


def report(folder: pathlib.Path) -> str:
  """A markdown table: per test file, seconds tracing, lowering and compiling, compiles."""
  totals: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for path in sorted(folder.glob('records.*.jsonl')):
    for line in path.read_text().splitlines():
      record = json.loads(line)
      row = totals[record['test'].split('::')[0]]
      row[record['phase']] += record['seconds']
      row['compiles'] += record['phase'] == 'compile'
  if not totals:
    raise SystemExit(f'suite_compiles: no records in {folder}')
  lines = ['| test file | trace s | lower s | compile s | compiles |', '|---|---:|---:|---:|---:|']
  order = sorted(totals, key=lambda f: -sum(totals[f][p] for p in _PHASES))
  everything = collections.Counter()
  for name in order:
    row = totals[name]
    everything.update(row)
    lines.append(f'| {name} | {row["trace"]:.1f} | {row["lower"]:.1f} | {row["compile"]:.1f} '
                 f'| {row["compiles"]} |')
  lines.append(f'| all | {everything["trace"]:.1f} | {everything["lower"]:.1f} | '
               f'{everything["compile"]:.1f} | {everything["compiles"]} |')
  return '\n'.join(lines)


if __name__ == '__main__':
  if len(sys.argv) != 2:
    raise SystemExit(__doc__)
  print(report(pathlib.Path(sys.argv[1])))
