"""Decoding, prediction files and run.py --mode=eval: an oracle that renders the ground truth
as heatmaps must score 100 through decode -> write_predictions -> the official mAP; a tiny
trained run goes through the whole evaluation."""

from __future__ import annotations

import collections
import json
import pathlib

import numpy as np
import pytest

from posewarper_jax import evaluate, predictions
from posewarper_jax.data import codec, source, transforms
from posewarper_jax.data.pipeline import ground_truth_boxes, image_ids_of
from posewarper_jax.metrics import posetrack_map
from tests.helpers import tiny_config
from tests.shared_data import SAMPLE
from tfds_posetrack.posetrack18.keypoints import JOINT_INDEX, NUM_JOINTS, flip_permutation

# --- Decoding -----------------------------------------------------------------------------------

def test_decode_quarter_pixel_shift_and_inverse_affine():
  h, w, joints = 16, 12, NUM_JOINTS
  heatmaps = np.zeros((1, h, w, joints), np.float32)
  heatmaps[0, 7, 5, 0] = 1.0      # joint 0: peak (x 5, y 7), right and upper neighbours larger
  heatmaps[0, 7, 6, 0] = 0.5
  heatmaps[0, 6, 5, 0] = 0.4
  heatmaps[0, 0, 3, 1] = 0.8      # joint 1: on the border row: no shift
  heatmaps[0, 1, 3, 1] = 0.7
  heatmaps[0, 9, 1, 2] = 0.6      # joint 2: x = 1 is not 'inside' for HRNet (1 < px): no shift
  heatmaps[0, 9, 2, 2] = 0.5
  heatmaps[..., 3] = -1.0         # joint 3: no positive peak: the corner (0, 0)
  center, scale = np.array([[100.0, 50.0]]), np.array([[0.6, 0.8]])
  xy, peak = codec.decode(heatmaps, center, scale)
  # Heatmap (x, y) -> frame: center + (x - w / 2, y - h / 2) * scale * 200 / w.
  to_frame = lambda x, y: center[0] + (np.array([x, y]) - [w / 2, h / 2]) * scale[0, 0] * 200 / w
  np.testing.assert_allclose(xy[0, 0], to_frame(5.25, 6.75), atol=1e-3)
  np.testing.assert_allclose(xy[0, 1], to_frame(3, 0), atol=1e-3)
  np.testing.assert_allclose(xy[0, 2], to_frame(1, 9), atol=1e-3)
  np.testing.assert_allclose(xy[0, 3], to_frame(0, 0), atol=1e-3)
  np.testing.assert_allclose(peak[0, :4], [1.0, 0.8, 0.6, -1.0])


def test_oks_nms_drops_duplicates_and_keeps_distinct_people():
  rng = np.random.default_rng(1)
  pose = rng.uniform(0, 100, (NUM_JOINTS, 2))
  xy = np.stack([pose, pose + 0.5, pose + 300.0])   # a near-duplicate, and someone else
  scores = np.array([[0.5] * NUM_JOINTS, [0.9] * NUM_JOINTS, [0.4] * NUM_JOINTS])
  areas = np.full(3, 100.0 * 100.0)
  np.testing.assert_array_equal(predictions.oks_nms(xy, scores, areas, 0.9), [1, 2])
  # Joints at or under 0.2 do not count towards a pose's score: pose 1 still ranks first with
  # two joints at 0.9 (a plain mean, 0.2, would have kept pose 0 instead).
  scores[1, :15] = 0.1
  np.testing.assert_array_equal(predictions.oks_nms(xy, scores, areas, 0.9), [1, 2])
  keep = predictions.nms_per_frame(np.array([7, 7, 8]), xy, scores, areas, 0.9)
  np.testing.assert_array_equal(keep, [False, True, True])


def test_neck_from_shoulders_is_the_releases_scoring():
  xy = np.zeros((1, NUM_JOINTS, 2))
  scores = np.full((1, NUM_JOINTS), 0.5)
  xy[0, JOINT_INDEX['left_shoulder']], scores[0, JOINT_INDEX['left_shoulder']] = (10, 20), 0.8
  xy[0, JOINT_INDEX['right_shoulder']], scores[0, JOINT_INDEX['right_shoulder']] = (30, 40), 0.6
  moved, rescored = predictions.neck_from_shoulders(xy, scores)
  np.testing.assert_allclose(moved[0, JOINT_INDEX['head_bottom']], (20, 30))
  assert rescored[0, JOINT_INDEX['head_bottom']] == pytest.approx(0.7)
  assert xy[0, JOINT_INDEX['head_bottom']].tolist() == [0, 0]  # the input is left alone


