"""The PoseTrack mAP: the official evaluator's golden outputs, and hand-computed cases for the
rules the goldens do not reach (ignore regions, people without joints, ties, frames without
ground truth, the assignment's tie and no-reassignment rules)."""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest

from posewarper_jax.metrics import posetrack_map as pm
from tests.shared_data import SAMPLE, SHARED
from tfds_posetrack.posetrack18.keypoints import JOINT_INDEX, NUM_JOINTS

SAMPLE_VAL = SAMPLE / 'annotations' / 'val'
GOLDEN = SHARED / 'reference' / 'poseval_golden'

HEAD_BOX = [0, 0, 3, 4]  # diagonal 5: head size 3, a match within 1.5 pixels


def person(joints: dict[str, tuple[float, float]], scores: dict[str, float] | None = None,
           head_box=HEAD_BOX, **extra) -> dict:
  """An annotation with the named joints at (x, y), v = 1; scores (predictions) per joint."""
  keypoints = [0.0] * (3 * NUM_JOINTS)
  for name, (x, y) in joints.items():
    keypoints[3 * JOINT_INDEX[name]:3 * JOINT_INDEX[name] + 3] = [x, y, 1]
  annotation = {'keypoints': keypoints, 'bbox_head': head_box, 'track_id': 0, **extra}
  if scores is not None:
    annotation['scores'] = [scores.get(name, 0.0) for name in
                            sorted(JOINT_INDEX, key=JOINT_INDEX.get)]
  return annotation


def write_video(directory: pathlib.Path, name: str, frames: list[list[dict]],
                ignore: dict[int, list[list[tuple[float, float]]]] | None = None) -> None:
  """One per-video file: frames[i] = the annotations on frame i (image id 100 + i)."""
  images, annotations = [], []
  for index, people in enumerate(frames):
    image = {'id': 100 + index, 'file_name': f'images/val/{name}/{index:06d}.jpg'}
    for polygon in (ignore or {}).get(index, []):
      image.setdefault('ignore_regions_x', []).append([p[0] for p in polygon])
      image.setdefault('ignore_regions_y', []).append([p[1] for p in polygon])
    images.append(image)
    for k, annotation in enumerate(people):
      annotations.append({**annotation, 'image_id': 100 + index, 'id': 1000 * index + k})
  directory.mkdir(parents=True, exist_ok=True)
  (directory / f'{name}.json').write_text(json.dumps({'images': images,
                                                      'annotations': annotations}))


def ap_of(result: dict, joint: str) -> float:
  return result['ap'][pm.POSEVAL_JOINTS.index(joint)]


# --- The official evaluator's outputs -----------------------------------------------------------

@pytest.mark.parametrize('case', ['case1', 'case2', 'case3'])
def test_golden_cases_of_the_official_evaluator(case):
  if not (GOLDEN / case).exists() or not SAMPLE_VAL.exists():
    pytest.skip(f'the poseval golden cases are not at {GOLDEN} (../shared)')
  expected = json.loads((GOLDEN / case / 'expected_total_AP_metrics.json').read_text())
  result = pm.evaluate(SAMPLE_VAL, GOLDEN / case / 'pred')
  for key in ('ap', 'pre', 'rec'):
    np.testing.assert_allclose(result[key], expected[key], rtol=0, atol=1e-6, err_msg=key)
  assert result['names'] == expected['names']
  assert result['groups']['Total'] == pytest.approx(expected['ap'][15], abs=1e-9)


def test_golden_case2_groups_are_the_published_ones():
  if not (GOLDEN / 'case2').exists() or not SAMPLE_VAL.exists():
    pytest.skip(f'the poseval golden cases are not at {GOLDEN} (../shared)')
  groups = pm.evaluate(SAMPLE_VAL, GOLDEN / 'case2' / 'pred')['groups']
  # From the golden README.
  expected = dict(Head=84.668, Shoulder=80.867, Elbow=83.020, Wrist=85.124, Hip=75.148,
                  Knee=67.598, Ankle=71.786, Total=78.739)
  for name, value in expected.items():
    assert groups[name] == pytest.approx(value, abs=5e-4), name


# --- Hand-computed cases ------------------------------------------------------------------------

