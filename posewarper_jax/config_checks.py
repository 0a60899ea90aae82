"""Every check of a config value, run by run.py before the workdir is created or touched.

    config_checks.check(config, 'train', device_count=8)     # run.py, first, for every mode
    config_checks.check_data(config, 'train')                # the checks that read the data
    config_checks.differences(saved, requested, 'model')     # ['model.head.num_blocks: ...']

Every check raises ValueError naming the field (config.<group>.<name>) and the values it may
take, before anything is built, trained or written. The allowed values of the fields that name
a choice are here too (BACKBONE_BN, WARP_INPUTS, AFTER_TRAINING_STEPS, GRID_CONTROLS); the
modules that act on them import them from here.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from posewarper_jax.models import DTYPES
from posewarper_jax.parallel import PARALLEL
from tfds_posetrack.posetrack18 import layouts, split_directory
from tfds_posetrack.posetrack18.keypoints import JOINT_SETS
from tfds_posetrack.posetrack18.pairs import check_sparse_labels

# Fields of config.model that change how a network computes, not what it is: a checkpoint
# loads whatever they are.
COMPUTE_ONLY = ('model.dtype', 'model.backbone.remat', 'model.head.remat')
# Top-level config sections that describe an experiment of many runs, not the run in a workdir:
# config.grid (the augment_grid points, schedules and controls, which label_grid copies into
# each run's own fields). A run neither refuses to resume over them (provenance.RESUMABLE) nor
# redoes its after-training steps for them (provenance.stamp): adding a point or a control to a
# grid leaves its finished runs done.
NOT_OF_A_RUN = ('grid',)
# config.stage2.backbone_bn: the frozen backbone's BatchNorm in stage 2, 'frozen' (its running
# statistics) or 'batch' (the release: batch statistics, the running averages move).
BACKBONE_BN = ('frozen', 'batch')
# config.stage2.warp_input: what the head warps in training. 'prediction': frame B's heatmaps
# from the backbone (the release). 'ground_truth': a diagnostic, frame B's own ground truth of
# the person where B has it (the pipeline's support_targets), as propagation warps a labeled
# frame's; it reads labels a sparse subset drops.
WARP_INPUTS = ('prediction', 'ground_truth')
# config.after_training: the steps report.py runs after training, in the order given.
AFTER_TRAINING_STEPS = ('eval', 'propagate', 'render', 'augment')
# config.grid.controls: the baseline retrained on the same frames with other poses
# (augment.POSES other than PoseWarper's; label_grid.py).
GRID_CONTROLS = ('copy', 'ground_truth')
MODES = ('train', 'eval', 'propagate', 'augment', 'augment_grid', 'infer')
TRAINING_MODES = ('train', 'augment_grid')


def plain(value: Any) -> Any:
  """A ConfigDict, dict or tuple as JSON stores it (config.json), for comparison."""
  if hasattr(value, 'to_dict'):
    value = value.to_dict()
  return json.loads(json.dumps(value, default=str))


def flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a.b': 1}."""
  flat = {}
  for key, value in tree.items():
    name = f'{prefix}.{key}' if prefix else str(key)
    if isinstance(value, Mapping):
      flat.update(flatten(value, name))
    else:
      flat[name] = value
  return flat


def differences(saved: Any, requested: Any, prefix: str = '', ignore: Iterable[str] = (),
                added: Mapping[str, Any] | None = None) -> list[str]:
  """'<field>: <saved> before, <requested> now' for every field whose values differ, by the one
  rule of what a record means (provenance.py): fields equal to or under a name in `ignore` are
  left out; a field the record (`saved`) lacks was added to the code since, and counts as
  added[field] (its value from before it existed) where given, else as unchanged; a field only
  `saved` has was removed since, and counts as unchanged."""
  ignore = tuple(ignore)
  a, b = flatten(plain(saved), prefix), flatten(plain(requested), prefix)
  for name, value in flatten(plain(dict(added or {})), prefix).items():
    a.setdefault(name, value)
  return [f'{name}: {a[name]!r} before, {b[name]!r} now' for name in sorted(a.keys() & b.keys())
          if a[name] != b[name]
          and not any(name == i or name.startswith(i + '.') for i in ignore)]


def check(config, mode: str, device_count: int) -> None:
  """Every check of `config` that `mode` (one of MODES) reads, over `device_count` devices (the
  batches must divide over them); nothing read from disk (check_data does that)."""
  if mode not in MODES:
    raise ValueError(f'--mode must be one of {", ".join(MODES)}, got {mode!r}')
  check_inference(config)
  if mode in TRAINING_MODES:
    check_training(config)
    check_batches(config, mode, device_count)
  if mode == 'augment_grid':
    check_grid(config)

