"""One rule for what a workdir already holds: done (reuse it), resumable, or made otherwise.

    provenance.make_once(root, 'GENERATED', settings, make, announce=..., what=...)
    provenance.check_resume(config, workdir, home)          # a run's stages, before anything
    steps = provenance.Steps(workdir / 'after_training.json')
    if not steps.done('eval', stamp): ...; steps.finish('eval', stamp)

Everything a run makes is recorded with the settings that made it, in a JSON record written
last (atomically) when the work finished: a generated dataset or the stand-in's stills (a marker
file in their folder), a run's config (<run>/config.json, beside its checkpoints), an
after-training step or an augmentation (a stamp in <run>/after_training.json). A command then
compares the settings it asks for with the record, by one rule (config_checks.differences):

- a field only the command has was added to the code since the record was written: it counts as
  its value from before it existed (`added`, where the record says so), or as unchanged; so a
  field added to the config never redoes finished work;
- a field only the record has was removed since: unchanged;
- the fields that do not matter to the thing are ignored (each kind says which: RESUMABLE for a
  run's stages, config_checks.NOT_OF_A_RUN for its after-training steps);
- any other field with another value is a difference, named 'config.<field>: <before> before,
  <now> now'.

What a difference does depends on the thing, and each kind says it: data and trained stages
refuse (a dataset or a network made with other settings must never be mixed with the new ones;
the remedy is another --workdir, never the deletion of finished work); a step computed from them
(evaluation, propagation, an augmentation) is computed again.

Paths inside the workdir a user named (`home`) are recorded relative to the run's folder, so a
workdir can be moved or copied and still resume.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

from posewarper_jax import checkpoints, config_checks, paths

# Config fields a resumed run may change: when it stops, how it logs and saves, how it maps the
# step, where it reads the data from, what it does after training, how it computes (not what),
# and the grid's fields (config_checks.NOT_OF_A_RUN); a stage not trained yet adds its own
# stage<N> (check_resume).
RESUMABLE = ('stages', 'after_training', 'eval', 'infer', 'train.num_steps', 'train.log_every',
             'train.checkpoint_every', 'train.keep_checkpoints', 'train.parallel',
             'data.num_workers', 'data.root', 'data.tfds_dir', 'model.backbone.remat',
             'model.head.remat', *config_checks.NOT_OF_A_RUN)


class Refused(ValueError):
  """What a workdir holds was made with settings that matter and differ from the command's."""


def read_record(path: pathlib.Path) -> Any:
  """A record's JSON, or None when there is none; Refused naming the file when unreadable."""
  if not path.exists():
    return None
  try:
    return json.loads(path.read_text())
  except (OSError, json.JSONDecodeError) as e:
    raise Refused(f'{path}: unreadable ({e}); it records what made its folder. Use another '
                  '--workdir') from None


# --- Data: made once -----------------------------------------------------------------------------

ANOTHER_WORKDIR = ('Start this experiment in another --workdir (the one here stays usable with its '
                   'own settings).')


def check_once(root: pathlib.Path, marker: str, settings: Mapping[str, Any], *, what: str,
               added: Mapping[str, Any] | None = None, remedy: str = ANOTHER_WORKDIR) -> bool:
  """Whether root holds `marker` recorded with these settings (True: done), or nothing (False);
  Refused naming the fields, and `remedy`, when it was made with others. Writes nothing."""
  saved = read_record(pathlib.Path(root) / marker)
  if saved is None:
    return False
  changed = config_checks.differences(saved, settings, added=added)
  if changed:
    raise Refused(f'{root} was made with other settings than {what} now asks for:\n  '
                  + '\n  '.join(changed) + '\n' + remedy)
  return True


def make_once(root: pathlib.Path, marker: str, settings: Mapping[str, Any],
              make: Callable[[], Any], *, announce: str, what: str,
              added: Mapping[str, Any] | None = None) -> None:
  """make() unless root holds `marker` with the same settings (check_once), then the marker,
  written last: a root half made is made again."""
  if check_once(root, marker, settings, what=what, added=added):
    return
  print(announce, flush=True)
  make()
  record(pathlib.Path(root) / marker, settings)


def record(path: pathlib.Path, settings: Mapping[str, Any]) -> None:
  """Writes a record of `settings` (JSON, atomically): call it after the work's last write."""
  paths.write_atomically(path, json.dumps(dict(settings), sort_keys=True) + '\n')


# --- Runs: resumable with the same config --------------------------------------------------------

