r"""The project's steps compiled for accelerators this machine does not have, with what each
compile tells: memory per chip, FLOPs and bytes, the roofline bound, the gradient all-reduces.

    .venv-accel/bin/python -m posewarper_jax.aot                       # every default target
    .venv-accel/bin/python -m posewarper_jax.aot --targets=v5e-8 --dtypes=bfloat16 \
        --programs=stage2 --config.model.backbone.remat=True --out=v5e.json

(`bash scripts/venv.sh requirements-accel.lock .venv-accel` installs libtpu and the CUDA plugin
it compiles with.) The programs are the ones training and inference run, built over the
target's compile-only devices (accelerators.py):

- 'stage1', 'stage2': train.make_train_step, under the jit layout (parallel.Layout over a Mesh
  of the target's devices, the batch sharded, the state replicated), with the release's
  per-device batch: config.stageN.global_batch over the release's 8 GPUs (16 crops, 8 pairs).
- 'aggregation', 'propagation': predictor.heatmap_functions as the Predictor jits them, on one
  device of the target, config.eval.batch crops (aggregation: 5 frames each).
- 'deform': the deformable convolutions alone (the warping head's 5, forward and gradients
  as stage 2 trains them) and the whole warping head's training forward and backward, on one
  chip with stage 2's per-device batch: how much of the head the gather formulation is.

Per compile: memory_analysis (arguments, outputs, temporaries, the peak against the chip's HBM);
cost_analysis's FLOPs and bytes (on a TPU; XLA's GPU compiler gives none, so a GPU target's
counts are those of the same program compiled for this machine's CPU, labelled so); the
roofline bound max(FLOPs / peak, bytes / bandwidth) and the samples per second per chip it
implies (a bound, never a measured speed); the collectives in the compiled program (count,
bytes); the compile time here. With --fit, a training step that does not fit its chip is
compiled again with smaller per-device batches (the largest that fits) and with the backbone
rematerialized (config.model.backbone.remat) at the release's batch.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec, SingleDeviceSharding

from posewarper_jax import accelerators, parallel, predictor, train
from posewarper_jax.data import codec
from posewarper_jax.models import AGGREGATION_DELTAS, DTYPES, create_model, init_variables
from posewarper_jax.models.layers import DeformConv, identity_kernel_init
from posewarper_jax.models.posewarper import DEFORM_KERNEL
from posewarper_jax.ops import backend
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS

TRAIN_PROGRAMS = ('stage1', 'stage2')
PROGRAMS = (*TRAIN_PROGRAMS, 'aggregation', 'propagation', 'deform')
# The release trained both stages on 8 GPUs (spec 2.1): config.stageN.global_batch over these
# is its per-device batch (16 crops in stage 1, 8 pairs in stage 2).
RELEASE_GPUS = 8
# Synchronous collectives, and the ends of asynchronous ones (a start's result also holds its
# operands; the done's is the collective's result).
_COLLECTIVES = ('all-reduce', 'all-reduce-done', 'reduce-scatter', 'all-gather',
                'all-gather-done', 'all-to-all', 'collective-permute', 'collective-permute-done')
_DTYPE_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 'bf16': 2, 'f16': 2, 's16': 2, 'u16': 2, 'f32': 4,
                's32': 4, 'u32': 4, 'f64': 8, 's64': 8, 'u64': 8}


@dataclasses.dataclass(frozen=True)
class Program:
  """A function and its abstract arguments (ShapeDtypeStructs placed on the target's devices),
  ready to lower: `fn` is jitted."""

  name: str
  fn: Callable
  args: tuple
  per_device: int       # samples per device (crops, pairs)
  unit: str


def release_per_device(config, stage: int) -> int:
  """The release's per-device batch of a stage (RELEASE_GPUS)."""
  return config[f'stage{stage}'].global_batch // RELEASE_GPUS


def _placed(tree: Any, sharding) -> Any:
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), tree)