def _value(config, field: str):
  """config's value at a dotted field ('stage1.num_epochs', 'pretrain.stage1.global_batch')."""
  for name in field.split('.'):
    config = config[name]
  return config


def _integer(config, field: str, minimum: int) -> None:
  value = _value(config, field)
  if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
    raise ValueError(f'config.{field} must be an integer >= {minimum}, got {value!r}')


def _positive(config, field: str, allow_zero: bool = False) -> None:
  value = _value(config, field)
  ok = (isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value
        and (value >= 0 if allow_zero else value > 0) and value != float('inf'))
  if not ok:
    raise ValueError(f'config.{field} must be a finite number {">=" if allow_zero else ">"} 0, '
                     f'got {value!r}')


def check_inference(config) -> None:
  """The fields every mode reads to run the network (crop size, dtype, batch, split)."""
  _image_size(config)
  _choice(config, 'model.dtype', tuple(DTYPES))
  _integer(config, 'eval.batch', 1)
  for field in ('eval.min_box_score', 'infer.min_score'):
    value = _value(config, field)
    if not (isinstance(value, numbers.Real) and 0 <= value <= 1):
      raise ValueError(f'config.{field} must be a score in [0, 1], got {value!r}')
  split_directory(config.eval.split, 'config.eval.split')


def _choice(config, field: str, allowed: tuple[str, ...]) -> None:
  value = _value(config, field)
  if value not in allowed:
    raise ValueError(f'config.{field} must be one of {allowed}, got {value!r}')


def check_training(config) -> None:
  """The fields of a training run (stages, schedule, mapping, logging, checkpoints, data, the
  stand-in, the steps after training)."""
  for stage in config.stages:
    if stage not in (1, 2):
      raise ValueError(f'config.stages: {stage!r} is not a stage (1 or 2)')
  _choice(config, 'train.parallel', PARALLEL)
  _choice(config, 'stage2.backbone_bn', BACKBONE_BN)
  _choice(config, 'stage2.warp_input', WARP_INPUTS)
  for step in config.after_training:
    if step not in AFTER_TRAINING_STEPS:
      raise ValueError(f'config.after_training: each step one of {AFTER_TRAINING_STEPS}, got '
                       f'{step!r}')
  _integer(config, 'train.num_steps', 0)
  _integer(config, 'train.log_every', 1)
  _integer(config, 'train.checkpoint_every', 1)
  # Orbax keeps no checkpoint at 0: the run would leave nothing to resume from or evaluate.
  _integer(config, 'train.keep_checkpoints', 1)
  _positive(config, 'train.lr_drop_factor')
  _positive(config, 'train.grad_clip', allow_zero=True)
  if not (isinstance(config.sigma, numbers.Real) and 0 < config.sigma < float('inf')):
    raise ValueError(f'config.sigma must be a finite number > 0, got {config.sigma!r}')
  for stage in (1, 2):
    _integer(config, f'stage{stage}.num_epochs', 1)
    _integer(config, f'stage{stage}.global_batch', 1)
    _positive(config, f'stage{stage}.learning_rate', allow_zero=True)  # 0: a frozen trial
    drops = config[f'stage{stage}'].lr_drop_epochs
    if not all(isinstance(e, numbers.Integral) and not isinstance(e, bool) and e >= 0
               for e in drops):
      raise ValueError(f'config.stage{stage}.lr_drop_epochs must be epochs (integers >= 0), '
                       f'got {drops!r}')
  _integer(config, 'pretrain.stills', 0)
  if config.pretrain.stills:
    _integer(config, 'pretrain.max_people', 1)
    _integer(config, 'pretrain.stage1.num_epochs', 1)
    _integer(config, 'pretrain.stage1.global_batch', 1)
    _positive(config, 'pretrain.stage1.learning_rate')
    code = config.pretrain.limb_code
    if not (isinstance(code, numbers.Real) and not isinstance(code, bool) and 0 <= code <= 1):
      raise ValueError(f'config.pretrain.limb_code must be a share in [0, 1], got {code!r}')
  _integer(config, 'data.stored_gap', 0)
  _integer(config, 'data.max_gap', 0)
  if config.data.max_gap > config.data.stored_gap:
    # Supporting frames farther than the build stores are not there: pairs would fall back to
    # B = A for up to a third of the examples, silently.
    raise ValueError(f'config.data.max_gap ({config.data.max_gap}) is larger than '
                     f'config.data.stored_gap ({config.data.stored_gap}), the frame gap the '
                     'dataset is built with: raise stored_gap too (a rebuild) or lower max_gap')
  _integer(config, 'data.num_workers', 0)
  if config.data.joints not in JOINT_SETS:
    raise ValueError(f'config.data.joints must be one of {", ".join(JOINT_SETS)}, got '
                     f'{config.data.joints!r}')
  check_sparse_labels(config.data.labeled_videos, config.data.labeled_frames_per_video)
  _integer(config, 'data.labeled_seed', -1)


