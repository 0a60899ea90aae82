"""run.py --mode=propagate: with the warping head at its initialization (the identity), PoseWarper
propagation must reproduce copying the labeled pose through the heatmap codec; the tables, files
and plot are written."""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import shutil

import cv2
import numpy as np
import pytest

from posewarper_jax import (
  augment,
  checkpoints,
  convert,
  plots,
  predictions,
  predictor,
  propagate,
  provenance,
  train,
)
from posewarper_jax.data import codec, source
from posewarper_jax.data.pipeline import image_ids_of, propagation_items, propagation_stream
from posewarper_jax.metrics import posetrack_map
from tests.helpers import ROOT, load_script, tiny_config
from tfds_posetrack.posetrack18 import PROPAGATION_MIN_RUN, propagation_protocol, sparse_labels


def test_an_identity_head_returns_the_labeled_gaussians(synthetic_root, identity_run):
  config, tmp_path = identity_run
  config = config.copy_and_resolve_references()
  records, table = source.open_split(config, synthetic_root, 'validation')
  items = propagation_items(records, propagation_protocol(table))
  config.eval.batch = 12 if len(items) % 12 else 11  # several batches, the last one partial
  assert len(items) > 2 * config.eval.batch
  variables = checkpoints.load(tmp_path / 'stage2').variables
  seen = 0
  stream = propagation_stream(records, items, tuple(config.image_size), config.eval.batch,
                              config.sigma)
  for gaussians, warped, _, _ in predictor.warped_heatmaps(
      predictor.Predictor(config, variables), stream):
    np.testing.assert_allclose(warped, gaussians, atol=1e-5)
    seen += len(warped)
  assert seen == len(items)

  results = propagate.propagate(config, tmp_path)
  assert list(results) == list(propagate.ROWS)
  assert set(results['copy']) == {'1', '2', '3', 'all', 'runs'}
  # The synthetic people move: copying gets worse with the distance to the label.
  assert results['copy']['1'] > results['copy']['3']
  out = tmp_path / 'propagate' / 'val'
  saved = json.loads((out / 'results.json').read_text())
  assert saved['total'] == results
  assert '| PoseWarper |' in (out / 'results.md').read_text()
  image = cv2.imread(str(out / 'propagation.png'))
  assert image is not None and image.shape == (420, 640, 3)
  assert len(np.unique(image.reshape(-1, 3), axis=0)) > 3  # something drawn


def test_an_identity_head_scores_exactly_as_the_copies_through_the_codec(synthetic_root,
                                                                         identity_run, tmp_path):
  """With the identity head, PoseWarper's Total mAP in every column (each |delta|, all moved
  frames, every frame of the runs) equals, by value, that of the kept poses copied through the
  heatmap codec: each person's ground-truth Gaussians in its box's crop, decoded, score = peak.
  The warp adds nothing of its own.

  Not the 'copy' row's numbers: that row copies the annotated coordinates, and the codec puts a
  joint on the heatmap grid, up to half a heatmap pixel off in x and in y (here 16 x 12 maps:
  2.8 frame pixels on average, 6.3 at most), which moves some joints across the match
  threshold: 95.7 against 99.5 at |delta| = 1. With 64 x 48 maps (crops of 256 x 192) it still
  differs, 91.8 against 92.4 at |delta| = 2."""
  config, workdir = identity_run
  config = config.copy_and_resolve_references()
  config.eval.checkpoint = str(workdir / 'stage2')
  results = propagate.propagate(config, tmp_path)

  records, table = source.open_split(config, tmp_path, 'validation')
  items = propagation_items(records, propagation_protocol(table, min_run=PROPAGATION_MIN_RUN),
                            kept=True)
  decoded = [codec.decode(batch['heatmaps'], batch['center'], batch['scale'])
             for batch in propagation_stream(records, items, tuple(config.image_size),
                                             config.eval.batch, config.sigma)]
  copies = tmp_path / 'copies_through_the_codec'
  predictions.write_predictions(copies, synthetic_root / 'annotations' / 'val',
                                image_ids_of(records, items[:, 0]),
                                np.concatenate([xy for xy, _ in decoded]),
                                np.concatenate([peak for _, peak in decoded]))
  # The same ground-truth subsets propagate() scored each column against.
  subsets = tmp_path / 'propagate' / 'val' / 'ground_truth'
  through_the_codec = {column: posetrack_map.evaluate(subsets / column, copies)['groups']['Total']
                       for column in results['PoseWarper']}
  assert list(through_the_codec) == ['1', '2', '3', 'all', 'runs']
  assert through_the_codec == results['PoseWarper']
  assert through_the_codec != results['copy']  # the codec's grid, as the docstring says