def training_batch(config, stage: int, size: int) -> dict[str, jax.ShapeDtypeStruct]:
  """The fields train_step reads of a batch of `size`, as the input pipeline gives them: uint8
  crops [size, H, W, 3] (frames_a; and frames_b in stage 2), float32 targets [size, h, w, J]
  and target_weights [size, J]."""
  height, width = config.image_size
  h, w = codec.heatmap_size((width, height))[::-1]
  frames = jax.ShapeDtypeStruct((size, height, width, 3), jnp.uint8)
  batch = {'frames_a': frames, 'targets': jax.ShapeDtypeStruct((size, h, w, NUM_JOINTS),
                                                               jnp.float32),
           'target_weights': jax.ShapeDtypeStruct((size, NUM_JOINTS), jnp.float32)}
  if stage == 2:
    batch['frames_b'] = frames
  return batch


def abstract_train_state(config, stage: int) -> train.TrainState:
  """The state a stage trains, as ShapeDtypeStructs (nothing initialized)."""
  model = create_model(config, bn_axis_name=train.AXIS)
  tx, _ = train.make_optimizer(config[f'stage{stage}'], config.train, steps_per_epoch=1000)
  return train.abstract_train_state(model, tx, config, stage)


def train_program(config, stage: int, devices: Sequence, per_device: int) -> Program:
  """The stage's step as training runs it (train.make_train_step) under the jit layout over
  `devices`, with `per_device` samples per device."""
  layout = parallel.Layout.over(devices)
  step = train.make_train_step(stage, config.stage2.backbone_bn if stage == 2 else 'frozen',
                               DTYPES[config.model.dtype], layout)
  replicated = NamedSharding(layout.mesh, PartitionSpec())
  split = NamedSharding(layout.mesh, PartitionSpec(parallel.AXIS))
  state = _placed(abstract_train_state(config, stage), replicated)
  batch = _placed(training_batch(config, stage, per_device * len(devices)), split)
  return Program(f'stage{stage}', step, (state, batch), per_device,
                 'crops' if stage == 1 else 'pairs')


def _abstract_variables(config) -> dict[str, Any]:
  model = create_model(config)
  return jax.eval_shape(lambda: init_variables(model, config.seed, tuple(config.image_size)))


def inference_program(config, row: str, device, per_device: int) -> Program:
  """'aggregation' or 'propagation' (predictor.heatmap_functions, as eval, propagation and
  augmentation run them: jitted on one device) on `device`, `per_device` crops."""
  on_device = SingleDeviceSharding(device)
  fn = predictor.heatmap_functions(create_model(config))[row]
  variables = _placed(_abstract_variables(config), on_device)
  height, width = config.image_size
  h, w = codec.heatmap_size((width, height))[::-1]
  if row == 'aggregation':
    frames = (jax.ShapeDtypeStruct((per_device, len(AGGREGATION_DELTAS), height, width, 3),
                                   jnp.uint8),)
    unit = f'crops x {len(AGGREGATION_DELTAS)} frames'
  else:
    crops = jax.ShapeDtypeStruct((per_device, height, width, 3), jnp.uint8)
    frames = (crops, crops, jax.ShapeDtypeStruct((per_device, h, w, NUM_JOINTS), jnp.float32))
    unit = 'crop pairs'
  return Program(row, jax.jit(fn), (variables, *_placed(frames, on_device)), per_device, unit)