def test_ignore_regions_remove_joints_strictly_inside(tmp_path):
  square = [(0, 0), (20, 0), (20, 20), (0, 20)]
  gt = person({'nose': (10, 10), 'head_top': (50, 50), 'right_ankle': (20, 5)})
  # The nose lies inside the region (removed on both sides), the ankle on its edge (kept).
  pred = person({'nose': (10, 10), 'head_top': (50, 50), 'right_ankle': (20, 5)},
                scores={'nose': 0.9, 'head_top': 0.8, 'right_ankle': 0.7})
  write_video(tmp_path / 'gt', 'v', [[gt]], ignore={0: [square]})
  write_video(tmp_path / 'pred', 'v', [[pred]])
  result = pm.evaluate(tmp_path / 'gt', tmp_path / 'pred')
  assert ap_of(result, 'head_top') == 100 and ap_of(result, 'right_ankle') == 100
  assert ap_of(result, 'nose') == 0  # no ground truth and no prediction left
  assert result['num_gt_joints'][pm.POSEVAL_JOINTS.index('nose')] == 0
  assert result['ap'][15] == pytest.approx(200 / 15)


def test_a_person_inside_an_ignore_region_disappears_with_its_joints(tmp_path):
  square = [(0, 0), (20, 0), (20, 20), (0, 20)]
  gt = [person({'nose': (50, 50)})]
  # A predicted person wholly inside the region: not a false positive.
  pred = [person({'nose': (50, 50)}, scores={'nose': 0.5}),
          person({'nose': (5, 5), 'head_top': (6, 6)}, scores={'nose': 0.9, 'head_top': 0.9})]
  write_video(tmp_path / 'gt', 'v', [gt], ignore={0: [square]})
  write_video(tmp_path / 'pred', 'v', [pred])
  assert ap_of(pm.evaluate(tmp_path / 'gt', tmp_path / 'pred'), 'nose') == 100


def test_frames_people_without_joints_and_frames_without_ground_truth(tmp_path):
  write_video(tmp_path / 'gt', 'v', [
      [person({})],                     # an annotation object without keypoints: evaluated
      [person({'nose': (100, 100)})],
      [],                               # no annotation object: not evaluated
  ])
  write_video(tmp_path / 'pred', 'v', [
      [person({'nose': (5, 5)}, scores={'nose': 0.7})],           # false positive
      [person({'nose': (100.5, 100)}, scores={'nose': 0.6})],     # true positive
      [person({'nose': (7, 7)}, scores={'nose': 0.99})],          # ignored
  ])
  result = pm.evaluate(tmp_path / 'gt', tmp_path / 'pred')
  # Ranking 0.7 (FP), 0.6 (TP) with one ground-truth nose: precision 0, 1/2; recall 0, 1.
  assert ap_of(result, 'nose') == pytest.approx(50)
  assert result['num_frames'] == 2


def test_equal_scores_rank_in_the_reference_order(tmp_path):
  # Two frames, one ground-truth nose each; a true positive in frame 0 and a false positive in
  # frame 1 with the same score. numpy's argsort keeps [TP, FP], reversed: FP ranks first.
  write_video(tmp_path / 'gt', 'v', [[person({'nose': (10, 10)})], [person({'nose': (10, 10)})]])
  write_video(tmp_path / 'pred', 'v', [[person({'nose': (10, 10)}, scores={'nose': 0.5})],
                                       [person({'nose': (90, 90)}, scores={'nose': 0.5})]])
  result = pm.evaluate(tmp_path / 'gt', tmp_path / 'pred')
  # precision 0, 1/2 at recall 0, 1/2: AP 25 (the other order would give 50).
  assert ap_of(result, 'nose') == pytest.approx(25)


def test_a_person_takes_the_first_of_equally_good_predictions(tmp_path):
  write_video(tmp_path / 'gt', 'v', [[person({'nose': (10, 10)})]])
  write_video(tmp_path / 'pred', 'v', [[person({'nose': (10, 10)}, scores={'nose': 0.3}),
                                        person({'nose': (10, 10)}, scores={'nose': 0.9})]])
  # The first prediction (0.3) is assigned; the better-scored second is a false positive.
  assert ap_of(pm.evaluate(tmp_path / 'gt', tmp_path / 'pred'), 'nose') == pytest.approx(50)


