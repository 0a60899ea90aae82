"""Crops, augmentation and targets: geometry checked on drawn dots, HRNet's rules on examples."""

from __future__ import annotations

import numpy as np
import pytest

from posewarper_jax.data import codec
from posewarper_jax.data import transforms as T
from tfds_posetrack.posetrack18.keypoints import (
  COCO_FLIP_PAIRS,
  FLIP_PAIRS,
  JOINT_INDEX,
  NUM_JOINTS,
  flip_permutation,
)

OUT = (288, 384)   # crop (w, h)
HEAT = (72, 96)    # heatmap (w, h)
ASPECT = OUT[0] / OUT[1]


def test_box_to_center_scale():
  center, scale = T.box_to_center_scale([10, 20, 30, 80], ASPECT)
  np.testing.assert_allclose(center, [25, 60])
  np.testing.assert_allclose(scale, np.array([60, 80]) / 200 * 1.25)  # widened to 3:4
  _, scale = T.box_to_center_scale([0, 0, 120, 80], ASPECT)
  np.testing.assert_allclose(scale, np.array([120, 160]) / 200 * 1.25)  # heightened


def _dot_centroid(image):
  total = image.sum()
  ys, xs = np.mgrid[:image.shape[0], :image.shape[1]]
  return np.array([(xs * image).sum() / total, (ys * image).sum() / total])


@pytest.mark.parametrize('rotation, flip, zoom', [(0, False, 1.0), (30, False, 1.3),
                                                  (-70, True, 0.7), (90, True, 1.0),
                                                  (12, False, 0.65)])
def test_dot_lands_on_the_transformed_keypoint(rotation, flip, zoom):
  """A dot drawn at a keypoint ends up where transform_keypoints puts it (within 0.5 px)."""
  height, width = 360, 640
  rng = np.random.default_rng(abs(rotation) + int(flip))
  point = np.array([rng.uniform(200, 440), rng.uniform(100, 260)])
  frame = np.zeros((height, width), np.float32)
  # A small symmetric blob, so that its intensity centroid is the point itself.
  ys, xs = np.mgrid[:height, :width]
  frame += np.exp(-((xs - point[0])**2 + (ys - point[1])**2) / (2 * 2.0**2))
  center, scale = T.box_to_center_scale([220, 60, 180, 260], ASPECT)
  matrix = T.crop_transform(center, scale * zoom, rotation, OUT,
                            flip_width=width if flip else None)
  crop = T.warp_image(frame, matrix, OUT)
  keypoints = np.zeros((NUM_JOINTS, 3))
  keypoints[9] = [*point, 1]  # left wrist
  moved = T.transform_keypoints(keypoints, matrix, flip=flip)
  joint = 10 if flip else 9  # a flipped left wrist is the right wrist
  assert moved[joint, 2] == 1 and moved[19 - joint, 2] == 0
  np.testing.assert_allclose(_dot_centroid(crop), moved[joint, :2], atol=0.5)
  # The target's peak sits on it too, at heatmap resolution.
  heatmaps, weights = codec.encode(moved, OUT, HEAT)
  peak = np.unravel_index(np.argmax(heatmaps[..., joint]), heatmaps.shape[:2])
  assert weights[joint] == 1
  np.testing.assert_array_equal(peak[::-1], np.trunc(moved[joint, :2] / 4 + 0.5))
  # The inverse map brings the crop point back to the frame.
  back = T.transform_points(moved[joint, :2],
                            T.crop_transform(center, scale * zoom, rotation, OUT,
                                             flip_width=width if flip else None, inverse=True))
  np.testing.assert_allclose(back, point, atol=1e-6)


def test_a_coco_labeled_set_flips_its_eyes_and_posetrack_keeps_its_head_joints():
  """Slots 1 and 2 are head_bottom and head_top in PoseTrack (on the midline: a flip keeps
  them) and the eyes in COCO (config.data.joints='coco': a flip swaps them); the other pairs
  swap in both."""
  keypoints = np.array([[10.0 + j, 20.0 + j, 1.0] for j in range(NUM_JOINTS)])
  matrix = np.array([[-1.0, 0.0, 99.0], [0.0, 1.0, 0.0]])  # a mirror
  posetrack = T.transform_keypoints(keypoints, matrix, flip=True)
  coco = T.transform_keypoints(keypoints, matrix, flip=True, flip_pairs=COCO_FLIP_PAIRS)
  assert posetrack[1, 1] == 21 and posetrack[2, 1] == 22  # kept in place
  assert coco[1, 1] == 22 and coco[2, 1] == 21  # swapped
  np.testing.assert_array_equal(np.delete(posetrack, [1, 2], 0), np.delete(coco, [1, 2], 0))
  assert coco[5, 1] == 26 and coco[6, 1] == 25