def head_programs(config, device, per_device: int) -> tuple[Program, Program]:
  """On one device, for stage 2's per-device batch: ('warping head': the head's training
  forward and backward, gradients of its parameters, as stage 2 runs it; 'deformable
  convolutions': its deformable convolutions alone, forward and the gradients of their offsets
  and kernels)."""
  model = create_model(config)
  dtype = DTYPES[config.model.dtype]
  head = model.warper
  height, width = config.image_size
  h, w = codec.heatmap_size((width, height))[::-1]
  on_device = SingleDeviceSharding(device)
  maps = jax.ShapeDtypeStruct((per_device, h, w, NUM_JOINTS), jnp.float32, sharding=on_device)
  head_variables = _placed(_abstract_variables(config), on_device)
  head_variables = {c: head_variables[c]['warper'] for c in ('params', 'batch_stats')}

  def head_step(variables, h_a, h_b, targets):
    def loss(params):
      out, _ = head.apply({**variables, 'params': params}, h_a - h_b, h_b, train=True,
                          mutable=['batch_stats'])
      return jnp.mean(jnp.square(out.astype(jnp.float32) - targets))
    return jax.grad(loss)(variables['params'])

  channels = 2 * NUM_JOINTS * DEFORM_KERNEL ** 2
  offsets = jax.ShapeDtypeStruct((per_device, h, w, channels), dtype, sharding=on_device)
  convs = [DeformConv(NUM_JOINTS, (DEFORM_KERNEL, DEFORM_KERNEL), padding=r, dilation=r,
                      kernel_init=identity_kernel_init, dtype=dtype)
           for r in head.dilations]
  kernels = _placed([jax.eval_shape(c.init, jax.random.key(0), maps, offsets) for c in convs],
                    on_device)

  def deform_step(kernels, heatmaps, offsets, cotangent):
    def total(kernels, offsets):
      return sum(jnp.vdot(c.apply(k, heatmaps, offsets).astype(jnp.float32), cotangent)
                 for c, k in zip(convs, kernels, strict=True))
    return jax.grad(total, argnums=(0, 1))(kernels, offsets)

  return (Program('warping head', jax.jit(head_step), (head_variables, maps, maps, maps),
                  per_device, 'pairs'),
          Program('deformable convolutions', jax.jit(deform_step),
                  (kernels, maps, offsets, maps), per_device, 'pairs'))


def collectives(hlo_text: str) -> dict[str, dict[str, int]]:
  """Collective kind -> {'count', 'bytes' (of their results)} in an optimized HLO module."""
  found: dict[str, dict[str, int]] = {}
  for line in hlo_text.splitlines():
    match = re.match(r'\s*(?:ROOT\s+)?%?[\w.\-]+ = (.+?) ([a-z][a-z\-]*)\(', line)
    if not match or match.group(2) not in _COLLECTIVES:
      continue
    kind = match.group(2).removesuffix('-done')
    size = sum(_DTYPE_BYTES.get(t, 4) * int(np.prod([int(d) for d in dims.split(',') if d]))
               for t, dims in re.findall(r'\b([a-z]+\d*)\[([\d,]*)\]', match.group(1)))
    entry = found.setdefault(kind, {'count': 0, 'bytes': 0})
    entry['count'] += 1
    entry['bytes'] += size
  return found


def _costs(compiled) -> tuple[float, float] | None:
  costs = compiled.cost_analysis()
  if not costs:
    return None
  if isinstance(costs, (list, tuple)):
    costs = costs[0]
  return float(costs.get('flops', 0.0)), float(costs.get('bytes accessed', 0.0))


def _peak_memory(memory) -> int:
  peak = int(getattr(memory, 'peak_memory_in_bytes', 0) or 0)
  if peak:
    return peak
  return (memory.argument_size_in_bytes + memory.output_size_in_bytes
          - memory.alias_size_in_bytes + memory.temp_size_in_bytes)


def compile_program(program: Program, platform: str):
  """(compiled, seconds): `program` lowered and compiled, its formulations those of
  `platform` (ops.backend)."""
  start = time.perf_counter()
  with backend.compiling_for(platform):
    compiled = program.fn.lower(*program.args).compile()
  return compiled, time.perf_counter() - start