def recorded_config(config, workdir: str | os.PathLike,
                    home: str | os.PathLike | None = None) -> dict[str, Any]:
  """The config as a run records it: JSON values, and every path field (paths.USER_PATHS)
  inside `home` (default: the run's workdir) relative to the run's workdir, so that the record
  holds no trace of where the workdir was. A record written by an older version (absolute
  paths) passed through it compares as a new one."""
  plain = config_checks.plain(config)
  workdir = os.path.abspath(workdir)
  home = pathlib.Path(os.path.abspath(home or workdir))
  for field in paths.USER_PATHS:
    group, name = field.split('.')
    value = plain.get(group, {}).get(name) if isinstance(plain.get(group), dict) else None
    if isinstance(value, str) and os.path.isabs(value) and pathlib.Path(value).is_relative_to(
        home):
      plain[group][name] = os.path.relpath(value, workdir)
  return plain


def trained_stages(workdir: pathlib.Path) -> list[int]:
  """The stages with a saved step in workdir."""
  return [s for s in checkpoints.STAGES
          if checkpoints.latest_step(checkpoints.manager_dir(workdir, s)) is not None]


def check_resume(config, workdir: str | os.PathLike, home: str | os.PathLike | None = None
                 ) -> None:
  """Refused naming the fields, when a stage of the run in workdir has a saved step and the
  config differs from <workdir>/config.json in a field that matters (not RESUMABLE, nor the
  fields of a stage not trained yet). Writes nothing."""
  workdir = pathlib.Path(workdir)
  path = workdir / 'config.json'
  trained = trained_stages(workdir)
  if not trained:
    return
  saved = read_record(path)
  if saved is None:
    return
  untrained = tuple(f'stage{s}' for s in checkpoints.STAGES if s not in trained)
  # An older record holds absolute paths: those inside home are compared as they are recorded.
  changed = config_checks.differences(recorded_config(saved, workdir, home),
                        recorded_config(config, workdir, home), ignore=RESUMABLE + untrained)
  if changed:
    raise Refused(
        f'{workdir} holds a run trained (stage {", ".join(map(str, trained))}) with another '
        f'config ({path}); this command changes:\n  config.' + '\n  config.'.join(changed)
        + '\nStart the new experiment in another --workdir, or drop these overrides to resume.')


def write_config(config, workdir: str | os.PathLike, home: str | os.PathLike | None = None
                 ) -> None:
  """<workdir>/config.json: the run's config as recorded (recorded_config)."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  paths.write_atomically(workdir / 'config.json',
                         json.dumps(recorded_config(config, workdir, home), indent=2) + '\n')


# --- Steps computed from a run: redone when what they read changed -------------------------------

def stamp(config, workdir: str | os.PathLike, home: str | os.PathLike | None = None
          ) -> dict[str, Any]:
  """What a step computed from the run in workdir depends on: the config as recorded (without
  config_checks.NOT_OF_A_RUN) and the newest saved step of each trained stage."""
  workdir = pathlib.Path(workdir)
  fields = {k: v for k, v in recorded_config(config, workdir, home).items()
            if k not in config_checks.NOT_OF_A_RUN}
  steps = {f'stage{s}': checkpoints.latest_step(checkpoints.manager_dir(workdir, s))
           for s in trained_stages(workdir)}
  return {'config': fields, 'checkpoints': steps}


class Steps:
  """A run's finished steps and the stamp each finished with (<run>/after_training.json)."""

  def __init__(self, path: str | os.PathLike, workdir: str | os.PathLike,
               home: str | os.PathLike | None = None):
    self.path, self.workdir, self.home = pathlib.Path(path), pathlib.Path(workdir), home
    try:
      record = read_record(self.path) or {}
    except Refused:  # written by an older version, not atomically: the steps run again
      print(f'{self.path} is unreadable; its steps run again', flush=True)
      record = {}
    # Older versions stored each stamp as a JSON string.
    self.record = {name: json.loads(s) if isinstance(s, str) else s for name, s in record.items()}

  def done(self, name: str, stamp: Mapping[str, Any]) -> bool:
    """Whether `name` finished with the same checkpoints and no config field that differs."""
    before = self.record.get(name)
    if not isinstance(before, dict) or 'config' not in before:
      return False
    saved = recorded_config(before['config'], self.workdir, self.home)
    return (before.get('checkpoints') == stamp['checkpoints']
            and not config_checks.differences(saved, stamp['config']))

  def finish(self, name: str, stamp: Mapping[str, Any]) -> None:
    """Records `name` as finished with `stamp` (call it after the step's last write)."""
    self.record[name] = dict(stamp)
    paths.write_atomically(self.path, json.dumps(self.record, indent=1, sort_keys=True) + '\n')
