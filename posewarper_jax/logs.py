"""Training logs: console progress, a metrics.jsonl and TensorBoard events, from process 0.

    logger = MetricLogger(stage_dir, total_steps, first_step)
    logger.write(step, {'loss': 0.0012, 'learning_rate': 1e-4})   # one line everywhere
    logger.close()

metrics.jsonl holds one JSON object per line: {"step", "time" (Unix seconds), metrics...}, each
step once: a run that resumes from step S first drops the lines after S (written by the run that
stopped, after its last checkpoint) and then appends; TensorBoard's events after S are purged
the same way.

The console gets one plain line per write (step, metrics, steps/s, ETA), the same on a terminal
as in a log file or a pipe: no carriage-return redraws or escape codes, which a redirected log
would keep (tests/test_plain_logs.py). The dataset build's TFDS progress bars are turned off
when the console is not a terminal (tfds_posetrack's interactive_console).
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import jax

from posewarper_jax import paths


def _duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def _drop_after(path: pathlib.Path, step: int) -> None:
  """Rewrites metrics.jsonl without its lines after `step` (atomically); a torn last line (a
  run killed while writing it) goes too."""
  if not path.exists():
    return
  kept = []
  for line in path.read_text().splitlines():
    try:
      if json.loads(line)['step'] <= step:
        kept.append(line)
    except (json.JSONDecodeError, KeyError, TypeError):
      continue
  paths.write_atomically(path, ''.join(line + '\n' for line in kept))


class MetricLogger:
  """Writes scalar metrics; silent on processes other than 0."""

  def __init__(self, directory: str | os.PathLike, total_steps: int, first_step: int = 0,
               samples_per_step: int | None = None, prefix: str = ''):
    self.total_steps = total_steps
    self.samples_per_step = samples_per_step
    self.prefix = prefix
    self.active = jax.process_index() == 0
    self._last = (first_step, time.perf_counter())
    if self.active:
      from tensorboardX import SummaryWriter  # imported here: only process 0 writes events

      directory = pathlib.Path(directory)
      directory.mkdir(parents=True, exist_ok=True)
      _drop_after(directory / 'metrics.jsonl', first_step)
      self._jsonl = open(directory / 'metrics.jsonl', 'a')  # noqa: SIM115 (closed in close())
      self._tensorboard = SummaryWriter(str(directory / 'tensorboard'),
                                        purge_step=first_step + 1 if first_step else None)

  def write(self, step: int, metrics: dict[str, float]) -> None:
    """Logs `metrics` at `step`, with the step rate since the previous write and the ETA."""
    now = time.perf_counter()
    last_step, last_time = self._last
    self._last = (step, now)
    rate = (step - last_step) / (now - last_time) if step > last_step else 0.0
    metrics = dict(metrics)
    if rate:
      metrics['steps_per_second'] = rate
      if self.samples_per_step:
        metrics['samples_per_second'] = rate * self.samples_per_step
    if not self.active:
      return
    self._jsonl.write(json.dumps({'step': step, 'time': time.time(), **metrics}) + '\n')
    self._jsonl.flush()
    for name, value in metrics.items():
      self._tensorboard.add_scalar(name, value, step)
    self._tensorboard.flush()
    eta = f', ETA {_duration((self.total_steps - step) / rate)}' if rate else ''
    shown = ', '.join(f'{k} {v:.4g}' for k, v in metrics.items()
                      if k not in ('steps_per_second', 'samples_per_second'))
    speed = f', {rate:.2f} steps/s' if rate else ''
    print(f'{self.prefix}step {step}/{self.total_steps}: {shown}{speed}{eta}', flush=True)

  def close(self) -> None:
    if self.active:
      self._jsonl.close()
      self._tensorboard.close()
