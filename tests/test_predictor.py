"""The predictor's numbers, with a stand-in network whose heatmaps the test chooses: HRNet's flip
test (the mirrored crop's heatmaps mirrored back, left and right swapped, shifted one pixel,
averaged with the plain crop's), and the joint scores the eval mode writes (the heatmap peak,
times the box score for detector boxes: spec 3)."""

from __future__ import annotations

import json
import types

import jax.numpy as jnp
import numpy as np
import pytest

from posewarper_jax import evaluate, predictor
from posewarper_jax.data import source
from posewarper_jax.models import PoseWarper
from tests.helpers import tiny_config
from tfds_posetrack.posetrack18.keypoints import JOINT_INDEX, NUM_JOINTS

H, W = 8, 6  # the stand-in's heatmaps


class _Network:
  """create_model's stand-in: `plain` for a crop whose left column is brighter than its right,
  `mirrored` for the others (the flip test's mirrored crops), whatever the method."""

  def __init__(self, plain: np.ndarray, mirrored: np.ndarray):
    self.plain, self.mirrored = jnp.asarray(plain), jnp.asarray(mirrored)

  def apply(self, variables, frames, *args, method=None):
    first = frames if frames.ndim == 4 else frames[:, 0]  # aggregation: [N, T, H, W, 3]
    is_plain = first[:, 0, 0, 0] > first[:, 0, -1, 0]
    heatmaps = jnp.where(is_plain[:, None, None, None], self.plain, self.mirrored)
    # Both rows at once: the same maps for each.
    return (heatmaps, heatmaps) if method is PoseWarper.single_and_aggregate else heatmaps


def _maps(*peaks) -> np.ndarray:
  """[H, W, J] float32, zero but for (joint name, y, x, value) peaks."""
  maps = np.zeros((H, W, NUM_JOINTS), np.float32)
  for joint, y, x, value in peaks:
    maps[y, x, JOINT_INDEX[joint]] = value
  return maps


@pytest.mark.parametrize('row', ['single frame', 'aggregation', predictor.BOTH])
def test_the_flip_test_averages_the_mirrored_crops_heatmaps_moved_back(monkeypatch, row):
  """Each peak of the mirrored crop's heatmaps lands at x' = W - 1 - x + 1 (mirrored, then
  HRNet's SHIFT_HEATMAP: one pixel right, column 0 kept, so a peak in the last column fills
  columns 0 and 1 and one in column 0 falls off), on the other side's joint, at half its value;
  the plain crop's peaks stay where they are at half theirs. Without the flip test the plain
  heatmaps come out unchanged."""
  plain = _maps(('nose', 2, 1, 0.8), ('left_knee', 4, 3, 0.5))
  mirrored = _maps(('left_wrist', 5, 1, 0.6), ('right_ankle', 3, 5, 0.4),
                   ('left_hip', 6, 0, 0.9), ('nose', 1, 2, 0.2), ('left_knee', 4, 2, 0.3))
  monkeypatch.setattr(predictor, 'create_model', lambda config: _Network(plain, mirrored))
  config = types.SimpleNamespace(eval=types.SimpleNamespace(batch=2))
  # Three crops in two batches (the second padded): bright left half, dark right half.
  frames = np.zeros((3, 5, 16, 12, 3), np.uint8)
  frames[..., :6, :] = 255

  # Halves of float32 values are exact: the comparison is by value.
  expected = _maps(('nose', 2, 1, np.float32(0.8) / 2), ('nose', 1, 4, np.float32(0.2) / 2),
                   ('right_wrist', 5, 5, np.float32(0.6) / 2),
                   ('left_ankle', 3, 0, np.float32(0.4) / 2),
                   ('left_ankle', 3, 1, np.float32(0.4) / 2),
                   ('right_knee', 4, 4, np.float32(0.3) / 2),
                   ('left_knee', 4, 3, np.float32(0.5) / 2))
  each = lambda out: out if row == predictor.BOTH else (out,)  # BOTH: a pair of rows
  for flipped in each(predictor.Predictor(config, {}, flip_test=True)(row, frames)):
    np.testing.assert_array_equal(flipped, np.broadcast_to(expected, flipped.shape))
    assert flipped.shape == (3, H, W, NUM_JOINTS)

  for unflipped in each(predictor.Predictor(config, {})(row, frames)):
    np.testing.assert_array_equal(unflipped, np.broadcast_to(plain, unflipped.shape))


