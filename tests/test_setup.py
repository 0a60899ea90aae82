"""The set-up the README's commands rely on: scripts/venv.sh finds Python 3.12 the way it says,
and the project installs as a package that another project can import."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from tests.helpers import ROOT

SCRIPT = ROOT / 'scripts' / 'venv.sh'


def _tools_only(tmp_path: pathlib.Path) -> str:
  """A PATH with the few commands the script uses, and no Python at all."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for tool in ('bash', 'dirname', 'basename', 'rm'):
    os.symlink(shutil.which(tool), bin_dir / tool)
  return str(bin_dir)


def _find(tmp_path, **env) -> subprocess.CompletedProcess:
  return subprocess.run(['bash', str(SCRIPT), '--find-python'], capture_output=True, text=True,
                        env={'PATH': _tools_only(tmp_path), 'HOME': str(tmp_path / 'home'),
                             **env}, timeout=60)


def test_it_finds_python312_under_pyenv_when_not_on_path(tmp_path):
  # A pyenv root with 3.12 installed but not active (nothing on PATH), as on this machine.
  root = tmp_path / 'pyenv'
  for version in ('3.11.7', '3.12.1', '3.12.10'):
    (root / 'versions' / version / 'bin').mkdir(parents=True)
  fake_312 = root / 'versions' / '3.12.10' / 'bin' / 'python3.12'
  fake_312.write_text('#!/bin/bash\n'
                      'case "$*" in *version_info\\[2\\]*) echo 10;; esac\n')
  fake_312.chmod(0o755)
  old_312 = root / 'versions' / '3.12.1' / 'bin' / 'python3.12'
  old_312.write_text('#!/bin/bash\ncase "$*" in *version_info\\[2\\]*) echo 1;; esac\n')
  old_312.chmod(0o755)
  done = _find(tmp_path, PYENV_ROOT=str(root))
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip() == str(fake_312)  # the newest 3.12.x, not 3.12.1 (nor 3.11)


def test_without_python312_it_says_what_to_install(tmp_path):
  """With no Python 3.12 that runs, the script names where it looked and what to install.

  The script also tries /usr/local/bin and /usr/bin, which a test cannot empty; a PYTHONHOME
  without a standard library makes any interpreter there fail to start, and the script takes
  only one that runs, so the message is checked on every host."""
  done = _find(tmp_path, PYENV_ROOT=str(tmp_path / 'no_pyenv'),
               PYTHONHOME=str(tmp_path / 'no_stdlib'))
  assert done.returncode == 1 and done.stdout == '', done.stdout
  assert 'no Python 3.12 found' in done.stderr and 'Install Python 3.12' in done.stderr
  assert f'{tmp_path}/no_pyenv/versions/3.12*, /usr/local/bin and /usr/bin' in done.stderr


def test_a_missing_lock_file_is_named(tmp_path):
  done = subprocess.run(['bash', str(SCRIPT), 'requirements.lok'], capture_output=True,
                        text=True, cwd=ROOT, timeout=60)
  assert done.returncode == 2 and 'requirements.lok' in done.stderr


@pytest.mark.parametrize('venv', ['..', '/tmp/elsewhere', 'venv', '.venv/../..'])
def test_a_venv_outside_the_repository_is_refused_before_anything_is_removed(venv):
  # The script removes a venv it cannot use: only names starting with .venv, in the repository.
  done = subprocess.run(['bash', str(SCRIPT), 'requirements.lock', venv], capture_output=True,
                        text=True, cwd=ROOT, timeout=60)
  assert done.returncode == 2 and 'VENV' in done.stderr and venv in done.stderr


def test_the_accelerator_lock_pins_the_dev_locks_versions():
  """requirements-accel.lock is the dev lock plus the compile-only backends: every package the
  two share at the same version, so the compile tests run the code the CPU tests run."""
  def pins(name):
    return dict(re.findall(r'^([A-Za-z0-9_.\-]+)==(\S+)', (ROOT / name).read_text(),
                           re.MULTILINE))

  dev, accel = pins('requirements-dev.lock'), pins('requirements-accel.lock')
  assert {k: accel.get(k) for k in dev} == dev
  assert {'libtpu', 'jax-cuda12-plugin', 'jax-cuda12-pjrt', 'nvidia-cuda-nvcc-cu12'} <= (
      accel.keys() - dev.keys())


def test_the_build_backend_is_the_pinned_one():
  """pyproject's build backend is the setuptools that requirements-dev.lock pins and the
  environment has, so the package builds without the package index."""
  (required,) = tomllib.loads((ROOT / 'pyproject.toml').read_text())['build-system']['requires']
  assert required.startswith('setuptools==')
  assert re.search(rf'^{re.escape(required)}$', (ROOT / 'requirements-dev.lock').read_text(),
                   re.MULTILINE), required
  assert importlib.metadata.version('setuptools') == required.split('==')[1]


def test_pip_install_makes_the_library_importable_elsewhere(tmp_path):
  """The package builds and installs offline (no index, the environment's pinned setuptools),
  and only the library and the dataset package land in site-packages."""
  # From a copy: pip builds in the source tree (build/, *.egg-info), and a test must not write
  # into the checkout.
  source = tmp_path / 'checkout'
  shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
      '.git', '.venv*', 'runs', 'build', '*.egg-info', '__pycache__', '.*_cache'))
  target = tmp_path / 'site'
  done = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-index',
                         '--no-build-isolation', '--disable-pip-version-check',
                         '--target', str(target), str(source)], capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
  assert not (target / 'configs').exists() and not (target / 'tests').exists()
  code = ('import sys; sys.path.insert(0, sys.argv[1]); '
          'import posewarper_jax, tfds_posetrack.posetrack18; '
          'from posewarper_jax.ops import deform_conv2d; '
          'from posewarper_jax.metrics import posetrack_map; '
          'assert posewarper_jax.__file__.startswith(sys.argv[1]), posewarper_jax.__file__; '
          'print(posetrack_map.evaluate.__name__)')
  other = tmp_path / 'another_project'
  other.mkdir()
  done = subprocess.run([sys.executable, '-c', code, str(target)], capture_output=True,
                        text=True, cwd=other, timeout=300,
                        env={k: v for k, v in os.environ.items() if k != 'PYTHONPATH'})
  assert done.returncode == 0, done.stderr[-3000:]
  assert done.stdout.strip() == 'evaluate'
