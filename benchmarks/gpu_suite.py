"""The GPU suite (issue 20): every speed the project promises, measured in one command.

    bash benchmarks/gpu_suite.sh OUT              # on a GPU machine: .whl/'s wheels, then this
    python benchmarks/gpu_suite.py --out OUT --tiny   # the dry run on a CPU, tiny shapes

Parts, each in its own process under its own time limit (one slow part cannot eat the rest; a
killed part is recorded as such), in this order:

- deform: the deformable convolution at PoseWarper's shape (8 x 96 x 72 x 17, 17 offset groups,
  dilations 3..24), forward and forward+backward, ours and torchvision's on the same device;
- stage2_float32, stage2_bfloat16: the W48 stage-2 training step (run.py's pmap'd step) at 8
  pairs, config.model.dtype float32 (XLA's default precision: TF32 on the GPU's matrix units)
  and bfloat16; stage1_float32: the W48 stage-1 step at 16 crops;
- torch: the release's architecture in PyTorch (benchmarks/torch_reference.py, torchvision's
  CUDA deformable convolution) on the same GPU, same shapes and batches: the stage-2 step in
  float32 and under autocast bfloat16, the stage-1 step in float32;
- stage2_jit: the float32 stage-2 step with config.train.parallel='jit' (jax.jit over a Mesh,
  the batch sharded by NamedSharding), against stage2_float32's pmap;
- input: the training input pipeline (384x288 crops of 1920x1080 JPEGs) with 14 Grain workers,
  against the stage-2 step's consumption measured above.

Per step: the median time after warm-up, pairs (or crops) per second, compile time (ahead of
time, autotuning included), peak device memory, XLA's flops per step (its cost analysis of the
compiled step) and the model FLOP utilization against the chip's peak for the dtype
(PEAK_TFLOPS: datasheet numbers, leads, not measured here); and the compiled step's HLO op
census (`hlo_ops`: how many convolutions, gathers, scatters, transposes, ...: what would lower
to dynamic gathers and scatters on a TPU). Everything goes to OUT/results.json and
OUT/results.md, rewritten after each part; XLA's compilation cache and autotuning results are
kept in OUT/xla_cache for the parts of the run. --tiny: a CPU-sized network and shapes, to check
the suite end to end (its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

# Dense peak rates in TFLOP/s by device kind (vendor datasheets: leads, not measurements).
# float32 steps run on the matrix units in TF32 (XLA's default precision on the GPU), so they
# are held against the TF32 peak; 'float32 (no TF32)' is the vector units' rate.
PEAK_TFLOPS = {
    'H200': {'bfloat16': 989.0, 'float32': 494.0, 'float32 (no TF32)': 67.0},
    'H100': {'bfloat16': 989.0, 'float32': 494.0, 'float32 (no TF32)': 67.0},
    'A100': {'bfloat16': 312.0, 'float32': 156.0, 'float32 (no TF32)': 19.5},
}

# name -> seconds it may take (the GPU run; --tiny uses the same limits).
PARTS = {
    'deform': 60,
    'stage2_float32': 130,
    'stage2_bfloat16': 110,
    'stage1_float32': 100,
    'torch': 110,
    'stage2_jit': 80,
    'input': 70,
}
INPUT_WORKERS = 14


def _config(tiny: bool, dtype: str = 'float32'):
  """The paper's W48 config (or, tiny, a CPU-sized network), as the benchmarks load it."""
  import importlib.util

  spec = importlib.util.spec_from_file_location('posewarper_config',
                                                ROOT / 'configs' / 'posewarper.py')
  posewarper = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(posewarper)
  config = posewarper.get_config('small' if tiny else '')
  if tiny:
    config.image_size = (64, 48)
    config.model.backbone.update(width=8, stem_features=16, layer1_planes=8)
    config.model.head.update(num_blocks=2, features=16)
  config.model.dtype = dtype
  return config


def _batch_size(stage: int, tiny: bool) -> int:
  return (2 if tiny else 8) if stage == 2 else (4 if tiny else 16)


def _repeats(tiny: bool) -> tuple[int, int]:
  return (1, 3) if tiny else (3, 10)


def peak_tflops(device_kind: str, dtype: str) -> float | None:
  for name, peaks in PEAK_TFLOPS.items():
    if name in device_kind:
      return peaks.get(dtype)
  return None


