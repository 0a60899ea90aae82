"""Training of both stages: a per-device step mapped with jax.pmap or jax.jit, Optax, Orbax
resume.

    state = train_stage(config, workdir, stage=1)   # the single-frame HRNet (spec 2.1)
    state = train_stage(config, workdir, stage=2)   # the warping head on the frozen network

The step (`train_step`) is written for one device: gradients, the loss and BatchNorm statistics
are averaged over the named axis AXIS. `make_train_step` maps it as config.train.parallel says
(parallel.py): with jax.pmap over the local devices (the default), or with jax.jit over a Mesh
of every device, the batch sharded by NamedSharding and the body under jax.shard_map; the state
passed and returned replicated either way. With several processes (jax.distributed), each
feeds its own shard of the data and the collectives span every device.

Only one part of the network trains in a stage (TRAINABLE): the optimizer state covers that
part alone, and the frozen part gets no gradient computation at all (stage 2 runs the backbone
outside the differentiated function).

A stage's directory (<workdir>/stage1, <workdir>/stage2) holds checkpoints/ (Orbax: the state
and the input iterator of every process), metrics.jsonl and tensorboard/. Starting in a
directory with a checkpoint resumes from it with exactly the batches an uninterrupted run would
have seen, from the newest intact step (checkpoints.verify; damaged newer steps are moved aside
as <step>.damaged and said); experiment.py checks first that the config is the one it was
trained with (provenance.check_resume). SIGTERM
saves and stops after the step in flight, with exit status EXIT_PREEMPTED.
"""

from __future__ import annotations

import pathlib
import shutil
import signal
from collections.abc import Callable, Mapping
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax.training import train_state
from jax.experimental import multihost_utils

from posewarper_jax import checkpoints, config_checks, logs, parallel
from posewarper_jax.data import source, transforms
from posewarper_jax.data.pipeline import TrainingInput, epoch_size, training_dataset
from posewarper_jax.models import PoseWarper, create_model, init_variables
from tfds_posetrack.posetrack18 import FrameTable
from tfds_posetrack.posetrack18.keypoints import JOINT_SETS

AXIS = parallel.AXIS
TRAINABLE = checkpoints.TRAINABLE  # the parameter group each stage trains
# The batch's fields that stay on the host (which examples it holds); the rest go to the devices.
_HOST_FIELDS = ('record_a', 'person', 'record_b')


