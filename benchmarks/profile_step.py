"""Where a compiled training step spends its time: a per-op table grouped by Flax module.

The step is run.py's (benchmarks/train_step.compile_step: the pmap'd step, Adam, the loss), on a
random batch. After warm-up, `jax.profiler.trace` records --steps steps; on the CPU the trace
holds one event per executed HLO instruction (a fusion, a convolution, a YNNPACK fusion). Each
event is mapped back through the compiled module's text (`compiled.as_text()`) to

- the Flax module that owns it: the op_name metadata, e.g. `backbone/stage3_0/branches_0_1/
  conv1`, cut to --depth levels below the model;
- the phase: forward, or the backward's input gradient / kernel gradient. A backward
  convolution computes the kernel gradient when its window is larger than its output (its
  window is the activations' spatial size, its output the kernel's), the input gradient
  otherwise;
- the kind: convolution (`conv`, `conv base-dilated` for the input gradient of a strided
  convolution, which YNNPACK refuses), `transpose` (a fusion that writes a layout transpose),
  `gather`, `dot` (matrix products: ops/conv.py's kernel gradients, the deformable
  convolution's contraction), `elementwise` (the other fusions: BatchNorm, ReLU, the residual
  sums, Adam) and `other`.

Printed as Markdown: the step's median wall time, the totals by kind and phase, and the --top
modules. Event times are summed over the threads that ran them, so with two cores the total can
exceed the wall time. The trace does not record the convolutions that run on oneDNN (XLA:CPU's
custom calls, backend.CPU_COMPILER_OPTIONS, which run.py's step has on the CPU): the gap between
the op time and the wall time is theirs. POSEWARPER_CPU_COMPILER_OPTIONS=default profiles the
step with XLA's own convolutions, each in the table.

    python benchmarks/profile_step.py --stages=1,2 --plain         # W48, 384x288, batch 2
    python benchmarks/profile_step.py --config=configs/posewarper.py:synthetic \
        --per_device_batch=16 --stages=1,2                         # the quick start's network
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import glob
import math
import os
import re
import tempfile

import common  # first: puts the project on sys.path
import jax
import train_step
from absl import app, flags
from common import median_ms

# --config, --stages, --per_device_batch and --plain (the step without the speed rewrites, too)
# are train_step's flags (defined on import).
_STEPS = flags.DEFINE_integer('steps', 2, 'steps traced (after 2 untimed ones)')
_DEPTH = flags.DEFINE_integer('depth', 3, 'module path levels kept below the model')
_TOP = flags.DEFINE_integer('top', 25, 'modules listed')

_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%([\w.\-]+) = (.*)$')
_OPCODE = re.compile(r'^(?:\([^=]*?\)|[\w\[\]{},:\d ]+?) ([a-z][\w\-]*)\(')
_SHAPE = re.compile(r'^[a-z0-9]+\[([\d,]*)\]')


@dataclasses.dataclass
class Op:
  """An HLO instruction as the table sees it."""

  kind: str
  phase: str
  module: str


def _computations(hlo_text: str) -> dict[str, list[str]]:
  """Computation name -> its instruction lines."""
  out, name = {}, None
  for line in hlo_text.splitlines():
    header = re.match(r'^(?:ENTRY )?%([\w.\-]+) .*\{$', line)
    if header:
      name = header.group(1)
      out[name] = []
    elif name and line.startswith('  '):
      out[name].append(line)
  return out


def _module(op_name: str, depth: int) -> str:
  """'jit(_fun)/transpose(jvp(PoseWarper.warp))/warper/offset_feats_3/conv1/conv_general_dilated'
  -> 'warper/offset_feats_3/conv1' (depth 3); method scopes such as 'backbone._transition' are
  dropped."""
  parts = [p for p in op_name.split('/')
           if p and '(' not in p and '.' not in p and not p.startswith('jit')]
  return '/'.join(parts[:-1][:depth]) or '(step)'


def _convolution_phase(line: str, op_name: str) -> tuple[str, tuple[int, ...]]:
  """(phase, output dims) of a convolution instruction's line."""
  window = re.search(r'window=\{size=([\dx]+)', line)
  shape = _SHAPE.match(line.split(' = ', 1)[1])
  dims = tuple(int(v) for v in shape.group(1).split(',') if v) if shape else ()
  if window and len(dims) == 4:
    window_size = math.prod(int(v) for v in window.group(1).split('x'))
    if window_size > math.prod(dims[1:-1]):  # b01f: the spatial dims are 1 and 2
      return 'kernel grad', dims
  return ('input grad' if 'transpose(' in op_name else 'forward'), dims


def kernel_owners(params, depth: int) -> dict[tuple[int, ...], str]:
  """Kernel shape (kh, kw, in, out) -> the module that owns it, or, where several kernels share
  the shape, their common path and count (a kernel gradient's convolution carries no op_name
  on the CPU: its output shape [in, kh, kw, out] is all that names it)."""
  owners = collections.defaultdict(list)
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = [getattr(k, 'key', str(k)) for k in path]
    if names[-1] == 'kernel' and len(leaf.shape) == 4:
      owners[tuple(leaf.shape)].append('/'.join(names[:-1]))
  out = {}
  for shape, modules in owners.items():
    if len(modules) == 1:
      out[shape] = '/'.join(modules[0].split('/')[:depth])
    else:
      common = os.path.commonpath(modules) or '(model)'
      out[shape] = f'{common}: {len(modules)} kernels {"x".join(map(str, shape))}'
  return out