def test_flip_back_undoes_a_mirrored_crop():
  rng = np.random.default_rng(0)
  heatmaps = rng.uniform(size=(2, 8, 6, NUM_JOINTS)).astype(np.float32)
  mirrored = heatmaps[:, :, ::-1]  # a mirrored crop's heatmaps, joints still named as seen
  swap = list(flip_permutation())
  back = np.asarray(codec.flip_back(mirrored[..., swap]))
  # HRNet shifts the mirrored map one pixel right: column x holds the original's column x - 1.
  np.testing.assert_array_equal(back[:, :, 1:], heatmaps[:, :, :-1])
  left, right = JOINT_INDEX['left_wrist'], JOINT_INDEX['right_wrist']
  assert swap[left] == right


def test_an_oracle_scores_as_the_ground_truth_itself(synthetic_root, tmp_path):
  data_root = synthetic_root
  """Gaussian heatmaps of the ground truth in each box's crop -> decode -> files -> mAP equals
  the mAP of the ground truth's own coordinates written as predictions."""
  config = tiny_config(data_root)
  records, table = source.open_split(config, data_root, 'validation')
  boxes = ground_truth_boxes(records, table)
  image_size = (256, 192)  # (H, W) crops, 64x48 heatmaps
  heatmaps, centers, scales, image_ids, truth = [], [], [], [], []
  for record, box, annotation_id in zip(boxes.record, boxes.box, boxes.annotation_id,
                                        strict=True):
    frame = records[int(record)]
    person = list(frame['people']['annotation_id']).index(annotation_id)
    keypoints = np.asarray(frame['people']['keypoints'][person], np.float64)
    center, scale, matrix = transforms.box_crop(box, image_size[::-1])
    in_crop = transforms.transform_keypoints(keypoints, matrix)
    maps, _ = codec.encode(in_crop, image_size[::-1], (48, 64), sigma=2.0)
    heatmaps.append(maps)
    centers.append(center)
    scales.append(scale)
    image_ids.append(int(frame['image_id']))
    truth.append(keypoints)
  xy, peak = codec.decode(np.stack(heatmaps), np.stack(centers), np.stack(scales))
  # The decoded points are a fraction of a pixel off; an ignore region's edge between a point
  # and its decoded copy would decide differently for the two, so this comparison drops them.
  gt_dir = _without_ignore_regions(data_root / 'annotations' / 'val', tmp_path / 'gt')
  assert predictions.write_predictions(tmp_path / 'oracle', gt_dir, image_ids, xy, peak) == 2
  truth = np.stack(truth)  # unannotated joints (0, 0) scored 0, as the oracle's empty maps
  predictions.write_predictions(tmp_path / 'truth', gt_dir, image_ids, truth[..., :2],
                              (truth[..., 2] > 0).astype(np.float64))
  oracle = posetrack_map.evaluate(gt_dir, tmp_path / 'oracle')
  exact = posetrack_map.evaluate(gt_dir, tmp_path / 'truth')
  np.testing.assert_allclose(oracle['ap'], exact['ap'], atol=1e-9)
  assert oracle['ap'][15] > 95
  # The files are what the official format says: the ground truth's images, 17 scores each.
  name = next((tmp_path / 'oracle').glob('*.json')).name
  written = json.loads((tmp_path / 'oracle' / name).read_text())
  assert written['images'] == json.loads((gt_dir / name).read_text())['images']
  assert all(len(a['scores']) == NUM_JOINTS and len(a['keypoints']) == 3 * NUM_JOINTS
             for a in written['annotations'])
  # ... and predictions moved by a few head sizes score near 0: the comparison is not vacuous.
  worse = posetrack_map.evaluate(gt_dir, _shifted(tmp_path / 'oracle', tmp_path / 'moved', 60.0))
  assert worse['ap'][15] < 10