def test_a_prediction_that_lost_its_person_is_not_reassigned(tmp_path):
  g0 = person({'nose': (10, 10), 'head_top': (10, 0)})
  g1 = person({'nose': (60, 10), 'head_top': (60, 0)})
  # p0: half of g0 and half of g1 (pck 0.5 each, so g0, the first); p1: all of g0 (pck 1).
  p0 = person({'nose': (10, 10), 'head_top': (60, 0)}, scores={'nose': 0.8, 'head_top': 0.8})
  p1 = person({'nose': (10, 10), 'head_top': (10, 0)}, scores={'nose': 0.5, 'head_top': 0.5})
  write_video(tmp_path / 'gt', 'v', [[g0, g1]])
  write_video(tmp_path / 'pred', 'v', [[p0, p1]])
  result = pm.evaluate(tmp_path / 'gt', tmp_path / 'pred')
  # g0 takes p1; p0 is not moved to g1, so its head_top (right on g1's) is a false positive.
  # Per joint: 0.8 FP, 0.5 TP, two ground-truth joints: AP 25.
  assert ap_of(result, 'head_top') == pytest.approx(25)
  assert ap_of(result, 'nose') == pytest.approx(25)


def test_groups_and_per_sequence_results(tmp_path):
  write_video(tmp_path / 'gt', 'a', [[person({'nose': (10, 10), 'left_knee': (5, 5)})]])
  write_video(tmp_path / 'gt', 'b', [[person({'nose': (10, 10)})]])
  write_video(tmp_path / 'pred', 'a', [[person({'nose': (10, 10), 'left_knee': (5, 5)},
                                               scores={'nose': 0.9, 'left_knee': 0.9})]])
  write_video(tmp_path / 'pred', 'b', [[person({'nose': (50, 50)}, scores={'nose': 0.9})]])
  result = pm.evaluate(tmp_path / 'gt', tmp_path / 'pred', per_sequence=True)
  assert result['groups']['Knee'] == pytest.approx(50)  # left 100, right 0 (no ground truth)
  assert result['sequences']['a']['ap'][pm.POSEVAL_JOINTS.index('nose')] == 100
  assert result['sequences']['b']['ap'][pm.POSEVAL_JOINTS.index('nose')] == 0
  table = pm.markdown_table(result)
  assert table.splitlines()[0] == '| mAP | Head | Shoulder | Elbow | Wrist | Hip | Knee | Ankle ' \
                                  '| Total |'


def test_frame_errors_count_misses_and_confident_false_positives(tmp_path):
  write_video(tmp_path / 'gt', 'v', [[person({'nose': (10, 10), 'head_top': (10, 0)})]])
  write_video(tmp_path / 'pred', 'v', [[
      person({'nose': (10, 10), 'head_top': (40, 0)}, scores={'nose': 0.9, 'head_top': 0.9}),
      person({'nose': (70, 70)}, scores={'nose': 0.1}),  # below min_score: not counted
  ]])
  (frame,) = pm.load_video(tmp_path / 'gt' / 'v.json', tmp_path / 'pred' / 'v.json')
  errors = pm.frame_errors(frame, min_score=0.2)
  assert errors[pm.POSEVAL_JOINTS.index('nose')] == 0
  assert errors[pm.POSEVAL_JOINTS.index('head_top')] == 2  # missed, and a false positive
  assert errors.sum() == 2
  assert frame.file_name == 'images/val/v/000000.jpg'


def test_a_joint_predicted_but_never_annotated_is_left_out_of_total_as_poseval_does(tmp_path):
  # The knee has no ground truth: recall 0 / 0, AP NaN in poseval too; its Total is the mean of
  # the other 14 joints (computeMetrics skips NaN), not NaN.
  write_video(tmp_path / 'gt', 'v', [[person({'nose': (10, 10)})]])
  write_video(tmp_path / 'pred', 'v', [[person({'nose': (10, 10), 'left_knee': (50, 50)},
                                               scores={'nose': 0.9, 'left_knee': 0.9})]])
  result = pm.evaluate(tmp_path / 'gt', tmp_path / 'pred')
  assert np.isnan(ap_of(result, 'left_knee')) and np.isnan(result['groups']['Knee'])
  assert result['ap'][15] == pytest.approx(100 / 14) == result['groups']['Total']
  assert result['rec'][15] == pytest.approx(100 / 14)
  assert result['pre'][15] == pytest.approx(100 / 15)  # the knee's precision is 0, not NaN


