"""workdir_lock.py: one run at a time in a workdir; a lock left by a killed run is no obstacle."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import pytest

from posewarper_jax import workdir_lock

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_a_second_run_is_refused_and_told_who_holds_the_workdir(tmp_path):
  with workdir_lock.hold(tmp_path, 'train'):
    with pytest.raises(workdir_lock.WorkdirLockedError,
                       match=rf'{tmp_path} is in use by another run \(train by pid {os.getpid()} '
                             r'on .* since .*\): one run at a time.*--config.eval.checkpoint='):
      with workdir_lock.hold(tmp_path, 'eval'):
        pass
  with workdir_lock.hold(tmp_path, 'eval'):  # released at the end of the block
    pass


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path):
  holder = ('import os, signal, sys; from posewarper_jax import workdir_lock\n'
            'with workdir_lock.hold(sys.argv[1], "train"):\n'
            '  os.kill(os.getpid(), signal.SIGKILL)\n')
  done = subprocess.run([sys.executable, '-c', holder, str(tmp_path)], cwd=ROOT)
  assert done.returncode == -signal.SIGKILL
  assert '"mode": "train"' in (tmp_path / workdir_lock.LOCK).read_text()  # left behind
  with workdir_lock.hold(tmp_path, 'train'):
    assert f'"pid": {os.getpid()}' in (tmp_path / workdir_lock.LOCK).read_text()


def test_run_py_refuses_a_workdir_in_use(tmp_path):
  """From another folder with a relative workdir, as a user types it."""
  workdir = tmp_path / 'runs' / 'busy'
  with workdir_lock.hold(workdir, 'train'):
    done = subprocess.run(
        [sys.executable, str(ROOT / 'run.py'), f'--config={ROOT}/configs/posewarper.py:synthetic',
         '--workdir=runs/busy', '--mode=eval'],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
  assert done.returncode != 0
  assert f'{workdir} is in use by another run (train by pid {os.getpid()}' in done.stderr
  assert not (workdir / 'eval').exists()
