"""Which network a path names, and its variables.

    found = checkpoints.find(path)     # a Checkpoint: what is there, without reading arrays
    network = checkpoints.load(path)   # a Network: {'params', 'batch_stats'} and what they are

A path may name:
- a run's workdir: its newest stage that has a saved step (stage 2 before stage 1; an empty
  stage2/checkpoints of a stage 2 that never saved falls back to stage 1);
- a stage folder (<workdir>/stage<N>) or its checkpoints/ folder (an Orbax CheckpointManager
  directory): its latest step; or one step folder of it (<...>/checkpoints/<step>);
- a converted checkpoint (python -m posewarper_jax.convert: an Orbax checkpoint of
  {'params', 'batch_stats'});
- a PyTorch .pth / .pt or an .npz state dict (official or mmpose names).

What a training checkpoint holds is recorded in it when it is saved (the item META of every
step: the stage, whether its warping head was trained, the model config), so a run loads the
same whatever its folders are called: a stage-1 run's head is the untrained initialization
(the identity warp), and `load` leaves it out. Paths may be relative to the working
directory: `find` and `stage_dir` make them absolute, as Orbax needs them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from collections.abc import Mapping
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

from posewarper_jax import config_checks, convert, paths

STAGES = (1, 2)
# The top-level parameter group each stage trains (the other stays frozen).
TRAINABLE = {1: 'backbone', 2: 'warper'}
HEAD = 'warper'
# The items of a training step: the TrainState, the input iterator of every process, and META.
STATE, DATA, META = 'state', 'data', 'meta'
# Written into a step once it is saved: the size and SHA-256 of each of its files.
INTEGRITY = 'integrity.json'


class DamagedCheckpointError(ValueError):
  """A saved step does not match its integrity record, or cannot be read; the message names the
  step and the files."""


def stage_dir(workdir: pathlib.Path, stage: int) -> pathlib.Path:
  """<workdir>/stage<N>: a stage's checkpoints/, metrics.jsonl and tensorboard/. Absolute, as
  Orbax needs it, whichever way the library was called."""
  return pathlib.Path(workdir).absolute() / f'stage{stage}'


def manager_dir(workdir: pathlib.Path, stage: int) -> pathlib.Path:
  """<workdir>/stage<N>/checkpoints: the stage's Orbax CheckpointManager directory."""
  return stage_dir(workdir, stage) / 'checkpoints'


