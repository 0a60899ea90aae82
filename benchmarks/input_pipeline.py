"""Benchmark of the training input pipeline on full-resolution frames, against the decode limit.

Generates a synthetic PoseTrack18 at 1920x1080 (the real data's size; JPEG quality 90), builds
the TFDS dataset, then measures in one run:

* the decode limit: two 1920x1080 JPEG decodes per pair (cv2.imdecode, OpenCV on one thread),
  in pairs per second on one core;
* the pipeline: pairs per second of the training stream (384x288 crops, both frames decoded,
  one shared augmentation, targets), with 0, 1 and 2 Grain worker processes, each computing
  elements on one thread (`read_threads=1`), per core used (the workers, or the main process
  with 0), and as a fraction of the decode limit measured right after it;
* the same with reduced-size JPEG decoding (`TrainingInput.reduced_decode`);
* how often reduced decoding applies: the share of training crops decoded at 1/1 ... 1/8 size,
  on the synthetic frames and on the real PoseTrack18 sample when ../shared has it.

Every row is measured `--rounds` times, the rows interleaved, and reported as medians.

    python benchmarks/input_pipeline.py
    python benchmarks/input_pipeline.py --pairs 256 --workers 0 1 2 --rounds 5
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

from posewarper_jax.data import transforms
from posewarper_jax.data.pipeline import (
  TrainingInput,
  decode_factor,
  keep_freed_memory,
  person_box,
  training_dataset,
)
from posewarper_jax.data.synthetic import generate
from tests.shared_data import SAMPLE
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


def decode_factors(records, table, image_size, draws: int, seed: int = 0) -> dict[int, float]:
  """Share of training crops that reduced decoding decodes at 1/1, 1/2, 1/4, 1/8: every labeled
  person's box under `draws` of the release's augmentation (transforms.sample_augmentation)."""
  rng = np.random.default_rng(seed)
  height, width = image_size
  counts = dict.fromkeys((1, 2, 4, 8), 0)
  for r in np.flatnonzero(table.is_labeled & (table.people > 0)):
    record = records[int(r)]
    for person in range(len(record['people']['keypoints'])):
      box = person_box(record, person)
      keypoints = np.asarray(record['people']['keypoints'][person])
      for _ in range(draws):
        aug = transforms.sample_augmentation(rng, box, keypoints, width / height)
        counts[decode_factor(aug.scale, width)] += 1
  total = sum(counts.values())
  return {f: c / total for f, c in counts.items()}


def _factor_line(name: str, shares: dict[int, float]) -> str:
  return f'| {name} | ' + ' | '.join(f'{100 * shares[f]:.0f}%' for f in (1, 2, 4, 8)) + ' |'


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', default=None, help='keeps the generated data between runs')
  parser.add_argument('--videos', type=int, default=4)
  parser.add_argument('--frames', type=int, default=40)
  parser.add_argument('--pairs', type=int, default=480, help='pairs timed per row and round')
  parser.add_argument('--batch', type=int, default=16)
  parser.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2])
  parser.add_argument('--rounds', type=int, default=3,
                      help='every row measured this many times, rows interleaved')
  parser.add_argument('--repeats', type=int, default=41)
  parser.add_argument('--sample', default=str(SAMPLE),
                      help='real PoseTrack18 frames for the decode-factor table (if present)')
  args = parser.parse_args(argv)

  cv2.setNumThreads(1)  # one core per process, so that rates per core mean what they say
  # The allocator setting the pipeline makes, made before anything is measured, so that the
  # decode limit and the pipeline decode under the same malloc (without it the limit came out
  # at half its value when measured before the first pipeline had run).
  keep_freed_memory()
  workdir = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix='pipeline_bench_'))
  split = build(workdir, args.videos, args.frames)

  print(f'# input pipeline, 1920x1080 synthetic PoseTrack18 JPEGs, 384x288 crops, batch '
        f'{args.batch}, k = 2, {args.pairs} pairs timed per row, {args.rounds} rounds')
  print(f'# {common.machine_line()}; OpenCV {cv2.__version__}, 1 thread per process')
  print('# decode limit: two full decodes per pair on one core, measured right after each row;')
  print('# medians over the rounds, and the range of the per-round ratios (the machine is shared)')
  base = TrainingInput(image_size=(384, 288), k=2, global_batch=args.batch, read_threads=1)
  rows = [(reduced, workers) for reduced in (False, True) for workers in args.workers]
  measured = {row: [] for row in rows}
  for _ in range(args.rounds):
    for reduced, workers in rows:
      config = dataclasses.replace(base, num_workers=workers, reduced_decode=reduced)
      rate = pipeline_rate(split, config, args.pairs) / max(workers, 1)
      measured[reduced, workers].append((rate, decode_limit(split[0], args.repeats)))
  print()
  print('| decoding | workers | cores | pairs/s per core | decode limit pairs/s | '
        'per core / limit | range over rounds |')
  print('|---|---|---|---|---|---|---|')
  for (reduced, workers), values in measured.items():
    rate, limit = np.median(values, axis=0)
    ratios = [r / lim for r, lim in values]
    print(f'| {"reduced" if reduced else "full"} | {workers} | {max(workers, 1)} | {rate:.1f} | '
          f'{limit:.1f} | {np.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} |')

  # What reduced decoding can gain depends on how large people are in the frame.
  print('\n# crops decoded at each size by reduced decoding (384x288, 20 augmentations a person)')
  print('\n| frames | 1/1 | 1/2 | 1/4 | 1/8 |\n|---|---|---|---|---|')
  print(_factor_line('synthetic 1920x1080', decode_factors(*split, (384, 288), draws=20)))
  sample = pathlib.Path(args.sample)
  if (sample / 'annotations' / 'val').is_dir():
    builder = prepare(sample, workdir / 'tfds_sample')
    real = builder.as_data_source('validation'), FrameTable.from_builder(builder, 'validation')
    print(_factor_line('PoseTrack18 sample (14 people)',
                       decode_factors(*real, (384, 288), draws=20)))
  print(f'\n# data in {workdir} ({os.cpu_count()} CPU cores on this machine)')


if __name__ == '__main__':
  main()
