"""The COCO stand-in from the command line, and optionally its PoseTrack18 conversion.

    python -m posewarper_jax.data.stills --out DIR [--seed 0] [--num_images 3000] [--width 384]
        [--height 288] [--max_people 6] [--limb_code 0.0] [--quality 90] [--posetrack18 DIR]

The stills of the stand-in variant (configs/posewarper.py:standin, which pretrain.py makes in
<workdir>/data/stills): `--limb_code 1.0` and the other defaults.

--out must be new or empty, or hold finished stills of this command or of pretrain.py: GENERATED,
written last, with their settings (provenance.py's record, so that either recognises the
other's, by provenance's rule). With the same settings nothing is written; other settings, and
a folder with other contents (a user's COCO, a half-written set), are refused. The stills are
written into a temporary sibling folder (.<name>.partial-*) and renamed to --out at the end, so
that an interrupted run leaves no half-written --out. --posetrack18 converts them
(tfds_posetrack.posetrack18.coco, which refuses a folder by the same rules and is a no-op on its
own finished conversion of the same stills).

Exit status 2 and a message, not a traceback, on bad arguments or a refused folder.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from collections.abc import Sequence

from posewarper_jax import provenance
from posewarper_jax.data.stills.writer import (
  GENERATED,
  JPEG_QUALITY,
  SETTINGS_ADDED,
  generate_stills,
)
from tfds_posetrack.posetrack18 import coco


def generate_once(out: pathlib.Path, settings: dict) -> dict | None:
  """generate_stills(out, **settings) into a new or empty folder, marked done by GENERATED;
  None (nothing written) when out holds finished stills of the same settings;
  provenance.Refused for stills of other settings, FileExistsError for other contents (the
  module docstring)."""
  if provenance.check_once(out, GENERATED, settings, what='these arguments',
                           added=SETTINGS_ADDED,
                           remedy='Choose another --out (the stills there stay as they are).'):
    return None
  coco.refuse_unless_empty(out, f'is not empty and holds no finished stills (no {GENERATED})')

  def write(staging: pathlib.Path) -> dict:
    summary = generate_stills(staging, **settings)
    provenance.record(staging / GENERATED, settings)
    return summary

  summary = coco.write_in_place(out, write)
  return {**summary, 'root': str(out)}


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m posewarper_jax.data.stills',
      description='Write a COCO stand-in (labeled stills of posed people) in COCO\'s keypoint '
                  'layout into a new or empty folder, and optionally its PoseTrack18 '
                  'conversion.')
  parser.add_argument('--out', required=True,
                      help='COCO-layout root to write: new or empty (a finished set of the same '
                           'settings is left as it is)')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--num_images', '--num-images', type=int, default=3000)
  parser.add_argument('--width', type=int, default=384)
  parser.add_argument('--height', type=int, default=288)
  parser.add_argument('--max_people', '--max-people', type=int, default=6)
  parser.add_argument('--limb_code', '--limb-code', type=float, default=0.0,
                      help='share (0 to 1) of the synthetic videos\' limb colours in the limbs\' '
                           '(generate_stills; the standin variant: 1.0)')
  parser.add_argument('--quality', type=int, default=JPEG_QUALITY, help='JPEG quality (0-100)')
  parser.add_argument('--posetrack18', metavar='DIR',
                      help='also write its PoseTrack18-layout conversion here (new or empty; '
                           'tfds_posetrack.posetrack18.coco)')
  args = parser.parse_args(argv)
  if not 0 <= args.quality <= 100:
    parser.error(f'--quality must be 0 to 100, got {args.quality}')
  # The settings as pretrain.py records them (its GENERATED).
  settings = dict(seed=args.seed, num_images=args.num_images, width=args.width,
                  height=args.height, max_people=args.max_people, limb_code=args.limb_code,
                  jpeg_quality=args.quality)
  out = pathlib.Path(args.out)
  try:
    if args.posetrack18 and not (pathlib.Path(args.posetrack18) / coco.MARKER).is_file():
      # Before the stills are made (minutes): a folder the conversion would refuse anyway.
      coco.refuse_unless_empty(pathlib.Path(args.posetrack18), 'is not empty and holds no COCO '
                                                           f'conversion (no {coco.MARKER})')
    start = time.perf_counter()
    summary = generate_once(out, settings)
    if summary is None:
      print(f'{out} already holds these stills (nothing written)')
    else:
      print(f'{summary["images"]} images, {summary["annotations"]} people '
            f'({summary["annotations_without_keypoints"]} without keypoints), '
            f'{summary["keypoints_visible"]} visible and {summary["keypoints_occluded"]} '
            f'occluded keypoints; people per image: {summary["people_per_image"]}')
      print(f'wrote {out} in {time.perf_counter() - start:.1f} s')
    if args.posetrack18:
      start = time.perf_counter()
      marker, made = coco.convert(out, args.posetrack18)
      done = (f'wrote {args.posetrack18} in {time.perf_counter() - start:.1f} s' if made else
              f'{args.posetrack18} already holds their conversion (nothing written)')
      print(f'{done}: {marker["videos"]} one-frame train videos')
  except (OSError, ValueError) as e:
    parser.exit(2, f'{parser.prog}: error: {e}\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
