"""What several test modules share: the repository root, the project's config file, and a tiny
experiment (a network that compiles in seconds) as a config and as command-line overrides.

Tests import from here, never from another test module.
"""

from __future__ import annotations

import importlib.util
import pathlib
import types

import jax

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script(path: pathlib.Path) -> types.ModuleType:
  """The Python file at `path` as a module, without putting its folder on sys.path (configs/,
  scripts/ and tests/golden/ are not packages)."""
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


posewarper_config = load_script(ROOT / 'configs' / 'posewarper.py')

TINY = dict(image_size=(64, 48), backbone=dict(width=8, stage_modules=(1,), stage_blocks=(1,),
                                               stem_features=16, layer1_planes=8,
                                               layer1_blocks=1),
            head=dict(num_blocks=2, features=8, dilations=(3,)))


def tiny_model_overrides() -> list[str]:
  """TINY's crop size and networks as command-line overrides."""
  b, h = TINY['backbone'], TINY['head']
  return ['--config.image_size=(64, 48)',
          *(f'--config.model.backbone.{k}={v}' for k, v in b.items()),
          *(f'--config.model.head.{k}={v}' for k, v in h.items())]


def tiny_overrides(data_root: pathlib.Path) -> list[str]:
  """The same tiny experiment as command-line overrides (for run.py in subprocesses)."""
  return [
      *tiny_model_overrides(), f'--config.data.root={data_root}',
      f'--config.data.tfds_dir={data_root / "tfds"}', '--config.data.synthetic=False',
      '--config.stage1.global_batch=8', '--config.stage2.global_batch=8',
      '--config.train.log_every=1', '--config.after_training=()', '--config.sigma=3.0']


def tiny_config(data_root: pathlib.Path, stages=(1,), **train_fields):
  """The synthetic config with TINY's network, reading the PoseTrack18 at data_root; training
  fields (num_steps, checkpoint_every, ...) as keywords."""
  config = posewarper_config.get_config('synthetic')
  config.image_size = TINY['image_size']
  config.model.backbone.update(TINY['backbone'])
  config.model.head.update(TINY['head'])
  config.data.update(synthetic=False, root=str(data_root), tfds_dir=str(data_root / 'tfds'))
  config.stages = stages
  config.after_training = ()  # the quick start's eval / propagate / render: not here
  config.sigma = 3.0  # the paper's targets (the tests' loss thresholds were set with them)
  config.stage1.global_batch = config.stage2.global_batch = 8
  config.train.update(log_every=1, **train_fields)
  return config


# model.apply compiled with the variables as an argument, not as constants of the function: other
# variables of the same shapes (a changed parameter, zeroed offsets) reuse the compilation.
jitted_apply = jax.jit(
    lambda model, variables, *args, **kwargs: model.apply(variables, *args, **kwargs),
    static_argnames=('model', 'method', 'train', 'backbone_train', 'mutable'))
