"""Which network a path names, and its variables.

    found = checkpoints.find(path)     # a Checkpoint: what is there, without reading arrays
    network = checkpoints.load(path)   # a Network: {'params', 'batch_stats'} and what they are

A path may name:
- a run's workdir: its newest stage that has a saved step (stage 2 before stage 1; an empty
  stage2/checkpoints of a stage 2 that never saved falls back to stage 1);
- a stage folder (<workdir>/stage<N>) or its checkpoints/ folder (an Orbax CheckpointManager
  directory): its latest step;
- a converted checkpoint (python -m posewarper_jax.convert: an Orbax checkpoint of
  {'params', 'batch_stats'});
- a PyTorch .pth / .pt or an .npz state dict (official or mmpose names).

What a training checkpoint holds is recorded in it when it is saved (the item META of every
step: the stage, whether its warping head was trained, the model config), so a run loads the
same whatever its folders are called: a stage-1 run's head is the untrained initialization
(the identity warp), and `load` leaves it out. Paths reach this module absolute (run.py makes
every path a user gives absolute).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

from posewarper_jax import convert

STAGES = (1, 2)
# The top-level parameter group each stage trains (the other stays frozen).
TRAINABLE = {1: 'backbone', 2: 'warper'}
HEAD = 'warper'
# The items of a training step: the TrainState, the input iterator of every process, and META.
STATE, DATA, META = 'state', 'data', 'meta'


def stage_dir(workdir: pathlib.Path, stage: int) -> pathlib.Path:
  """<workdir>/stage<N>: a stage's checkpoints/, metrics.jsonl and tensorboard/."""
  return pathlib.Path(workdir) / f'stage{stage}'


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
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f'checkpoint {path} does not exist')
  if path.is_file():
    return Checkpoint(path, 'state_dict', path, has_head=None)
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
  if (directory / str(step) / META).is_dir():
    with ocp.CheckpointManager(directory, item_handlers=item_handlers()) as manager:
      meta = manager.restore(step, args=ocp.args.Composite(
          **{META: ocp.args.JsonRestore()}))[META]
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
  with ocp.CheckpointManager(checkpoint.directory, item_handlers=item_handlers()) as manager:
    # The state restores against a template made from its own metadata (a restore without
    # one fails on Orbax 0.12 with "Unsupported data type: object").
    metadata = manager.item_metadata(checkpoint.step)[STATE]
    template = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype),
                            getattr(metadata, 'tree', metadata))
    state = manager.restore(checkpoint.step, args=ocp.args.Composite(
        **{STATE: ocp.args.StandardRestore(template)}))[STATE]
  variables = {'params': state['params'], 'batch_stats': state['batch_stats']}
  if not checkpoint.has_head:
    variables = {c: {k: v for k, v in group.items() if k != HEAD}
                 for c, group in variables.items()}
  return Network(checkpoint, variables)