def test_propagation_needs_a_warping_head(identity_run, tmp_path):
  config, workdir = identity_run
  config = config.copy_and_resolve_references()
  backbone_only = {k: {'backbone': v['backbone']}
                   for k, v in checkpoints.load(workdir / 'stage1').variables.items()}
  convert.save_variables(backbone_only, tmp_path / 'hrnet')  # as a converted COCO HRNet
  config.eval.checkpoint = str(tmp_path / 'hrnet')
  with pytest.raises(ValueError, match='hrnet has no warping head'):
    propagate.propagate(config, workdir)
  # A stage-1 run holds the head's untrained initialization: not a warping head either.
  config.eval.checkpoint = str(workdir / 'stage1')
  with pytest.raises(ValueError, match='stage1 has no warping head'):
    propagate.propagate(config, workdir)


def _six_frames(config, data_root: pathlib.Path):
  """What the augmentation of the (-1, 2) subset must write, from the split itself: (records,
  table, image_id(record), the kept frames' ids, target id -> its sources' ids (a kept frame's
  six frames that are not kept), image id -> its original annotations)."""
  records, table = source.open_split(config, data_root, 'train')
  sparse = sparse_labels(table, -1, 2, config.seed)
  image_id = lambda r: int(records[int(r)]['image_id'])
  kept = {image_id(r) for r in np.flatnonzero(sparse.is_labeled)}
  sources_of = {}
  for r in np.flatnonzero(sparse.is_labeled):
    for d in (-3, -2, -1, 1, 2, 3):
      target = int(table.lookup(table.video[r], table.frame_index[r] + d))
      if target >= 0 and not sparse.is_labeled[target]:
        sources_of.setdefault(image_id(target), []).append(image_id(r))
  original = {}
  for path in (data_root / 'annotations' / 'train').glob('*.json'):
    for a in json.loads(path.read_text())['annotations']:
      original.setdefault(int(a['image_id']), []).append(a)
  return records, table, image_id, kept, sources_of, original


def test_augment_propagates_every_kept_pose_to_its_six_frames(synthetic_root, identity_run):
  """The release's augmentation (spec 7): the run's (V, N) subset kept, each kept pose propagated
  to delta -3..-1, +1..+3 (each source's poses, where two reach a frame), nothing else labeled."""
  data_root = synthetic_root
  config, workdir = identity_run
  config = config.copy_and_resolve_references()
  config.data.update(labeled_videos=-1, labeled_frames_per_video=2)
  out = augment.augment(config, workdir)
  records, table, image_id, kept, sources_of, original = _six_frames(config, data_root)
  propagated, labeled_total, reached = 0, 0, set()
  for path in (out / 'annotations' / 'train').glob('*.json'):
    data = json.loads(path.read_text())
    labeled = {int(i['id']) for i in data['images'] if i['is_labeled']}
    labeled_total += len(labeled)
    for a in data['annotations']:
      frame = int(a['image_id'])
      assert frame in labeled
      if frame in kept:  # the sparse labels, unchanged
        assert a in original[frame]
        continue
      assert frame in sources_of, 'a label outside the subset and its six frames survived'
      propagated += 1
      reached.add(frame)
      # The identity head moves nothing: one source's pose of the same person, up to decoding,
      # with exactly its annotated joints (all inside these frames, peaks near 1).
      candidates = [o for s in sources_of[frame] for o in original[s]
                    if o['track_id'] == a['track_id']]
      got = np.reshape(a['keypoints'], (17, 3))
      assert any(np.array_equal(got[:, 2] > 0, np.reshape(o['keypoints'], (17, 3))[:, 2] > 0)
                 and np.abs(got[:, :2] - np.reshape(o['keypoints'], (17, 3))[:, :2]).max() < 8
                 for o in candidates)
  assert reached == set(sources_of)  # every one of the six frames of every kept frame
  by_id = {image_id(r): int(r) for r in range(len(table))}
  rows = np.array([(by_id[t], by_id[s], 1) for t, sources in sources_of.items() for s in sources])
  assert propagated == len(propagation_items(records, rows))  # each source's people, once each
  assert (out / 'images').is_symlink() and (out / 'annotations' / 'val').is_symlink()

  # The enlarged set builds and trains the single-frame network (the `augmented` variant).
  retrain = tiny_config(out, stages=(1,), num_steps=1, checkpoint_every=1)
  state = train.train_stage(retrain, workdir / 'retrained', 1)
  assert int(state.step) == 1
  _, enlarged = source.open_split(retrain, workdir / 'retrained', 'train')
  assert int(enlarged.is_labeled.sum()) == labeled_total