def saved_steps(directory: pathlib.Path) -> list[int]:
  """The finalized steps of a CheckpointManager directory, in order (Orbax writes a step under
  a temporary name and renames it when complete, so a half-written step is not listed)."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    return []
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and p.is_dir())


def latest_step(directory: pathlib.Path) -> int | None:
  steps = saved_steps(directory)
  return steps[-1] if steps else None


def step_dir(directory: pathlib.Path, step: int) -> pathlib.Path:
  """<manager dir>/<step>: one saved step (its items STATE, DATA, META and INTEGRITY)."""
  return pathlib.Path(directory) / str(step)


# --- Integrity ----------------------------------------------------------------------------------

def _digest(path: pathlib.Path) -> str:
  with open(path, 'rb') as f:
    return hashlib.file_digest(f, 'sha256').hexdigest()


def _files(step: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in step.rglob('*') if p.is_file() and p.name != INTEGRITY)


def seal(step: pathlib.Path) -> None:
  """Writes step/INTEGRITY for a finalized step (atomically: a partial record is never read)."""
  step = pathlib.Path(step)
  record = {'algorithm': 'sha256', 'files': {
      str(p.relative_to(step)): {'size': p.stat().st_size, 'sha256': _digest(p)}
      for p in _files(step)}}
  paths.write_atomically(step / INTEGRITY, json.dumps(record, indent=0))


def seal_saved_steps(directory: pathlib.Path) -> None:
  """Seals every finalized step of a manager directory that has no record yet (call once the
  manager has no save in flight: Orbax finalizes steps in a background thread)."""
  for step in saved_steps(directory):
    if not (step_dir(directory, step) / INTEGRITY).exists():
      seal(step_dir(directory, step))


def verify(step: pathlib.Path) -> bool:
  """True when the step matches its record, False when it has none (written before records
  existed, or by a run killed between saving the step and sealing it); DamagedCheckpointError
  naming the files that differ otherwise."""
  step = pathlib.Path(step)
  try:
    record = json.loads((step / INTEGRITY).read_text())
  except FileNotFoundError:
    return False
  except (OSError, json.JSONDecodeError) as e:
    raise DamagedCheckpointError(f'checkpoint {step}: its integrity record {INTEGRITY} is '
                                 f'unreadable ({e})') from None
  problems = []
  for name, expected in sorted(record['files'].items()):
    path = step / name
    if not path.is_file():
      problems.append(f'{name}: missing')
    elif path.stat().st_size != expected['size']:
      problems.append(f'{name}: {path.stat().st_size} bytes, {expected["size"]} when saved')
    elif _digest(path) != expected['sha256']:
      problems.append(f'{name}: contents differ from when it was saved (SHA-256)')
  if problems:
    raise DamagedCheckpointError(
        f'checkpoint {step} is damaged: ' + '; '.join(problems[:5])
        + (f'; and {len(problems) - 5} more files' if len(problems) > 5 else ''))
  return True


def intact_steps(directory: pathlib.Path) -> list[int]:
  """The saved steps of a manager directory that pass `verify` (sealed or not), in order."""
  intact = []
  for step in saved_steps(directory):
    try:
      verify(step_dir(directory, step))
    except DamagedCheckpointError:
      continue
    intact.append(step)
  return intact


def item_handlers() -> dict[str, ocp.CheckpointHandler]:
  """The handlers of a training step's items; naming them all lets Orbax read one item alone
  without warnings about the others."""
  return {STATE: ocp.StandardCheckpointHandler(), DATA: grain.checkpoint.CheckpointHandler(),
          META: ocp.JsonCheckpointHandler()}


def stage_metadata(config, stage: int) -> dict[str, Any]:
  """META of a step of `stage`: what the checkpoint is, saved with it."""
  return {'stage': stage, 'trained': TRAINABLE[stage], 'warping_head': stage == 2,
          'image_size': list(config.image_size), 'model': config.model.to_dict()}


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  """What a path names (see the module docstring).

  kind: 'run' (a step of a CheckpointManager directory), 'variables' (a converted checkpoint)
  or 'state_dict' (a .pth / .npz file). directory: the manager directory, the checkpoint
  folder or the file. has_head: whether it holds a trained warping head (None for a state dict
  until it is read). stage and step: a run's; meta: a run's META ({} for older runs).
  """

  path: pathlib.Path
  kind: str
  directory: pathlib.Path
  has_head: bool | None
  step: int | None = None
  stage: int | None = None
  meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def describe(self) -> str:
    if self.kind == 'run':
      what = 'with its warping head' if self.has_head else 'single-frame, no warping head'
      return f'{self.directory} step {self.step} (stage {self.stage}, {what})'
    return str(self.directory)


@dataclasses.dataclass(frozen=True)
class Network:
  """The variables a Checkpoint holds: {'params', 'batch_stats'}, each {'backbone'[, 'warper']}
  (without 'warper' when the head was not trained)."""

  checkpoint: Checkpoint
  variables: dict[str, Any]

  @property
  def has_head(self) -> bool:
    return HEAD in self.variables['params']


def find(path: str | pathlib.Path) -> Checkpoint:
  """What `path` names; FileNotFoundError naming where it looked when it names no network."""
  path = pathlib.Path(path).absolute()
  if not path.exists():
    raise FileNotFoundError(f'checkpoint {path} does not exist')
  if path.is_file():
    return Checkpoint(path, 'state_dict', path, has_head=None)
  if path.name.isdigit() and (path / STATE).is_dir():  # one step of a manager directory
    return _run_checkpoint(path, path.parent, int(path.name))
  candidates = [manager_dir(path, s) for s in reversed(STAGES)] + [path / 'checkpoints', path]
  for directory in candidates:
    step = latest_step(directory)
    if step is not None:
      return _run_checkpoint(path, directory, step)
  if (path / '_CHECKPOINT_METADATA').exists():  # a converted checkpoint (one Orbax item)
    with ocp.StandardCheckpointer() as checkpointer:
      metadata = checkpointer.metadata(path)
    tree = getattr(metadata, 'item_metadata', metadata)
    tree = getattr(tree, 'tree', tree)
    return Checkpoint(path, 'variables', path, has_head=HEAD in tree.get('params', {}))
  raise FileNotFoundError(
      f'{path} names no network: no saved step in {", ".join(str(c) for c in candidates)}, and '
      'it is not a converted checkpoint (python -m posewarper_jax.convert) or a .pth / .npz')


def _run_checkpoint(path: pathlib.Path, directory: pathlib.Path, step: int) -> Checkpoint:
  # Orbax's item metadata of a JSON item is None: whether the step has META is its folder.
  if (step_dir(directory, step) / META).is_dir():
    try:
      with ocp.CheckpointManager(directory, item_handlers=item_handlers()) as manager:
        meta = manager.restore(step, args=ocp.args.Composite(
            **{META: ocp.args.JsonRestore()}))[META]
    except Exception as e:  # noqa: BLE001 (any failure to read it means the step is damaged)
      raise unreadable_error(directory, step, e) from None
    return Checkpoint(path, 'run', directory, bool(meta['warping_head']), step,
                      int(meta['stage']), meta)
  # Written before steps recorded META: the only record of the stage is the folder's name.
  stage = 1 if directory.parent.name == 'stage1' else 2
  return Checkpoint(path, 'run', directory, stage == 2, step, stage)


def network(config, workdir: pathlib.Path) -> Checkpoint:
  """The network the eval, propagate, augment and infer modes use: config.eval.checkpoint, else
  this run's (its stage 2, else its stage 1)."""
  path = config.eval.checkpoint or workdir
  try:
    return find(path)
  except FileNotFoundError as e:
    if config.eval.checkpoint:
      raise FileNotFoundError(f'config.eval.checkpoint: {e}') from None
    raise FileNotFoundError(
        f'nothing to evaluate: no saved step in {manager_dir(workdir, 2)} or '
        f'{manager_dir(workdir, 1)}, and config.eval.checkpoint is empty') from None


