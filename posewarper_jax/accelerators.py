"""The accelerators the project compiles for: one table of targets and their chips' published
numbers, and the compile-only devices of each.

    target = TARGETS['v5e-8']
    devices = compile_only_devices(target)    # jax.Device objects of a TPU v5e 2x4 slice
    target.chip.peak_flops('bfloat16'), target.chip.hbm_bytes, target.chip.hbm_bandwidth

JAX compiles for hardware it does not have: `jax.experimental.topologies` gives devices of a
named TPU slice (libtpu) or of GPUs described by a target config (the CUDA plugin) that
programs are compiled for, never run on (posewarper_jax.aot). Both come from
requirements-accel.lock, installed in a venv of its own (.venv-accel); the CPU commands do not
have them.

The numbers are the vendors' published per-chip figures; each chip names its sources. A TPU
v4 or v5p chip is one JAX device (megacore: its two TensorCores act as one); a v5e or v6e chip
has one TensorCore; an H100 is one device.

Float32 peak: the models' float32 convolutions run at JAX's default precision, which on a TPU is
one bfloat16 pass of the matrix unit (the bfloat16 peak) and on an H100 TensorFloat-32 on the
tensor cores (TF32 peak, half of bfloat16's); `peak_flops('float32')` gives that rate, not the
H100's 67 TFLOP/s of full-precision CUDA-core arithmetic.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os

GIB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Chip:
  """One accelerator chip's published numbers (per chip)."""

  name: str
  platform: str                  # 'tpu' or 'gpu'
  peak_bf16: float               # FLOP/s, dense bfloat16 on the matrix unit / tensor cores
  peak_f32: float                # FLOP/s at JAX's default float32 precision (module docstring)
  hbm_bytes: int
  hbm_bandwidth: float           # bytes/s
  sources: tuple[str, ...]
  # For the GPU compiler (stream_executor.GpuTargetConfigProto): the device facts it tunes for.
  gpu_device_info: tuple[tuple[str, object], ...] = ()
  compute_capability: tuple[int, int] = (0, 0)

  def peak_flops(self, dtype: str) -> float:
    """FLOP/s for a program of config.model.dtype `dtype` ('float32' or 'bfloat16')."""
    return {'bfloat16': self.peak_bf16, 'float32': self.peak_f32}[dtype]

  def gpu_target_config(self) -> str:
    """The chip as a GpuTargetConfigProto in text format, for the CUDA plugin's compile-only
    topology. Written from the facts above (NVIDIA's published device properties), not from a
    device query."""
    fields = '\n'.join(f'  {k}: {v}' for k, v in self.gpu_device_info)
    major, minor = self.compute_capability
    return (f'gpu_device_info {{\n{fields}\n  device_memory_size: {self.hbm_bytes}\n'
            f'  memory_bandwidth: {int(self.hbm_bandwidth)}\n'
            f'  cuda_compute_capability {{ major: {major} minor: {minor} }}\n}}\n'
            f'platform_name: "CUDA"\ndevice_description_str: "{self.name}"\n')


_TPU_DOCS = 'cloud.google.com/tpu/docs/system-architecture-tpu-vm'
CHIPS = {
    'v5e': Chip('TPU v5e', 'tpu', peak_bf16=197e12, peak_f32=197e12, hbm_bytes=16 * GIB,
                hbm_bandwidth=819e9, sources=('cloud.google.com/tpu/docs/v5e', _TPU_DOCS)),
    'v6e': Chip('TPU v6e (Trillium)', 'tpu', peak_bf16=918e12, peak_f32=918e12,
                hbm_bytes=32 * GIB, hbm_bandwidth=1640e9,
                sources=('cloud.google.com/tpu/docs/v6e', _TPU_DOCS)),
    'v4': Chip('TPU v4', 'tpu', peak_bf16=275e12, peak_f32=275e12, hbm_bytes=32 * GIB,
               hbm_bandwidth=1200e9, sources=('cloud.google.com/tpu/docs/v4', _TPU_DOCS)),
    'v5p': Chip('TPU v5p', 'tpu', peak_bf16=459e12, peak_f32=459e12, hbm_bytes=95 * GIB,
                hbm_bandwidth=2765e9, sources=('cloud.google.com/tpu/docs/v5p', _TPU_DOCS)),
    # Dense rates (the datasheet's tensor-core figures are with 2:4 sparsity: 1979 and 989).
    'h100': Chip(
        'NVIDIA H100 80GB HBM3', 'gpu', peak_bf16=989.5e12, peak_f32=494.7e12,
        hbm_bytes=80 * GIB, hbm_bandwidth=3.35e12,
        sources=('NVIDIA H100 Tensor Core GPU datasheet (H100 SXM)',
                 'NVIDIA Hopper tuning guide and CUDA C++ programming guide, compute '
                 'capability 9.0 (SMs, shared memory, registers, threads)'),
        gpu_device_info=(
            ('threads_per_block_limit', 1024), ('threads_per_warp', 32),
            ('shared_memory_per_block', 48 * 1024), ('shared_memory_per_core', 228 * 1024),
            ('shared_memory_per_block_optin', 227 * 1024), ('threads_per_core_limit', 2048),
            ('core_count', 132), ('fpus_per_core', 128), ('block_dim_limit_x', 2 ** 31 - 1),
            ('block_dim_limit_y', 65535), ('block_dim_limit_z', 65535),
            ('l2_cache_size', 50 * 2 ** 20), ('clock_rate_ghz', 1.98),
            ('registers_per_core_limit', 65536), ('registers_per_block_limit', 65536)),
        compute_capability=(9, 0)),
}


