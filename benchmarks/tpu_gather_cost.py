"""What XLA's TPU compiler charges for the deformable convolution's gathers (docs/accelerators.md).

    .venv-accel/bin/python benchmarks/tpu_gather_cost.py [--target=v5e-8]

Compiles for one chip of a TPU target (compile-only, as posewarper_jax.aot) and prints the bytes
that `cost_analysis` counts per gathered value:

- a plain gather of one value per index, as many as one deformable convolution of stage 2's
  8 pairs reads (8 x 96 x 72 pixels x 17 joints x 9 taps x 4 bilinear corners), from the
  padded heatmaps, as a 2-D array of one-value rows (the formulation's layout) and flat;
- the deformable convolution forward itself (ops.deform_conv2d, dilation 3, bfloat16), per
  bilinear corner.

Nothing runs: these are the compiler's own counts, the figures behind the memory bound of the
stage-2 rows.
"""

from __future__ import annotations

import argparse

import common  # noqa: F401 (first: puts the project on sys.path)

from posewarper_jax import accelerators

accelerators.set_compile_only_environment()

import jax  # noqa: E402 (after the compile-only environment)
import jax.numpy as jnp  # noqa: E402
from jax.sharding import SingleDeviceSharding  # noqa: E402

from posewarper_jax.models.posewarper import DEFORM_KERNEL  # noqa: E402
from posewarper_jax.ops.deform_conv import deform_conv2d  # noqa: E402
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS  # noqa: E402

PAIRS, HEIGHT, WIDTH, CORNERS = 8, 96, 72, 4


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--target', default='v5e-8', choices=[
      n for n, t in accelerators.TARGETS.items() if t.chip.platform == 'tpu'])
  args = parser.parse_args()
  device = accelerators.compile_only_devices(accelerators.target(args.target))[0]
  placed = SingleDeviceSharding(device)
  taps = DEFORM_KERNEL ** 2
  samples = PAIRS * HEIGHT * WIDTH * NUM_JOINTS * taps * CORNERS
  rows = PAIRS * (HEIGHT + 2) * (WIDTH + 2) * NUM_JOINTS
  index = jax.ShapeDtypeStruct((samples,), jnp.int32, sharding=placed)
  print(f'{args.target}: {samples:,} gathered values (one deformable convolution of '
        f'{PAIRS} pairs)')
  for shape in ((rows, 1), (rows,)):
    planes = jax.ShapeDtypeStruct(shape, jnp.float32, sharding=placed)
    compiled = jax.jit(lambda p, i: jnp.take(p, i, axis=0)).lower(planes, index).compile()
    accessed = compiled.cost_analysis()['bytes accessed']
    print(f'  take from {shape}: {accessed / 1e9:.1f} GB, {accessed / samples:,.0f} bytes per '
          'gathered value')
  maps = jax.ShapeDtypeStruct((PAIRS, HEIGHT, WIDTH, NUM_JOINTS), jnp.bfloat16, sharding=placed)
  offsets = jax.ShapeDtypeStruct((PAIRS, HEIGHT, WIDTH, 2 * NUM_JOINTS * taps), jnp.bfloat16,
                                 sharding=placed)
  kernel = jax.ShapeDtypeStruct((DEFORM_KERNEL, DEFORM_KERNEL, 1, NUM_JOINTS), jnp.bfloat16,
                                sharding=placed)
  forward = jax.jit(lambda x, o, k: deform_conv2d(x, o, k, padding=3, dilation=3,
                                                  feature_group_count=NUM_JOINTS))
  costs = forward.lower(maps, offsets, kernel).compile().cost_analysis()
  print(f'  deform_conv2d forward, dilation 3: {costs["flops"] / 1e9:.2f} GFLOP, '
        f'{costs["bytes accessed"] / 1e9:.1f} GB, {costs["bytes accessed"] / samples:,.0f} '
        'bytes per bilinear corner')


if __name__ == '__main__':
  main()