def test_folded_flip_equals_flipping_the_frame():
  """HRNet flips the pixels and the centre; the folded matrix gives the same crop."""
  rng = np.random.default_rng(0)
  frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
  center, scale = np.array([70.0, 60.0]), np.array([0.45, 0.6])
  folded = T.warp_image(frame, T.crop_transform(center, scale, 25, (48, 64), flip_width=160),
                        (48, 64))
  mirrored = np.ascontiguousarray(frame[:, ::-1])
  explicit = T.warp_image(mirrored, T.crop_transform([160 - 1 - 70.0, 60.0], scale, 25,
                                                     (48, 64)), (48, 64))
  assert np.abs(folded.astype(int) - explicit.astype(int)).max() <= 1


def test_flip_swaps_left_and_right_but_not_the_head():
  keypoints = np.zeros((NUM_JOINTS, 3))
  keypoints[:, 0] = np.arange(NUM_JOINTS) * 10 + 5
  keypoints[:, 2] = 1
  center, scale = [80.0, 50.0], [1.0, 4 / 3]
  flipped = T.transform_keypoints(
      keypoints, T.crop_transform(center, scale, 0, (200, 266), flip_width=200), flip=True)
  # HRNet's way: mirror the frame (x -> 199 - x) and the centre, crop, then swap the pairs.
  plain = T.crop_transform([199 - center[0], center[1]], scale, 0, (200, 266))
  mirrored = np.stack([199 - keypoints[:, 0], keypoints[:, 1]], axis=1)
  perm = list(flip_permutation())
  for a, b in FLIP_PAIRS:
    assert perm[a] == b and perm[b] == a
  for name in ('nose', 'head_bottom', 'head_top'):
    assert perm[JOINT_INDEX[name]] == JOINT_INDEX[name]
  # Joint j of the flipped pose is the mirror image of joint perm[j].
  np.testing.assert_allclose(flipped[:, :2], T.transform_points(mirrored[perm], plain),
                             atol=1e-6)


def test_half_body_picks_upper_or_lower_joints():
  keypoints = np.zeros((NUM_JOINTS, 3))
  keypoints[:11] = [[100 + j, 50 + 3 * j, 1] for j in range(11)]
  keypoints[11:] = [[120 + j, 200 + 10 * j, 1] for j in range(6)]
  seen = set()
  for seed in range(20):
    center, scale = T.half_body_box(keypoints, np.random.default_rng(seed), ASPECT)
    part = 'upper' if np.allclose(center, keypoints[:11, :2].mean(0)) else 'lower'
    if part == 'lower':
      np.testing.assert_allclose(center, keypoints[11:, :2].mean(0))
    seen.add(part)
    chosen = keypoints[:11] if part == 'upper' else keypoints[11:]
    extent = chosen[:, :2].max(0) - chosen[:, :2].min(0)
    assert scale[1] * 200 >= extent[1] * 1.5 - 1e-6 and np.isclose(scale[0] / scale[1], ASPECT)
  assert seen == {'upper', 'lower'}
  # Fewer than 3 lower joints: the upper body is taken.
  keypoints[13:, 2] = 0
  for seed in range(5):
    center, _ = T.half_body_box(keypoints, np.random.default_rng(seed), ASPECT)
    np.testing.assert_allclose(center, keypoints[:11, :2].mean(0))


def test_target_weights():
  keypoints = np.zeros((NUM_JOINTS, 3))
  keypoints[0] = [144, 192, 1]        # centre: peak 1 at (36, 48)
  keypoints[1] = [144, 192, 0]        # unannotated
  keypoints[2] = [-100, 50, 1]        # far left of the crop: window wholly outside
  keypoints[3] = [-20, 50, 1]         # left of the crop, window overlapping it: kept
  keypoints[4] = [400, 600, 1]        # beyond the bottom right
  heatmaps, weights = codec.encode(keypoints, OUT, HEAT)
  assert heatmaps.shape == (96, 72, 17) and heatmaps.dtype == np.float32
  assert weights[:5].tolist() == [1, 0, 0, 1, 0]
  assert heatmaps[48, 36, 0] == 1.0 and heatmaps[..., 1].max() == 0
  assert heatmaps[..., 2].max() == 0 and heatmaps[..., 3].max() > 0
  # The window has radius 3 sigma = 9 heatmap pixels.
  assert heatmaps[48, 36 + 9, 0] > 0 and heatmaps[48, 36 + 10, 0] == 0
  np.testing.assert_allclose(heatmaps[48, 36 + 3, 0], np.exp(-0.5))


