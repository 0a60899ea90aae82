"""run.py --mode=augment: the training set enlarged with poses PoseWarper propagates, as the
release's augmentation experiment runs it (spec 7, "data augmentation with propagated poses").

    root = augment(config, workdir)   # <workdir>/augment/posetrack18

The labels kept are the run's sparse subset (config.data.labeled_videos and
labeled_frames_per_video: the same frames both of its stages trained on, so nothing in the
experiment has seen another label). Every kept pose is propagated by the run's PoseWarper to each
of the six frames at delta -3 .. -1, +1 .. +3 of its video that are stored and not kept
themselves (pairs.augmentation_targets; a frame near two kept frames gets the poses of both); a
joint is kept where x > 0, y > 0 and the warped peak > 0.2, else written as (0, 0, 0); the
person keeps its source box. The result is a PoseTrack18 directory in the official layout,
whichever layout the source has (images linked, the other splits' annotation folders linked
unchanged, in their own format; new train annotation files in the 2018 format: the kept labels
and the propagated ones, every other label dropped) that the `augmented`
config variant retrains the single-frame network on, from COCO with the release's settings:

    python run.py --config=configs/posewarper.py:augmented --workdir=runs/augmented \\
        --config.data.root=<workdir>/augment/posetrack18

Two controls of the same experiment put other poses on the same frames (`poses`; written to
<workdir>/augment_<poses>/posetrack18): 'copy', each kept pose copied unchanged to its six
frames (what the warp adds over doing nothing), and 'ground_truth', the six frames' own labels
where they have them (what labeling those frames would give: the ceiling of any propagation).

How right the moved poses are: <workdir>/augment[_<poses>]/label_accuracy.json scores every
propagated or copied person against its target frame's own ground truth where the source has
one (the labels the experiment drops: read here to measure, never to train), by |delta| and
over all: PCKh@0.5 (the metric's match: a joint within half a head size), the share of the
true joints the filter kept, the share of kept joints that are right, and the systematic offset
(LabelTally.summary), which a network retrained on the labels learns.
"""

from __future__ import annotations

import json
import os
import pathlib

import jax
import numpy as np

from posewarper_jax import checkpoints, config_checks, paths, predictor
from posewarper_jax.data import source
from posewarper_jax.data.pipeline import image_ids_of, propagation_items, propagation_stream
from posewarper_jax.metrics.posetrack_map import MATCH_THRESHOLD, head_size
from tfds_posetrack.posetrack18 import (
  PROPAGATION_DISTANCE,
  augmentation_targets,
  formats,
  layouts,
)
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS

MIN_PEAK = 0.2
# The poses an enlarged set can give the frames near each kept label (the module docstring).
POSES = ('posewarper', 'copy', 'ground_truth')


def _link(target: pathlib.Path, link: pathlib.Path) -> None:
  if link.is_symlink() or link.exists():
    return
  link.parent.mkdir(parents=True, exist_ok=True)
  os.symlink(target.resolve(), link)


def propagated_keypoints(xy: np.ndarray, peak: np.ndarray) -> np.ndarray:
  """Propagated poses as annotations: [M, 17, 3] (x, y, 1) where x > 0, y > 0 and the warped
  peak > MIN_PEAK, (0, 0, 0) elsewhere (the release's filter). xy [M, 17, 2], peak [M, 17]."""
  keep = (xy[..., 0] > 0) & (xy[..., 1] > 0) & (peak > MIN_PEAK)
  return np.where(keep[..., None], np.concatenate([xy, np.ones((*xy.shape[:2], 1))], -1), 0.0)


# What decides the training labels of a run: an augmentation with other values would propagate
# with a network that has seen labels the experiment pretends not to have.
SUBSET_FIELDS = ('seed', 'data.labeled_seed', 'data.labeled_videos',
                 'data.labeled_frames_per_video')