def test_strictly_inside_excludes_the_boundary_and_uses_even_odd():
  square = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], float)
  points = np.array([[2, 2], [4, 2], [0, 0], [2, 4], [5, 2], [-1, -1], [3.999, 0.001]])
  np.testing.assert_array_equal(pm.strictly_inside(points, square),
                                [True, False, False, False, False, False, True])
  # A self-crossing outline (a bow tie): its two lobes are inside, the crossing point is on the
  # boundary, the triangles between the lobes are outside.
  bowtie = np.array([[0, 0], [4, 4], [4, 0], [0, 4]], float)
  np.testing.assert_array_equal(pm.strictly_inside(np.array([[1, 2], [2, 1], [2, 2]]), bowtie),
                                [True, False, False])


# --- Bad input ----------------------------------------------------------------------------------

def _one_video(tmp_path, gt_frames, pred_frames):
  write_video(tmp_path / 'gt', '001_mpii_test', gt_frames)
  write_video(tmp_path / 'pred', '001_mpii_test', pred_frames)
  return tmp_path / 'gt', tmp_path / 'pred'


def test_mismatched_frame_counts_name_the_video(tmp_path):
  gt, pred = _one_video(tmp_path, [[person({'nose': (1, 1)})], []], [[]])
  with pytest.raises(pm.EvaluationError, match='001_mpii_test.*1 images.*2'):
    pm.evaluate(gt, pred)


def test_a_missing_prediction_file_names_the_video(tmp_path):
  gt, pred = _one_video(tmp_path, [[person({'nose': (1, 1)})]], [[]])
  (pred / '001_mpii_test.json').unlink()
  with pytest.raises(pm.EvaluationError, match='video 001_mpii_test: no prediction file'):
    pm.evaluate(gt, pred)


@pytest.mark.parametrize('bad, message', [
    ({'keypoints': [1, 2, 1] * 15, 'scores': [1.0] * 17}, 'keypoints must be 51'),
    ({'keypoints': [float('nan')] * 51, 'scores': [1.0] * 17}, 'finite'),
    ({'keypoints': [1, 2, 1] * 17, 'scores': [1.0] * 3}, 'needs "scores"'),
    ({'keypoints': [1, 2, 1] * 17}, 'needs "scores"'),
])
def test_bad_prediction_keypoints_name_the_video_and_annotation(tmp_path, bad, message):
  gt, pred = _one_video(tmp_path, [[person({'nose': (1, 1)})]], [[bad]])
  with pytest.raises(pm.EvaluationError, match=f'001_mpii_test.*annotation 0.*{message}'):
    pm.evaluate(gt, pred)


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), '0.9', None, True],
                         ids=['nan', 'inf', 'string', 'null', 'bool'])
def test_a_score_that_is_no_finite_number_names_the_file_annotation_and_field(tmp_path, bad):
  # A NaN score ranked above every other (Total 17.2 instead of 38.8 for the same poses scored
  # 0.01), '0.9' was read as 0.9, null as NaN, true as 1.
  gt, pred = _one_video(tmp_path, [[person({'nose': (1, 1)})]],
                        [[person({'nose': (1, 1)}, scores={'nose': bad})]])
  file = re.escape(str(pred / '001_mpii_test.json'))
  with pytest.raises(pm.EvaluationError,
                     match=rf'{file} \(video 001_mpii_test, frame 0\), annotation 0: '
                           r'scores\[0\] is .*finite'):
    pm.evaluate(gt, pred)


def test_an_absent_joint_scored_nan_is_an_error_too(tmp_path):
  gt, pred = _one_video(tmp_path, [[person({'nose': (1, 1)})]],
                        [[person({'nose': (1, 1)}, scores={'nose': 0.5,
                                                           'left_ankle': float('nan')})]])
  with pytest.raises(pm.EvaluationError,
                     match=rf'annotation 0: scores\[{JOINT_INDEX["left_ankle"]}\] is nan'):
    pm.evaluate(gt, pred)


@pytest.mark.parametrize('bad, shown', [(float('nan'), 'nan'), ('1', "'1' (str)"),
                                        (None, 'None (null)'), (10 ** 400, '1' + '0' * 20)],
                         ids=['nan', 'string', 'null', 'huge_int'])