# --- The parts (each runs in its own process) ---------------------------------------------------

def part_deform(tiny: bool) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np

  sys.path.insert(0, str(HERE))
  import deform_conv
  from common import median_ms

  n, h, w, c = (2, 16, 12, 17) if tiny else (8, 96, 72, 17)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(n, h, w, c)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 3, c, c)) * 0.1, jnp.float32)
  offsets = jnp.asarray(rng.normal(size=(n, h, w, 2 * c * 9)) * 4.0, jnp.float32)
  warmup, repeats = _repeats(tiny)
  device = 'cuda' if jax.default_backend() == 'gpu' else 'cpu'
  rows = []
  for dilation in (3, 6) if tiny else deform_conv.DILATIONS:
    ours = deform_conv.jax_cases(x, offsets, kernel, dilation)
    theirs = deform_conv.torch_cases(x, offsets, kernel, dilation, device)
    for name in ('fwd', 'fwd+bwd'):
      compiled, args = ours[name]
      ms = median_ms(lambda compiled=compiled, args=args:
                     jax.block_until_ready(compiled(*args)), warmup, repeats)
      row = {'dilation': dilation, 'computation': name, 'ours_ms': ms}
      if theirs:
        row['torchvision_ms'] = median_ms(theirs[name], warmup, repeats)
      rows.append(row)
  return {'shape': [n, h, w, c], 'rows': rows,
          'torchvision': bool(rows and 'torchvision_ms' in rows[0])}


def _initial_variables(config):
  """init_variables of the config's model, made once per run and kept in the run's cache
  (W48's initialization takes tens of seconds on the host, and every step part needs it)."""
  import pickle

  import jax
  import numpy as np

  from posewarper_jax import train
  from posewarper_jax.models import create_model, init_variables

  name = f'variables_w{config.model.backbone.width}_{config.image_size[0]}.pkl'
  path = pathlib.Path(os.environ['GPU_SUITE_CACHE']) / name
  if path.exists():
    return pickle.loads(path.read_bytes())
  model = create_model(config, bn_axis_name=train.AXIS)
  variables = init_variables(model, config.seed, tuple(config.image_size))
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix('.tmp')
  tmp.write_bytes(pickle.dumps(jax.tree.map(np.asarray, variables)))
  tmp.replace(path)
  return pickle.loads(path.read_bytes())


def _step_part(stage: int, dtype: str, tiny: bool, parallel: str = 'pmap') -> dict:
  import jax

  sys.path.insert(0, str(HERE))
  import train_step

  config = _config(tiny, dtype)
  config.train.parallel = parallel
  warmup, repeats = _repeats(tiny)
  result = train_step.time_stage(config, stage, _batch_size(stage, tiny), None, warmup, repeats,
                                 census=True, variables=_initial_variables(config))
  kind = jax.devices()[0].device_kind
  peak = peak_tflops(kind, dtype)
  flops = result['flops_per_device']
  result.update(stage=stage, dtype=dtype, parallel=parallel, device_kind=kind, peak_tflops=peak,
                mfu=(flops / result['step_s'] / (peak * 1e12)) if peak and flops else None)
  return result


def part_stage2_float32(tiny: bool) -> dict:
  return _step_part(2, 'float32', tiny)


def part_stage2_bfloat16(tiny: bool) -> dict:
  return _step_part(2, 'bfloat16', tiny)


def part_stage1_float32(tiny: bool) -> dict:
  return _step_part(1, 'float32', tiny)


def part_stage2_jit(tiny: bool) -> dict:
  return _step_part(2, 'float32', tiny, parallel='jit')


def part_census(tiny: bool) -> dict:
  """Not in the GPU run (its step parts carry their own census): the W48 steps compiled for
  this backend without running them, for a CPU: XLA's flops and bytes per step and the op
  census (which ops are gathers and scatters: what a TPU would run as dynamic ones)."""
  sys.path.insert(0, str(HERE))
  import common
  import train_step

  out = {}
  for stage in (2, 1):
    config = _config(tiny)
    compiled, _, _, compile_s = train_step.compile_step(
        config, stage, _batch_size(stage, tiny), _initial_variables(config))
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    out[f'stage{stage}'] = {
        'samples': _batch_size(stage, tiny), 'compile_s': compile_s,
        'flops': analysis.get('flops'), 'bytes_accessed': analysis.get('bytes accessed'),
        'hlo_ops': common.hlo_census(compiled.as_text())}
  return out