@dataclasses.dataclass(frozen=True)
class Target:
  """A slice (TPU) or a set of GPUs to compile for.

  topology: TPU: libtpu's topology name ('v5e:2x4'), with chip_config ('default', or 'megacore'
  for v4 and v5p), chips_per_host (the host bounds) and wrap (torus links). GPU: 'slices x hosts
  x GPUs per host' for the CUDA plugin.
  """

  name: str
  chip: Chip
  topology: str
  chips: int
  hosts: int
  chip_config: str = 'default'
  chips_per_host: tuple[int, int, int] = (2, 2, 1)
  wrap: tuple[bool, bool, bool] = (False, False, False)


# Slice names and shapes as Cloud TPU names them (v5e-8: 8 chips); the multi-host shapes follow
# maxtext's accelerator_to_spec_map. v5e-4 and h100-2 are the tests' small targets.
TARGETS = {t.name: t for t in (
    Target('v5e-8', CHIPS['v5e'], 'v5e:2x4', chips=8, hosts=1, chips_per_host=(2, 4, 1)),
    Target('v6e-8', CHIPS['v6e'], 'v6e:2x4', chips=8, hosts=1, chips_per_host=(2, 4, 1)),
    Target('v4-32', CHIPS['v4'], 'v4:2x2x4', chips=16, hosts=4, chip_config='megacore'),
    Target('v5p-128', CHIPS['v5p'], 'v5:4x4x4', chips=64, hosts=16, chip_config='megacore',
           wrap=(True, True, True)),
    Target('h100-8', CHIPS['h100'], '1x1x8', chips=8, hosts=1),
    Target('v5e-4', CHIPS['v5e'], 'v5e:2x2', chips=4, hosts=1),
    Target('h100-2', CHIPS['h100'], '1x1x2', chips=2, hosts=1),
)}
# What `python -m posewarper_jax.aot` compiles unless told otherwise.
DEFAULT_TARGETS = ('v5e-8', 'v6e-8', 'v4-32', 'v5p-128', 'h100-8')

# Compile-only use of libtpu on a machine without a TPU: JAX's own backend stays the CPU, libtpu
# does not ask a metadata server for the TPU it is on (what axlearn sets), and several processes
# may load it at once (its lock file guards a real TPU, which none of them holds).
COMPILE_ONLY_ENVIRONMENT = {'JAX_PLATFORMS': 'cpu', 'TPU_SKIP_MDS_QUERY': '1',
                            'TPU_WORKER_HOSTNAMES': 'localhost',
                            'ALLOW_MULTIPLE_LIBTPU_LOAD': '1'}
SETUP = 'bash scripts/venv.sh requirements-accel.lock .venv-accel'


class MissingBackendError(RuntimeError):
  """The compile-only backend of a target is not installed in this environment."""


def set_compile_only_environment() -> None:
  """COMPILE_ONLY_ENVIRONMENT where not set, and JAX's backend the CPU: call before JAX
  initializes its backends."""
  import jax  # noqa: PLC0415

  for key, value in COMPILE_ONLY_ENVIRONMENT.items():
    os.environ.setdefault(key, value)
  jax.config.update('jax_platforms', 'cpu')


def target(name: str) -> Target:
  """TARGETS[name], or ValueError listing the names."""
  if name not in TARGETS:
    raise ValueError(f'no target {name!r}; the targets are {", ".join(TARGETS)}')
  return TARGETS[name]


def backend_installed(platform: str) -> bool:
  """Whether the compile-only backend of a platform ('tpu', 'gpu') is installed here."""
  package = {'tpu': 'libtpu', 'gpu': 'jax_plugins.xla_cuda12'}[platform]
  try:
    return importlib.util.find_spec(package) is not None
  except ModuleNotFoundError:  # jax_plugins itself absent
    return False


def compile_only_devices(target: Target) -> list:
  """The target's devices, in JAX's order, for compiling only. MissingBackendError when libtpu
  (TPU) or JAX's CUDA plugin (GPU) is not installed."""
  from jax.experimental import topologies  # noqa: PLC0415 (only where a target is compiled)

  what = 'libtpu' if target.chip.platform == 'tpu' else "JAX's CUDA plugin"
  if not backend_installed(target.chip.platform):
    raise MissingBackendError(
        f'target {target.name}: compiling for it needs {what}, which is not installed here; '
        f'requirements-accel.lock installs it: {SETUP}, then run with .venv-accel/bin/python.')
  if target.chip.platform == 'tpu':
    topology = topologies.get_topology_desc(
        platform='tpu', topology_name=target.topology, chip_config_name=target.chip_config,
        chips_per_host_bounds=target.chips_per_host, num_slices=1, wrap=target.wrap)
  else:
    topology = topologies.get_topology_desc(
        platform='cuda', target_config=target.chip.gpu_target_config(), topology=target.topology)
  devices = list(topology.devices)
  if len(devices) != target.chips:
    raise RuntimeError(f'target {target.name}: {len(devices)} devices, the table says '
                       f'{target.chips} chips')
  return devices
