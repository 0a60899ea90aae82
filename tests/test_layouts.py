"""PoseTrack's three layouts and two formats (tfds_posetrack/posetrack18/layouts.py, formats.py):
the 2017 format read and written, the layout detected, the same records built from each (the
real sample converted here, the synthetic generator's own layouts), the metric's numbers equal
in both formats, and a tiny run that trains, evaluates and propagates on PoseTrack17's."""

import collections
import json
import pathlib
import shutil

import numpy as np
import pytest

from posewarper_jax import predictions
from posewarper_jax.data import synthetic
from posewarper_jax.metrics import posetrack_map as pm
from tests.shared_data import SAMPLE, SHARED
from tfds_posetrack.posetrack18 import FrameTable, annotations, formats, layouts, prepare
from tfds_posetrack.posetrack18.keypoints import JOINT_INDEX, NUM_JOINTS

GOLDEN = SHARED / 'reference' / 'poseval_golden'
SAMPLE_VAL = SAMPLE / 'annotations' / 'val'
needs_sample = pytest.mark.skipif(not SAMPLE_VAL.is_dir(), reason=f'no sample at {SAMPLE}')


def _file_2017(path: pathlib.Path, **rect_fields) -> pathlib.Path:
  """A two-frame PoseTrack17 file: frame 1 unlabeled, frame 2 with one person (nose, neck and
  right ankle) and an ignore region."""
  rect = {'x1': [10], 'y1': [20], 'x2': [40], 'y2': [60], 'track_id': [3],
          'annopoints': [{'point': [{'id': [13], 'x': [30.5], 'y': [40], 'is_visible': [1]},
                                    {'id': [12], 'x': [32], 'y': [70]},
                                    {'id': [0], 'x': [35], 'y': [150]}]}], **rect_fields}
  data = {'annolist': [
      {'image': [{'name': 'images/bonn/000042_mpii/00000001.jpg'}], 'imgnum': [1],
       'is_labeled': [0], 'annorect': []},
      {'image': [{'name': 'images/bonn/000042_mpii/00000002.jpg'}], 'imgnum': [2],
       'is_labeled': [1], 'annorect': [rect],
       'ignore_regions': [{'point': [{'x': [0], 'y': [0]}, {'x': [5], 'y': [0]},
                                     {'x': [5], 'y': [5]}]}]}]}
  path.write_text(json.dumps(data))
  return path


def test_a_posetrack17_file_reads_as_the_2018_format(tmp_path):
  data, kind = formats.read(_file_2017(tmp_path / '000042_mpii_relpath_5sec_trainsub.json'))
  assert kind == 'posetrack17'
  first, second = data['images']
  assert first['id'] == 10000420000 and second['id'] == 10000420001  # 0-based frames
  assert (second['vid_id'], second['imgnum'], second['nframes'], second['is_labeled']) == \
      ('000042', 2, 2, 1)
  assert second['ignore_regions_x'] == [[0, 5, 5]] and second['ignore_regions_y'] == [[0, 0, 5]]
  (person,) = data['annotations']
  keypoints = np.asarray(person['keypoints']).reshape(NUM_JOINTS, 3)
  assert keypoints[JOINT_INDEX['nose']].tolist() == [30.5, 40, 1]
  assert keypoints[JOINT_INDEX['head_bottom']].tolist() == [32, 70, 1]
  assert keypoints[JOINT_INDEX['right_ankle']].tolist() == [35, 150, 1]
  assert keypoints[:, 2].sum() == 3  # the ears and every other joint absent
  assert person['bbox_head'] == [10, 20, 30, 40] and person['track_id'] == 3
  # The extent of the joints (x 30.5 .. 35, y 40 .. 150) enlarged 1.3x about its centre.
  np.testing.assert_allclose(person['bbox'], [29.825, 23.5, 5.85, 143.0])


def test_the_reader_numbers_posetrack17_frames_by_imgnum(tmp_path):
  path = _file_2017(tmp_path / '000042_mpii.json')
  for name in ('00000001.jpg', '00000002.jpg'):
    frame = tmp_path / 'images' / 'bonn' / '000042_mpii' / name
    frame.parent.mkdir(parents=True, exist_ok=True)
    frame.write_bytes(b'')
  frames = annotations.read_video(path, tmp_path)
  assert [f.frame_index for f in frames] == [0, 1] and [f.nframes for f in frames] == [2, 2]
  assert [f.is_labeled for f in frames] == [False, True]
  assert len(frames[1].people) == 1 and frames[1].people[0].has_bbox
  assert frames[1].ignore_regions[0].tolist() == [[0, 0], [5, 0], [5, 5]]