def part_torch(tiny: bool) -> dict:
  import jax

  sys.path.insert(0, str(HERE))
  import torch_reference
  import train_step

  config = _config(tiny)
  reference = torch_reference.build(config, device=torch_reference.default_device())
  if reference is None:
    return {'skipped': 'torch or torchvision does not import'}
  import torch

  warmup, repeats = _repeats(tiny)
  rows = []
  for stage, autocast in ((2, False), (2, True), (1, False)):
    batch = train_step._batch(config, stage, 1, _batch_size(stage, tiny))
    torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
    seconds = train_step.time_reference(reference[0], batch, stage, warmup, repeats, autocast)
    rows.append({'stage': stage, 'dtype': 'bfloat16 (autocast)' if autocast else 'float32',
                 'step_s': seconds, 'samples': _batch_size(stage, tiny),
                 'samples_per_s': _batch_size(stage, tiny) / seconds,
                 'peak_gib': (torch.cuda.max_memory_allocated() / 2**30
                              if torch.cuda.is_available() else None)})
  where = next(reference[0].parameters()).device
  return {'rows': rows, 'device': str(where), 'torch': torch.__version__,
          'cudnn_tf32': torch.backends.cudnn.allow_tf32, 'jax_backend': jax.default_backend()}


def part_input(tiny: bool) -> dict:
  import dataclasses

  import cv2

  sys.path.insert(0, str(HERE))
  import input_pipeline

  from posewarper_jax.data.pipeline import TrainingInput, keep_freed_memory

  cv2.setNumThreads(1)
  keep_freed_memory()
  workdir = pathlib.Path(os.environ['GPU_SUITE_DATA'])
  split = input_pipeline.build(workdir, 2 if tiny else 4, 12 if tiny else 40)
  workers = 2 if tiny else INPUT_WORKERS
  config = TrainingInput(image_size=(384, 288), k=2, global_batch=16, read_threads=1,
                         num_workers=workers)
  pairs = 64 if tiny else 640
  rate = input_pipeline.pipeline_rate(split, config, pairs)
  limit = input_pipeline.decode_limit(split[0], 21)
  return {'workers': workers, 'pairs_per_s': rate, 'cores': os.cpu_count(),
          'decode_limit_pairs_per_s_per_core': limit,
          'full_decode': not dataclasses.asdict(config)['reduced_decode']}


# --- The orchestrator ---------------------------------------------------------------------------

def _versions() -> dict:
  out = {'python': platform.python_version(), 'machine': platform.machine(),
         'cores': os.cpu_count()}
  for name in ('jax', 'jaxlib', 'flax', 'optax', 'orbax.checkpoint', 'grain',
               'tensorflow_datasets', 'numpy', 'cv2', 'torch', 'torchvision'):
    try:
      module = __import__(name, fromlist=['_'])
      out[name] = getattr(module, '__version__', '?')
    except Exception as e:  # noqa: BLE001 (a missing package is a line of the report)
      out[name] = f'not importable ({type(e).__name__})'
  try:
    import jax
    out['backend'] = jax.default_backend()
    out['devices'] = [d.device_kind for d in jax.devices()]
  except Exception as e:  # noqa: BLE001
    out['backend'] = f'error: {e}'
  try:
    out['nvidia-smi'] = subprocess.run(
        ['nvidia-smi', '--query-gpu=name,driver_version,memory.total,clocks.max.sm',
         '--format=csv,noheader'], capture_output=True, text=True, timeout=20).stdout.strip()
  except (OSError, subprocess.TimeoutExpired):
    out['nvidia-smi'] = 'not available'
  return out


def _fmt(value, digits: int = 3) -> str:
  if value is None:
    return 'n/a'
  if isinstance(value, float):
    return f'{value:.{digits}f}'
  return str(value)


