#!/usr/bin/env bash
# Creates (or reuses) a virtual environment with Python 3.12 (.venv unless a second argument
# names another, inside the repository) and installs a lock file into it; the README's two commands and .ci/run start with it.
#
#   bash scripts/venv.sh requirements.lock        # what run.py needs
#   bash scripts/venv.sh requirements-dev.lock    # and the tests' tools
#   bash scripts/venv.sh requirements-accel.lock .venv-accel   # and the compile-only TPU and
#                                                 # GPU backends, in a venv of their own
#   bash scripts/venv.sh --find-python            # only print the Python 3.12 it would use
#
# Python 3.12 is looked for as python3.12 on PATH (one that runs: a pyenv shim of an inactive
# version is on PATH but fails), then among pyenv's versions ($PYENV_ROOT, else ~/.pyenv, even
# when pyenv itself is not on PATH), then in /usr/local/bin and /usr/bin. $PYTHON312 names one
# explicitly.
set -euo pipefail

find_python312() {
  local candidate
  for candidate in "${PYTHON312:-}" "$(command -v python3.12 2>/dev/null || true)"; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' \
        >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  local root="${PYENV_ROOT:-$HOME/.pyenv}" best="" best_micro=-1 micro
  # pyenv keeps each version in versions/<version>: the newest 3.12.x that runs.
  for candidate in "$root"/versions/3.12*/bin/python3.12; do
    [ -x "$candidate" ] || continue
    micro="$("$candidate" -c 'import sys; print(sys.version_info[2])' 2>/dev/null)" || continue
    if [ "$micro" -gt "$best_micro" ]; then best="$candidate"; best_micro="$micro"; fi
  done
  if [ -n "$best" ]; then
    echo "$best"
    return 0
  fi
  for candidate in /usr/local/bin/python3.12 /usr/bin/python3.12; do
    if [ -x "$candidate" ] && "$candidate" -c '' >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  echo "scripts/venv.sh: no Python 3.12 found (looked for python3.12 on PATH, in" \
       "$root/versions/3.12*, /usr/local/bin and /usr/bin). Install Python 3.12 (python.org," \
       "your package manager, or 'pyenv install 3.12'), or set PYTHON312=/path/to/python3.12." >&2
  return 1
}

if [ "${1:-}" = "--find-python" ]; then
  find_python312
  exit
fi
venv="${2:-.venv}"
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ ! -f "$1" ] || [[ ! "$venv" =~ ^\.venv[A-Za-z0-9_-]*$ ]]; then
  echo "usage: bash scripts/venv.sh LOCK_FILE [VENV] (LOCK_FILE: requirements.lock," \
       "requirements-dev.lock or requirements-accel.lock; VENV: .venv (default) or a name" \
       "starting with .venv, such as .venv-accel); got: $*" >&2
  exit 2
fi
lock="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"

cd "$(dirname "$0")/.."
if [ ! -x "$venv/bin/python" ] \
    || ! "$venv/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
  rm -rf "$venv"
  python312="$(find_python312)"  # an assignment, so that set -e stops here when none is found
  echo "scripts/venv.sh: creating $venv with $python312" >&2
  "$python312" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$lock"
