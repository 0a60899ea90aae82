"""Reading official PoseTrack18 annotation files: the real sample and malformed inputs."""

from __future__ import annotations

import collections
import json

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