def analyse(program: Program, compiled, seconds: float, target: accelerators.Target,
            dtype: str, costs_from: tuple[float, float, str] | None = None) -> dict[str, Any]:
  """What a compile tells (module docstring), as a JSON-able dict. costs_from: (FLOPs, bytes,
  where they were counted) of the same program compiled elsewhere, for a backend whose
  compiler gives none."""
  chip = target.chip
  memory = compiled.memory_analysis()
  peak = _peak_memory(memory)
  costs = _costs(compiled)
  source = chip.platform
  if costs is None and costs_from is not None:
    *costs, source = costs_from
  row = {'target': target.name, 'chip': chip.name, 'program': program.name, 'dtype': dtype,
         'per_device': program.per_device, 'unit': program.unit,
         'memory': {'arguments': memory.argument_size_in_bytes,
                    'outputs': memory.output_size_in_bytes,
                    'aliased': memory.alias_size_in_bytes,
                    'temporaries': memory.temp_size_in_bytes, 'peak': peak,
                    'hbm': chip.hbm_bytes, 'fits': peak <= chip.hbm_bytes},
         'collectives': collectives(compiled.as_text()), 'compile_seconds': round(seconds, 1)}
  if costs is not None:
    flops, accessed = costs
    compute_s, memory_s = flops / chip.peak_flops(dtype), accessed / chip.hbm_bandwidth
    bound = max(compute_s, memory_s)
    row['cost'] = {'flops': flops, 'bytes': accessed, 'counted_on': source,
                   'compute_bound_s': compute_s, 'memory_bound_s': memory_s,
                   'bound_s': bound, 'bound': 'compute' if compute_s >= memory_s else 'memory',
                   'samples_per_s_per_chip_at_most': program.per_device / bound if bound else None}
  return row


def _cpu_costs(make: Callable[[Sequence], Program], platform: str
               ) -> tuple[float, float, str] | None:
  """The FLOPs and bytes of the same program compiled for this machine's CPU (one device,
  `platform`'s formulations): the counts of a target whose compiler gives none."""
  compiled, _ = compile_program(make(jax.devices('cpu')[:1]), platform)
  costs = _costs(compiled)
  return (*costs, 'cpu') if costs else None


def _key(row: dict[str, Any]) -> tuple:
  """What makes a row the same compile: target, program, dtype, per-device batch, variant."""
  return (row['target'], row['program'], row['dtype'], row['per_device'],
          row.get('variant', ''))


def _log(row: dict[str, Any]) -> None:
  memory, cost = row['memory'], row.get('cost')
  fits = 'fits' if memory['fits'] else 'DOES NOT FIT'
  line = (f'{row["target"]:8s} {row["program"]:24s} {row["dtype"]:8s} {row["per_device"]:3d} '
          f'{row.get("variant", ""):14s} peak {memory["peak"] / accelerators.GIB:6.2f} GiB of '
          f'{memory["hbm"] / accelerators.GIB:.0f} ({fits})')
  if cost:
    line += (f', {cost["flops"] / 1e9:.1f} GFLOP, {cost["bytes"] / 1e9:.2f} GB, bound '
             f'{cost["bound_s"] * 1e3:.2f} ms ({cost["bound"]})')
  print(line + f', compiled in {row["compile_seconds"]} s', flush=True)


def compile_target(config, target: accelerators.Target, programs: Sequence[str],
                   fit: bool = False, done: Sequence[dict[str, Any]] = (),
                   on_row: Callable[[dict[str, Any]], None] = lambda row: None
                   ) -> list[dict[str, Any]]:
  """Every program of `programs` (PROGRAMS) compiled for `target` with config.model.dtype; a
  row (analyse) per compile, printed and passed to `on_row` as it comes. done: rows compiled
  before (a run that stopped): their programs are not compiled again."""
  finished = {_key(r): r for r in done}
  devices = accelerators.compile_only_devices(target)
  platform = target.chip.platform
  dtype = config.model.dtype
  rows = []

  # A config that rematerializes the backbone is a variant of the release's step.
  as_configured = 'backbone remat' if config.model.backbone.remat else ''

  def run(make: Callable[[Sequence], Program], variant: str = as_configured) -> dict[str, Any]:
    program = make(devices)
    before = finished.get((target.name, program.name, dtype, program.per_device, variant))
    if before:
      print(f'{target.name:8s} {program.name:24s} {dtype:8s} {program.per_device:3d} '
            f'{variant:14s} compiled before', flush=True)
      return before
    compiled, seconds = compile_program(program, platform)
    counted = _cpu_costs(make, platform) if platform == 'gpu' else None
    row = analyse(program, compiled, seconds, target, dtype, counted)
    if variant:
      row['variant'] = variant
    _log(row)
    rows.append(row)
    on_row(row)
    return row

  for name in programs:
    if name in TRAIN_PROGRAMS:
      stage = int(name[-1])
      per_device = release_per_device(config, stage)
      row = run(lambda d, s=stage, n=per_device: train_program(config, s, d, n))
      if fit and not row['memory']['fits']:
        _fit(config, stage, per_device, run)
    elif name in ('aggregation', 'propagation'):
      run(lambda d, r=name: inference_program(config, r, d[0], int(config.eval.batch)))
    elif name == 'deform':
      per_device = release_per_device(config, 2)
      for index in range(2):
        run(lambda d, i=index, n=per_device: head_programs(config, d[0], n)[i])
    else:
      raise ValueError(f'no program {name!r}; the programs are {", ".join(PROGRAMS)}')
  return rows


