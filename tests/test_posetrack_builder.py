"""The TFDS PoseTrack18 builder on the real sample and on synthetic data with defects."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from posewarper_jax.data.synthetic import generate
from tests.shared_data import SAMPLE
from tfds_posetrack.posetrack18.pairs import FrameTable, training_pairs
from tfds_posetrack.posetrack18.posetrack18_dataset_builder import (
  REPORTED_COUNTS,
  Builder,
  jpeg_size,
  make_config,
  prepare,
)

TEST_VIDEO = '000001_mpiinew_test'


@pytest.fixture(scope='module')
def sample_root(tmp_path_factory):
  """The sample's three validation files, plus its unannotated clip as a test video."""
  if not SAMPLE.is_dir():
    pytest.skip(f'the PoseTrack18 sample is not at {SAMPLE}')
  root = tmp_path_factory.mktemp('posetrack18')
  for kind in ('images', 'annotations'):
    (root / kind).mkdir()
    (root / kind / 'val').symlink_to(SAMPLE / kind / 'val')
  (root / 'images' / 'test').mkdir()
  (root / 'images' / 'test' / TEST_VIDEO).symlink_to(SAMPLE / 'videos' / TEST_VIDEO)
  images = [{'file_name': f'images/test/{TEST_VIDEO}/{f:06d}.jpg', 'id': int(f'1000001{f:04d}'),
             'frame_id': int(f'1000001{f:04d}'), 'vid_id': '000001', 'nframes': 5,
             'is_labeled': f % 4 == 0, 'has_no_densepose': True} for f in range(5)]
  (root / 'annotations' / 'test').mkdir()
  (root / 'annotations' / 'test' / f'{TEST_VIDEO}.json').write_text(
      json.dumps({'images': images, 'categories': []}))
  return root


@pytest.fixture(scope='module')
def sample_build(sample_root, tmp_path_factory):
  return prepare(sample_root, tmp_path_factory.mktemp('tfds'))


def test_real_sample_records(sample_build):
  records = sample_build.as_data_source('validation')
  assert len(records) == 3
  for i, (vid, people, polygons) in enumerate([('003418', 1, 9), ('009473', 2, 2),
                                                ('012834', 11, 4)]):
    record = records[i]
    raw = json.loads((SAMPLE / 'annotations' / 'val' / f'{vid}_mpii_test.json').read_text())
    assert record['video_id'] in (vid, vid.encode())
    assert record['image_id'] == raw['images'][0]['id'] > 2**32  # 11 digits survive
    assert (record['height'], record['width']) == (1080, 1920)
    assert record['is_labeled'] and record['frame_index'] == 0 and record['nframes'] > 100
    jpeg = (SAMPLE / raw['images'][0]['file_name']).read_bytes()
    assert record['image'] == jpeg  # stored as is, not re-encoded
    assert len(record['ignore_regions']['num_vertices']) == polygons
    first = raw['images'][0]['ignore_regions_x'][0]
    assert record['ignore_regions']['num_vertices'][0] == len(first)
    np.testing.assert_array_equal(record['ignore_regions']['x'][:len(first)], first)
    keypoints = np.asarray(record['people']['keypoints'])
    assert keypoints.shape == (people, 17, 3)
    np.testing.assert_array_equal(
        keypoints.reshape(people, -1), [a['keypoints'] for a in raw['annotations']])
    assert list(record['people']['annotation_id']) == [a['id'] for a in raw['annotations']]
  assert sample_build.info.metadata['skipped']['validation']['frames_stored'] == 3


def test_real_test_video(sample_build):
  records = sample_build.as_data_source('test')
  assert len(records) == 5
  assert [r['frame_index'] for r in records] == list(range(5))
  assert all(len(r['people']['keypoints']) == 0 for r in records)
  assert (records[0]['height'], records[0]['width']) == (720, 1280)
  table = FrameTable.from_builder(sample_build, 'test')
  assert table.is_labeled.tolist() == [True, False, False, False, True]
  # By name, as users read it (importing tfds_posetrack.posetrack18 registers the builder).
  by_name = tfds.data_source('posetrack18', split='test', data_dir=sample_build.data_dir_root)
  assert [r['image_id'] for r in by_name] == [r['image_id'] for r in records]
  # A fresh builder reads the same metadata back, without TensorFlow.
  again = Builder(data_dir=sample_build.data_dir_root)
  assert again.info.metadata['frames']['test'] == sample_build.info.metadata['frames']['test']
  assert 'tensorflow' not in sys.modules


