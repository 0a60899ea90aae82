"""Console output sent to a file or a pipe is plain lines: no carriage returns, no escape codes
(TFDS's progress bars while the dataset is built, the training's step lines); on a terminal the
bars are still drawn."""

from __future__ import annotations

import fcntl
import os
import pathlib
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

from tests.helpers import ROOT

TIMEOUT = 180


def _to_file(command: list[str], path: pathlib.Path) -> str:
  """Runs `command` with stdout and stderr written to the file at `path` (as `> log 2>&1`)."""
  with open(path, 'wb') as log:
    done = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, timeout=TIMEOUT)
  text = path.read_bytes().decode()
  assert done.returncode == 0, text[-3000:]
  return text


def _on_a_terminal(command: list[str]) -> str:
  """Runs `command` with stdout and stderr on a pseudo-terminal; what it wrote there (the
  terminal's own line ends, '\\r\\n', made '\\n')."""
  controller, terminal = pty.openpty()
  # A terminal 80 columns wide: tqdm draws nothing on one of width 0 (a new pty's).
  fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 80, 0, 0))
  process = subprocess.Popen(command, cwd=ROOT, stdout=terminal, stderr=terminal,
                             stdin=subprocess.DEVNULL)
  os.close(terminal)
  chunks, deadline = [], time.monotonic() + TIMEOUT
  try:
    while time.monotonic() < deadline:
      if not select.select([controller], [], [], 1.0)[0]:
        if process.poll() is not None:
          break
        continue
      try:
        chunk = os.read(controller, 1 << 16)
      except OSError:  # EIO: every writer has closed the terminal
        break
      if not chunk:
        break
      chunks.append(chunk)
  finally:
    os.close(controller)
    if process.poll() is None:
      process.kill()
  text = b''.join(chunks).decode(errors='replace')
  assert process.wait(timeout=TIMEOUT) == 0, text[-3000:]
  return text.replace('\r\n', '\n')


def _assert_plain(text: str) -> None:
  for code, name in (('\r', 'carriage return'), ('\x1b', 'escape code')):
    assert code not in text, f'a {name} at {text.index(code)}: {text[:text.index(code) + 80]!r}'


def _build_command(root: pathlib.Path, data_dir: pathlib.Path) -> list[str]:
  return [sys.executable, '-m', 'tfds_posetrack.posetrack18', f'--manual_dir={root}',
          f'--data_dir={data_dir}']


def test_the_build_logs_plain_lines_to_a_file(synthetic_root, tmp_path):
  text = _to_file(_build_command(synthetic_root, tmp_path / 'tfds'), tmp_path / 'log.txt')
  _assert_plain(text)
  assert 'posetrack18 train: ' in text and 'dataset at ' in text  # the build's own lines
  assert 'Generating splits' not in text  # TFDS's bar


def test_the_build_draws_its_bars_on_a_terminal(synthetic_root, tmp_path):
  text = _on_a_terminal(_build_command(synthetic_root, tmp_path / 'tfds'))
  assert 'Generating splits' in text and '\r' in text, text[-3000:]
  assert 'posetrack18 train: ' in text and 'dataset at ' in text


_STEPS = """
import sys
from posewarper_jax.logs import MetricLogger
logger = MetricLogger(sys.argv[1], total_steps=3, samples_per_step=8, prefix='[stage 1] ')
for step in (1, 2, 3):
  logger.write(step, {'loss': 0.5 / step, 'learning_rate': 1e-3})
logger.close()
"""


def test_training_steps_are_the_same_plain_lines_in_a_file_and_on_a_terminal(tmp_path):
  command = lambda name: [sys.executable, '-c', _STEPS, str(tmp_path / name)]
  in_file = _to_file(command('file'), tmp_path / 'log.txt')
  _assert_plain(in_file)
  on_terminal = _on_a_terminal(command('terminal'))
  # The rates differ from run to run; the lines do not.
  steps = lambda text: [re.sub(r'[\d.]+ steps/s, ETA [\d:]+', 'R', line)
                        for line in text.splitlines() if 'step ' in line]
  assert steps(in_file) == steps(on_terminal)
  assert steps(in_file) == ['[stage 1] step 1/3: loss 0.5, learning_rate 0.001, R',
                            '[stage 1] step 2/3: loss 0.25, learning_rate 0.001, R',
                            '[stage 1] step 3/3: loss 0.1667, learning_rate 0.001, R']