def device_batch(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The training stream's batch without its host-only fields: what the step takes."""
  return {k: v for k, v in batch.items() if k not in _HOST_FIELDS}


# The exit status of a run stopped by SIGTERM after saving (as a shell reports a process killed
# by it, 128 + 15): not 0, so that `train && eval` does not evaluate a half-trained network.
EXIT_PREEMPTED = 128 + signal.SIGTERM
# With several processes, how often they agree on a SIGTERM (an all-gather: a sync per check).
PREEMPTION_CHECK_EVERY = 10
class NonFiniteLossError(RuntimeError):
  """The loss became NaN or infinite; the last checkpoint is from before it."""


class TrainState(train_state.TrainState):
  """Flax's TrainState (step, params, tx, opt_state over the trainable group) plus BatchNorm
  statistics and a PRNG key.

  No layer of PoseWarper draws random numbers; `rng` (raw uint32 key data, saved with the
  state) gives one that does a per-step, per-device key through `step_rng` without a change to
  checkpoints.
  """

  batch_stats: Any
  rng: jax.Array

  def step_rng(self, axis_name: str = AXIS) -> jax.Array:
    key = jax.random.fold_in(jax.random.wrap_key_data(self.rng), self.step)
    return jax.random.fold_in(key, jax.lax.axis_index(axis_name))


def heatmap_loss(predicted: jax.Array, targets: jax.Array, weights: jax.Array) -> jax.Array:
  """Spec 2.3: mean over joints of 0.5 * mean((w_j * (pred_j - gt_j))^2), in float32.

  predicted, targets: [N, h, w, J]; weights: [N, J].
  """
  weights = weights[:, None, None, :].astype(jnp.float32)
  error = (predicted.astype(jnp.float32) - targets.astype(jnp.float32)) * weights
  return 0.5 * jnp.mean(jnp.square(error))


def learning_rate_schedule(learning_rate: float, drop_epochs, drop_factor: float,
                           steps_per_epoch: int) -> optax.Schedule:
  """The rate times drop_factor from the first step of each epoch in drop_epochs (0-based)."""
  return optax.piecewise_constant_schedule(
      learning_rate, {int(e) * steps_per_epoch: drop_factor for e in drop_epochs})


def make_optimizer(stage_config, train_config, steps_per_epoch: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Adam (spec 2.1) with the epoch schedule, after optional global-norm clipping."""
  schedule = learning_rate_schedule(stage_config.learning_rate, stage_config.lr_drop_epochs,
                                    train_config.lr_drop_factor, steps_per_epoch)
  adam = optax.adam(schedule, b1=0.9, b2=0.999, eps=1e-8)
  if train_config.grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(train_config.grad_clip), adam), schedule
  return adam, schedule


def create_train_state(model: PoseWarper, variables: Mapping[str, Any],
                       tx: optax.GradientTransformation, stage: int, seed: int) -> TrainState:
  """The state at step 0; the optimizer covers variables['params'][TRAINABLE[stage]] only."""
  params = dict(variables['params'])
  return TrainState(step=0, apply_fn=model.apply, params=params, tx=tx,
                    opt_state=tx.init(params[TRAINABLE[stage]]),
                    batch_stats=dict(variables['batch_stats']),
                    rng=jax.random.key_data(jax.random.key(seed)))


def abstract_train_state(model: PoseWarper, tx: optax.GradientTransformation, config,
                         stage: int) -> TrainState:
  """The state at step 0 as ShapeDtypeStructs (nothing initialized): what a checkpoint is
  restored into, and what posewarper_jax.aot compiles the step for."""
  return jax.eval_shape(lambda: create_train_state(
      model, init_variables(model, config.seed, tuple(config.image_size)), tx, stage,
      config.seed))


def train_step(state: TrainState, batch: Mapping[str, jax.Array], *, stage: int,
               backbone_bn: str = 'frozen', dtype: Any = jnp.float32,
               axis_name: str = AXIS) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on one device's share of the batch (mapped by parallel.Layout.step).

  batch: 'frames_a' (and 'frames_b' in stage 2) [N, H, W, 3] uint8 RGB, 'targets' [N, h, w, J],
  'target_weights' [N, J]; in stage 2 optionally 'targets_b' [N, h, w, J] and 'has_targets_b'
  [N]: where has_targets_b, the head warps targets_b instead of B's predicted heatmaps
  (config.stage2.warp_input='ground_truth', a diagnostic). Returns the new state and {'loss'
  (averaged over the devices), 'grad_norm' (of the averaged gradients)}; the loop logs the
  learning rate from the schedule.
  """
  trainable = TRAINABLE[stage]
  apply = state.apply_fn
  frames_a = transforms.normalize(batch['frames_a'], dtype)

  if stage == 1:
    def loss_fn(group):
      params = {**state.params, trainable: group}
      predicted, updates = apply({'params': params, 'batch_stats': state.batch_stats}, frames_a,
                                 train=True, method=PoseWarper.single_frame,
                                 mutable=['batch_stats'])
      return heatmap_loss(predicted, batch['targets'], batch['target_weights']), updates
  else:
    # The frozen backbone runs outside the differentiated function: no backward through it.
    frames = jnp.concatenate([frames_a, transforms.normalize(batch['frames_b'], dtype)])
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    if backbone_bn == 'batch':  # the release: batch statistics, running averages move
      heatmaps, backbone_updates = apply(variables, frames, train=True,
                                         method=PoseWarper.single_frame, mutable=['batch_stats'])
      backbone_stats = backbone_updates['batch_stats']['backbone']
    else:
      heatmaps = apply(variables, frames, train=False, method=PoseWarper.single_frame)
      backbone_stats = state.batch_stats['backbone']
    h_a, h_b = jnp.split(jax.lax.stop_gradient(heatmaps), 2)
    warped = h_b  # the offsets always come from the predictions, as in propagation
    if 'targets_b' in batch:
      warped = jnp.where(batch['has_targets_b'][:, None, None, None],
                         batch['targets_b'].astype(h_b.dtype), h_b)

    def loss_fn(group):
      params = {**state.params, trainable: group}
      stats = {**state.batch_stats, 'backbone': backbone_stats}
      predicted, updates = apply({'params': params, 'batch_stats': stats}, h_a, h_b, warped,
                                 train=True, method=PoseWarper.warp, mutable=['batch_stats'])
      return heatmap_loss(predicted, batch['targets'], batch['target_weights']), updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params[trainable])
  grads = jax.lax.pmean(grads, axis_name)
  group_updates, opt_state = state.tx.update(grads, state.opt_state, state.params[trainable])
  params = {**state.params, trainable: optax.apply_updates(state.params[trainable],
                                                           group_updates)}
  # BatchNorm already averaged its statistics over the axis (bn_axis_name): equal everywhere.
  batch_stats = {**state.batch_stats, **updates['batch_stats']}
  if stage == 2:
    batch_stats['backbone'] = backbone_stats
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                            batch_stats=batch_stats)
  metrics = {'loss': jax.lax.pmean(loss, axis_name), 'grad_norm': optax.tree.norm(grads)}
  return new_state, metrics


