"""run.py --mode=augment: training labels propagated by PoseWarper (spec 3, the paper's
"enlarging the training set").

    root = augment(config, workdir)   # <workdir>/augment/posetrack18

The training split is made sparse by the propagation protocol (in each video's longest labeled
run, frame 4 and every 7th keep their labels), and every other frame of the run, |delta| <= 3
from its nearest kept frame, gets the kept people's poses propagated by the trained PoseWarper:
joints kept where x > 0, y > 0 and the warped peak > 0.2, the box copied. The result is a
PoseTrack18 directory in the official layout (images linked, the validation annotations
linked unchanged, new train annotation files) that the `augmented` config variant retrains the
single-frame network on:

    python run.py --config=configs/posewarper.py:augmented --workdir=runs/augmented \\
        --config.data.root=<workdir>/augment/posetrack18
"""

from __future__ import annotations

import json
import os
import pathlib

import jax
import numpy as np

from posewarper_jax import checkpoints, predictor
from posewarper_jax.data import source
from posewarper_jax.data.pipeline import image_ids_of, propagation_items, propagation_stream
from tfds_posetrack.posetrack18 import SPLITS, propagation_protocol
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS

MIN_PEAK = 0.2


def _link(target: pathlib.Path, link: pathlib.Path) -> None:
  if link.is_symlink() or link.exists():
    return
  link.parent.mkdir(parents=True, exist_ok=True)
  os.symlink(target.resolve(), link)


def augment(config, workdir: str | pathlib.Path) -> pathlib.Path:
  """Writes the enlarged training set; returns its root."""
  workdir = pathlib.Path(workdir)
  root = source.dataset_root(config, workdir)
  records, table = source.open_split(config, workdir, 'train')
  protocol = propagation_protocol(table)
  if not len(protocol):
    raise ValueError(f'the train split of {root} has no labeled run to propagate through')
  items = propagation_items(records, protocol)
  network = checkpoints.load_network(config, workdir, needs_head='propagation')
  print(f'augment: {network.checkpoint.describe()} propagates {len(items)} people onto '
        f'{int((protocol[:, 2] != 0).sum())} frames of the train split', flush=True)
  stream = propagation_stream(records, items, tuple(config.image_size), config.eval.batch,
                              config.sigma)
  xy, peak = predictor.propagate_poses(predictor.Predictor(config, network.variables), stream)
  keep = (xy[..., 0] > 0) & (xy[..., 1] > 0) & (peak > MIN_PEAK)

  kept_ids = set(image_ids_of(records, protocol[protocol[:, 2] == 0, 0]).tolist())
  target_ids = image_ids_of(records, items[:, 0])
  new_people: dict[int, list[dict]] = {}
  for k, (_, src, person) in enumerate(items):
    people = records[int(src)]['people']
    keypoints = np.where(keep[k][:, None], np.concatenate([xy[k], np.ones((NUM_JOINTS, 1))], 1),
                         0.0)
    annotation = {'keypoints': keypoints.ravel().tolist(), 'scores': [],
                  'track_id': int(people['track_id'][person]), 'category_id': 1,
                  'bbox_head': np.asarray(people['bbox_head'][person]).tolist()}
    if people['has_bbox'][person]:
      annotation['bbox'] = np.asarray(people['bbox'][person]).tolist()
    new_people.setdefault(int(target_ids[k]), []).append(annotation)

  out = workdir / 'augment' / 'posetrack18'
  if jax.process_index() != 0:
    return out
  _link(root / 'images', out / 'images')
  for split in (d for d in SPLITS if d != 'train'):
    if (root / 'annotations' / split).exists():
      _link(root / 'annotations' / split, out / 'annotations' / split)
  train_out = out / 'annotations' / 'train'
  train_out.mkdir(parents=True, exist_ok=True)
  counts = {'kept labels': 0, 'propagated people': 0, 'dropped labels': 0}
  for gt_path in sorted((root / 'annotations' / 'train').glob('*.json')):
    data = json.loads(gt_path.read_text())
    next_id = max((int(a['id']) for a in data['annotations']), default=0) + 1
    annotations = []
    for a in data['annotations']:
      if int(a['image_id']) in kept_ids:
        annotations.append(a)
        counts['kept labels'] += 1
      else:
        counts['dropped labels'] += 1
    for image in data['images']:
      image_id = int(image.get('id', image.get('frame_id')))
      image['is_labeled'] = image_id in kept_ids or image_id in new_people
      for annotation in new_people.get(image_id, []):
        annotations.append({**annotation, 'image_id': image_id, 'id': next_id})
        next_id += 1
        counts['propagated people'] += 1
    data['annotations'] = annotations
    (train_out / gt_path.name).write_text(json.dumps(data))
  print(f'augment: {counts["kept labels"]} kept labels, {counts["propagated people"]} '
        f'propagated people, {counts["dropped labels"]} labels dropped (the sparse protocol) '
        f'in {out}', flush=True)
  print('augment: retrain the single-frame network on it with\n  python run.py '
        '--config=configs/posewarper.py:augmented --workdir=<new dir> '
        f'--config.data.root={out}', flush=True)
  return out