def test_jpeg_validation(tmp_path):
  if not SAMPLE.is_dir():
    pytest.skip(f'the PoseTrack18 sample is not at {SAMPLE}')
  data = (SAMPLE / 'videos' / TEST_VIDEO / '000000.jpg').read_bytes()
  assert jpeg_size(data) == (720, 1280)
  assert jpeg_size(data[: len(data) // 2]) is None  # truncated
  assert jpeg_size(b'not a jpeg') is None


def test_missing_data_says_where_it_looked(tmp_path):
  # No directory: TFDS's own message, with our instructions.
  with pytest.raises(AssertionError, match='(?s)nothing does not exist.*PoseTrack21'):
    prepare(tmp_path / 'nothing', tmp_path / 'tfds')
  # A directory in none of the layouts: what each would have, and how to get the data.
  (tmp_path / 'other' / 'images').mkdir(parents=True)
  with pytest.raises(FileNotFoundError,
                     match='(?s)other is no PoseTrack directory: expected .*posetrack_data.*'
                           'PoseTrack21: manual_dir'):
    prepare(tmp_path / 'other', tmp_path / 'tfds')


def test_max_gap_config(sample_root, tmp_path):
  # Test clip: frames 0 and 4 labeled; max_gap 0 keeps only those two.
  builder = prepare(sample_root, tmp_path, max_gap=0)
  assert [r['frame_index'] for r in builder.as_data_source('test')] == [0, 4]
  assert builder.info.metadata['skipped']['test']['frames_beyond_max_gap'] == 3
  table = FrameTable.from_builder(builder, 'test')
  assert len(training_pairs(table, 2, seed=0, epoch=0)) == 0  # no people in a test video


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
  """A small synthetic set with the defects of real data: a listed frame missing on disk, a
  truncated JPEG, a person without keypoints, fields the builder does not know."""
  root = tmp_path_factory.mktemp('synthetic')
  generate(root, seed=3, num_train=2, num_val=1, num_test=1, frames=40, width=192, height=144)
  path = sorted((root / 'annotations' / 'train').glob('*.json'))[0]
  data = json.loads(path.read_text())
  labeled = [im for im in data['images'] if im['is_labeled']]
  missing, truncated, extra = labeled[3], labeled[10], labeled[12]
  (root / missing['file_name']).unlink()
  jpeg = root / truncated['file_name']
  jpeg.write_bytes(jpeg.read_bytes()[:-500])
  data['annotations'].append({'image_id': extra['id'], 'id': extra['id'] * 100 + 99,
                              'track_id': 99, 'category_id': 1, 'keypoints': [0] * 51,
                              'bbox_head': [0, 0, 1, 1], 'scores': []})
  data['images'][0]['a_field_from_another_tool'] = 'ignored'
  path.write_text(json.dumps(data))
  people = lambda im: sum(a['image_id'] == im['id'] and any(a['keypoints'][2::3])
                          for a in data['annotations'])
  defects = {'video': data['images'][0]['vid_id'], 'missing': missing, 'truncated': truncated,
             'people_missing': people(missing), 'people_truncated': people(truncated)}
  return root, prepare(root, tmp_path_factory.mktemp('tfds')), defects


def test_synthetic_build_counts_what_it_skipped(synthetic):
  root, builder, defects = synthetic
  skipped = builder.info.metadata['skipped']
  assert skipped['train']['frames_missing'] == 1
  assert skipped['train']['frames_corrupt'] == 1
  assert skipped['train']['people_on_missing_frames'] == defects['people_missing']
  assert skipped['train']['people_on_corrupt_frames'] == defects['people_truncated']
  assert skipped['train']['people_without_keypoints'] >= 1
  assert skipped['validation']['frames_missing'] == 0 == skipped['test'].get('frames_corrupt', 0)
  records = builder.as_data_source('train')
  stored = {(r['video_id'], r['frame_index']) for r in records}
  video = defects['video'].encode()
  for name in ('missing', 'truncated'):
    frame = int(pathlib.Path(defects[name]['file_name']).stem)
    assert (video, frame) not in stored and (defects['video'], frame) not in stored


def test_synthetic_records_match_the_files(synthetic):
  root, builder, _ = synthetic
  for split, directory in (('train', 'train'), ('validation', 'val'), ('test', 'test')):
    records = builder.as_data_source(split)
    table = FrameTable.from_builder(builder, split)
    assert len(records) == len(table) == builder.info.metadata['skipped'][split]['frames_stored']
    by_file = {}
    for path in sorted((root / 'annotations' / directory).glob('*.json')):
      data = json.loads(path.read_text())
      for im in data['images']:
        kept = [a for a in data.get('annotations', []) if a['image_id'] == im['id']
                and any(a['keypoints'][2::3])]
        by_file[im['id']] = (im, kept)
    for i in range(0, len(records), 7):
      record = records[i]
      im, kept = by_file[record['image_id']]
      assert record['is_labeled'] == im['is_labeled'] and record['nframes'] == im['nframes']
      assert (record['height'], record['width']) == (144, 192)
      assert record['image'] == (root / im['file_name']).read_bytes()
      assert list(record['people']['annotation_id']) == [a['id'] for a in kept]
      for keypoints, a in zip(record['people']['keypoints'], kept, strict=True):
        np.testing.assert_array_equal(np.asarray(keypoints).reshape(-1), a['keypoints'])
      assert table.frame_index[i] == record['frame_index']
    if split == 'validation':
      # 40-frame validation videos are labeled every 4th frame: every frame is within 7.
      assert len(records) == 40 and not table.is_labeled.all()


def test_pairs_on_a_built_split(synthetic):
  _, builder, defects = synthetic
  table = FrameTable.from_builder(builder, 'train')
  missing = int(pathlib.Path(defects['missing']['file_name']).stem)
  for k in (0, 2, 5):
    pairs = training_pairs(table, k, seed=0, epoch=1)
    gaps = table.frame_index[pairs[:, 2]] - table.frame_index[pairs[:, 0]]
    assert np.abs(gaps).max() <= k and (table.video[pairs[:, 0]] == table.video[pairs[:, 2]]).all()
    assert len(pairs) == table.people[table.is_labeled].sum()
    video = table.video_names.index(defects['video'])
    in_video = table.video[pairs[:, 2]] == video
    assert not (in_video & (table.frame_index[pairs[:, 2]] == missing)).any()


def test_build_command(synthetic, tmp_path, capsys, monkeypatch):
  from tfds_posetrack.posetrack18.__main__ import main

  root, _, _ = synthetic
  monkeypatch.chdir(tmp_path.parent)  # relative paths, as typed
  assert main(['--manual_dir', os.path.relpath(root, tmp_path.parent), '--data_dir',
               tmp_path.name, '--max_gap', '2']) == 0
  out = capsys.readouterr().out
  assert 'train: ' in out and 'frames_missing 1' in out and 'gap2' in out
  table = FrameTable.from_builder(Builder(data_dir=str(tmp_path), config=make_config(2)), 'train')
  # Every stored training frame is within 2 of a labeled one.
  for v in range(len(table.video_names)):
    frames = table.frame_index[table.video == v]
    labeled = table.frame_index[(table.video == v) & table.is_labeled]
    assert np.abs(frames[:, None] - labeled[None, :]).min(axis=1).max() <= 2


def test_the_build_records_its_source(sample_build):
  # Linked folders (as sample_root makes them) are followed: each video folder is listed.
  source = sample_build.info.metadata['source']
  assert sorted(source) == ['test', 'val']
  assert source['test']['annotations'].keys() == {f'{TEST_VIDEO}.json'}
  assert source['test']['images'][TEST_VIDEO][0] == 5
  assert sorted(source['val']['images']) == sorted(
      p.name for p in (SAMPLE / 'images' / 'val').iterdir() if p.is_dir())
  again = Builder(data_dir=sample_build.data_dir_root)
  assert again.info.metadata['source'] == source  # survives the JSON round trip


_JPEG = cv2.imencode('.jpg', np.zeros((16, 16, 3), np.uint8))[1].tobytes()


def _tiny_video(root, name, split='train', frames=4, labeled=(1,), missing=(), **fields):
  """annotations/<split>/<name>.json and its frames (16 x 16 JPEGs, `missing` ones left out);
  the file's path. `fields` replace those of every image entry."""
  vid = name.split('_')[0]
  images = []
  for f in range(frames):
    image = {'file_name': f'images/{split}/{name}/{f:06d}.jpg', 'id': int(f'1{vid}{f:04d}'),
             'vid_id': vid, 'nframes': frames, 'is_labeled': f in labeled, **fields}
    if f not in missing:
      (root / image['file_name']).parent.mkdir(parents=True, exist_ok=True)
      (root / image['file_name']).write_bytes(_JPEG)
    images.append(image)
  path = root / 'annotations' / split / f'{name}.json'
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps({'images': images, 'annotations': [], 'categories': []}))
  return path


def test_image_ids_are_unique_within_a_split(tmp_path):
  first = _tiny_video(tmp_path / 'a', '000001_mpii_train')
  # Image ids are global: a second file with the first one's ids would alias its records.
  second = _tiny_video(tmp_path / 'a', '000002_mpii_train')
  data = json.loads(second.read_text())
  data['images'][2]['id'] = json.loads(first.read_text())['images'][0]['id']
  second.write_text(json.dumps(data))
  with pytest.raises(ValueError, match=f'{re.escape(str(second))}: image id 10000010000 is also '
                                       f'in {re.escape(str(first))}'):
    prepare(tmp_path / 'a', tmp_path / 'tfds')


def test_video_ids_are_unique_within_a_split(tmp_path):
  # Two files with one video id would be one video in the frame table.
  first = _tiny_video(tmp_path, '000001_mpii_train')
  other = _tiny_video(tmp_path, '000003_bonn_train', vid_id='000001')
  with pytest.raises(ValueError, match=f"{re.escape(str(other))}: video id '000001' is also the "
                                       f'video id of {re.escape(str(first))}'):
    prepare(tmp_path, tmp_path / 'tfds')


def test_video_folders_without_annotations_are_counted(tmp_path, capsys):
  _tiny_video(tmp_path, '000001_mpii_train')
  (tmp_path / 'images' / 'train' / '000002_mpii_train').mkdir()
  (tmp_path / 'images' / 'train' / '000002_mpii_train' / '000000.jpg').write_bytes(_JPEG)
  assert 'videos_without_annotations' in REPORTED_COUNTS
  builder = prepare(tmp_path, tmp_path / 'tfds')
  assert builder.info.metadata['skipped']['train']['videos_without_annotations'] == 1
  out = capsys.readouterr().out
  assert 'videos_without_annotations 1' in out and '(not stored): 000002_mpii_train' in out


@pytest.mark.parametrize('make, message', [
    (lambda root: _tiny_video(root, '000001_mpii_train', missing=range(4)),
     'its 1 annotation file lists 4 frames, of which 4 missing on disk'),
    (lambda root: _tiny_video(root, '000001_mpii_train', frames=12, labeled=()),
     'of which 0 missing on disk .*, 0 corrupt JPEGs, 12 farther than max_gap=7'),
    (lambda root: (root / 'annotations' / 'train').mkdir(parents=True),
     'has no annotation file')])
def test_a_split_without_frames_says_why(tmp_path, make, message):
  make(tmp_path)
  annotations = re.escape(str(tmp_path / 'annotations' / 'train'))
  with pytest.raises(ValueError, match=f'posetrack18 train: .*{annotations}.*{message}'):
    prepare(tmp_path, tmp_path / 'tfds')


def test_the_build_command_ends_with_the_reason(tmp_path):
  # What a user sees: the reason is the last line, not a progress bar or TFDS's own words.
  _tiny_video(tmp_path, '000001_mpii_train', missing=range(4))
  done = subprocess.run([sys.executable, '-m', 'tfds_posetrack.posetrack18', '--manual_dir',
                         str(tmp_path), '--data_dir', str(tmp_path / 'tfds')],
                        capture_output=True, text=True, timeout=120,
                        cwd=pathlib.Path(__file__).parents[1])
  assert done.returncode != 0
  last = (done.stdout + done.stderr).strip().splitlines()[-1]
  assert last.startswith('ValueError: posetrack18 train: no frame to store'), done.stderr[-2000:]
  assert 'No examples were yielded' not in done.stderr


def _metadata(builder) -> pathlib.Path:
  return pathlib.Path(builder.data_dir) / 'metadata.json'


def test_a_changed_source_is_refused(tmp_path, capsys):
  root, tfds_dir = tmp_path / 'posetrack18', tmp_path / 'tfds'
  _tiny_video(root, '000001_mpii_train', missing=(3,))
  _tiny_video(root, '000002_mpii_train')
  built = prepare(root, tfds_dir)
  assert prepare(root, tfds_dir).info.metadata['frames'] == built.info.metadata['frames']
  assert 'WARNING' not in capsys.readouterr().err
  refused = (f'the build in {re.escape(built.data_dir)} was made from another state of '
             f'{re.escape(str(root))}: ')
  rebuild = f'To rebuild, delete {re.escape(built.data_dir)}'
  # The missing frame put back.
  restored = root / 'images' / 'train' / '000001_mpii_train' / '000003.jpg'
  restored.write_bytes(_JPEG)
  with pytest.raises(ValueError, match=refused + r'images/train: 1 \.jpg files added and 0 '
                                       r'removed .*in 1 folders \(000001_mpii_train\).*' + rebuild):
    prepare(root, tfds_dir)
  restored.unlink()
  # A video added.
  _tiny_video(root, '000003_mpii_train')
  with pytest.raises(ValueError, match=refused + r'annotations/train: 1 files added '
                                       r'\(000003_mpii_train.json\)'):
    prepare(root, tfds_dir)
  (root / 'annotations' / 'train' / '000003_mpii_train.json').unlink()
  # Its frames are still there: a video folder added.
  with pytest.raises(ValueError, match=r'images/train: 4 \.jpg files added and 0 removed'):
    prepare(root, tfds_dir)
  for f in range(4):
    (root / 'images' / 'train' / '000003_mpii_train' / f'{f:06d}.jpg').unlink()
  (root / 'images' / 'train' / '000003_mpii_train').rmdir()
  # An annotation file changed, one removed, a split added.
  _tiny_video(root, '000002_mpii_train', labeled=(2,))
  with pytest.raises(ValueError, match=r'annotations/train: 1 files changed '
                                       r'\(000002_mpii_train.json\)'):
    prepare(root, tfds_dir)
  _tiny_video(root, '000002_mpii_train')
  (root / 'annotations' / 'train' / '000001_mpii_train.json').rename(root / 'x.json')
  with pytest.raises(ValueError, match=r'annotations/train: 1 files removed'):
    prepare(root, tfds_dir)
  (root / 'x.json').rename(root / 'annotations' / 'train' / '000001_mpii_train.json')
  _tiny_video(root, '000004_mpii_test', split='val')
  with pytest.raises(ValueError, match=r'annotations/val is new'):
    prepare(root, tfds_dir)


def test_a_build_without_a_recorded_source_is_used_with_a_warning(tmp_path, capsys):
  root = tmp_path / 'posetrack18'
  _tiny_video(root, '000001_mpii_train')
  built = prepare(root, tmp_path / 'tfds')
  metadata = json.loads(_metadata(built).read_text())
  del metadata['source']  # as a build made before fingerprints existed
  _metadata(built).write_text(json.dumps(metadata))
  capsys.readouterr()
  again = prepare(root, tmp_path / 'tfds')
  err = capsys.readouterr().err
  assert f'reusing the build in {built.data_dir} unchecked' in err and 'records no source' in err
  assert len(again.as_data_source('train')) == 4
