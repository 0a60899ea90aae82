"""Benchmark of the training input pipeline on full-resolution frames, against the decode limit.

Generates a synthetic PoseTrack18 at 1920x1080 (the real data's size; JPEG quality 90), builds
the TFDS dataset, then measures in one run:

* the decode limit: two 1920x1080 JPEG decodes per pair (cv2.imdecode, OpenCV on one thread),
  in pairs per second on one core;
* the pipeline: pairs per second of the training stream (384x288 crops, both frames decoded,
  one shared augmentation, targets), with 0, 1 and 2 Grain worker processes, each computing
  elements on one thread (`read_threads=1`), per core used (the workers, or the main process
  with 0), and as a fraction of the decode limit measured right after it;
* the same with reduced-size JPEG decoding (`TrainingInput.reduced_decode`).

    python benchmarks/input_pipeline.py
    python benchmarks/input_pipeline.py --pairs 256 --workers 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import pathlib
import tempfile
import time

import common  # first: puts the project on sys.path
import cv2
import numpy as np
from common import median_ms

from posewarper_jax.data.pipeline import TrainingInput, keep_freed_memory, training_dataset
from posewarper_jax.data.synthetic import generate
from tfds_posetrack.posetrack18 import FrameTable, prepare


def build(workdir: pathlib.Path, videos: int, frames: int):
  root = workdir / 'posetrack18'
  if not (root / 'annotations').exists():
    generate(root, seed=0, num_train=videos, num_val=0, num_test=0, frames=frames, width=1920,
             height=1080)
  builder = prepare(root, workdir / 'tfds')
  return builder.as_data_source('train'), FrameTable.from_builder(builder, 'train')


def decode_limit(records, repeats: int) -> float:
  """Pairs per second on one core: two full decodes per pair, over the split's frames."""
  jpegs = [records[i]['image'] for i in range(0, len(records), max(len(records) // 64, 1))]
  cycle = itertools.cycle(jpegs)

  def two_decodes():
    for _ in range(2):
      cv2.imdecode(np.frombuffer(next(cycle), np.uint8), cv2.IMREAD_COLOR)

  # A long warm-up: the first decodes of a process touch fresh memory, slow on some machines.
  return 1e3 / median_ms(two_decodes, warmup=30, repeats=repeats)


def pipeline_rate(split, config: TrainingInput, pairs: int) -> float:
  """Pairs per second: the batch size over the median time between batches, after two warm-up
  batches (worker start-up excluded; the median, because the machine is shared)."""
  iterator = iter(training_dataset(*split, config))
  for _ in range(2):
    next(iterator)
  intervals = []
  for _ in range(max(pairs // config.global_batch, 1)):
    start = time.perf_counter()
    next(iterator)
    intervals.append(time.perf_counter() - start)
  return config.global_batch / float(np.median(intervals))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', default=None, help='keeps the generated data between runs')
  parser.add_argument('--videos', type=int, default=4)
  parser.add_argument('--frames', type=int, default=40)
  parser.add_argument('--pairs', type=int, default=480, help='pairs timed per configuration')
  parser.add_argument('--batch', type=int, default=16)
  parser.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2])
  parser.add_argument('--repeats', type=int, default=41)
  args = parser.parse_args(argv)

  cv2.setNumThreads(1)  # one core per process, so that rates per core mean what they say
  # The allocator setting the pipeline makes, made before anything is measured, so that the
  # decode limit and the pipeline decode under the same malloc (without it the limit came out
  # at half its value when measured before the first pipeline had run).
  keep_freed_memory()
  workdir = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix='pipeline_bench_'))
  split = build(workdir, args.videos, args.frames)

  print(f'# input pipeline, 1920x1080 synthetic PoseTrack18 JPEGs, 384x288 crops, batch '
        f'{args.batch}, k = 2, {args.pairs} pairs timed per row')
  print(f'# {common.machine_line()}; OpenCV {cv2.__version__}, 1 thread per process')
  print('# decode limit: two full decodes per pair on one core, measured again after each row')
  print('# (the machine is shared: the ratio uses the measurement next to it)')
  print()
  print('| decoding | workers | pairs/s | cores | pairs/s per core | decode limit pairs/s | '
        'per core / limit |')
  print('|---|---|---|---|---|---|---|')
  base = TrainingInput(image_size=(384, 288), k=2, global_batch=args.batch, read_threads=1)
  for reduced in (False, True):
    for workers in args.workers:
      config = dataclasses.replace(base, num_workers=workers, reduced_decode=reduced)
      rate = pipeline_rate(split, config, args.pairs)
      limit = decode_limit(split[0], args.repeats)
      cores = max(workers, 1)
      print(f'| {"reduced" if reduced else "full"} | {workers} | {rate:.1f} | {cores} | '
            f'{rate / cores:.1f} | {limit:.1f} | {rate / cores / limit:.2f} |', flush=True)
  print(f'\n# data in {workdir} ({os.cpu_count()} CPU cores on this machine)')


if __name__ == '__main__':
  main()