def _check_subset(config, workdir: pathlib.Path) -> None:
  """ValueError when the run in workdir (its config.json) trained on another label subset than
  this command keeps; nothing to compare when the network comes from elsewhere
  (config.eval.checkpoint) or the run has no config.json."""
  path = workdir / 'config.json'
  if config.eval.checkpoint or not path.exists():
    return
  saved = config_checks.flatten(json.loads(path.read_text()))
  requested = config_checks.flatten(json.loads(config.to_json_best_effort()))
  changed = [f'config.{f}: {saved[f]!r} in the run, {requested[f]!r} now' for f in SUBSET_FIELDS
             if f in saved and saved[f] != requested.get(f)]
  if changed:
    raise ValueError(f'{workdir} was trained on another label subset than this command keeps '
                     f'({path}): ' + '; '.join(changed) + '. Use the run\'s values: its '
                     'network must not have seen a label the augmentation drops.')


def output_root(workdir: str | pathlib.Path, poses: str = 'posewarper') -> pathlib.Path:
  """Where augment(..., poses) writes its PoseTrack18 directory."""
  folder = 'augment' if poses == 'posewarper' else f'augment_{poses}'
  return pathlib.Path(workdir) / folder / 'posetrack18'


def augment(config, workdir: str | pathlib.Path, poses: str = 'posewarper') -> pathlib.Path:
  """Writes the enlarged training set (its frames near each kept label given `poses`, one of
  POSES); returns its root."""
  if poses not in POSES:
    raise ValueError(f'augment: poses must be one of {POSES}, got {poses!r}')
  workdir = pathlib.Path(workdir)
  _check_subset(config, workdir)
  root = source.dataset_root(config, workdir)
  records, table = source.open_split(config, workdir, 'train')
  table = source.labeled_subset(config, table)
  targets = augmentation_targets(table)
  if not len(targets):
    raise ValueError(f'the train split of {root} has no stored unlabeled frame within '
                     f'{PROPAGATION_DISTANCE} of a kept label to propagate to')
  items = propagation_items(records, targets)
  kept_records = np.flatnonzero(table.is_labeled)
  kept_ids = set(image_ids_of(records, kept_records).tolist())
  target_ids = image_ids_of(records, items[:, 0])
  new_people: dict[int, list[dict]] = {}
  new_deltas: dict[int, list[int]] = {}  # aligned with new_people: frames from the source
  deltas = table.frame_index[items[:, 0]] - table.frame_index[items[:, 1]]
  # The ground-truth control keeps every target frame's own labels, and its labeled flag.
  own_labels = (set(image_ids_of(records, targets[:, 0]).tolist()) if poses == 'ground_truth'
                else set())
  if poses != 'ground_truth':
    # Each source frame read once (its people's ids and boxes are not in the lean records).
    sources = {int(r): records[int(r)]['people'] for r in np.unique(items[:, 1])}
    keypoints = _moved_keypoints(config, workdir, records, sources, items, kept_records, poses)
    for k, (_, src, person) in enumerate(items):
      people = sources[int(src)]
      annotation = {'keypoints': keypoints[k].ravel().tolist(), 'scores': [],
                    'track_id': int(people['track_id'][person]), 'category_id': 1,
                    'bbox_head': np.asarray(people['bbox_head'][person]).tolist()}
      if people['has_bbox'][person]:
        annotation['bbox'] = np.asarray(people['bbox'][person]).tolist()
      new_people.setdefault(int(target_ids[k]), []).append(annotation)
      new_deltas.setdefault(int(target_ids[k]), []).append(int(deltas[k]))

  out = output_root(workdir, poses)
  if jax.process_index() != 0:
    return out
  layout = layouts.detect(root)
  _link(root / 'images', out / 'images')
  for split in (d for d in layout.splits if d != 'train'):
    if layout.annotation_dir(root, split).exists():
      _link(layout.annotation_dir(root, split), layouts.POSETRACK18.annotation_dir(out, split))
  train_out = layouts.POSETRACK18.annotation_dir(out, 'train')
  train_out.mkdir(parents=True, exist_ok=True)
  counts = {'kept labels': 0, 'propagated people': 0, 'own labels': 0, 'dropped labels': 0}
  tally = LabelTally()
  for gt_path in sorted(layout.annotation_dir(root, 'train').glob('*.json')):
    data, _ = formats.read(gt_path)  # PoseTrack17's frames keep their imgnum: the same ids
    next_id = max((int(a['id']) for a in data['annotations']), default=0) + 1
    annotations, own = [], {}
    for a in data['annotations']:
      own.setdefault(int(a['image_id']), []).append(a)
      if int(a['image_id']) in kept_ids or int(a['image_id']) in own_labels:
        annotations.append(a)
        counts['kept labels' if int(a['image_id']) in kept_ids else 'own labels'] += 1
      else:
        counts['dropped labels'] += 1
    for image in data['images']:
      image_id = int(image.get('id', image.get('frame_id')))
      image['is_labeled'] = (image_id in kept_ids or image_id in new_people
                             or (image_id in own_labels and bool(image.get('is_labeled'))))
      if image_id in new_people:
        tally.add(new_people[image_id], new_deltas[image_id], own.get(image_id, []))
      for annotation in new_people.get(image_id, []):
        annotations.append({**annotation, 'image_id': image_id, 'id': next_id})
        next_id += 1
        counts['propagated people'] += 1
    data['annotations'] = annotations
    (train_out / gt_path.name).write_text(json.dumps(data))
  added = (f'{counts["own labels"]} labels of their neighbours' if poses == 'ground_truth' else
           f'{counts["propagated people"]} {"copied" if poses == "copy" else "propagated"} people')
  print(f'augment ({poses}): {counts["kept labels"]} kept labels, {added}, '
        f'{counts["dropped labels"]} labels dropped (outside the subset) in {out}', flush=True)
  if poses != 'ground_truth':
    accuracy = tally.summary()
    paths.write_atomically(out.parent / 'label_accuracy.json', json.dumps(accuracy, indent=1))
    print(f'augment ({poses}): against the frames\' own labels (never trained on), '
          + '; '.join(f'|delta| = {d}: PCKh {a["pckh"]:.1f}' for d, a in accuracy.items()
                      if d != 'all')
          + f'; all: PCKh {accuracy["all"]["pckh"]:.1f}, {accuracy["all"]["kept"]:.1f}% of '
          f'the true joints kept, {accuracy["all"]["precision"]:.1f}% of the kept right, '
          f'systematic offset {accuracy["all"]["offset"]:.3f} head sizes '
          f'({accuracy["all"]["people"]} people scored; {out.parent / "label_accuracy.json"})',
          flush=True)
  print('augment: retrain the single-frame network on it with\n  python run.py '
        '--config=configs/posewarper.py:augmented --workdir=<new dir> '
        f'--config.data.root={out}', flush=True)
  return out