def test_sample_augmentation_is_seeded_and_draws_the_specs_distributions():
  """Spec 2.3 by statistics of 2,000 seeded draws (deterministic): rotation 0 with probability
  0.4, else N(0, 45) clipped to +-90 (4.6% at the bounds, a spread under a uniform's); scale
  ratio N(1, 0.35) clipped to [0.65, 1.35] (16% at each bound); flips and half bodies at their
  rates. A uniform draw of the same ranges fails the shares at the bounds and the spreads."""
  keypoints = np.zeros((NUM_JOINTS, 3))
  keypoints[:, :2] = np.random.default_rng(0).uniform(100, 300, (NUM_JOINTS, 2))
  keypoints[:, 2] = 1
  box = [100, 100, 200, 200]
  _, base = T.box_to_center_scale(box, ASPECT)
  draws = [T.sample_augmentation(np.random.default_rng(s), box, keypoints, ASPECT)
           for s in range(2000)]
  again = T.sample_augmentation(np.random.default_rng(7), box, keypoints, ASPECT)
  assert np.array_equal(again.center, draws[7].center)
  assert np.array_equal(again.scale, draws[7].scale)
  assert (again.rotation, again.flip) == (draws[7].rotation, draws[7].flip)
  rotations = np.array([d.rotation for d in draws])
  assert np.abs(rotations).max() <= 90 and 0.36 < np.mean(rotations == 0) < 0.44
  turned = rotations[rotations != 0]
  # N(0, 1) * 45 clipped at 2 sigma: P(|z| > 2) = 0.046, std 45 * 0.94 = 42.3 (uniform: 52),
  # P(|z| < 1) = 0.68 (uniform: 0.5).
  assert 0.03 < np.mean(np.abs(turned) == 90) < 0.065
  assert 39 < turned.std() < 45.5 and 0.64 < np.mean(np.abs(turned) < 45) < 0.73
  assert abs(np.mean(turned)) < 4
  assert 0.45 < np.mean([d.flip for d in draws]) < 0.55
  full = [d for d in draws if np.allclose(d.center, [200, 200])]
  ratios = np.array([d.scale[0] / base[0] for d in full])
  assert ratios.min() >= 0.65 - 1e-9 and ratios.max() <= 1.35 + 1e-9
  # N(1, 0.35) clipped at 1 sigma: P(z < -1) = P(z > 1) = 0.159 sit on the bounds; std
  # 0.35 * 0.72 = 0.25 (uniform: 0.20).
  for bound in (0.65, 1.35):
    assert 0.13 < np.mean(np.isclose(ratios, bound)) < 0.19, bound
  assert 0.235 < ratios.std() < 0.27 and abs(np.median(ratios) - 1) < 0.03
  assert 0.25 < 1 - len(full) / len(draws) < 0.35  # half-body crops, probability 0.3


def test_normalize():
  image = np.full((2, 2, 3), 255, np.uint8)
  np.testing.assert_allclose(T.normalize(image)[0, 0], (1 - T.IMAGENET_MEAN) / T.IMAGENET_STD,
                             rtol=1e-6)


@pytest.mark.parametrize('box, expected', [
    ([10, 20, 30, 40], [10, 20, 29, 39]),        # inside: x2 = x1 + w - 1, as the release
    ([-5, -8, 30, 40], [0, 0, 29, 39]),          # left / top: shifted in, the width kept
    ([90, 70, 30, 40], [90, 70, 9, 9]),          # right / bottom: clipped at W - 1, H - 1
    ([-50, 10, 200, 20], [0, 10, 99, 19]),       # wider than the frame: clipped
    ([120, 10, 5, 5], [0, 0, 0, 0]),             # wholly right of the frame: dropped
    ([10, 10, 0, 20], [0, 0, 0, 0]),             # no area: dropped
    ([10, 10, 1, 1], [10, 10, 0, 0]),            # one pixel: kept by the release, no area here
])
def test_sanitize_box_is_the_releases(box, expected):
  np.testing.assert_array_equal(T.sanitize_box(box, width=100, height=80), expected)