def classify(hlo_text: str, depth: int, owners: dict[tuple[int, ...], str]) -> dict[str, Op]:
  """Instruction name -> Op, for every instruction of every computation."""
  computations = _computations(hlo_text)
  parsed = {}  # computation -> [(name, opcode, line, op_name)]
  for comp, lines in computations.items():
    rows = []
    for line in lines:
      match = _INSTRUCTION.match(line)
      if not match:
        continue
      opcode = _OPCODE.match(match.group(2))
      op_name = re.search(r'op_name="([^"]*)"', line)
      rows.append((match.group(1), opcode.group(1) if opcode else '', line,
                   op_name.group(1) if op_name else ''))
    parsed[comp] = rows

  ops = {}
  for rows in parsed.values():
    for name, opcode, line, op_name in rows:
      called = re.search(r'calls=%([\w.\-]+)', line)
      body = parsed.get(called.group(1), []) if called else []
      convolutions = [r for r in body if r[1] == 'convolution']
      if opcode == 'convolution':
        convolutions = [(name, opcode, line, op_name)]
      if convolutions:
        _, _, conv_line, conv_name = convolutions[0]
        conv_name = conv_name or op_name
        phase, dims = _convolution_phase(conv_line, conv_name)
        if phase == 'kernel grad' and not conv_name:
          module = owners.get((dims[1], dims[2], dims[0], dims[3]), '(unmatched kernel)')
        else:
          module = _module(conv_name, depth)
        kind = 'conv base-dilated' if 'lhs_dilate' in conv_line else 'conv'
        ops[name] = Op(kind, phase, module)
        continue
      names = [r[3] for r in body if r[3]] or ([op_name] if op_name else [])
      owner = collections.Counter(names).most_common(1)[0][0] if names else ''
      opcodes = {r[1] for r in body} | {opcode}
      if 'transpose' in opcodes or name.startswith('transpose'):
        kind = 'transpose'
      elif 'gather' in opcodes:
        kind = 'gather'
      elif 'dot' in opcodes:
        kind = 'dot'
      elif opcode == 'fusion':
        kind = 'elementwise'
      else:
        kind = 'other'
      phase = ('backward' if 'transpose(' in owner else 'forward') if owner else 'unknown'
      ops[name] = Op(kind, phase, _module(owner, depth) if owner else '(step)')
  return ops


def profile(compiled, state, batch, steps: int) -> tuple[dict[str, float], float]:
  """(instruction name -> seconds summed over the traced steps and threads, median step s)."""
  holder = [state]

  def run():
    holder[0], metrics = compiled(holder[0], batch)
    jax.block_until_ready(metrics)

  step_s = median_ms(run, 2, max(steps, 3)) / 1e3
  directory = tempfile.mkdtemp(prefix='profile_step_')
  with jax.profiler.trace(directory):
    for _ in range(steps):
      run()
  path = glob.glob(os.path.join(directory, '**', '*.xplane.pb'), recursive=True)[0]
  totals = collections.Counter()
  for plane in jax.profiler.ProfileData.from_file(path).planes:
    for line in plane.lines:
      for event in line.events:
        totals[event.name] += event.duration_ns / 1e9
  return totals, step_s


def table(totals: dict[str, float], ops: dict[str, Op], steps: int, step_s: float,
          top: int) -> str:
  """The Markdown report of one step (times per step)."""
  by_kind, by_module = collections.Counter(), collections.Counter()
  module_kinds = collections.defaultdict(collections.Counter)
  for name, seconds in totals.items():
    op = ops.get(name)
    if op is None:
      continue  # runtime events (thunk executors, Python), not HLO
    per_step = seconds / steps
    by_kind[(op.kind, op.phase)] += per_step
    by_module[op.module] += per_step
    module_kinds[op.module][f'{op.kind}, {op.phase}'] += per_step
  total = sum(by_kind.values())
  lines = [f'Median step {step_s * 1e3:.0f} ms; HLO op time {total * 1e3:.0f} ms per step '
           '(summed over threads).', '', '| kind | phase | ms per step | share |',
           '|---|---|---:|---:|']
  for (kind, phase), seconds in by_kind.most_common():
    lines.append(f'| {kind} | {phase} | {seconds * 1e3:.1f} | {seconds / total:.1%} |')
  lines += ['', '| module | ms per step | share | largest parts (ms) |', '|---|---:|---:|---|']
  for module, seconds in by_module.most_common(top):
    parts = ', '.join(f'{k} {v * 1e3:.1f}' for k, v in module_kinds[module].most_common(3))
    lines.append(f'| {module} | {seconds * 1e3:.1f} | {seconds / total:.1%} | {parts} |')
  return '\n'.join(lines)


def main(argv):
  del argv
  config = train_step._CONFIG.value
  print(common.machine_line())
  for stage in map(int, train_step._STAGES.value):
    for plain in (True, False) if train_step._PLAIN.value else (False,):
      with common.plain_formulation() if plain else contextlib.nullcontext():
        compiled, state, batch, compile_s = train_step.compile_step(config, stage,
                                                                    train_step._PER_DEVICE.value)
      owners = kernel_owners(state.params, _DEPTH.value)
      ops = classify(compiled.as_text(), _DEPTH.value, owners)
      totals, step_s = profile(compiled, state, batch, _STEPS.value)
      samples = jax.local_device_count() * train_step._PER_DEVICE.value
      print(f'\n### Stage {stage}{" (plain: without the speed rewrites)" if plain else ""}: '
            f'{samples} {"crops" if stage == 1 else "pairs"} per step, compiled in '
            f'{compile_s:.0f} s\n')
      print(table(totals, ops, _STEPS.value, step_s, _TOP.value), flush=True)

if __name__ == '__main__':
  app.run(main)