def markdown(results: dict) -> str:
  """The report: versions, the step table (ours against PyTorch), the deformable convolution,
  the input pipeline, what did not finish."""
  v = results['versions']
  tiny = ' (--tiny: numbers mean nothing)' if results['tiny'] else ''
  lines = [f'# GPU suite, {results["date"]}{tiny}',
           '', f'`{results["command"]}`', '',
           f'{v.get("devices")} ({v.get("nvidia-smi")}); jax {v.get("jax")}, flax {v.get("flax")}'
           f', optax {v.get("optax")}, torch {v.get("torch")}, torchvision {v.get("torchvision")}'
           f', {v.get("cores")} CPU cores', '',
           '| step | dtype | batch | median s | samples/s | compile s | peak GiB | GFLOP/step '
           '| MFU (peak TFLOP/s) | PyTorch samples/s | ours / PyTorch |',
           '|---|---|---|---|---|---|---|---|---|---|---|']
  parts = results['parts']
  torch_rows = {(r['stage'], r['dtype'].split(' ')[0]): r
                for r in parts.get('torch', {}).get('rows', [])}
  for name in ('stage2_float32', 'stage2_bfloat16', 'stage1_float32', 'stage2_jit'):
    r = parts.get(name)
    if not r or 'error' in r:
      lines.append(f'| {name} | | | {(r or {}).get("error", "not run")} | | | | | | | |')
      continue
    t = torch_rows.get((r['stage'], r['dtype']))
    mfu = (f'{100 * r["mfu"]:.1f}% ({r["peak_tflops"]:.0f})' if r.get('mfu') else 'n/a')
    gflop = r['flops_per_device'] / 1e9 if r.get('flops_per_device') else None
    mapped = ' (jit)' if r.get('parallel') == 'jit' else ''
    lines.append(
        f'| stage {r["stage"]}{mapped} | {r["dtype"]} | {r["samples"]} | {_fmt(r["step_s"], 4)} | '
        f'{_fmt(r["samples_per_s"], 1)} | {_fmt(r["compile_s"], 1)} | {_fmt(r["peak_gib"], 2)} '
        f'| {_fmt(gflop, 0)} | {mfu} | {_fmt(t and t["samples_per_s"], 1)} | '
        f'{_fmt(t and r["samples_per_s"] / t["samples_per_s"], 2)}{"x" if t else ""} |')
  pmap, jit = parts.get('stage2_float32', {}), parts.get('stage2_jit', {})
  if 'step_s' in pmap and 'step_s' in jit:
    lines += ['', f'The stage-2 float32 step under jit + NamedSharding: {jit["step_s"]:.4f} s '
              f'against pmap\'s {pmap["step_s"]:.4f} s ({pmap["step_s"] / jit["step_s"]:.2f}x '
              f'pmap\'s speed); compile {_fmt(jit["compile_s"], 1)} s against '
              f'{_fmt(pmap["compile_s"], 1)} s.']
  deform = parts.get('deform', {})
  if deform.get('rows'):
    lines += ['', f'Deformable convolution, {deform["shape"]} (N, H, W, C), 17 offset groups, '
              'median ms:', '', '| dilation | computation | ours | torchvision | theirs / ours |',
              '|---|---|---|---|---|']
    for r in deform['rows']:
      tv = r.get('torchvision_ms')
      lines.append(f'| {r["dilation"]} | {r["computation"]} | {r["ours_ms"]:.3f} | {_fmt(tv)} | '
                   f'{_fmt(tv and tv / r["ours_ms"], 2)} |')
  inputs = parts.get('input', {})
  if 'pairs_per_s' in inputs:
    used = parts.get('stage2_float32', {}).get('samples_per_s')
    lines += ['', f'Input pipeline: {inputs["pairs_per_s"]:.0f} pairs/s with '
              f'{inputs["workers"]} Grain workers on {inputs["cores"]} cores (full-frame '
              f'decoding; decode limit {inputs["decode_limit_pairs_per_s_per_core"]:.1f} pairs/s '
              f'per core); the float32 stage-2 step consumes {_fmt(used, 1)} pairs/s.']
  failed = {n: r['error'] for n, r in parts.items() if 'error' in r}
  if failed:
    lines += ['', 'Did not finish: ' + '; '.join(f'{n}: {e}' for n, e in failed.items())]
  return '\n'.join(lines) + '\n'


