"""Benchmark of the training steps of posewarper_jax.train, as run.py runs them.

The step timed is `train.make_train_step` (the step with Adam, the loss, BatchNorm statistics
synced over the devices, mapped as config.train.parallel says: pmap, or jit over a Mesh), on
uint8 frames the way the input pipeline delivers them, so normalization on the device and the
copy of the batch to the devices are included. The input pipeline is not: it runs in other
processes and has its own benchmark (benchmarks/input_pipeline.py).

- stage 1: the single-frame HRNet, every backbone parameter trained; seconds per crop.
- stage 2: the warping head on the frozen stage-1 network (backbone BatchNorm as configured by
  config.stage2.backbone_bn); seconds per pair (two crops through the backbone, the head trained).

For each it prints the median step time after warm-up, samples per second over all devices,
the compile time, the peak device memory where the backend reports it, and the time of one
epoch of PoseTrack18 train at that rate (--epoch_pairs: the number of labeled people with
keypoints in the train split, one pair each per epoch). When torch and torchvision import, the
PyTorch reference of the release's architecture (benchmarks/torch_reference.py) runs the same
step on the same batch in the same process, and the ratio PyTorch / ours is printed (above 1:
we are faster).

    python benchmarks/train_step.py                                    # W48 384x288, batch 2
    python benchmarks/train_step.py --config=configs/posewarper.py:synthetic --per_device_batch=16
    python benchmarks/train_step.py --per_device_batch=8 --stages=2   # on a GPU
    python benchmarks/train_step.py --config.train.parallel=jit        # the jit + sharding step
    python benchmarks/train_step.py --parallel=pmap,jit               # both, in the same run
"""

from __future__ import annotations

import contextlib
import os
import time

import common  # first: puts the project on sys.path
import jax
import jax.numpy as jnp
import numpy as np
import torch_reference
from absl import app, flags
from common import median_ms
from ml_collections import config_flags

from posewarper_jax import parallel, train
from posewarper_jax.data import transforms
from posewarper_jax.models import create_model, init_variables, num_params
from posewarper_jax.ops import backend
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(common.ROOT, 'configs', 'posewarper.py'), 'experiment config')
_STAGES = flags.DEFINE_list('stages', ['1', '2'], 'stages to time')
_PER_DEVICE = flags.DEFINE_integer('per_device_batch', 2, 'crops (stage 1) or pairs (stage 2) '
                                   'per device and step')
_WARMUP = flags.DEFINE_integer('warmup', 1, 'untimed steps after the compiling one')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'timed steps (the median is printed)')
# PoseTrack18 train: 593 videos x 30 labeled frames = 17,790 labeled frames (spec 4). The number
# of people per labeled frame is not in the spec or the sample; the builder counts them when it
# prepares the real data. 5 per frame is an assumption, stated with every estimate.
_PLAIN = flags.DEFINE_boolean('plain', False, 'also time the step without the speed rewrites '
                              '(common.plain_formulation), in the same run')
_DEFAULT_OPTIONS = flags.DEFINE_boolean(
    'default_options', False, 'also time the step compiled with XLA:CPU\'s default options '
    '(no backend.CPU_COMPILER_OPTIONS: YNNPACK\'s convolutions), in the same run')
_KERNEL_GRADIENTS = flags.DEFINE_list(
    'kernel_gradients', [], 'also time the step with every stride-1 convolution\'s kernel '
    'gradient in these ops/conv.py formulations (common.kernel_gradients_everywhere), in the '
    'same run: taps, rows; FORM:default compiles that variant with XLA\'s default options')
_NO_TORCH = flags.DEFINE_boolean('no_torch', False, 'skip the PyTorch reference')
_PARALLEL = flags.DEFINE_list('parallel', [], 'time the step under each of these layouts '
                              '(config.train.parallel: pmap, jit), one after the other in the '
                              'same run; default: the config\'s')
_EPOCH_PAIRS = flags.DEFINE_integer('epoch_pairs', 17_790 * 5, 'labeled people per epoch of '
                                    'PoseTrack18 train (default: 17,790 frames x 5, assumed)')