class LabelTally:
  """Moved poses scored against their target frames' ground truth (label_accuracy.json)."""

  def __init__(self):
    # |delta| -> [people, true joints, of them kept, of them right, joints kept]
    self.counts: dict[int, np.ndarray] = {}
    # |delta| -> [17, 3]: per joint, the summed offset from the truth (x, y, in head sizes) of
    # the joints kept, and their number
    self.offsets: dict[int, np.ndarray] = {}

  def add(self, moved: list[dict], deltas: list[int], truth: list[dict]) -> None:
    """moved: the annotations moved onto one frame (2018 format), deltas: theirs from their
    sources; truth: that frame's own annotations. A person is scored against the true person of
    the same track_id; one the frame has no label of is not scored."""
    people = {int(a['track_id']): a for a in truth if a.get('keypoints') and a.get('bbox_head')}
    for annotation, delta in zip(moved, deltas, strict=True):
      true = people.get(int(annotation['track_id']))
      if true is None:
        continue
      gt = np.asarray(true['keypoints'], np.float64).reshape(NUM_JOINTS, 3)
      xy = np.asarray(annotation['keypoints'], np.float64).reshape(NUM_JOINTS, 3)
      has_gt = gt.any(axis=1)  # an unannotated joint is (0, 0, 0)
      if not has_gt.any():
        continue
      kept = xy.any(axis=1)
      offset = (xy[:, :2] - gt[:, :2]) / head_size(true['bbox_head'])
      right = kept & has_gt & (np.linalg.norm(offset, axis=1) <= MATCH_THRESHOLD)
      row = self.counts.setdefault(abs(delta), np.zeros(5, np.int64))
      row += [1, has_gt.sum(), (kept & has_gt).sum(), right.sum(), kept.sum()]
      both = (kept & has_gt)[:, None]
      self.offsets.setdefault(abs(delta), np.zeros((NUM_JOINTS, 3)))[:] += np.where(
          both, np.concatenate([offset, np.ones((NUM_JOINTS, 1))], axis=1), 0.0)

  def summary(self) -> dict[str, dict[str, float]]:
    """{'1', '2', '3', 'all': {'people', 'joints' (true joints), 'pckh' (% of them right),
    'kept' (% of them the filter kept), 'precision' (% of the joints kept that are right),
    'offset' (the systematic error: per joint type, the length of the mean offset from the
    truth, in head sizes, averaged over the joint types)}}.

    A network retrained on the labels learns their offset: errors that average out (a copy
    lags its person's motion, either way) cost less than ones that do not, which PCKh at half
    a head size cannot tell apart."""
    keys = [*map(str, sorted(self.counts)), 'all']
    counts = [*(self.counts[d] for d in sorted(self.counts)),
              sum(self.counts.values(), np.zeros(5, np.int64))]
    offsets = [*(self.offsets[d] for d in sorted(self.counts)),
               sum(self.offsets.values(), np.zeros((NUM_JOINTS, 3)))]
    pct = lambda a, b: 100.0 * a / b if b else float('nan')
    out = {}
    for key, c, o in zip(keys, counts, offsets, strict=True):
      seen = o[:, 2] > 0
      mean = o[seen, :2] / o[seen, 2:]
      out[key] = {'people': int(c[0]), 'joints': int(c[1]), 'pckh': pct(c[3], c[1]),
                  'kept': pct(c[2], c[1]), 'precision': pct(c[3], c[4]),
                  'offset': float(np.linalg.norm(mean, axis=1).mean()) if seen.any()
                  else float('nan')}
    return out


def _moved_keypoints(config, workdir: pathlib.Path, records, sources: dict[int, dict],
                     items: np.ndarray, kept_records: np.ndarray, poses: str) -> np.ndarray:
  """[M, 17, 3] annotations for items (target, source, person): the source person's pose
  warped onto the target by the run's PoseWarper, or copied; either through the release's
  joint filter (a copied joint: its annotated position, at peak 1 where it is annotated)."""
  if poses == 'copy':
    copied = np.stack([np.asarray(sources[int(src)]['keypoints'])[p]
                       for _, src, p in items]).reshape(-1, NUM_JOINTS, 3)
    return propagated_keypoints(copied[..., :2], (copied[..., 2] > 0).astype(np.float64))
  network = checkpoints.load_network(config, workdir, needs_head='propagation')
  print(f'augment: {network.checkpoint.describe()} propagates the {len(items)} people of '
        f'{len(kept_records)} kept frames onto {len(np.unique(items[:, 0]))} frames of the '
        'train split', flush=True)
  stream = propagation_stream(records, items, tuple(config.image_size), config.eval.batch,
                              config.sigma)
  xy, peak = predictor.propagate_poses(predictor.Predictor(config, network.variables), stream)
  return propagated_keypoints(xy, peak)