def run_suite(out: pathlib.Path, tiny: bool, parts: list[str], deadline_s: float) -> dict:
  out.mkdir(parents=True, exist_ok=True)
  start = time.monotonic()
  env = dict(os.environ)
  cache = out / 'xla_cache'
  env.setdefault('JAX_COMPILATION_CACHE_DIR', str(cache / 'jax'))
  env.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '1')
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') +
                      f' --xla_gpu_per_fusion_autotune_cache_dir={cache / "autotune"}').strip()
  env['GPU_SUITE_DATA'] = str(out / 'input_data')
  env['GPU_SUITE_CACHE'] = str(cache)
  env['PYTHONUNBUFFERED'] = '1'
  command = ' '.join([pathlib.Path(sys.executable).name, *sys.argv])
  results = {'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), 'tiny': tiny,
             'command': command, 'versions': _versions(), 'parts': {}}
  # The input part's frames are generated meanwhile, on cores the GPU parts leave idle.
  generator = None
  if 'input' in parts:
    generator = subprocess.Popen(
        [sys.executable, '-c', 'import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; '
         'import input_pipeline, pathlib; '
         'input_pipeline.build(pathlib.Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))',
         str(HERE), str(ROOT), env['GPU_SUITE_DATA'], '2' if tiny else '4',
         '12' if tiny else '40'], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  for name in parts:
    if name == 'input' and generator is not None:
      generator.wait(timeout=max(1, deadline_s - (time.monotonic() - start)))
    left = deadline_s - (time.monotonic() - start)
    limit = min(PARTS.get(name, 900), left)
    if limit < 10:
      results['parts'][name] = {'error': f'not started: {left:.0f} s left of --deadline_s'}
      continue
    path = out / 'parts' / f'{name}.json'
    path.parent.mkdir(exist_ok=True)
    began = time.monotonic()
    print(f'--- {name} (limit {limit:.0f} s)', flush=True)
    try:
      done = subprocess.run([sys.executable, __file__, '--part', name, '--out', str(out),
                             *(['--tiny'] if tiny else [])], env=env, timeout=limit,
                            capture_output=True, text=True)
      (out / 'parts' / f'{name}.log').write_text(done.stdout + done.stderr)
      if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        results['parts'][name] = {'error': f'exit {done.returncode}: ' + ' / '.join(tail)}
      else:
        results['parts'][name] = json.loads(path.read_text())
    except subprocess.TimeoutExpired as e:
      log = (e.stdout or b'') + (e.stderr or b'')
      (out / 'parts' / f'{name}.log').write_bytes(log if isinstance(log, bytes) else log.encode())
      results['parts'][name] = {'error': f'killed at its limit of {limit:.0f} s'}
    results['parts'][name]['wall_s'] = time.monotonic() - began
    print(f'    {name}: {time.monotonic() - began:.1f} s'
          + (f' ({results["parts"][name]["error"]})' if 'error' in results['parts'][name]
             else ''), flush=True)
    # Rewritten after every part: a run stopped from outside keeps what it measured.
    (out / 'results.json').write_text(json.dumps(results, indent=1))
    (out / 'results.md').write_text(markdown(results))
  results['total_s'] = time.monotonic() - start
  (out / 'results.json').write_text(json.dumps(results, indent=1))
  (out / 'results.md').write_text(markdown(results))
  return results


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', required=True, help='folder for results.json, results.md, logs')
  parser.add_argument('--tiny', action='store_true', help='CPU-sized network and shapes')
  parser.add_argument('--parts', nargs='+', default=list(PARTS), choices=[*PARTS, 'census'],
                      help='default: all but census (the W48 steps compiled, not run: a CPU\'s)')
  parser.add_argument('--deadline_s', type=float, default=560,
                      help='the whole suite ends within this (a part starts only with 10 s left)')
  # One part's own process (run_suite starts it).
  parser.add_argument('--part', choices=[*PARTS, 'census'], help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out).resolve()
  if args.part:
    sys.path.insert(0, str(ROOT))
    result = globals()[f'part_{args.part}'](args.tiny)
    (out / 'parts' / f'{args.part}.json').write_text(json.dumps(result, indent=1))
    return 0
  results = run_suite(out, args.tiny, args.parts, args.deadline_s)
  print(markdown(results))
  return 0


if __name__ == '__main__':
  sys.exit(main())