def _batch(config, stage: int, devices: int, per_device: int) -> dict[str, np.ndarray]:
  """Random uint8 frames and targets shaped [devices, per_device, ...], host arrays as the
  pipeline delivers them (the copy to the devices is part of the timed step, as in training)."""
  h, w = config.image_size
  joints = NUM_JOINTS
  rng = np.random.default_rng(0)
  shape = (devices, per_device)
  frames_a = rng.integers(0, 256, (*shape, h, w, 3), dtype=np.uint8)
  batch = {
      'frames_a': frames_a,
      'targets': rng.uniform(size=(*shape, h // 4, w // 4, joints)).astype(np.float32),
      'target_weights': np.ones((*shape, joints), np.float32),
  }
  if stage == 2:
    # B close to A, as neighbouring frames are.
    noise = rng.integers(-8, 9, frames_a.shape)
    batch['frames_b'] = np.clip(frames_a.astype(np.int16) + noise, 0, 255).astype(np.uint8)
  return batch


def _peak_memory_gib() -> float | None:
  stats = jax.local_devices()[0].memory_stats()
  if not stats or 'peak_bytes_in_use' not in stats:
    return None
  return stats['peak_bytes_in_use'] / 2**30


def time_reference(reference, batch, stage: int, warmup: int = 1, repeats: int = 5,
                   autocast: bool = False) -> float:
  """Median seconds of the PyTorch reference's step on the same batch (all devices' samples);
  autocast: its forward and loss under torch.autocast in bfloat16."""
  flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in batch.items()}
  a = np.asarray(transforms.normalize(flat['frames_a']))
  b = np.asarray(transforms.normalize(flat['frames_b'])) if stage == 2 else a
  run = torch_reference.cases(reference, a, b, flat['targets'],
                              autocast=autocast)[f'stage-{stage} step']
  return median_ms(run, warmup, repeats) / 1e3


def step_flops(compiled) -> float | None:
  """XLA's count of floating-point operations of one compiled step on one device, or None where
  the backend gives no cost analysis."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older JAX: one dict per program
    analysis = analysis[0] if analysis else None
  flops = (analysis or {}).get('flops')
  return float(flops) if flops is not None and flops > 0 else None


def compile_step(config, stage: int, per_device: int, variables=None):
  """(compiled step, its state, a random batch [devices, per_device, ...] as the pipeline gives
  it, compile seconds): run.py's training step of `stage`, mapped as config.train.parallel
  says, compiled ahead of time for this backend; the compiled step takes
  parallel.Layout.of_config(config).batch(batch). variables: the model's initial variables
  (default: init_variables, tens of seconds for W48)."""
  settings = config[f'stage{stage}']
  model = create_model(config, bn_axis_name=train.AXIS)
  tx, _ = train.make_optimizer(settings, config.train, steps_per_epoch=1000)
  if variables is None:
    variables = init_variables(model, config.seed, tuple(config.image_size))
  layout = parallel.Layout.of_config(config)
  state = layout.state(train.create_train_state(model, variables, tx, stage, config.seed))
  step = train.make_train_step(stage, config.stage2.backbone_bn,
                               jnp.dtype(config.model.dtype), layout)
  batch = _batch(config, stage, jax.local_device_count(), per_device)
  start = time.perf_counter()
  # As run.py's step compiles (backend.jit): with the CPU's compiler options.
  compiled = step.lower(state, layout.batch(batch)).compile(
      compiler_options=backend.compiler_options() or None)
  return compiled, state, batch, time.perf_counter() - start


def time_stage(config, stage: int, per_device: int, reference=None, warmup: int | None = None,
               repeats: int | None = None, census: bool = False,
               variables=None) -> dict[str, float]:
  """Times run.py's training step of `stage` on random data: median step seconds after warm-up,
  samples per second, compile seconds, peak device memory, XLA's flops per step (per device),
  and the PyTorch reference's step on the same batch when given. warmup / repeats default to
  the command line's; census: also the compiled step's op counts ('hlo_ops', common.hlo_census);
  variables: as compile_step's.
  """
  warmup = _WARMUP.value if warmup is None else warmup
  repeats = _REPEATS.value if repeats is None else repeats
  # Ahead of time: the cost analysis and the timed runs share one compile.
  compiled, state, batch, compile_s = compile_step(config, stage, per_device, variables)
  place = parallel.Layout.of_config(config).batch
  devices = jax.local_device_count()
  flops = step_flops(compiled)
  ops = common.hlo_census(compiled.as_text()) if census else None
  holder = [state]

  def run():
    holder[0], metrics = compiled(holder[0], place(batch))
    jax.block_until_ready(metrics)

  step_ms = median_ms(run, warmup, repeats)
  samples = devices * per_device
  torch_s = (time_reference(reference, batch, stage, warmup, repeats)
             if reference is not None else None)
  return {'torch_step_s': torch_s, 'step_s': step_ms / 1e3, 'per_sample_s': step_ms / 1e3 / samples,
          'samples_per_s': samples / (step_ms / 1e3), 'compile_s': compile_s,
          'flops_per_device': flops, 'peak_gib': _peak_memory_gib(), 'samples': samples,
          'trained': num_params(state.params[train.TRAINABLE[stage]]),
          **({'hlo_ops': ops} if census else {})}


def main(argv):
  del argv
  config = _CONFIG.value
  per_device = _PER_DEVICE.value
  model_cfg = config.model
  h, w = config.image_size
  print(f'# PoseWarper training step: backbone {model_cfg.backbone.to_dict()}, head '
        f'{model_cfg.head.to_dict()}, {model_cfg.dtype}, remat {model_cfg.head.get("remat")}')
  print(f'# {h}x{w} crops, {jax.local_device_count()} device(s) x {per_device} per device, '
        f'the step under {config.train.parallel}; stage-2 backbone BatchNorm '
        f'{config.stage2.backbone_bn!r}')
  print(f'# {common.machine_line()}')
  print(f'# medians of {_REPEATS.value} steps after {_WARMUP.value} warm-up (and the compiling '
        'step); per sample = per crop (stage 1) or per pair (stage 2)')
  print(f'# epoch estimate: {_EPOCH_PAIRS.value:,} samples per epoch (--epoch_pairs)')
  ref = None
  if not _NO_TORCH.value:
    ref = torch_reference.build(config, device=torch_reference.default_device())
  if ref is None:
    print('# reference: torch not importable (or --no_torch), no ratios')
  else:
    import torch
    where = next(ref[0].parameters()).device
    print(f'# reference: PyTorch {torch.__version__} on {where} ({torch.get_num_threads()} CPU '
          'threads), benchmarks/torch_reference.py, same batch, float32')
  print()
  print('| stage | trained params | batch | step s | s per sample | samples/s | compile s '
        '| peak GiB | epoch h | PyTorch s per sample | PyTorch / ours |')
  print('|---|---|---|---|---|---|---|---|---|---|---|')
  layouts = _PARALLEL.value or [config.train.parallel]
  variants = ([''] + ['plain'] * _PLAIN.value + ['default options'] * _DEFAULT_OPTIONS.value
              + [f'kernel gradient {form}' for form in _KERNEL_GRADIENTS.value])
  runs = [(stage, variant, layout) for stage in map(int, _STAGES.value) for variant in variants
          for layout in layouts]
  for stage, variant, layout in runs:
    run_config = config.copy_and_resolve_references()
    run_config.train.parallel = layout
    with contextlib.ExitStack() as stack:
      if variant == 'plain':
        stack.enter_context(common.plain_formulation())
      if variant == 'default options' or variant.endswith(':default'):
        stack.enter_context(common.default_compiler_options())
      if variant.startswith('kernel gradient '):
        form = variant.removeprefix('kernel gradient ').removesuffix(':default')
        stack.enter_context(common.kernel_gradients_everywhere(form))
      r = time_stage(run_config, stage, per_device, ref[0] if ref is not None else None)
    peak = f'{r["peak_gib"]:.2f}' if r['peak_gib'] is not None else 'n/a'
    epoch_h = _EPOCH_PAIRS.value * r['per_sample_s'] / 3600
    theirs = ['n/a', 'n/a']
    if r['torch_step_s'] is not None:
      ratio = r['torch_step_s'] / r['step_s']
      theirs = [f'{r["torch_step_s"] / r["samples"]:.4f}', f'{ratio:.2f}x']
    label = (f'{stage}{f" ({variant})" if variant else ""}'
             f'{f" ({layout})" if len(layouts) > 1 else ""}')
    print(f'| {label} | {r["trained"]:,} | {r["samples"]} | {r["step_s"]:.3f} | '
          f'{r["per_sample_s"]:.4f} | {r["samples_per_s"]:.2f} | {r["compile_s"]:.1f} | {peak} '
          f'| {epoch_h:.2f} | {theirs[0]} | {theirs[1]} |', flush=True)


if __name__ == '__main__':
  app.run(main)
