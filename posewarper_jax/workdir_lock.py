"""One run at a time in a workdir: an advisory lock held while run.py works there.

    with workdir_lock.hold(workdir, 'train'):   # WorkdirLockedError if another run holds it
      ...

The lock is <workdir>/run.lock, taken with flock(2): the kernel releases it when its process
ends, however it ends, so a lock left by a killed run is no obstacle (the file stays, with the
last holder's details, and is taken over). While held, the file says who holds it (host, pid,
mode, start time), which is what a second run prints when it is refused. With several processes
(one job on many hosts), process 0 holds it for the job.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import socket
import sys
from collections.abc import Iterator

LOCK = 'run.lock'


class WorkdirLockedError(RuntimeError):
  """Another run holds the workdir."""


@contextlib.contextmanager
def hold(workdir: str | os.PathLike, mode: str) -> Iterator[None]:
  """Holds <workdir>/run.lock for the block (creating the workdir)."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  path = workdir / LOCK
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirLockedError(
          f'{workdir} is in use by another run ({_holder(path)}): one run at a time writes a '
          'workdir. Wait for it, or use another --workdir (to evaluate this run meanwhile: '
          f'--workdir=<another> --config.eval.checkpoint={workdir}).') from None
    holder = {'host': socket.gethostname(), 'pid': os.getpid(), 'mode': mode,
              'since': datetime.datetime.now().isoformat(timespec='seconds'),
              'command': ' '.join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + '\n').encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the lock


def _holder(path: pathlib.Path) -> str:
  try:
    holder = json.loads(path.read_text())
    return (f'{holder["mode"]} by pid {holder["pid"]} on {holder["host"]} since '
            f'{holder["since"]}: {holder["command"]}')
  except (OSError, ValueError, KeyError, TypeError):
    return f'its details in {path} are unreadable'