@pytest.mark.parametrize('flip_test', [False, True])
def test_both_rows_from_one_backbone_pass_equal_each_row_alone(identity_run, flip_test):
  """The evaluation's single-frame row from the aggregation's backbone pass of the current
  frame (predictor.BOTH) is the single-frame function's, and its aggregation row the
  aggregation function's, on a trained network's real crops."""
  from posewarper_jax import checkpoints

  config, workdir = identity_run
  variables = checkpoints.load(workdir / 'stage2').variables
  frames = np.random.default_rng(0).integers(0, 256, (3, 5, *config.image_size, 3), np.uint8)
  network = predictor.Predictor(config, variables, flip_test=flip_test)
  single, aggregated = network(predictor.BOTH, frames)
  np.testing.assert_array_equal(single, network('single frame', frames))
  np.testing.assert_array_equal(aggregated, network('aggregation', frames))


# Joint j's peak: distinct values, none a power of two, so a product is not a coincidence.
PEAKS = np.float32([0.05 + 0.053 * j for j in range(NUM_JOINTS)])


def _written_scores(config, workdir) -> dict[int, list[list[float]]]:
  """The eval mode's single-frame prediction files: image id -> each pose's 17 scores."""
  evaluate.evaluate(config, workdir)
  scores = {}
  for path in sorted((workdir / 'eval' / 'val' / 'single_frame' / 'predictions').glob('*.json')):
    for annotation in json.loads(path.read_text())['annotations']:
      scores.setdefault(int(annotation['image_id']), []).append(annotation['scores'])
  return scores


def test_the_written_joint_scores_are_the_peak_times_the_box_score(synthetic_root, identity_run,
                                                                   monkeypatch, tmp_path):
  """Every joint's score in the prediction files is its heatmap's peak for ground-truth boxes
  (score 1) and the peak times the detection's score for detector boxes; a detection under
  config.eval.min_box_score (0.2) writes no pose."""
  peaks = np.zeros((H, W, NUM_JOINTS), np.float32)
  peaks[3, 2] = PEAKS  # one interior pixel per joint, nothing around it
  monkeypatch.setattr(predictor, 'create_model', lambda config: _Network(peaks, peaks))
  config = tiny_config(synthetic_root)
  config.eval.update(checkpoint=str(identity_run[1] / 'stage1'), aggregate=False, gallery=False,
                     batch=8)
  peak = PEAKS.astype(np.float64)

  gt = _written_scores(config, tmp_path / 'gt')
  assert sum(map(len, gt.values())) > 50
  for image_scores in gt.values():
    np.testing.assert_array_equal(image_scores, np.broadcast_to(peak, (len(image_scores), 17)))

  records, table = source.open_split(config, synthetic_root, 'validation')
  frames = [int(records[int(r)]['image_id']) for r in np.flatnonzero(table.is_labeled)[:4]]
  box_scores = [0.9, 0.35, 0.2, 0.1]  # one detection on each of four labeled frames
  detections = tmp_path / 'detections.json'
  detections.write_text(json.dumps([{'image_id': i, 'bbox': [20, 10, 60, 100], 'score': s}
                                    for i, s in zip(frames, box_scores, strict=True)]))
  config.eval.boxes = str(detections)
  detected = _written_scores(config, tmp_path / 'detections')
  assert detected == {i: [(peak * s).tolist()] for i, s in zip(frames, box_scores, strict=True)
                      if s >= 0.2}
