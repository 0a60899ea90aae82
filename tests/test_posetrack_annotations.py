"""Reading official PoseTrack18 annotation files: the real sample and malformed inputs."""

from __future__ import annotations

import collections
import json
import re

import numpy as np
import pytest

from tests.shared_data import SAMPLE
from tfds_posetrack.posetrack18.annotations import read_video


@pytest.fixture
def sample():
  if not SAMPLE.is_dir():
    pytest.skip(f'the PoseTrack18 sample is not at {SAMPLE}')
  return SAMPLE


def test_real_sample(sample):
  counts = collections.Counter()
  expected = {'003418': (1, 9), '009473': (2, 2), '012834': (11, 4)}
  for vid, (people, polygons) in expected.items():
    path = sample / 'annotations' / 'val' / f'{vid}_mpii_test.json'
    frames = read_video(path, sample, counts)
    raw = json.loads(path.read_text())
    # The files list one frame (the sample is trimmed) but say nframes 149/101/140.
    assert len(frames) == 1
    frame = frames[0]
    assert frame.video_id == vid and frame.frame_index == 0 and frame.is_labeled
    assert frame.image_id == raw['images'][0]['id'] and frame.image_id > 2**31
    assert frame.nframes == raw['images'][0]['nframes'] > 100
    assert len(frame.people) == people and len(frame.ignore_regions) == polygons
    for person, annotation in zip(frame.people, raw['annotations'], strict=True):
      np.testing.assert_array_equal(person.keypoints.reshape(-1),
                                    np.asarray(annotation['keypoints']))
      assert person.annotation_id == annotation['id'] and person.annotation_id > 10**12
      assert person.has_bbox
      np.testing.assert_array_equal(person.bbox, annotation['bbox'])
    x, y = raw['images'][0]['ignore_regions_x'][0], raw['images'][0]['ignore_regions_y'][0]
    np.testing.assert_array_equal(frame.ignore_regions[0], np.stack([x, y], 1))
  assert counts['frames_missing'] == 0


def _write(tmp_path, images, annotations=None, name='000001_mpii_train'):
  path = tmp_path / 'annotations' / 'train' / f'{name}.json'
  path.parent.mkdir(parents=True, exist_ok=True)
  data = {'images': images, 'categories': []}
  if annotations is not None:
    data['annotations'] = annotations
  path.write_text(json.dumps(data))
  return path


def _image(frame, labeled=True, **extra):
  return {'file_name': f'images/train/000001_mpii_train/{frame:06d}.jpg',
          'id': int(f'1000001{frame:04d}'), 'frame_id': int(f'1000001{frame:04d}'),
          'vid_id': '000001', 'nframes': 3, 'is_labeled': labeled, 'has_no_densepose': True,
          **extra}


def _person(image_id, index, keypoints=True, bbox=True):
  kp = [10.0, 20.0, 1] * 17 if keypoints else [0, 0, 0] * 17
  out = {'image_id': image_id, 'id': image_id * 100 + index, 'track_id': index,
         'category_id': 1, 'keypoints': kp, 'bbox_head': [1, 2, 3, 4], 'scores': [],
         'unknown_tool_field': 'ignored'}
  if bbox:
    out['bbox'] = [5, 6, 7, 8]
  return out


def test_untidy_files_are_counted_not_fatal(tmp_path):
  images = [_image(0), _image(1, labeled=False), _image(2)]
  for frame in (0, 1):  # frame 2 is listed but missing on disk
    f = tmp_path / images[frame]['file_name']
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(b'\xff\xd8\xff\xd9')
  ids = [im['id'] for im in images]
  annotations = [_person(ids[0], 0), _person(ids[0], 1, keypoints=False),
                 _person(ids[0], 2, bbox=False), {**_person(ids[0], 3), 'keypoints': []},
                 _person(ids[2], 0), _person(99999999999, 0)]
  counts = collections.Counter()
  frames = read_video(_write(tmp_path, images, annotations), tmp_path, counts)
  assert [f.frame_index for f in frames] == [0, 1]
  assert [len(f.people) for f in frames] == [2, 0]
  assert not frames[0].people[1].has_bbox and frames[0].people[0].has_bbox
  assert counts == {'frames_missing': 1, 'people_on_missing_frames': 1,
                    'people_without_keypoints': 2, 'people_without_bbox': 1,
                    'annotations_without_image': 1}
  # A test video: images only.
  frames = read_video(_write(tmp_path, images[:2], None, name='000002_mpii_test'), tmp_path)
  assert [len(f.people) for f in frames] == [0, 0]


