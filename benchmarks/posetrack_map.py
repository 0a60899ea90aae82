"""Benchmark of the PoseTrack mAP on a validation-sized set: 170 videos, about 9,000 evaluated
frames and 50,000 ground-truth people (PoseTrack18 val's size), with predictions for every
person (jittered joints, scores) plus false positives, ignore regions on every frame.

Prints the time of `evaluate` (reading the JSON files included), the median of a few runs.

    python benchmarks/posetrack_map.py
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

import common  # noqa: F401 (puts the project on sys.path)
import numpy as np

from posewarper_jax.metrics import posetrack_map
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS


def write_set(root: pathlib.Path, videos: int, frames: int, people: int, seed: int = 0) -> int:
  """Ground truth and predictions; returns the number of ground-truth people."""
  rng = np.random.default_rng(seed)
  total = 0
  for v in range(videos):
    images, gt_annotations, pred_annotations = [], [], []
    for f in range(frames):
      image = {'id': 10_000 * v + f, 'file_name': f'images/val/{v:06d}/{f:06d}.jpg',
               'ignore_regions_x': [[0, 200, 200, 0]], 'ignore_regions_y': [[0, 0, 150, 150]]}
      images.append(image)
      count = int(rng.integers(people - 3, people + 4))
      total += count
      for p in range(count):
        xy = rng.uniform(0, [1920, 1080], size=(NUM_JOINTS, 2))
        visible = rng.uniform(size=NUM_JOINTS) < 0.8
        keypoints = np.concatenate([xy * visible[:, None], visible[:, None]], 1)
        gt_annotations.append({'image_id': image['id'], 'id': len(gt_annotations),
                               'keypoints': keypoints.ravel().tolist(),
                               'bbox_head': [*xy[0].tolist(), 40.0, 50.0], 'track_id': p})
        for copy in range(1 + (p % 3 == 0)):  # every third person also gets a false positive
          moved = xy + rng.normal(0, 8 if copy == 0 else 300, size=xy.shape)
          pred = np.concatenate([moved, np.ones((NUM_JOINTS, 1))], 1)
          pred_annotations.append({'image_id': image['id'], 'id': len(pred_annotations),
                                   'keypoints': pred.ravel().tolist(), 'track_id': p,
                                   'scores': rng.uniform(size=NUM_JOINTS).round(3).tolist()})
    for folder, written in (('gt', gt_annotations), ('pred', pred_annotations)):
      (root / folder).mkdir(parents=True, exist_ok=True)
      (root / folder / f'{v:06d}_mpii_test.json').write_text(
          json.dumps({'images': images, 'annotations': written}))
  return total


def main(argv=None) -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument('--videos', type=int, default=170)
  parser.add_argument('--frames', type=int, default=53)
  parser.add_argument('--people', type=int, default=6, help='ground-truth people per frame')
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args(argv)
  with tempfile.TemporaryDirectory() as directory:
    root = pathlib.Path(directory)
    people = write_set(root, args.videos, args.frames, args.people)
    times = []
    for _ in range(args.repeats):
      start = time.perf_counter()
      result = posetrack_map.evaluate(root / 'gt', root / 'pred')
      times.append(time.perf_counter() - start)
  print(f'# {args.videos} videos, {result["num_frames"]} evaluated frames, {people} '
        f'ground-truth people; {common.machine_line()}')
  print(f'evaluate: {np.median(times):.2f} s (median of {args.repeats}); Total AP '
        f'{result["groups"]["Total"]:.1f}')


if __name__ == '__main__':
  main()