def test_the_controls_copy_the_kept_poses_or_keep_the_neighbours_own_labels(synthetic_root,
                                                                            identity_run):
  """The augmentation's controls on the same frames: 'copy' puts each kept pose unchanged on its
  six frames; 'ground_truth' keeps those frames' own labels and adds nothing."""
  config, workdir = identity_run
  config = config.copy_and_resolve_references()
  config.data.update(labeled_videos=-1, labeled_frames_per_video=2)
  _, _, _, kept, sources_of, original = _six_frames(config, synthetic_root)

  def written(poses):
    out = augment.augment(config, workdir, poses)
    assert out == workdir / f'augment_{poses}' / 'posetrack18'
    return [a for path in (out / 'annotations' / 'train').glob('*.json')
            for a in json.loads(path.read_text())['annotations']]

  copied = [a for a in written('copy') if int(a['image_id']) not in kept]
  assert {int(a['image_id']) for a in copied} == set(sources_of)
  for a in copied:
    got = np.reshape(a['keypoints'], (17, 3))
    poses = [np.reshape(o['keypoints'], (17, 3)) for s in sources_of[int(a['image_id'])]
             for o in original[s] if o['track_id'] == a['track_id']]
    assert any(np.array_equal(got[:, :2], np.where(p[:, 2:] > 0, p[:, :2], 0))
               and np.array_equal(got[:, 2], (p[:, 2] > 0).astype(float)) for p in poses)

  # The copies scored against the frames' own labels: every copied person whose frame has a
  # label of that track, by |delta|.
  accuracy = json.loads((workdir / 'augment_copy' / 'label_accuracy.json').read_text())
  scored = [a for a in copied if any(o['track_id'] == a['track_id'] and any(o['keypoints'])
                                     for o in original.get(int(a['image_id']), []))]
  assert accuracy['all']['people'] == len(scored) > 0
  assert set(accuracy) - {'all'} <= {'1', '2', '3'}
  assert sum(accuracy[d]['people'] for d in accuracy if d != 'all') == len(scored)
  assert 0 < accuracy['all']['pckh'] <= 100

  truth = written('ground_truth')
  expected = [a for frame in kept | set(sources_of) for a in original.get(frame, [])]
  assert sorted(map(json.dumps, truth)) == sorted(map(json.dumps, expected))
  assert any(int(a['image_id']) not in kept for a in truth)
  assert not (workdir / 'augment_ground_truth' / 'label_accuracy.json').exists()


def test_moved_labels_are_scored_against_the_frames_own_labels():
  """augment.LabelTally: PCKh@0.5 (half of 0.6 x the head box diagonal: 3 px for a 6 x 8 box)
  per |delta|, the joints kept and the kept joints that are right."""
  def person(track, joints, head=None):
    keypoints = np.zeros((17, 3))
    for j, (x, y) in joints.items():
      keypoints[j] = (x, y, 1)
    return {'track_id': track, 'keypoints': keypoints.ravel().tolist(),
            **({'bbox_head': head} if head else {})}

  truth = [person(1, {0: (10, 10), 1: (20, 20), 2: (30, 30), 3: (40, 40)}, [0, 0, 6, 8]),
           person(2, {0: (50, 50)}, [0, 0, 6, 8])]
  # Track 1: joint 0 exact, 1 off by 2.9 px (right), 2 off by 3.1 px (wrong), 3 dropped by the
  # filter, 4 kept where the frame has no label. Track 3 has no label here: not scored.
  moved = [person(1, {0: (10, 10), 1: (22.9, 20), 2: (30, 33.1), 4: (5, 5)}),
           person(2, {0: (50, 51)}), person(3, {0: (1, 1)})]
  tally = augment.LabelTally()
  tally.add(moved, [-1, 3, 2], truth)
  summary = tally.summary()
  assert list(summary) == ['1', '3', 'all']
  # Offsets in head sizes (6 px): joint 0 none, 1 (2.9 / 6, 0), 2 (0, 3.1 / 6); joint 4 has
  # no truth to be off from.
  assert summary['1'] == pytest.approx({'people': 1, 'joints': 4, 'pckh': 50.0, 'kept': 75.0,
                                        'precision': 50.0, 'offset': (2.9 + 3.1) / 6 / 3})
  assert summary['3'] == pytest.approx({'people': 1, 'joints': 1, 'pckh': 100.0, 'kept': 100.0,
                                        'precision': 100.0, 'offset': 1 / 6})
  assert summary['all']['people'] == 2 and summary['all']['pckh'] == 60.0
  assert summary['all']['precision'] == 60.0  # 3 of the 5 kept joints
  # Joint 0's offsets over both: (0, 0) and (0, 1 / 6), a mean of (0, 1 / 12).
  assert summary['all']['offset'] == pytest.approx((1 / 12 + 2.9 / 6 + 3.1 / 6) / 3)

  # Errors that cancel are no offset: the same joint 1/6 head size left, then right.
  tally = augment.LabelTally()
  tally.add([person(2, {0: (49, 50)}), person(2, {0: (51, 50)})], [1, -1], truth)
  assert tally.summary()['all']['offset'] == 0.0
  assert tally.summary()['all']['pckh'] == 100.0