def check_batches(config, mode: str, device_count: int) -> None:
  """Every batch `mode` trains with divides over the devices: the stages', the stand-in's, and
  in the grid its retrainings'."""
  fields = [f'stage{s}.global_batch' for s in (config.stages if mode == 'train' else (1, 2))]
  if config.pretrain.stills:
    fields.append('pretrain.stage1.global_batch')
  if mode == 'augment_grid':
    fields += ['grid.retrain.stage1.global_batch', 'grid.retrain.stage2.global_batch']
  for field in fields:
    _integer(config, field, 1)
    if _value(config, field) % device_count:
      raise ValueError(f'config.{field} ({_value(config, field)}) must divide evenly over the '
                       f'{device_count} devices')


def grid_points(config) -> list[tuple[int, int]]:
  """config.grid.labels as (V, N) pairs, checked: ValueError naming the field for an entry that
  is not a (labeled_videos, labeled_frames_per_video), an empty grid or a repeated point."""
  points = []
  for entry in config.grid.labels:
    if not isinstance(entry, (tuple, list)) or len(entry) != 2:
      raise ValueError(f'config.grid.labels: each entry is (labeled_videos, '
                       f'labeled_frames_per_video), got {entry!r}')
    try:
      check_sparse_labels(*entry)
    except ValueError as error:
      raise ValueError(f'config.grid.labels {tuple(entry)}: {error}') from None
    points.append((int(entry[0]), int(entry[1])))
  if not points:
    raise ValueError('config.grid.labels is empty: no (V, N) to train')
  if len(set(points)) != len(points):
    raise ValueError(f'config.grid.labels repeats a point: {points}')
  return points


def check_grid(config) -> None:
  """config.grid: the points (grid_points), the controls (each of GRID_CONTROLS at most once),
  the number of initialisations (>= 1) and the points that run them (points of the grid, each
  once)."""
  points = grid_points(config)
  controls = tuple(config.grid.controls)
  if any(c not in GRID_CONTROLS for c in controls) or len(set(controls)) != len(controls):
    raise ValueError(f'config.grid.controls: each of {GRID_CONTROLS} at most once, got '
                     f'{controls!r}')
  _integer(config, 'grid.initialisations', 1)
  chosen = []
  for entry in config.grid.spread_points:
    entry = tuple(entry) if isinstance(entry, (tuple, list)) else entry
    if entry not in points:
      raise ValueError(f'config.grid.spread_points: each entry is a (V, N) of config.grid.labels '
                       f'{points}, got {entry!r}')
    if entry in chosen:
      raise ValueError(f'config.grid.spread_points repeats {entry}')
    chosen.append(entry)
  for stage in (1, 2):
    _integer(config, f'grid.retrain.stage{stage}.num_epochs', 1)
    _positive(config, f'grid.retrain.stage{stage}.learning_rate', allow_zero=True)


def check_data(config, mode: str, root) -> None:
  """The checks that read the dataset (never write): for a training mode, that the labeled
  subsets asked for (config.data.labeled_videos; in the grid each V of config.grid.labels) are
  no larger than the train split's videos. `root`: the PoseTrack18 directory the run reads
  (source.dataset_root), or None for a synthetic set not generated yet, whose videos
  config.data.synthetic_videos counts."""
  if mode not in TRAINING_MODES:
    return
  if config.data.synthetic:
    videos, where = config.data.synthetic_videos[0], 'config.data.synthetic_videos'
  else:
    layout = layouts.detect(root)
    if 'train' not in layout.present_splits(root):
      raise ValueError(f'config.data.root {root} has no train split to train on')
    videos = len(list(layout.annotation_dir(root, 'train').glob('*.json')))
    where = f'the train split of {root}'
  asked = [('config.data.labeled_videos', config.data.labeled_videos)]
  if mode == 'augment_grid':
    asked += [(f'config.grid.labels {point}', point[0]) for point in grid_points(config)]
  for field, count in asked:
    if count > videos:
      raise ValueError(f'{field} asks for {count} labeled videos, but {where} has {videos}: '
                       'ask for at most that many (-1: all)')


def _image_size(config) -> None:
  # The lowest-resolution branch of HRNet is 4 * 2^(branches - 1) times smaller than the crop,
  # and upsampled back by exact factors: the crop must divide evenly.
  factor = 4 * 2 ** len(config.model.backbone.stage_modules)
  size = tuple(config.image_size)
  if len(size) != 2 or not all(isinstance(v, numbers.Integral) and v > 0 and v % factor == 0
                               for v in size):
    raise ValueError(f'config.image_size must be (height, width), multiples of {factor} for '
                     f'this backbone ({len(config.model.backbone.stage_modules) + 1} branches), '
                     f'got {config.image_size!r}')