def _without_ignore_regions(gt_dir: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
  out.mkdir()
  for path in gt_dir.glob('*.json'):
    data = json.loads(path.read_text())
    for image in data['images']:
      image.pop('ignore_regions_x', None)
      image.pop('ignore_regions_y', None)
    (out / path.name).write_text(json.dumps(data))
  return out


def _shifted(pred_dir: pathlib.Path, out: pathlib.Path, dx: float) -> pathlib.Path:
  out.mkdir()
  for path in pred_dir.glob('*.json'):
    data = json.loads(path.read_text())
    for a in data['annotations']:
      a['keypoints'] = [v + dx if i % 3 == 0 else v for i, v in enumerate(a['keypoints'])]
    (out / path.name).write_text(json.dumps(data))
  return out


def test_write_predictions_rejects_frames_of_no_video(tmp_path, synthetic_root):
  gt_dir = synthetic_root / 'annotations' / 'val'
  with pytest.raises(ValueError, match='in no ground-truth file'):
    predictions.write_predictions(tmp_path, gt_dir, [123], np.zeros((1, NUM_JOINTS, 2)),
                                np.ones((1, NUM_JOINTS)))


# --- The eval mode ------------------------------------------------------------------------------
# (run.py --mode=eval from another folder with relative paths: test_quickstart.py)

def test_eval_mode_on_a_tiny_trained_run(synthetic_root, identity_run):
  """Each row's numbers are the official mAP of the prediction files it wrote (one pose per
  ground-truth box), and the table shows the numbers of results.json."""
  config, workdir = identity_run
  config = config.copy_and_resolve_references()
  config.eval.update(batch=8, flip_test=True)
  returned = evaluate.evaluate(config, workdir)
  out = workdir / 'eval' / 'val'
  results = json.loads((out / 'results.json').read_text())
  assert list(results) == list(returned) == ['single frame', 'aggregation']
  gt_dir = synthetic_root / 'annotations' / 'val'
  records, table = source.open_split(config, synthetic_root, 'validation')
  boxes = collections.Counter(int(i) for i in
                              image_ids_of(records, ground_truth_boxes(records, table).record))
  labeled = sum(sum(i['is_labeled'] for i in json.loads(p.read_text())['images'])
                for p in gt_dir.glob('*.json'))
  lines = (out / 'results.md').read_text().splitlines()
  for row, line in zip(results, lines[2:], strict=True):
    pred_dir = out / row.replace(' ', '_') / 'predictions'
    written = [a for p in sorted(pred_dir.glob('*.json'))
               for a in json.loads(p.read_text())['annotations']]
    assert collections.Counter(a['image_id'] for a in written) == boxes, row
    again = posetrack_map.evaluate(gt_dir, pred_dir)
    for key in ('ap', 'pre', 'rec', 'groups', 'num_frames', 'num_gt_joints'):
      assert results[row][key] == again[key], (row, key)
    assert results[row]['num_frames'] == labeled
    groups = results[row]['groups']
    assert line == f'| {row} | ' + ' | '.join(f'{groups[g]:.1f}' for g in groups) + ' |'
  gallery = sorted(p.stem for p in (out / 'aggregation' / 'gallery').glob('*.png'))
  assert gallery and set(gallery) <= set(posetrack_map.POSEVAL_JOINTS)


def test_eval_without_a_network_says_where_it_looked(synthetic_root, tmp_path):
  config = tiny_config(synthetic_root)
  with pytest.raises(FileNotFoundError, match='nothing to evaluate.*stage2'):
    evaluate.evaluate(config, tmp_path)


def test_eval_with_detector_boxes_and_oks_nms_on_the_real_sample(identity_run, tmp_path):
  tiny_run = identity_run[1]
  if not SAMPLE.exists():
    pytest.skip(f'the PoseTrack18 sample is not at {SAMPLE} (../shared)')
  config = tiny_config(SAMPLE)
  config.data.tfds_dir = str(tmp_path / 'tfds')
  config.eval.update(checkpoint=str(tiny_run / 'stage2'), batch=16, oks_nms=0.01,
                     boxes=str(SAMPLE / 'annotations' / 'test_posetrack18_human_detections.json'))
  results = evaluate.evaluate(config, tmp_path)
  assert list(results) == ['single frame', 'aggregation']
  assert results['single frame']['num_frames'] == 3  # the sample's three annotated frames
  written = json.loads((tmp_path / 'eval' / 'val' / 'single_frame' / 'predictions'
                        / '012834_mpii_test.json').read_text())
  # 278 detections (those >= 0.2 kept), thinned by OKS-NMS: fewer poses than boxes survive. (A
  # two-step network's poses hardly overlap, hence the low threshold: this checks the wiring,
  # test_oks_nms_drops_duplicates_and_keeps_distinct_people the rule.)
  boxes = json.loads((SAMPLE / 'annotations' / 'test_posetrack18_human_detections.json')
                     .read_text())
  kept_boxes = sum(1 for b in boxes if b['score'] >= 0.2 and b['image_id'] ==
                   written['images'][0]['id'])
  assert 0 < len(written['annotations']) < kept_boxes