@pytest.mark.parametrize('change, message', [
    ({'annopoints': [{'point': [{'id': [15], 'x': [1], 'y': [1]}]}]}, 'id must be a PoseTrack'),
    ({'annopoints': [{'point': [{'id': [1], 'x': ['7'], 'y': [1]}]}]}, 'x must be a finite'),
    ({'annopoints': [{'point': [{'x': [1], 'y': [1]}]}]}, 'no field "id"'),
    ({'x2': [1, 2]}, 'x2 must be a one-element list'),
])
def test_a_malformed_posetrack17_file_names_the_file_frame_person_and_field(tmp_path, change,
                                                                             message):
  path = _file_2017(tmp_path / '000042_mpii.json', **change)
  with pytest.raises(ValueError, match=message) as error:
    formats.read(path)
  assert str(path) in str(error.value) and 'annolist[1], annorect[0]' in str(error.value)


def test_a_posetrack17_file_not_named_by_its_video_number_is_an_error(tmp_path):
  with pytest.raises(ValueError, match='named after its video number'):
    formats.read(_file_2017(tmp_path / 'bonn_5sec.json'))


def test_an_entry_without_imgnum_is_an_error(tmp_path):
  path = tmp_path / '000001_x.json'
  path.write_text(json.dumps({'annolist': [{'image': [{'name': 'a/00000001.jpg'}]}]}))
  with pytest.raises(ValueError, match=r'annolist\[0\]: no field "imgnum"'):
    formats.read(path)


@needs_sample
def test_2018_to_2017_and_back_keeps_people_heads_and_regions(tmp_path):
  for path in sorted(SAMPLE_VAL.glob('*.json')):
    data, _ = formats.read(path)
    formats.write(tmp_path / path.name, data, 'posetrack17')
    back, kind = formats.read(tmp_path / path.name)
    assert kind == 'posetrack17'
    assert [i['id'] for i in back['images']] == [i['id'] for i in data['images']]
    for key in ('ignore_regions_x', 'ignore_regions_y'):
      assert [i.get(key) for i in back['images']] == [i.get(key) for i in data['images']]
    for a, b in zip(data['annotations'], back['annotations'], strict=True):
      assert b['keypoints'] == a['keypoints'] and b['bbox_head'] == a['bbox_head']
      assert b['track_id'] == a['track_id'] and b['image_id'] == a['image_id']


def test_detect_names_each_layout_and_refuses_what_is_none(tmp_path):
  with pytest.raises(FileNotFoundError, match='is no PoseTrack directory'):
    layouts.detect(tmp_path)
  (tmp_path / 'posetrack_data' / 'annotations' / 'val').mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match='for PoseTrack17, the dataset root is'):
    layouts.detect(tmp_path)
  (tmp_path / 'posetrack_data' / 'val').mkdir()
  assert layouts.detect(tmp_path).name == 'posetrack21'
  (tmp_path / 'annotations' / 'train').mkdir(parents=True)
  with pytest.raises(ValueError, match='has both annotations/'):
    layouts.detect(tmp_path)
  shutil.rmtree(tmp_path / 'posetrack_data')
  assert layouts.detect(tmp_path).name == 'posetrack18'  # no file to tell: the 2018 layout
  _file_2017(tmp_path / 'annotations' / 'train' / '000042_mpii.json')
  assert layouts.detect(tmp_path).name == 'posetrack17'


def _people(builder, split: str) -> list[tuple]:
  """What a build holds per frame: (video, frame, labeled, keypoints, head boxes, track ids,
  ignore-region vertices), in record order."""
  records = builder.as_data_source(split)
  out = []
  for r in (records[i] for i in range(len(records))):
    out.append((r['video_id'], int(r['frame_index']), bool(r['is_labeled']),
                np.asarray(r['people']['keypoints']).tolist(),
                np.asarray(r['people']['bbox_head']).tolist(),
                np.asarray(r['people']['track_id']).tolist(),
                np.asarray(r['ignore_regions']['x']).tolist(),
                np.asarray(r['ignore_regions']['y']).tolist(),
                np.asarray(r['ignore_regions']['num_vertices']).tolist()))
  return out


