"""COCO -> PoseTrack18 (tfds_posetrack/posetrack18/coco.py) on a small COCO file written here:
the conversion read back field by field and by the builder, every kind of bad input refused
before anything is written, the refusal to write into another folder's contents, the rerun that
writes nothing, and the command line. The stills' conversion: tests/test_stills.py.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tfds_posetrack.posetrack18 import FrameTable, coco, prepare

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _person(seed: int, labeled: int = 17) -> list[float]:
  """17 x (x, y, v) flat: the first `labeled` joints labeled (v 2, every third one 1) at
  distinct float positions inside a 64 x 48 image, the rest (0, 0, 0)."""
  rng = np.random.default_rng(seed)
  flat = []
  for j in range(17):
    if j < labeled:
      flat += [round(float(rng.uniform(2, 60)), 2), round(float(rng.uniform(2, 45)), 2),
               1 if j % 3 == 0 else 2]
    else:
      flat += [0, 0, 0]
  return flat


def _annotation(id_: int, image_id: int, keypoints: list, bbox=(4, 5, 30, 40), **fields) -> dict:
  return {'id': id_, 'image_id': image_id, 'category_id': 1, 'iscrowd': 0,
          'keypoints': keypoints, 'num_keypoints': sum(v > 0 for v in keypoints[2::3]),
          'bbox': list(bbox), 'area': 100.0, 'segmentation': [], **fields}


# Image 42: two people and a crowd; image 7: a person and one without labeled joints; image
# 123456: nobody labeled (not converted, so its missing file is no problem).
DATA = {
    'info': {'description': 'test'},
    'images': [{'id': 42, 'file_name': '000000000042.jpg', 'width': 64, 'height': 48},
               {'id': 7, 'file_name': '000000000007.jpg', 'width': 64, 'height': 48},
               {'id': 123456, 'file_name': 'not_there.jpg', 'width': 64, 'height': 48}],
    'annotations': [
        _annotation(6, 42, _person(1), bbox=(10, 2, 40.5, 44)),
        _annotation(5, 42, _person(2, labeled=5), bbox=(1, 1, 20, 20)),
        _annotation(9, 42, [0] * 51, bbox=(1, 2, 3, 4), iscrowd=1),
        _annotation(11, 7, _person(3, labeled=1), bbox=(3, 3, 10, 12)),
        _annotation(12, 7, [0] * 51, bbox=(0, 0, 5, 5)),
        _annotation(13, 123456, [0] * 51, bbox=(0, 0, 5, 5))],
    'categories': [coco.category()],
}


def write_coco(root: pathlib.Path, data: dict | None = None) -> pathlib.Path:
  """A COCO keypoint directory at root: real JPEGs for images 42 and 7, DATA (or `data`) as
  its annotations file."""
  (root / coco.IMAGES).mkdir(parents=True)
  (root / coco.ANNOTATIONS).parent.mkdir(parents=True)
  for k, name in enumerate(('000000000042.jpg', '000000000007.jpg')):
    img = np.random.default_rng(k).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    assert cv2.imwrite(str(root / coco.IMAGES / name), img)
  (root / coco.ANNOTATIONS).write_text(json.dumps(DATA if data is None else data))
  return root


def leftovers(folder: pathlib.Path) -> list[str]:
  return sorted(p.name for p in folder.iterdir() if '.partial-' in p.name)


def test_a_conversion_read_back_field_by_field_and_by_the_builder(tmp_path):
  source = write_coco(tmp_path / 'coco')
  out = coco.to_posetrack18(source, tmp_path / 'pt')
  assert out == tmp_path / 'pt'
  files = sorted((out / 'annotations' / 'train').glob('*.json'))
  assert [f.name for f in files] == ['000007_coco_train.json', '000042_coco_train.json']
  assert not (out / 'annotations' / 'val').exists()
  by_id = {a['id']: a for a in DATA['annotations']}
  for number, people in ((42, (5, 6)), (7, (11,))):
    seq = f'{number:06d}_coco_train'
    video = json.loads((out / 'annotations' / 'train' / f'{seq}.json').read_text())
    assert video['categories'] == [coco.category()]
    (entry,) = video['images']
    iid = int(f'1{number:06d}0000')
    regions = ({'ignore_regions_y': [[2, 2, 6, 6]], 'ignore_regions_x': [[1, 4, 4, 1]]}
               if number == 42 else {})
    assert entry == {'has_no_densepose': True, 'is_labeled': True,
                     'file_name': f'images/train/{seq}/000000.jpg', 'nframes': 1,
                     'frame_id': iid, 'vid_id': f'{number:06d}', **regions, 'id': iid}
    frame = out / entry['file_name']
    assert os.path.samefile(frame, source / coco.IMAGES / f'{number:012d}.jpg')  # a hard link
    # People in annotation id order; the unlabeled person and the crowd are not people.
    assert len(video['annotations']) == len(people)
    for k, (person, ann_id) in enumerate(zip(video['annotations'], people, strict=True)):
      theirs = by_id[ann_id]
      labeled = np.array(theirs['keypoints']).reshape(17, 3)[:, 2] > 0
      expected = np.array(theirs['keypoints'], dtype=object).reshape(17, 3)
      expected[labeled, 2] = 1
      expected[~labeled] = 0
      assert person == {'bbox_head': coco.head_box(theirs['keypoints'], theirs['bbox']),
                        'keypoints': expected.ravel().tolist(), 'track_id': k, 'image_id': iid,
                        'bbox': theirs['bbox'], 'scores': [], 'category_id': 1,
                        'id': iid * 100 + k}
  marker = json.loads((out / coco.MARKER).read_text())
  assert marker['annotations'] == str(source / coco.ANNOTATIONS)
  assert (marker['videos'], marker['people']) == (2, 3)
  assert leftovers(tmp_path) == []
  # The dataset builder reads it: two one-frame labeled train videos.
  builder = prepare(out, tmp_path / 'tfds')
  assert set(builder.info.splits) == {'train'}
  table = FrameTable.from_builder(builder, 'train')
  assert len(builder.as_data_source('train')) == 2
  assert (table.nframes == 1).all() and table.is_labeled.all()


def test_the_sequence_name_is_the_dataset_packages():
  from tfds_posetrack.posetrack18 import formats
  assert formats.sequence_name(42, 'coco', 'train') == '000042_coco_train'
  assert formats.sequence_name(42, 'mpii', 'val') == '000042_mpii_test'
  with pytest.raises(ValueError, match='6 digits'):
    formats.sequence_name(10**6, 'coco', 'train')


def _set(path: str, value):
  """A change to DATA: the field at 'annotations.1.bbox.2' (list indices as numbers) := value."""
  def change(data):
    *parents, last = [int(p) if p.isdigit() else p for p in path.split('.')]
    target = data
    for p in parents:
      target = target[p]
    target[last] = value
  return change


def _delete(path: str):
  def change(data):
    *parents, last = [int(p) if p.isdigit() else p for p in path.split('.')]
    target = data
    for p in parents:
      target = target[p]
    del target[last]
  return change


# (change to DATA, what the error says after the file's name). annotations.1 is annotation 5
# (image 42), annotations.3 annotation 11 (image 7).
BAD = {
    'another category': (_set('annotations.1.category_id', 2),
                         r'annotation 5: category_id 2, not 1 \(person\)'),
    'no bbox': (_delete('annotations.1.bbox'), r"annotation 5: no field 'bbox'"),
    'no keypoints': (_delete('annotations.3.keypoints'), r"annotation 11: no field 'keypoints'"),
    'no image_id': (_delete('annotations.3.image_id'), r"annotation 11: no field 'image_id'"),
    'no id': (_delete('annotations.3.id'), r'annotations\[3\] \(no integer id\)'),
    'iscrowd 2': (_set('annotations.2.iscrowd', 2), r'annotation 9: iscrowd must be 0 or 1'),
    '50 keypoint numbers': (_set('annotations.1.keypoints', [1] * 50),
                            r'annotation 5: keypoints must be 17 x \(x, y, v\)'),
    'a NaN keypoint': (_set('annotations.1.keypoints.0', float('nan')),
                       r'annotation 5: keypoints must be .*finite'),
    'an infinite keypoint': (_set('annotations.3.keypoints.1', float('inf')),
                             r'annotation 11: keypoints must be .*finite'),
    'a string keypoint': (_set('annotations.3.keypoints.1', '3'),
                          r'annotation 11: keypoints must be'),
    'visibility 3': (_set('annotations.1.keypoints.2', 3),
                     r'annotation 5: keypoint visibilities .* must be 0, 1 or 2'),
    'a negative bbox width': (_set('annotations.1.bbox.2', -1),
                              r'annotation 5: bbox must be .*width and height >= 0'),
    'an infinite bbox height': (_set('annotations.3.bbox.3', float('inf')),
                                r'annotation 11: bbox must be'),
    'a NaN bbox height': (_set('annotations.3.bbox.3', float('nan')),
                          r'annotation 11: bbox must be'),
    'an unknown image_id': (_set('annotations.3.image_id', 999),
                            r"annotation 11: image_id 999 is not among the file's images"),
    'two annotations with one id': (_set('annotations.3.id', 5),
                                    r'annotation 5: id used by more than one annotation'),
    'two images with one id': (lambda d: d['images'].append(dict(d['images'][0])),
                               r'image 42: id used by more than one image'),
    'a file_name with a folder': (_set('images.0.file_name', '../000000000042.jpg'),
                                  r'image 42: file_name must be a file name in train2017/'),
    'a missing image file': (_set('images.1.file_name', 'gone.jpg'),
                             r'image 7: no image file .*train2017/gone\.jpg'),
    'an image id beyond 6 digits': (
        lambda d: [_set(f, 10**6)(d) for f in ('images.1.id', 'annotations.3.image_id',
                                               'annotations.4.image_id')],
        r'image 1000000: the id does not fit a 6-digit PoseTrack video number'),
    'annotations not a list': (_set('annotations', {}), r'annotations: must be a list'),
}


@pytest.mark.parametrize('change, message', BAD.values(), ids=BAD.keys())
def test_bad_input_is_refused_with_file_and_id_and_nothing_written(tmp_path, change, message):
  data = copy.deepcopy(DATA)
  change(data)
  source = write_coco(tmp_path / 'coco', data)
  file = re.escape(str(source / coco.ANNOTATIONS))
  with pytest.raises(ValueError, match=rf'(?s)^{file}: 1 problem .*nothing was written:\n'
                                       rf'  {message}'):
    coco.to_posetrack18(source, tmp_path / 'pt')
  assert not (tmp_path / 'pt').exists() and leftovers(tmp_path) == []


def test_unreadable_and_missing_files_are_refused(tmp_path):
  source = write_coco(tmp_path / 'coco')
  (source / coco.ANNOTATIONS).write_text('{"images": [')
  file = re.escape(str(source / coco.ANNOTATIONS))
  with pytest.raises(ValueError, match=rf'^{file}: not valid JSON \(Expecting value: line 1'):
    coco.to_posetrack18(source, tmp_path / 'pt')
  (source / coco.ANNOTATIONS).unlink()
  with pytest.raises(FileNotFoundError, match=rf'^{file}: no such file'):
    coco.to_posetrack18(source, tmp_path / 'pt')
  with pytest.raises(FileNotFoundError, match='annotations/person_keypoints_train2017.json'):
    coco.to_posetrack18(tmp_path / 'nowhere', tmp_path / 'pt')
  assert not (tmp_path / 'pt').exists() and leftovers(tmp_path) == []


def test_all_problems_in_one_error(tmp_path):
  data = copy.deepcopy(DATA)
  for k in range(25):
    data['annotations'].append(_annotation(100 + k, 42, _person(k), category_id=3))
  data['annotations'][1]['bbox'] = [0, 0, -1, 5]
  source = write_coco(tmp_path / 'coco', data)
  with pytest.raises(ValueError) as error:
    coco.to_posetrack18(source, tmp_path / 'pt')
  lines = str(error.value).splitlines()
  assert lines[0] == (f'{source / coco.ANNOTATIONS}: 26 problems in the COCO annotations (the '
                      f'first {coco.MAX_PROBLEMS} below); nothing was written:')
  assert lines[1].startswith('  annotation 5: bbox must be')
  assert [line.split(':')[0] for line in lines[2:]] == [
      f'  annotation {100 + k}' for k in range(coco.MAX_PROBLEMS - 1)]
  assert not (tmp_path / 'pt').exists()


def test_a_failed_write_leaves_no_folder(tmp_path, monkeypatch):
  source = write_coco(tmp_path / 'coco')
  write = coco.write_videos

  def write_then_fail(*args):
    write(*args)
    raise OSError('disk full')

  monkeypatch.setattr(coco, 'write_videos', write_then_fail)
  with pytest.raises(OSError, match='disk full'):
    coco.to_posetrack18(source, tmp_path / 'out' / 'pt')
  assert not (tmp_path / 'out' / 'pt').exists() and leftovers(tmp_path / 'out') == []


def test_another_folders_contents_are_never_written_into(tmp_path):
  source = write_coco(tmp_path / 'coco')
  out = tmp_path / 'pt'
  out.mkdir()
  (out / 'mine.txt').write_text('mine')
  with pytest.raises(FileExistsError, match=rf'^{re.escape(str(out))} is not empty and not a '
                                            'COCO conversion'):
    coco.to_posetrack18(source, out)
  assert [p.name for p in out.iterdir()] == ['mine.txt']
  (tmp_path / 'file').write_text('')
  with pytest.raises(FileExistsError, match='file exists and is not a folder'):
    coco.to_posetrack18(source, tmp_path / 'file')
  # The conversion of another input: refused too, whatever it holds.
  coco.to_posetrack18(source, tmp_path / 'first')
  other = copy.deepcopy(DATA)
  other['annotations'].pop(1)
  (source / coco.ANNOTATIONS).write_text(json.dumps(other))
  before = sorted(p.relative_to(tmp_path) for p in (tmp_path / 'first').rglob('*'))
  with pytest.raises(FileExistsError, match='first holds the conversion of another COCO file'):
    coco.to_posetrack18(source, tmp_path / 'first')
  assert sorted(p.relative_to(tmp_path) for p in (tmp_path / 'first').rglob('*')) == before
  # An empty folder is new.
  (tmp_path / 'empty').mkdir()
  marker, made = coco.convert(source, tmp_path / 'empty')
  assert made and marker['people'] == 2
  assert leftovers(tmp_path) == []


def test_a_rerun_of_the_same_input_writes_nothing(tmp_path):
  source = write_coco(tmp_path / 'coco')
  first, made = coco.convert(source, tmp_path / 'pt')
  assert made
  files = {p: p.stat().st_mtime_ns for p in (tmp_path / 'pt').rglob('*')}
  (source / coco.IMAGES / '000000000007.jpg').unlink()  # not read again: nothing is checked
  again, made = coco.convert(source, tmp_path / 'pt')
  assert not made and again == first
  assert {p: p.stat().st_mtime_ns for p in (tmp_path / 'pt').rglob('*')} == files


def test_head_box_fallbacks():
  k = np.zeros((17, 3))
  k[[5, 6, 11, 12], :] = [[60, 50, 2], [40, 50, 2], [58, 80, 2], [42, 80, 2]]
  x, y, w, h = coco.head_box(k.ravel().tolist(), [30, 30, 40, 60])
  # Height >= 30 / 0.3 (shoulder to hip); the head above the shoulders, away from the hips.
  assert w == pytest.approx(0.13 * 100, rel=0.05) and h > 0
  assert x + w / 2 == pytest.approx(50) and y + h / 2 < 50 - 0.135 * 100 + 1
  # A face without limbs (a person cut off below the chin): the face joints' extent x 1.1.
  face = np.zeros((17, 3))
  face[[0, 1, 2, 3]] = [[50, 55, 2], [46, 50, 2], [54, 50, 2], [40, 52, 2]]
  x, y, w, h = coco.head_box(face.ravel().tolist(), [38, 40, 24, 20])
  assert (w, h) == pytest.approx((15.4, 15.4))
  assert (x + w / 2, y + h / 2) == pytest.approx((47.5, 51.75), abs=0.01)
  one = np.zeros((17, 3))
  one[9] = [10, 10, 1]
  assert coco.head_box(one.ravel().tolist(), [0, 0, 20, 40])[2:] == pytest.approx(
      [0.13 * 40, 0.16 * 40])


def converter_cli(cwd: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'tfds_posetrack.posetrack18.coco', *args],
                        cwd=cwd, env={**os.environ, 'PYTHONPATH': str(ROOT)},
                        capture_output=True, text=True, timeout=120)


def test_the_command_line_from_another_folder(tmp_path):
  """As a user types it, relative paths from their own folder; bad input and a refused folder
  end with exit status 2 and the reason, not a traceback."""
  write_coco(tmp_path / 'data' / 'coco')
  user = tmp_path / 'user'
  user.mkdir()
  done = converter_cli(user, '--coco', '../data/coco', '--out', 'sets/pt')
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip() == 'wrote sets/pt: 2 one-frame train videos, 3 people'
  assert len(list((user / 'sets' / 'pt' / 'annotations' / 'train').glob('*.json'))) == 2
  again = converter_cli(user, '--coco', '../data/coco', '--out', 'sets/pt')
  assert again.returncode == 0, again.stderr
  assert again.stdout.startswith('already converted (nothing written): sets/pt')

  def refused(done, *words):
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert 'python -m tfds_posetrack.posetrack18.coco: error: ' in done.stderr
    assert 'Traceback' not in done.stderr
    for word in words:
      assert word in done.stderr, done.stderr

  refused(converter_cli(user, '--coco', '../nowhere', '--out', 'new'),
          'nowhere/annotations/person_keypoints_train2017.json: no such file')
  (user / 'mine').mkdir()
  (user / 'mine' / 'notes.txt').write_text('mine')
  refused(converter_cli(user, '--coco', '../data/coco', '--out', 'mine'),
          'mine is not empty and not a COCO conversion')
  bad = copy.deepcopy(DATA)
  bad['annotations'][1]['category_id'] = 2
  write_coco(tmp_path / 'bad', bad)
  refused(converter_cli(user, '--coco', '../bad', '--out', 'new'),
          'person_keypoints_train2017.json: 1 problem', 'annotation 5: category_id 2')
  assert sorted(p.name for p in user.iterdir()) == ['mine', 'sets']
  refused(converter_cli(user, '--coco', '../data/coco'), 'the following arguments are required')