def test_plot_and_table_survive_a_subset_without_some_joint(tmp_path):
  """poseval's mAP is NaN on a |delta| subset that lacks ground truth for some joint (a tiny
  validation split): the plot leaves that point out, the table says nan."""
  results = {'PoseWarper': {'1': 90.0, '2': float('nan'), '3': 70.0},
             'copy': {'1': 95.0, '2': 80.0, '3': 60.0}}
  path = tmp_path / 'propagation.png'
  plots.propagation(results, ['1', '2', '3'], path)
  image = cv2.imread(str(path))
  assert image is not None and image.shape == (420, 640, 3)
  table = propagate.results_table(results, ['1', '2', '3'])
  assert '| PoseWarper | 90.0 | nan | 70.0 |' in table
  assert table.splitlines()[0] == ('| mAP (Total) | \\|delta\\| = 1 | \\|delta\\| = 2 | '
                                   '\\|delta\\| = 3 |')


def test_propagated_joints_are_kept_inside_the_frame_and_above_the_peak_threshold():
  xy = np.array([[[5.0, 5.0], [0.0, 3.0], [4.0, -1.0], [6.0, 7.0]]])
  peak = np.array([[0.9, 0.9, 0.9, 0.2]])
  np.testing.assert_array_equal(augment.propagated_keypoints(xy, peak)[0],
                                [[5, 5, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]])


def test_augment_refuses_another_label_subset_than_the_run_trained_on(identity_run, tmp_path):
  config, trained = identity_run
  workdir = tmp_path / 'run'
  shutil.copytree(trained / 'stage2', workdir / 'stage2')
  config = config.copy_and_resolve_references()
  provenance.write_config(config, workdir)  # the run: every label (-1, -1)
  config.data.labeled_frames_per_video = 2
  with pytest.raises(ValueError, match=r'trained on another label subset .*config.data.'
                                       r'labeled_frames_per_video: -1 in the run, 2 now'):
    augment.augment(config, workdir)


def test_the_offset_diagnostic_moves_only_the_moved_labels_by_their_mean(synthetic_root,
                                                                          identity_run, tmp_path):
  """scripts/remove_label_offsets.py on the copy control's set: the kept labels unchanged, the
  copied ones shifted per joint type until their mean offset from the truth is gone."""
  remove_label_offsets = load_script(ROOT / 'scripts' / 'remove_label_offsets.py')

  config, workdir = identity_run
  config = config.copy_and_resolve_references()
  config.data.update(labeled_videos=-1, labeled_frames_per_video=2)
  augmented = augment.augment(config, workdir, 'copy')
  out = tmp_path / 'posetrack18'
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    assert remove_label_offsets.main([f'--augmented={augmented}', f'--truth={synthetic_root}',
                                      f'--out={out}']) == 0
  summary = json.loads(printed.getvalue())
  assert summary['before']['offset'] > 0.005  # copies lag their people, not quite evenly
  # Not exactly 0: a label is shifted by its source's head size, measured by its target's.
  assert summary['after']['offset'] < min(0.002, summary['before']['offset'] / 10)
  assert summary['after']['people'] == summary['before']['people']
  original = {int(a['id']) for path in (synthetic_root / 'annotations' / 'train').glob('*.json')
              for a in json.loads(path.read_text())['annotations']}
  for path in (augmented / 'annotations' / 'train').glob('*.json'):
    before = json.loads(path.read_text())['annotations']
    after = json.loads((out / 'annotations' / 'train' / path.name).read_text())['annotations']
    assert [a['id'] for a in after] == [a['id'] for a in before]
    for a, b in zip(before, after, strict=True):
      if int(a['id']) in original:
        assert a == b
      else:
        assert {**a, 'keypoints': None} == {**b, 'keypoints': None}
  assert (out / 'images').resolve() == (augmented / 'images').resolve()
