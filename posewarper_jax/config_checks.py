"""Config values that can only be wrong, and what a config changes against a run's.

    config_checks.check_training(config)                     # run.py's train mode, first
    config_checks.differences(saved, requested, 'model')     # ['model.head.num_blocks: ...']

Every check raises ValueError naming the field (config.<group>.<name>) and what it must be, before
anything is built, trained or written.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from tfds_posetrack.posetrack18.keypoints import JOINT_SETS
from tfds_posetrack.posetrack18.pairs import check_sparse_labels

# Fields of config.model that change how a network computes, not what it is: a checkpoint
# loads whatever they are.
COMPUTE_ONLY = ('model.dtype', 'model.backbone.remat', 'model.head.remat')
# Top-level config sections that describe an experiment of many runs, not the run in a workdir:
# config.grid (the augment_grid points, schedules and controls, which label_grid copies into
# each run's own fields). A run neither refuses to resume over them (train.RESUMABLE) nor
# redoes its after-training steps for them (report._stamp): adding a point or a control to a
# grid leaves its finished runs done.
NOT_OF_A_RUN = ('grid',)


def _plain(value: Any) -> Any:
  """A ConfigDict, dict or tuple as JSON would store it (config.json), for comparison."""
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


def differences(saved: Any, requested: Any, prefix: str = '',
                ignore: Iterable[str] = ()) -> list[str]:
  """'<field>: <saved> before, <requested> now' for every field whose values differ; fields that
  only one side has are left out (a field added to the config since the run was made), as are
  fields equal to or under a name in `ignore`."""
  ignore = tuple(ignore)
  a, b = flatten(_plain(saved), prefix), flatten(_plain(requested), prefix)
  return [f'{name}: {a[name]!r} before, {b[name]!r} now' for name in sorted(a.keys() & b.keys())
          if a[name] != b[name]
          and not any(name == i or name.startswith(i + '.') for i in ignore)]


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
  """The fields every mode reads to run the network (crop size, batch)."""
  _image_size(config)
  _integer(config, 'eval.batch', 1)
  for field in ('eval.min_box_score', 'infer.min_score'):
    value = _value(config, field)
    if not (isinstance(value, numbers.Real) and 0 <= value <= 1):
      raise ValueError(f'config.{field} must be a score in [0, 1], got {value!r}')


def check_training(config) -> None:
  """The fields of run.py's train mode (stages, schedule, logging, checkpoints, data)."""
  check_inference(config)
  for stage in config.stages:
    if stage not in (1, 2):
      raise ValueError(f'config.stages: {stage!r} is not a stage (1 or 2)')
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