@needs_sample
def test_the_real_sample_in_the_21_and_17_layouts_builds_the_same_people(tmp_path):
  built = {'posetrack18': prepare(SAMPLE, tmp_path / 'tfds18', max_gap=7)}
  for name in ('posetrack21', 'posetrack17'):
    assert layouts.write_layout(SAMPLE, tmp_path / name, name) == {'val': 3}
    assert layouts.detect(tmp_path / name).name == name
    built[name] = prepare(tmp_path / name, tmp_path / f'tfds_{name}', max_gap=7)
  for name, builder in built.items():
    assert builder.info.metadata['layout'] == name
  reference = _people(built['posetrack18'], 'validation')
  assert sum(len(p[3]) for p in reference) == 14  # 1 + 2 + 11 people
  for name in ('posetrack21', 'posetrack17'):
    assert _people(built[name], 'validation') == reference, name
  # PoseTrack21's people with a box and no keypoints: counted, not stored, as in PoseTrack18.
  skipped = built['posetrack21'].info.metadata['skipped']['validation']
  assert skipped['people_without_keypoints'] == \
      built['posetrack18'].info.metadata['skipped']['validation']['people_without_keypoints'] + 3


def _predictions_2018(out: pathlib.Path, gt_dir: pathlib.Path) -> pathlib.Path:
  """Noisy copies of the ground truth, scored at random: predictions the metric ranks."""
  out.mkdir()
  rng = np.random.default_rng(0)
  for path in sorted(gt_dir.glob('*.json')):
    data = json.loads(path.read_text())
    for a in data['annotations']:
      k = np.asarray(a['keypoints'], np.float64).reshape(NUM_JOINTS, 3)
      k[:, :2] += rng.normal(0, 25, (NUM_JOINTS, 2)) * (k[:, 2:] > 0)
      a['keypoints'], a['scores'] = k.ravel().tolist(), rng.uniform(0, 1, NUM_JOINTS).tolist()
    (out / path.name).write_text(json.dumps(data))
  return out