def load_network(config, workdir: pathlib.Path, needs_head: str = '') -> Network:
  """load(network(config, workdir)); with `needs_head` (what needs it, e.g. 'propagation'), a
  ValueError when the network has no trained warping head."""
  loaded = load(network(config, workdir))
  trained_with = loaded.checkpoint.meta.get('model')
  if trained_with is not None:
    changed = config_checks.differences(trained_with, config.model, 'model',
                                        ignore=config_checks.COMPUTE_ONLY)
    if changed:
      raise ValueError(f'{loaded.checkpoint.describe()} was trained with another model than '
                       'config.model describes:\n  config.' + '\n  config.'.join(changed)
                       + '\nPass the run\'s own config (its config.json), or these values.')
  if needs_head and not loaded.has_head:
    raise ValueError(f'{loaded.checkpoint.path} has no warping head: {needs_head} needs a '
                     f'stage-2 network ({loaded.checkpoint.describe()})')
  return loaded


def load(checkpoint: Checkpoint | str | pathlib.Path) -> Network:
  """The variables (host arrays) of a checkpoint, a run's without an untrained head."""
  if not isinstance(checkpoint, Checkpoint):
    checkpoint = find(checkpoint)
  if checkpoint.kind == 'state_dict':
    variables = convert.torch_to_flax(convert.load_state_dict(checkpoint.directory))
    return Network(dataclasses.replace(checkpoint, has_head=HEAD in variables['params']),
                   variables)
  if checkpoint.kind == 'variables':
    return Network(checkpoint, convert.load_variables(checkpoint.directory))
  try:
    verify(step_dir(checkpoint.directory, checkpoint.step))
  except DamagedCheckpointError as e:
    hint = intact_hint(checkpoint.directory, checkpoint.step)
    raise DamagedCheckpointError(f'{e}. {hint}') from None
  try:
    with ocp.CheckpointManager(checkpoint.directory, item_handlers=item_handlers()) as manager:
      # The state restores against a template made from its own metadata (a restore without
      # one fails on Orbax 0.12 with "Unsupported data type: object").
      metadata = manager.item_metadata(checkpoint.step)[STATE]
      template = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype),
                              getattr(metadata, 'tree', metadata))
      state = manager.restore(checkpoint.step, args=ocp.args.Composite(
          **{STATE: ocp.args.StandardRestore(template)}))[STATE]
  except Exception as e:  # noqa: BLE001 (an unsealed step that Orbax cannot read is damaged)
    raise unreadable_error(checkpoint.directory, checkpoint.step, e) from None
  check_finite(state, step_dir(checkpoint.directory, checkpoint.step))
  variables = {'params': state['params'], 'batch_stats': state['batch_stats']}
  if not checkpoint.has_head:
    variables = {c: {k: v for k, v in group.items() if k != HEAD}
                 for c, group in variables.items()}
  return Network(checkpoint, variables)


def unreadable_error(directory: pathlib.Path, step: int,
                     error: Exception) -> DamagedCheckpointError:
  """The error for a step that Orbax fails to read, naming it and the intact steps."""
  first_line = (str(error).strip().splitlines() or [''])[0][:300]
  return DamagedCheckpointError(
      f'checkpoint {step_dir(directory, step)} cannot be read ({type(error).__name__}: '
      f'{first_line}). {intact_hint(directory, step)}')


def intact_hint(directory: pathlib.Path, damaged: int) -> str:
  """Which other steps of a manager directory are intact, as advice for an error message."""
  intact = [s for s in intact_steps(directory) if s != damaged]
  if not intact:
    return f'No other step of {directory} is intact.'
  return (f'Intact steps of {directory}: {", ".join(map(str, intact))}; name one instead, e.g. '
          f'{step_dir(directory, intact[-1])}.')


def check_finite(tree: Any, where: pathlib.Path) -> None:
  """DamagedCheckpointError naming the first array of `tree` with a NaN or an infinity."""
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    array = np.asarray(leaf)
    if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
      raise DamagedCheckpointError(f'checkpoint {where}: {jax.tree_util.keystr(path)} holds NaN '
                                   'or infinite values')