def _fit(config, stage: int, per_device: int, run: Callable) -> None:
  """What brings a training step that does not fit into the chip: the largest smaller
  per-device batch (halving) and the release's batch with the backbone rematerialized."""
  smaller = per_device // 2
  while smaller >= 1:
    row = run(lambda d, n=smaller: train_program(config, stage, d, n), 'smaller batch')
    if row['memory']['fits']:
      break
    smaller //= 2
  if not config.model.backbone.remat:
    remat = config.copy_and_resolve_references()
    remat.model.backbone.remat = True
    run(lambda d: train_program(remat, stage, d, per_device), 'backbone remat')


def _gib(n: float) -> str:
  return f'{n / accelerators.GIB:.2f}'


def _rate(x: float) -> str:
  return f'{x:,.0f}' if x >= 100 else f'{x:.3g}'


def tables(rows: Sequence[dict[str, Any]]) -> str:
  """The rows as two markdown tables: every program per target, then the deformable
  convolutions against the whole warping head."""
  out = ['| target | program | dtype | per device | variant | peak GiB (HBM) | temporaries GiB '
         '| GFLOP | GB accessed | counted on | bound ms | at most / s / chip | collectives '
         '(MB) | compile s |', '|' + '---|' * 14]
  for r in rows:
    m, c = r['memory'], r.get('cost')
    collectives = '; '.join(f'{k} {v["count"]} ({v["bytes"] / 1e6:.1f})'
                            for k, v in r['collectives'].items())
    out.append(
        f'| {r["target"]} | {r["program"]} | {r["dtype"]} | {r["per_device"]} {r["unit"]} | '
        f'{r.get("variant", "")} | {_gib(m["peak"])} ({m["hbm"] / accelerators.GIB:.0f})'
        f'{"" if m["fits"] else " **does not fit**"} | {_gib(m["temporaries"])} | '
        + (f'{c["flops"] / 1e9:.1f} | {c["bytes"] / 1e9:.2f} | {c["counted_on"]} | '
           f'{c["bound_s"] * 1e3:.2f} ({c["bound"]}) | '
           f'{_rate(c["samples_per_s_per_chip_at_most"])} | ' if c else '| | | | | ')
        + f'{collectives} | {r["compile_seconds"]} |')
  head = {(r['target'], r['dtype']): r for r in rows if r['program'] == 'warping head'}
  deform = [r for r in rows if r['program'] == 'deformable convolutions']
  if deform:
    out += ['', '| target | dtype | deformable convs: GFLOP, GB | whole head: GFLOP, GB | '
            'share of the head: FLOPs, bytes | bound ms: deformable, head |', '|' + '---|' * 6]
    for r in deform:
      h = head.get((r['target'], r['dtype']))
      if not h or 'cost' not in r or 'cost' not in h:
        continue
      d, w = r['cost'], h['cost']
      out.append(f'| {r["target"]} | {r["dtype"]} | {d["flops"] / 1e9:.2f}, '
                 f'{d["bytes"] / 1e9:.2f} | {w["flops"] / 1e9:.2f}, {w["bytes"] / 1e9:.2f} | '
                 f'{d["flops"] / w["flops"]:.0%}, {d["bytes"] / w["bytes"]:.0%} | '
                 f'{d["bound_s"] * 1e3:.2f}, {w["bound_s"] * 1e3:.2f} |')
  return '\n'.join(out)


