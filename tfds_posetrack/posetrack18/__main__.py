"""Builds the PoseTrack18 TFDS dataset from a directory in any official layout (PoseTrack18,
PoseTrack21 or PoseTrack17: layouts.py detects which).

    python -m tfds_posetrack.posetrack18 --manual_dir=DIR [--data_dir=DIR] [--max_gap=7]

Prints, per split, the frames stored and everything skipped (also kept in the dataset's
metadata). An existing build is reused only when the directory is what it was built from;
otherwise the error says what changed and which folder to delete. Needs no TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys

from tfds_posetrack.posetrack18.posetrack18_dataset_builder import prepare


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m tfds_posetrack.posetrack18',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--manual_dir', required=True,
                      help='PoseTrack18, 21 or 17 in its official layout')
  parser.add_argument('--data_dir', default=None, help='TFDS data directory (TFDS default)')
  parser.add_argument('--max_gap', type=int, default=7,
                      help='keep frames within this many frames of a labeled one (-1: all)')
  args = parser.parse_args(argv)
  if args.max_gap < -1:
    parser.error(f'--max_gap must be >= -1, got {args.max_gap}')
  # Absolute paths, as the user meant them from where they typed the command.
  absolute = lambda p: p and os.path.abspath(os.path.expanduser(p))
  builder = prepare(absolute(args.manual_dir), absolute(args.data_dir),
                    None if args.max_gap == -1 else args.max_gap)
  for split, counts in builder.info.metadata['skipped'].items():
    print(f'{split}: ' + ', '.join(f'{k} {v}' for k, v in counts.items() if v))
  print(f'dataset at {builder.data_dir} '
        f'(from the {builder.info.metadata.get("layout", "posetrack18")} layout)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
