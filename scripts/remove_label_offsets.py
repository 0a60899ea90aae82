"""A diagnostic of docs/quickstart.md section 5: an enlarged training set with the systematic
offset of its moved labels removed, to retrain on and see what that offset costs.

    python scripts/remove_label_offsets.py --augmented=<workdir>/augment/posetrack18 \
        --truth=<the dataset root> --out=<new dir>/posetrack18

For each joint type, the mean offset of the moved labels (those the augmentation added; the
kept ones are the original annotations, same id) from the train frames' own labels, in head
sizes, as augment.LabelTally measures it; every moved joint is then shifted back by it (times
its person's head size). Only the mean moves: each label's own error around it stays. This reads
the labels the experiment drops, so its result is a diagnostic, never a training set of the
experiment. Prints the new set's label_accuracy summary.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from posewarper_jax.augment import LabelTally  # noqa: E402
from posewarper_jax.metrics.posetrack_map import head_size  # noqa: E402
from tfds_posetrack.posetrack18 import formats, layouts  # noqa: E402
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS  # noqa: E402


def _moved(data: dict, original_ids: set[int]) -> list[dict]:
  return [a for a in data['annotations'] if int(a['id']) not in original_ids]


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--augmented', required=True, type=pathlib.Path,
                      help='an enlarged set (run.py --mode=augment writes one)')
  parser.add_argument('--truth', required=True, type=pathlib.Path,
                      help='the dataset it was made from, in any official layout')
  parser.add_argument('--out', required=True, type=pathlib.Path, help='the new set (created)')
  args = parser.parse_args(argv)
  truth_dir = layouts.detect(args.truth).annotation_dir(args.truth, 'train')
  train_in = args.augmented / 'annotations' / 'train'
  files = sorted(train_in.glob('*.json'))
  if not files:
    parser.error(f'--augmented: no train annotation files in {train_in}')
  sets = []  # (file name, augmented data, moved annotations, true people by (image, track))
  for path in files:
    if not (truth_dir / path.name).exists():
      parser.error(f'--truth: {truth_dir} has no {path.name}: not the set {path} was made from')
    truth, _ = formats.read(truth_dir / path.name)
    data = json.loads(path.read_text())
    people = {(int(a['image_id']), int(a['track_id'])): a for a in truth['annotations']
              if a.get('keypoints') and a.get('bbox_head')}
    sets.append((path.name, data, _moved(data, {int(a['id']) for a in truth['annotations']}),
                 people))

  before = LabelTally()
  for _, _, moved, people in sets:
    for a in moved:
      true = people.get((int(a['image_id']), int(a['track_id'])))
      if true is not None:
        before.add([a], [1], [true])
  if not before.offsets:
    parser.error(f'no moved label in {train_in} has a label of its person in {truth_dir} to '
                 'measure its offset against')
  sums = before.offsets[1]  # [17, 3]: summed offsets (head sizes) and counts
  mean = np.divide(sums[:, :2], sums[:, 2:], out=np.zeros((NUM_JOINTS, 2)),
                   where=sums[:, 2:] > 0)

  after = LabelTally()
  (args.out / 'annotations' / 'train').mkdir(parents=True, exist_ok=True)
  for link in ('images', 'annotations/val'):
    if not (args.out / link).exists():
      os.symlink((args.augmented / link).resolve(), args.out / link)
  for name, data, moved, people in sets:
    for a in moved:
      xy = np.reshape(a['keypoints'], (NUM_JOINTS, 3)).astype(np.float64)
      on = xy[:, :2].any(axis=1)
      xy[on, :2] -= mean[on] * head_size(a['bbox_head'])  # the source's head: what it carries
      a['keypoints'] = xy.ravel().tolist()
      true = people.get((int(a['image_id']), int(a['track_id'])))
      if true is not None:
        after.add([a], [1], [true])
    (args.out / 'annotations' / 'train' / name).write_text(json.dumps(data))
  print(json.dumps({'before': before.summary()['all'], 'after': after.summary()['all']},
                   indent=1))
  return 0


if __name__ == '__main__':
  sys.exit(main())