def test_malformed_files_name_the_problem(tmp_path):
  path = tmp_path / 'bad.json'
  path.write_text('{"images": [')
  with pytest.raises(ValueError, match='bad.json: not valid JSON'):
    read_video(path, tmp_path)
  image = _image(0)
  del image['nframes']
  with pytest.raises(ValueError, match="image 10000010000 has no field 'nframes'"):
    read_video(_write(tmp_path, [image]), tmp_path)
  person = {**_person(_image(0)['id'], 0), 'keypoints': [1, 2, 1] * 16}
  with pytest.raises(ValueError, match='annotation 1000001000000: keypoints must have 51'):
    read_video(_write(tmp_path, [_image(0)], [person]), tmp_path)
  image = _image(0, ignore_regions_x=[[1, 2, 3]], ignore_regions_y=[[1, 2]])
  with pytest.raises(ValueError, match='an ignore region has 3 x and 2 y'):
    read_video(_write(tmp_path, [image]), tmp_path)


def _frames_on_disk(tmp_path, images):
  for image in images:
    f = tmp_path / image['file_name']
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(b'\xff\xd8\xff\xd9')


@pytest.mark.parametrize('vid_id, problem', [
    ('../../../elsewhere/x', 'path separator'), ('a\\b', 'path separator'), ('..', '"." or'),
    ('.', '"." or'), ('', 'is empty'), ('0001\x00', 'non-printable'), ('00\n01', 'non-printable'),
    ('0' * 256, 'longer than 255'), (None, 'must be a string'), (-1, 'must be a string')])
def test_video_ids_must_be_plain_file_names(tmp_path, vid_id, problem):
  # Video ids become paths (<workdir>/render/<video id>): refused where they enter.
  images = [_image(0), _image(1, vid_id=vid_id)]
  _frames_on_disk(tmp_path, images)
  with pytest.raises(ValueError, match=f'000001_mpii_train.json: image 10000010001: vid_id .*'
                                       f'{re.escape(problem)}'):
    read_video(_write(tmp_path, images), tmp_path)


def test_video_id_from_the_file_name_is_checked_too(tmp_path):
  image = _image(0)
  del image['vid_id']
  with pytest.raises(ValueError, match=r'\.\.json: image 10000010000: the video id from the file '
                                       r"name \(\.\.json\) '\.' is \".\" or"):
    read_video(_write(tmp_path, [image], name='.'), tmp_path)


@pytest.mark.parametrize('file_name, problem', [
    ('/etc/images/000000.jpg', 'is absolute'), ('images/../../outside/000000.jpg', '".."'),
    ('..\\outside\\000000.jpg', '".."'), ('images/..\\../000000.jpg', '".."'),
    ('images/train/x\x00/000000.jpg', 'non-printable'),
    (7, 'must be a string')])
def test_file_names_stay_inside_the_root(tmp_path, file_name, problem):
  outside = tmp_path / 'outside' / '000000.jpg'  # what the first '..' name would read
  outside.parent.mkdir()
  outside.write_bytes(b'\xff\xd8\xff\xd9')
  root = tmp_path / 'root'
  with pytest.raises(ValueError, match=f'000001_mpii_train.json: image 10000010000: file_name .*'
                                       f'{re.escape(problem)}'):
    read_video(_write(root, [_image(0, file_name=file_name)]), root)


def _twice(kind):
  """(images, annotations) where one image id, annotation id or frame appears twice."""
  images = [_image(0), _image(1)]
  people = [_person(images[0]['id'], 0), _person(images[1]['id'], 0)]
  if kind == 'image':
    images[1]['id'] = images[0]['id']  # frame 1 would get frame 0's people
  elif kind == 'annotation':
    people[1]['id'] = people[0]['id']
  else:
    images[1] = {**images[0], 'id': 5}  # the same frame under two ids
  return images, people


@pytest.mark.parametrize('kind, message', [
    ('image', 'image id 10000010000 appears twice'),
    ('annotation', 'annotation id 1000001000000 appears twice'),
    ('frame', 'image 5: frame 0 is listed twice')])
def test_duplicates_in_a_file(tmp_path, kind, message):
  images, people = _twice(kind)
  _frames_on_disk(tmp_path, images)
  with pytest.raises(ValueError, match=f'000001_mpii_train.json: {message}'):
    read_video(_write(tmp_path, images, people), tmp_path)


@pytest.mark.parametrize('field, index, value', [
    ('keypoints', 4, float('nan')), ('keypoints', 0, float('inf')), ('bbox', 2, float('nan')),
    ('bbox_head', 3, float('-inf'))])
def test_non_finite_numbers_are_refused(tmp_path, field, index, value):
  images = [_image(0)]
  _frames_on_disk(tmp_path, images)
  person = _person(images[0]['id'], 0)
  person[field][index] = value  # json.dumps writes NaN / Infinity, json.loads reads them
  with pytest.raises(ValueError, match=rf'000001_mpii_train.json: annotation 1000001000000: '
                                       rf'{field}\[{index}\] must be a finite number'):
    read_video(_write(tmp_path, images, [person]), tmp_path)