def versions() -> dict[str, str]:
  """The packages a table was made with."""
  from importlib import metadata  # noqa: PLC0415

  out = {}
  for name in ('jax', 'jaxlib', 'libtpu', 'jax-cuda12-plugin', 'nvidia-cuda-nvcc-cu12', 'flax'):
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      out[name] = 'not installed'
  return out


def _run(flags) -> None:
  if flags.tables:
    rows = [r for path in flags.tables for r in json.loads(pathlib.Path(path).read_text())['rows']]
    print(tables(rows))
    return
  config = flags.config
  try:
    targets = [accelerators.target(t) for t in flags.targets]
  except ValueError as e:
    raise SystemExit(f'--targets: {e}') from None
  unknown = sorted(set(flags.programs) - set(PROGRAMS))
  if unknown:
    raise SystemExit(f'--programs: no program {", ".join(unknown)}; the programs are '
                     f'{", ".join(PROGRAMS)}')
  bad = sorted(set(flags.dtypes) - set(DTYPES))
  if bad:
    raise SystemExit(f'--dtypes: {", ".join(bad)}; the dtypes are {", ".join(DTYPES)}')
  out = pathlib.Path(flags.out).resolve() if flags.out else None
  # A run that stopped resumes: the rows already in --out are kept and not compiled again.
  saved = json.loads(out.read_text()) if out and out.exists() else {'rows': [], 'commands': []}
  saved['commands'].append(' '.join(['python -m posewarper_jax.aot', *sys.argv[1:]]))
  rows = []

  def keep(row: dict[str, Any]) -> None:
    saved['rows'].append(row)
    if out:  # after every compile: a long run that stops keeps what it compiled
      out.parent.mkdir(parents=True, exist_ok=True)
      saved.update(date=time.strftime('%Y-%m-%d'), versions=versions())
      out.write_text(json.dumps(saved, indent=1) + '\n')

  for target in targets:
    for dtype in flags.dtypes:
      run_config = config.copy_and_resolve_references()
      run_config.model.dtype = dtype
      try:
        rows += compile_target(run_config, target, flags.programs, fit=flags.fit,
                               done=list(saved['rows']), on_row=keep)
      except accelerators.MissingBackendError as e:
        raise SystemExit(str(e)) from None
  print(tables(saved['rows'] if out else rows))
  if out:
    print(f'wrote {out}')


def _define_flags():
  from absl import flags  # noqa: PLC0415 (flags only for the command, not for importers)
  from ml_collections import config_flags  # noqa: PLC0415

  config_flags.DEFINE_config_file('config', 'configs/posewarper.py',
                                  'The experiment (configs/posewarper.py and overrides).')
  flags.DEFINE_list('targets', list(accelerators.DEFAULT_TARGETS),
                    f'Targets: {", ".join(accelerators.TARGETS)}.')
  flags.DEFINE_list('dtypes', list(DTYPES), 'config.model.dtype values to compile.')
  flags.DEFINE_list('programs', list(PROGRAMS), f'Programs: {", ".join(PROGRAMS)}.')
  flags.DEFINE_bool('fit', True, 'A training step that does not fit its chip: compile smaller '
                    'batches and the backbone rematerialized too.')
  flags.DEFINE_string('out', '', 'Write the rows as JSON here.')
  flags.DEFINE_list('tables', [], 'Compile nothing: print the tables of these --out files.')
  return flags.FLAGS


def main() -> None:
  accelerators.set_compile_only_environment()
  from absl import app  # noqa: PLC0415

  flags = _define_flags()
  app.run(lambda argv: _run(flags))


if __name__ == '__main__':
  main()