def _as_2017(source: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
  out.mkdir()
  for path in sorted(source.glob('*.json')):
    formats.write(out / path.name, formats.read(path)[0], 'posetrack17')
  return out


@needs_sample
def test_the_metric_gives_the_same_numbers_in_both_formats(tmp_path):
  pred = _predictions_2018(tmp_path / 'pred', SAMPLE_VAL)
  expected = pm.evaluate(SAMPLE_VAL, pred)
  assert 0 < expected['groups']['Total'] < 100
  gt17, pred17 = _as_2017(SAMPLE_VAL, tmp_path / 'gt17'), _as_2017(pred, tmp_path / 'pred17')
  for gt_dir, pred_dir in ((gt17, pred17), (gt17, pred), (SAMPLE_VAL, pred17)):
    result = pm.evaluate(gt_dir, pred_dir)
    assert result['ap'] == expected['ap'] and result['num_frames'] == expected['num_frames']


@pytest.mark.parametrize('case', ['case1', 'case2', 'case3'])
def test_the_golden_cases_in_the_2017_format(case, tmp_path):
  if not (GOLDEN / case).exists() or not SAMPLE_VAL.exists():
    pytest.skip(f'the poseval golden cases are not at {GOLDEN} (../shared)')
  expected = json.loads((GOLDEN / case / 'expected_total_AP_metrics.json').read_text())
  result = pm.evaluate(_as_2017(SAMPLE_VAL, tmp_path / 'gt'),
                       _as_2017(GOLDEN / case / 'pred', tmp_path / 'pred'))
  for key in ('ap', 'pre', 'rec'):
    np.testing.assert_allclose(result[key], expected[key], rtol=0, atol=1e-6, err_msg=key)


@needs_sample
def test_predictions_are_written_in_the_ground_truths_format_or_the_one_asked(tmp_path):
  gt17 = _as_2017(SAMPLE_VAL, tmp_path / 'gt17')
  data = [formats.read(p)[0] for p in sorted(SAMPLE_VAL.glob('*.json'))]
  people = [(a['image_id'], np.asarray(a['keypoints']).reshape(NUM_JOINTS, 3))
            for d in data for a in d['annotations'] if a['keypoints']]
  ids = [i for i, _ in people]
  xy = np.stack([k[:, :2] for _, k in people])
  scores = np.stack([k[:, 2] for _, k in people])  # 1 where annotated: a perfect prediction
  predictions.write_predictions(tmp_path / 'p17', gt17, ids, xy, scores)
  predictions.write_predictions(tmp_path / 'p18', gt17, ids, xy, scores, 'posetrack18')
  assert all(formats.read(p)[1] == 'posetrack17' for p in (tmp_path / 'p17').glob('*.json'))
  assert all(formats.read(p)[1] == 'posetrack18' for p in (tmp_path / 'p18').glob('*.json'))
  a, b = pm.evaluate(gt17, tmp_path / 'p17'), pm.evaluate(gt17, tmp_path / 'p18')
  assert a['ap'] == b['ap'] and a['groups']['Total'] == 100  # the truth as its own prediction


@pytest.mark.parametrize('layout', ['posetrack21', 'posetrack17'])
def test_the_generator_writes_each_layout_with_the_same_videos(tmp_path, layout):
  settings = dict(seed=5, num_train=1, num_val=1, num_test=1, frames=12, width=96, height=72)
  reference = synthetic.generate(tmp_path / 'posetrack18', **settings)
  summary = synthetic.generate(tmp_path / layout, layout=layout, **settings)
  root = tmp_path / layout
  assert layouts.detect(root).name == layout and summary['layout'] == layout
  assert not (root / '.posetrack18').exists()
  splits = ('train', 'val') if layout == 'posetrack21' else ('train', 'val', 'test')
  assert set(layouts.LAYOUTS[layout].present_splits(root)) == set(splits)
  for folder in splits:
    counts = collections.Counter()
    (path,) = layouts.LAYOUTS[layout].annotation_dir(root, folder).glob('*.json')
    got = annotations.read_video(path, root, counts)
    want = annotations.read_video(
        tmp_path / 'posetrack18' / 'annotations' / folder / path.name, tmp_path / 'posetrack18')
    assert counts['frames_missing'] == 0 and len(got) == len(want) == 12
    for g, w in zip(got, want, strict=True):
      assert (g.frame_index, g.image_id, g.is_labeled) == (w.frame_index, w.image_id, w.is_labeled)
      assert [p.keypoints.tolist() for p in g.people] == [p.keypoints.tolist() for p in w.people]
      assert (root / g.file_name).read_bytes() == \
          (tmp_path / 'posetrack18' / w.file_name).read_bytes()
  assert reference['splits']['train'] == summary['splits']['train']


# PoseTrack17 only: PoseTrack21 differs from PoseTrack18 only in where its files are, which the
# builds above cover; a second run would cost CI half a minute.
@pytest.mark.parametrize('layout', ['posetrack17'])
def test_a_tiny_run_trains_evaluates_and_propagates_on_another_layout(tmp_path, layout):
  from posewarper_jax import evaluate, propagate, train
  from tests.helpers import tiny_config

  root = tmp_path / layout
  videos = dict(seed=7, num_train=2, num_val=1, num_test=0, frames=40, width=192, height=144)
  synthetic.generate(root, layout=layout, **videos)
  config = tiny_config(root, stages=(1, 2), num_steps=1, checkpoint_every=1)
  config.eval.update(batch=16, gallery=False, aggregate=True)
  workdir = tmp_path / 'run'
  for stage in (1, 2):
    train.train_stage(config, workdir, stage)
  table = FrameTable.from_builder(prepare(root, root / 'tfds', config.data.stored_gap), 'train')
  assert table.is_labeled.sum() == 60
  results = evaluate.evaluate(config, workdir)
  assert set(results) == {'single frame', 'aggregation'}
  # The same network on the same videos in PoseTrack18's layout scores the same, joint by
  # joint (the generator's person box is the keypoint extent x 1.3, as PoseTrack17 derives it).
  root18 = tmp_path / 'posetrack18'
  synthetic.generate(root18, **videos)
  config18 = tiny_config(root18)
  config18.eval.update(batch=16, gallery=False, aggregate=True, checkpoint=str(workdir))
  again = evaluate.evaluate(config18, tmp_path / 'run18')
  assert set(again) == set(results)
  for row, result in results.items():
    for key in ('ap', 'pre', 'rec', 'num_frames', 'num_gt_joints'):
      np.testing.assert_allclose(result[key], again[row][key], rtol=0, atol=1e-9,
                                 err_msg=f'{row}: {key}')
  labeled = [i for i in json.loads(next((root18 / 'annotations' / 'val').glob('*.json'))
                                   .read_text())['images'] if i['is_labeled']]
  assert results['single frame']['num_frames'] == len(labeled)
  # The predictions are in the ground truth's format, as poseval expects.
  predicted = next((workdir / 'eval' / 'val' / 'single_frame' / 'predictions').glob('*.json'))
  assert formats.read(predicted)[1] == ('posetrack17' if layout == 'posetrack17'
                                        else 'posetrack18')
  scores = propagate.propagate(config, workdir)
  assert set(scores) == {'PoseWarper', 'copy', 'single frame'}
  assert scores == propagate.propagate(config18, tmp_path / 'run18')  # as the eval above


def test_the_posetrack17_variant_runs_the_release_grid_unscaled():
  from tests.helpers import posewarper_config

  config = posewarper_config.get_config('posetrack17,augmentation_grid')
  assert tuple(map(tuple, config.grid.labels)) == ((100, 1), (175, 1), (-1, 1), (50, 1),
                                                    (50, 2), (50, 4))
  assert config.stage1.global_batch == 64