def test_is_labeled_must_be_a_boolean(tmp_path):
  images = [_image(0, labeled=1), _image(1, labeled=0), _image(2, labeled=True)]
  _frames_on_disk(tmp_path, images)
  assert [f.is_labeled for f in read_video(_write(tmp_path, images), tmp_path)] == [
      True, False, True]
  for value in ('false', 'true', 2, None, 0.0):
    images[1]['is_labeled'] = value  # bool('false') is True
    with pytest.raises(ValueError, match=f'image 10000010001: is_labeled must be true or false '
                                         f'.*got {re.escape(repr(value))}'):
      read_video(_write(tmp_path, images), tmp_path)


@pytest.mark.parametrize('entry, field, value, message', [
    ('person', 'keypoints', ['a'] + [1] * 50, r'annotation 1000001000000: keypoints\[0\] must be'),
    ('person', 'id', 'x', "annotation number 0 in the file \\(id 'x'\\): id must be an integer"),
    ('person', 'track_id', None, 'annotation 1000001000000: track_id must be an integer'),
    ('person', 'track_id', 1.5, 'annotation 1000001000000: track_id must be an integer'),
    ('person', 'track_id', 2**40, r'annotation 1000001000000: track_id must be in \['),
    ('person', 'image_id', '10000010000', 'annotation 1000001000000: image_id must be'),
    ('person', 'bbox', [1, 2, '3', 4], r'annotation 1000001000000: bbox\[2\] must be'),
    ('person', 'bbox', [1, 2, 3], r'annotation 1000001000000: bbox must be \[x, y, w, h\]'),
    ('person', 'keypoints', 'x' * 51,
     'annotation 1000001000000: keypoints must be a list of numbers'),
    ('image', 'nframes', 'ten', 'image 10000010000: nframes must be an integer'),
    ('image', 'nframes', True, 'image 10000010000: nframes must be an integer'),
    ('image', 'id', 'x', "image number 0 in the file \\(id 'x'\\): id must be an integer"),
    ('image', 'ignore_regions_x', [['a', 2, 3]],
     r'image 10000010000: ignore_regions_x\[0\]\[0\] must be a finite number'),
    ('image', 'ignore_regions_y', [[1, float('nan'), 3]],
     r'image 10000010000: ignore_regions_y\[0\]\[1\] must be a finite number')])
def test_numbers_must_be_numbers(tmp_path, entry, field, value, message):
  images = [_image(0, ignore_regions_x=[[1, 2, 3]], ignore_regions_y=[[4, 5, 6]])]
  _frames_on_disk(tmp_path, images)
  person = _person(images[0]['id'], 0)
  {'person': person, 'image': images[0]}[entry][field] = value
  with pytest.raises(ValueError, match='000001_mpii_train.json: ' + message):
    read_video(_write(tmp_path, images, [person]), tmp_path)


@pytest.mark.parametrize('change, message', [
    ({'nframes': 0}, r'nframes must be in \[1, 1000000\], got 0'),
    ({'file_name': 'images/train/000001_mpii_train/1000000.jpg', 'nframes': 10**6},
     'file_name .*1000000.jpg. is frame 1000000: frame files have six digits'),
    ({'vid_id': '000002'}, "vid_id '000002' differs from the file's other images")])
def test_frame_numbers_agree_with_the_video(tmp_path, change, message):
  images = [_image(0), _image(2, **change)]
  _frames_on_disk(tmp_path, images)
  with pytest.raises(ValueError, match=rf'image {images[1]["id"]}: {message}'):
    read_video(_write(tmp_path, images), tmp_path)


def test_frames_past_nframes_are_counted_and_nframes_follows_the_frames(tmp_path):
  # A frame at or past nframes would be paired backwards (the pair view clips to nframes - 1):
  # the frames listed are the truth, the file's nframes is reported.
  images = [_image(0, nframes=2), _image(2, nframes=2)]
  _frames_on_disk(tmp_path, images)
  counts = collections.Counter()
  frames = read_video(_write(tmp_path, images), tmp_path, counts)
  assert [f.nframes for f in frames] == [3, 3] and counts['frames_past_nframes'] == 1


def test_a_numeric_video_id_is_its_digits(tmp_path):
  images = [_image(0, vid_id=1), _image(1, vid_id=1)]
  _frames_on_disk(tmp_path, images)
  assert {f.video_id for f in read_video(_write(tmp_path, images), tmp_path)} == {'1'}


def test_boxes_without_area_are_counted_negative_ones_refused(tmp_path):
  images = [_image(0)]
  _frames_on_disk(tmp_path, images)
  one_joint = {**_person(images[0]['id'], 0), 'bbox': [10.0, 20.0, 0.0, 0.0]}
  counts = collections.Counter()
  frames = read_video(_write(tmp_path, images, [one_joint]), tmp_path, counts)
  assert frames[0].people[0].has_bbox and counts['people_with_bbox_without_area'] == 1
  for field in ('bbox', 'bbox_head'):
    person = {**_person(images[0]['id'], 0), field: [10, 20, -5, 8]}
    with pytest.raises(ValueError, match=f'annotation 1000001000000: {field} has a negative'):
      read_video(_write(tmp_path, images, [person]), tmp_path)