def test_a_keypoint_that_is_no_finite_number_names_the_file(tmp_path, bad, shown):
  keypoints = [1.0, 1.0, 1.0] * NUM_JOINTS
  keypoints[3 * JOINT_INDEX['head_top'] + 1] = bad
  gt, pred = _one_video(tmp_path, [[person({'nose': (1, 1)})]],
                        [[{'keypoints': keypoints, 'scores': [0.5] * NUM_JOINTS}]])
  file = re.escape(str(pred / '001_mpii_test.json'))
  index = 3 * JOINT_INDEX['head_top'] + 1
  with pytest.raises(pm.EvaluationError,
                     match=rf'{file} .*annotation 0: keypoints\[{index}\] is {re.escape(shown)}'):
    pm.evaluate(gt, pred)


@pytest.mark.parametrize('head_box', [[0, float('nan'), 3, 4], [0, 0, '3', 4], [0, 0, 3, None],
                                      [0, 0, float('inf'), 4]],
                         ids=['nan', 'string', 'null', 'inf'])
def test_a_head_box_that_is_no_finite_numbers_names_the_ground_truth_file(tmp_path, head_box):
  gt, pred = _one_video(tmp_path, [[person({'nose': (1, 1)}, head_box=head_box)]],
                        [[person({'nose': (1, 1)}, scores={'nose': 0.5})]])
  file = re.escape(str(gt / '001_mpii_test.json'))
  with pytest.raises(pm.EvaluationError,
                     match=rf'{file} \(video 001_mpii_test, frame 0\), annotation 0: '
                           r'bbox_head\[\d\] is'):
    pm.evaluate(gt, pred)


@pytest.mark.parametrize('vertex', [(float('nan'), 0), ('20', 0), (None, 0)],
                         ids=['nan', 'string', 'null'])
def test_an_ignore_region_vertex_that_is_no_finite_number_names_the_file_and_frame(tmp_path,
                                                                                  vertex):
  polygon = [(0, 0), vertex, (20, 20), (0, 20)]
  write_video(tmp_path / 'gt', 'v', [[], [person({'nose': (10, 10)})]], ignore={1: [polygon]})
  write_video(tmp_path / 'pred', 'v', [[], [person({'nose': (10, 10)}, scores={'nose': 0.5})]])
  file = re.escape(str(tmp_path / 'gt' / 'v.json'))
  with pytest.raises(pm.EvaluationError,
                     match=rf'{file} \(video v, frame 1\): ignore_regions_x\[0\]\[1\] is'):
    pm.evaluate(tmp_path / 'gt', tmp_path / 'pred')


def test_an_image_id_that_names_no_frame_is_an_error(tmp_path):
  gt, pred = _one_video(tmp_path, [[person({'nose': (1, 1)})]], [[]])
  file = pred / '001_mpii_test.json'
  data = json.loads(file.read_text())
  data['annotations'] = [{**person({'nose': (1, 1)}, scores={'nose': 0.5}), 'id': 7,
                          'image_id': [100]}]
  file.write_text(json.dumps(data))
  with pytest.raises(pm.EvaluationError, match=r'annotation 7 has image_id \[100\]'):
    pm.evaluate(gt, pred)
  data['annotations'] = ['not an annotation']
  file.write_text(json.dumps(data))
  with pytest.raises(pm.EvaluationError, match='annotation 0 .in file order. is'):
    pm.evaluate(gt, pred)


def test_ground_truth_without_a_head_box_is_an_error(tmp_path):
  gt, pred = _one_video(tmp_path, [[person({'nose': (1, 1)}, head_box=None)]], [[]])
  with pytest.raises(pm.EvaluationError, match='bbox_head'):
    pm.evaluate(gt, pred)


def test_command_line(tmp_path, capsys):
  gt, pred = _one_video(tmp_path, [[person({'nose': (1, 1)})]],
                        [[person({'nose': (1, 1)}, scores={'nose': 1.0})]])
  assert pm.main(['--gt', str(gt), '--pred', str(pred), '--out', str(tmp_path / 'r.json')]) == 0
  assert '| predictions | Head |' in capsys.readouterr().out
  assert json.loads((tmp_path / 'r.json').read_text())['ap'][pm.POSEVAL_JOINTS.index('nose')] == 100
  (pred / '001_mpii_test.json').unlink()
  assert pm.main(['--gt', str(gt), '--pred', str(pred)]) == 2
  assert 'no prediction file' in capsys.readouterr().err