def make_train_step(stage: int, backbone_bn: str = 'frozen', dtype: Any = jnp.float32,
                    layout: parallel.Layout | None = None) -> Callable:
  """train_step mapped by `layout` (default: pmap over the local devices): (state, batch) ->
  (state, metrics), state and metrics replicated, the batch as layout.batch gives it ([D, N,
  ...] under pmap). The state's buffers are donated."""
  step = lambda state, batch: train_step(state, batch, stage=stage, backbone_bn=backbone_bn,
                                         dtype=dtype, axis_name=AXIS)
  return (layout or parallel.Layout.of('pmap')).step(step)


# --- Initialization from earlier runs and converted checkpoints ---------------------------------

def _merge_group(fresh: Any, loaded: Any, where: str) -> Any:
  """`loaded` in place of `fresh`, after checking that names and shapes agree."""
  fresh_paths = {jax.tree_util.keystr(p): x for p, x in
                 jax.tree_util.tree_flatten_with_path(fresh)[0]}
  loaded_paths = {jax.tree_util.keystr(p): x for p, x in
                  jax.tree_util.tree_flatten_with_path(loaded)[0]}
  problems = [f'{where}{k}: missing' for k in sorted(fresh_paths.keys() - loaded_paths.keys())]
  problems += [f'{where}{k}: not in this model' for k in
               sorted(loaded_paths.keys() - fresh_paths.keys())]
  problems += [f'{where}{k}: shape {np.shape(loaded_paths[k])}, the model has '
               f'{np.shape(v)}' for k, v in fresh_paths.items()
               if k in loaded_paths and np.shape(loaded_paths[k]) != np.shape(v)]
  if problems:
    raise ValueError('the initial checkpoint does not fit config.model:\n  '
                     + '\n  '.join(problems[:20])
                     + (f'\n  ... and {len(problems) - 20} more' if len(problems) > 20 else ''))
  return jax.tree.map(lambda f, x: np.asarray(x, f.dtype), fresh, loaded)


def initial_variables(config, model: PoseWarper, stage: int, workdir: pathlib.Path
                      ) -> dict[str, Any]:
  """Fresh variables (spec 1.5 init) with the backbone taken from the stage's `init`."""
  variables = jax.device_get(init_variables(model, config.seed, tuple(config.image_size)))
  init = config[f'stage{stage}'].init
  if stage == 2 and not init:
    init = checkpoints.stage_dir(workdir, 1)
    if checkpoints.latest_step(checkpoints.manager_dir(workdir, 1)) is None:
      raise FileNotFoundError(
          f'stage 2 trains on a stage-1 network: none in {init}, and config.stage2.init is '
          'empty. Run stage 1 first (--config=configs/posewarper.py:stage1, same workdir), or '
          'set --config.stage2.init to a stage-1 run, a converted checkpoint or a .pth.')
  if not init:
    print('stage 1 starts from scratch (config.stage1.init is empty; the paper starts from '
          'COCO-pretrained HRNet)', flush=True)
    return variables
  loaded = checkpoints.load(init).variables
  for collection in ('params', 'batch_stats'):
    if 'backbone' not in loaded.get(collection, {}):
      raise ValueError(f'initial checkpoint {init}: no backbone {collection}')
    variables[collection] = {**variables[collection], 'backbone': _merge_group(
        variables[collection]['backbone'], loaded[collection]['backbone'],
        f'{collection}/backbone')}
  print(f'stage {stage}: backbone from {init}', flush=True)
  return variables


