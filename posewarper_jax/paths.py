"""The paths a user gives, made absolute once where the command line meets the library.

    paths.absolute_config(config)   # run.py, before any mode runs

Orbax refuses relative checkpoint paths, and a relative path would mean something else to any
code that changes directory; so every path field of the config (USER_PATHS) is expanded (~) and
made absolute against the directory the command was started in, and no module below sees a
relative one.
"""

from __future__ import annotations

import os
import pathlib

# Config fields that hold a path (or '' for none); KEYWORDS: their values that are not paths.
USER_PATHS = ('data.root', 'data.tfds_dir', 'stage1.init', 'stage2.init', 'eval.checkpoint',
              'eval.boxes', 'infer.input', 'infer.boxes')
KEYWORDS = {'eval.boxes': ('gt',)}


def absolute(path: str | os.PathLike) -> str:
  """`path` with ~ expanded, absolute against the current directory; '' stays ''."""
  path = os.fspath(path)
  return os.path.abspath(os.path.expanduser(path)) if path else path


def absolute_config(config) -> None:
  """Makes every USER_PATHS field of `config` absolute, in place."""
  for field in USER_PATHS:
    group, name = field.split('.')
    value = config[group][name]
    if value not in KEYWORDS.get(field, ()):
      config[group][name] = absolute(value)


def inside(base: str | os.PathLike, name: str, what: str) -> pathlib.Path:
  """base / name, for a name that comes from a data file (a video id, say): ValueError naming
  `what` unless it is one plain file name, so that nothing is written outside `base`."""
  name = str(name)
  if (not name or name in ('.', '..') or '/' in name or '\\' in name
      or any(ord(c) < 32 for c in name)):
    raise ValueError(f'{what} {name!r} is not a plain file name (it would reach outside {base})')
  return pathlib.Path(base) / name


def write_atomically(path: str | os.PathLike, text: str) -> None:
  """Writes a text file through a temporary file and a rename: a reader (or a run started after
  a kill) sees the old contents or the new, never half of them."""
  path = pathlib.Path(path)
  temporary = path.with_name(f'.{path.name}.tmp')
  temporary.write_text(text)
  os.replace(temporary, path)