# --- The loop -----------------------------------------------------------------------------------

class _Preemption:
  """Remembers a SIGTERM; the loop saves and stops at its next check."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def __exit__(self, *exc):
    signal.signal(signal.SIGTERM, self._previous)

  def agreed(self) -> bool:
    """Whether any process was asked to stop (every process must call this at the same step)."""
    if jax.process_count() == 1:
      return self.requested
    flags = multihost_utils.process_allgather(np.array(self.requested))
    return bool(np.any(flags))


def _stage_settings(config, stage: int):
  """config.stage<stage>, after every check of the config a training run reads
  (config_checks.check: run.py ran it already; a caller of train_stage may not have)."""
  config_checks.check(config, 'train', jax.device_count())
  if stage not in TRAINABLE:
    raise ValueError(f'config.stages: {stage} is not a stage (1 or 2)')
  return config[f'stage{stage}']


def _label_counts(table: FrameTable) -> dict[str, int]:
  labeled = table.is_labeled
  return {'labeled_videos_kept': len(np.unique(table.video[labeled])),
          'labeled_frames': int(labeled.sum()), 'labeled_people': int(table.people[labeled].sum())}


def training_labels(config, table: FrameTable, stage: int) -> FrameTable:
  """The train split's labels that this run may train on (config.data.labeled_videos and
  labeled_frames_per_video, spec 7), counted on the console."""
  table = source.labeled_subset(config, table)
  counts = _label_counts(table)
  print(f'stage {stage}: training labels: {counts["labeled_videos_kept"]} of '
        f'{len(table.video_names)} videos, {counts["labeled_frames"]} labeled frames, '
        f'{counts["labeled_people"]} people (config.data.labeled_videos='
        f'{config.data.labeled_videos}, labeled_frames_per_video='
        f'{config.data.labeled_frames_per_video})', flush=True)
  return table


def label_counts(config, workdir: str | pathlib.Path) -> dict[str, int]:
  """The videos, frames and people whose labels a run with this config trains on."""
  _, table = source.open_split(config, workdir, 'train')
  return _label_counts(source.labeled_subset(config, table))


def input_config(config, stage: int) -> TrainingInput:
  settings = config[f'stage{stage}']
  return TrainingInput(
      image_size=tuple(config.image_size), k=config.data.max_gap,
      seed=config.seed + stage, global_batch=settings.global_batch,
      num_devices=jax.local_device_count(), process_index=jax.process_index(),
      process_count=jax.process_count(), single_frame=stage == 1,
      num_workers=config.data.num_workers, reduced_decode=config.data.reduced_decode,
      sigma=config.sigma, flip_pairs=JOINT_SETS[config.data.joints],
      support_targets=_warps_ground_truth(config, stage))


def _warps_ground_truth(config, stage: int) -> bool:
  return stage == 2 and config.stage2.warp_input == 'ground_truth'


def _check_finite(pending: list[tuple[int, dict]], manager_dir: pathlib.Path) -> dict | None:
  """Fetches the metrics of the steps since the last check; raises on a non-finite loss."""
  if not pending:
    return None
  fetched = jax.device_get([m for _, m in pending])
  for (step, _), metrics in zip(pending, fetched, strict=True):
    if not np.isfinite(metrics['loss']):
      raise NonFiniteLossError(
          f'the loss is {metrics["loss"]} at step {step}: training stopped. The last checkpoint '
          f'in {manager_dir} is from before it; lower the learning rate or set '
          '--config.train.grad_clip, then run again to resume.')
  pending.clear()
  return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[-1]}


def train_stage(config, workdir: str | pathlib.Path, stage: int) -> TrainState:
  """Trains one stage in <workdir>/stage<N>, resuming there if it has a checkpoint; returns the
  final state (host arrays)."""
  workdir = pathlib.Path(workdir)
  settings = _stage_settings(config, stage)
  stage_dir = checkpoints.stage_dir(workdir, stage)
  records, table = source.open_split(config, workdir, 'train')
  table = training_labels(config, table, stage)
  stream_config = input_config(config, stage)
  pairs_per_epoch = epoch_size(table, stream_config)
  steps_per_epoch = pairs_per_epoch // settings.global_batch
  if steps_per_epoch == 0:
    raise ValueError(f'config.stage{stage}.global_batch ({settings.global_batch}) is larger '
                     f'than an epoch ({pairs_per_epoch} labeled people)')
  schedule_steps = settings.num_epochs * steps_per_epoch
  total_steps = min(config.train.num_steps or schedule_steps, schedule_steps)

  model = create_model(config, bn_axis_name=AXIS)
  tx, schedule = make_optimizer(settings, config.train, steps_per_epoch)
  dataset = training_dataset(records, table, stream_config)
  iterator = iter(dataset)

  manager_dir = checkpoints.manager_dir(workdir, stage)
  # A stage that starts (nothing saved) takes its initial network before it writes anything, so
  # that a config.stageN.init that does not fit is refused with the workdir untouched.
  initial = (None if checkpoints.saved_steps(manager_dir)
             else initial_variables(config, model, stage, workdir))
  options = ocp.CheckpointManagerOptions(max_to_keep=config.train.keep_checkpoints,
                                         enable_async_checkpointing=True, create=True)
  manager = ocp.CheckpointManager(manager_dir, options=options,
                                  item_handlers=checkpoints.item_handlers())
  meta = checkpoints.stage_metadata(config, stage)
  state = _resume(manager, manager_dir, model, tx, config, stage, iterator)
  if state is None:  # nothing saved (every saved step damaged raises in _resume)
    state = create_train_state(model, initial, tx, stage, config.seed)
    state = jax.device_get(state)
  first_step = int(state.step)
  if first_step >= total_steps:
    print(f'stage {stage}: already at step {first_step} of {total_steps}; nothing to do',
          flush=True)
    manager.close()
    return state

  per_device = settings.global_batch // (jax.process_count() * jax.local_device_count())
  print(f'stage {stage}: {total_steps} steps ({settings.num_epochs} epochs x {steps_per_epoch} '
        f'steps of {settings.global_batch}; {jax.device_count()} devices x {per_device}), '
        f'training {TRAINABLE[stage]} in {stage_dir}', flush=True)
  layout = parallel.Layout.of_config(config)
  train_step_fn = make_train_step(stage, config.stage2.backbone_bn,
                                  jnp.dtype(config.model.dtype), layout)
  logger = logs.MetricLogger(stage_dir, total_steps, first_step, settings.global_batch,
                             prefix=f'[stage {stage}] ')
  state = layout.state(state)
  pending: list[tuple[int, dict]] = []

  def seal() -> None:
    """Waits for the save in flight, then seals the steps it finished (checkpoints.seal)."""
    manager.wait_until_finished()
    if jax.process_index() == 0:
      checkpoints.seal_saved_steps(manager_dir)

  def save(step: int, state) -> None:
    _check_finite(pending, manager_dir)  # never save a state that followed a bad loss
    seal()  # the previous save: long finished by now, so this does not wait
    manager.save(step, args=ocp.args.Composite(**{
        checkpoints.STATE: ocp.args.StandardSave(_as_saved(jax.device_get(state))),
        checkpoints.DATA: grain.checkpoint.CheckpointSave(iterator),
        checkpoints.META: ocp.args.JsonSave(meta)}))

  try:
    with _Preemption() as preemption:
      for step in range(first_step + 1, total_steps + 1):
        batch = next(iterator)
        state, metrics = train_step_fn(state, layout.batch(device_batch(batch)))
        pending.append((step, metrics))
        if step % config.train.log_every == 0 or step == total_steps:
          means = _check_finite(pending, manager_dir)
          logger.write(step, {**means, 'learning_rate': float(schedule(step - 1))})
        # Every step (a scheduler's grace period may be shorter than log_every steps); with
        # several processes every few, since agreeing costs a sync.
        if ((jax.process_count() == 1 or step % PREEMPTION_CHECK_EVERY == 0)
            and preemption.agreed()):
          save(step, state)
          seal()
          print(f'stage {stage}: SIGTERM, saved step {step} in {manager_dir}; run the same '
                f'command again to resume (exit status {EXIT_PREEMPTED})', flush=True)
          raise SystemExit(EXIT_PREEMPTED)
        if step % config.train.checkpoint_every == 0 or step == total_steps:
          save(step, state)
    seal()
  finally:
    logger.close()
    manager.close()
  return jax.device_get(state)


def _as_saved(state: TrainState) -> dict[str, Any]:
  return {'step': state.step, 'params': state.params,
          'batch_stats': state.batch_stats, 'opt_state': state.opt_state, 'rng': state.rng}


def _resume(manager: ocp.CheckpointManager, manager_dir: pathlib.Path, model: PoseWarper,
            tx: optax.GradientTransformation, config, stage: int, iterator) -> TrainState | None:
  """The state of the newest intact saved step (host arrays; the iterator moved to the batch
  after it), or None when nothing is saved. Damaged steps newer than it are moved aside as
  <step>.damaged, so that the run saves those steps again, and each is reported."""
  damaged = []
  for step in reversed(checkpoints.saved_steps(manager_dir)):
    where = checkpoints.step_dir(manager_dir, step)
    try:
      checkpoints.verify(where)
      try:
        state = _restore(manager, step, model, tx, config, stage, iterator)
      except Exception as e:  # noqa: BLE001 (an unsealed step that Orbax cannot read)
        raise checkpoints.unreadable_error(manager_dir, step, e) from None
      checkpoints.check_finite(_as_saved(state), where)
    except checkpoints.DamagedCheckpointError as e:
      damaged.append((step, e))
      continue
    if damaged:
      _set_aside(manager, manager_dir, [s for s, _ in damaged])
      for bad, error in damaged:
        print(f'stage {stage}: {error}; moved to {where.parent / f"{bad}.damaged"}', flush=True)
      print(f'stage {stage}: resuming from step {step}, the newest intact checkpoint; the steps '
            'after it are trained again (identically: the input resumes with them)', flush=True)
    else:
      print(f'stage {stage}: resumed from step {step} in {manager_dir}', flush=True)
    return state
  if damaged:
    raise checkpoints.DamagedCheckpointError(
        f'stage {stage}: every saved step in {manager_dir} is damaged:\n  '
        + '\n  '.join(str(e) for _, e in damaged)
        + f'\nNothing to resume from: move {manager_dir} away to train the stage from the start.')
  return None


def _set_aside(manager: ocp.CheckpointManager, manager_dir: pathlib.Path,
               steps: list[int]) -> None:
  """Renames damaged steps to <step>.damaged (kept for inspection; Orbax no longer lists them)."""
  if jax.process_index() == 0:
    for step in steps:
      target = manager_dir / f'{step}.damaged'
      if target.exists():
        shutil.rmtree(target)
      checkpoints.step_dir(manager_dir, step).rename(target)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('posewarper_jax damaged steps set aside')
  manager.reload()


def _restore(manager: ocp.CheckpointManager, step: int, model: PoseWarper,
             tx: optax.GradientTransformation, config, stage: int, iterator) -> TrainState:
  """The state at `step` (host arrays) and the iterator moved to the batch after it."""
  shapes = abstract_train_state(model, tx, config, stage)
  target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), _as_saved(shapes))
  restored = manager.restore(step, args=ocp.args.Composite(**{
      checkpoints.STATE: ocp.args.StandardRestore(target),
      checkpoints.DATA: grain.checkpoint.CheckpointRestore(iterator)}))
  saved = restored[checkpoints.STATE]
  return TrainState(step=saved['step'], apply_fn=model.apply, params=saved['params'], tx=tx,
                    opt_state=saved['opt_state'], batch_stats=saved['batch_stats'],
                    rng=saved['rng'])
