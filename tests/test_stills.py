"""The COCO stand-in (posewarper_jax.data.stills): COCO's layout and schema, determinism, how
the stills differ from the synthetic videos, their conversion to PoseTrack18 that the project's
builder and training stream read, and its command line. The converter's own checks, on COCO
files written by hand: tests/test_coco.py.

Small sets (24 images at 192x144) so that the file runs in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest

from posewarper_jax.data import stills, synthetic
from posewarper_jax.data.pipeline import TrainingInput, training_dataset
from posewarper_jax.data.stills import body
from tfds_posetrack.posetrack18 import FrameTable, coco, prepare
from tfds_posetrack.posetrack18 import keypoints as kp

ROOT = pathlib.Path(__file__).resolve().parents[1]

SMALL = dict(seed=3, num_images=24, width=192, height=144, max_people=6)
COCO_NAMES = ['nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
              'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
              'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle']
COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7],
                 [6, 8], [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5],
                 [4, 6], [5, 7]]


def load(root: pathlib.Path) -> dict:
  return json.loads((root / stills.ANNOTATIONS).read_text())


def digest(root: pathlib.Path) -> dict[str, str]:
  """{relative path: sha256} of every file under root."""
  return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(root.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def small(tmp_path_factory) -> tuple[pathlib.Path, dict]:
  root = tmp_path_factory.mktemp('stills')
  return root, stills.generate_stills(root, **SMALL)


@pytest.fixture(scope='module')
def converted(small, tmp_path_factory) -> pathlib.Path:
  return coco.to_posetrack18(small[0], tmp_path_factory.mktemp('posetrack18'))


def test_coco_layout_and_schema(small):
  root, summary = small
  data = load(root)
  assert set(data) == {'info', 'images', 'annotations', 'categories'}
  assert data['categories'] == [{'supercategory': 'person', 'id': 1, 'name': 'person',
                                 'keypoints': COCO_NAMES, 'skeleton': COCO_SKELETON}]
  assert len(data['images']) == SMALL['num_images'] == summary['images']
  ids = set()
  for image in data['images']:
    assert set(image) == {'id', 'file_name', 'width', 'height'}
    assert type(image['id']) is int and 0 < image['id'] < 10**6
    assert image['file_name'] == f'{image["id"]:012d}.jpg'
    assert (image['width'], image['height']) == (SMALL['width'], SMALL['height'])
    decoded = cv2.imread(str(root / stills.IMAGES / image['file_name']))
    assert decoded.shape == (SMALL['height'], SMALL['width'], 3)
    ids.add(image['id'])
  assert len(ids) == len(data['images'])
  annotation_ids = [a['id'] for a in data['annotations']]
  assert len(set(annotation_ids)) == len(annotation_ids) == summary['annotations']
  w, h = SMALL['width'], SMALL['height']
  for ann in data['annotations']:
    assert set(ann) == {'id', 'image_id', 'category_id', 'keypoints', 'num_keypoints', 'bbox',
                        'area', 'iscrowd'}
    assert ann['image_id'] in ids and ann['category_id'] == 1 and ann['iscrowd'] == 0
    k = ann['keypoints']
    assert len(k) == 51 and all(type(v) in (int, float) for v in k)
    points = np.array(k, np.float64).reshape(17, 3)
    assert set(points[:, 2]) <= {0, 1, 2}
    assert all(type(v) is int for v in k[2::3])
    unlabeled = points[:, 2] == 0
    assert (points[unlabeled, :2] == 0).all()
    labeled = points[~unlabeled]
    assert ((labeled[:, 0] >= 0) & (labeled[:, 0] <= w - 1)).all()
    assert ((labeled[:, 1] >= 0) & (labeled[:, 1] <= h - 1)).all()
    assert ann['num_keypoints'] == int((~unlabeled).sum())
    x, y, bw, bh = ann['bbox']
    assert bw > 0 and bh > 0 and x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
    assert 0 < ann['area'] <= bw * bh
    # The visible joints lie in the box (it is the visible body's extent).
    visible = points[points[:, 2] == 2, :2]
    assert ((visible >= [x - 1, y - 1]) & (visible <= [x + bw + 1, y + bh + 1])).all()


def test_deterministic_and_seeded(small, tmp_path):
  root, _ = small
  again = tmp_path / 'again'
  stills.generate_stills(again, **SMALL)
  assert digest(again) == digest(root)
  other = tmp_path / 'other'
  stills.generate_stills(other, **{**SMALL, 'seed': 4})
  theirs = digest(other)
  assert theirs[stills.ANNOTATIONS] != digest(root)[stills.ANNOTATIONS]
  # Not one image in common: each image draws from its own child seed.
  assert not set(theirs.values()) & set(digest(root).values())


def test_people_per_image_reach_max_people(small):
  data = load(small[0])
  counts = np.bincount([a['image_id'] for a in data['annotations']], minlength=10**6)
  per_image = counts[[im['id'] for im in data['images']]]
  assert per_image.min() >= 1 and per_image.max() == SMALL['max_people']
  assert len(set(per_image)) >= 4  # from few to many, not one count


def test_sizes_span_small_to_larger_than_the_frame():
  height = SMALL['height']
  people = [p for s in stills.make_stills(**SMALL) for p in s.people]
  sizes = np.array([p.height for p in people]) / height
  assert sizes.min() < 0.25 and sizes.max() > 1.2
  assert sizes.min() >= 0.15 and sizes.max() <= 2.0
  # Each still's people far to near: smaller first (drawn first, occluded by the nearer).
  for s in stills.make_stills(**SMALL):
    assert [p.height for p in s.people] == sorted(p.height for p in s.people)


def test_occlusion_and_truncation_are_labeled(small):
  data = load(small[0])
  points = np.array([a['keypoints'] for a in data['annotations']], np.float64)
  v = points.reshape(-1, 17, 3)[..., 2]
  assert (v == 1).sum() > 0.05 * (v > 0).sum()  # covered by nearer people
  assert (v == 2).sum() > 0.5 * (v > 0).sum()
  # People cut off by the frame: some joints labeled, a body joint not (outside the image).
  cut = ((v > 0).any(axis=1) & (v[:, 5:] == 0).any(axis=1))
  assert cut.sum() >= 5


def test_faces_eyes_only_towards_the_camera():
  """Eyes are labeled only on a face turned towards the camera (and then wherever they are in
  the image); a head turned away keeps its ears and loses its eyes and nose."""
  back_views = 0
  for s in stills.make_stills(**SMALL):
    _, annotations = s.render()
    for person, ann in zip(s.people, annotations, strict=True):
      if ann is None:
        continue
      k = np.array(ann['keypoints']).reshape(17, 3)
      for eye in (1, 2):
        x, y = person.joints[eye]
        inside = 0 <= x <= s.width - 1 and 0 <= y <= s.height - 1
        assert (k[eye, 2] > 0) == (inside and person.face_depth(eye) > 0.25)
        if k[eye, 2]:
          assert person.facing > -0.2
      back_views += person.facing < -0.5 and (k[3:5, 2] > 0).any()
      if person.facing < -0.5:
        assert (k[:3, 2] == 0).all()
  assert back_views >= 3
  facing = np.array([p.facing for s in stills.make_stills(**SMALL) for p in s.people])
  assert (facing > 0.5).sum() >= 10 and (facing < -0.5).sum() >= 10


def test_left_and_right_swap_when_turned_away(small):
  """Any rotation about the vertical axis: the left shoulder is on the image's right of a
  person facing the camera, on its left of one turned away."""
  data = load(small[0])
  points = np.array([a['keypoints'] for a in data['annotations']], np.float64).reshape(-1, 17, 3)
  both = (points[:, 5, 2] > 0) & (points[:, 6, 2] > 0)
  dx = points[both, 5, 0] - points[both, 6, 0]
  assert (dx > 2).sum() >= 5 and (dx < -2).sum() >= 5
  # The body's handedness: with the feet pointing at the camera (toes nearer than the ankles),
  # the left hip is on the image's right of the spine's upward direction; turned away, on its
  # left. A cross product, so that the in-plane lean does not matter.
  turns = []
  for s in stills.make_stills(**SMALL):
    for p in s.people:
      cos_yaw = (p.points[body.L_TOE, 2] - p.points[15, 2]) / 0.075
      hips = p.joints[11] - p.joints[12]
      up = (p.joints[5] + p.joints[6]) / 2 - (p.joints[11] + p.joints[12]) / 2
      if abs(cos_yaw) > 0.7:
        assert np.sign(hips[0] * up[1] - hips[1] * up[0]) == -np.sign(cos_yaw)
        turns.append(np.sign(cos_yaw))
  assert turns.count(1) >= 5 and turns.count(-1) >= 5


def test_poses_are_not_a_gait():
  """Arms raised above the head and deep knee bends (crouching, sitting), which walking and
  waving figures do not reach, and a torso leaning in the image."""
  people = [p for s in stills.make_stills(**{**SMALL, 'num_images': 60}) for p in s.people]
  raised = crouched = leaning = 0
  for p in people:
    j = p.joints / p.height
    top = j[[0, 3, 4], 1].min()
    raised += j[9, 1] < top or j[10, 1] < top
    for hip, ankle in ((11, 15), (12, 16)):
      # The knee's angle in 3D is lost in the projection; a short hip-to-ankle span is not.
      crouched += np.hypot(*(j[hip] - j[ankle])) < 0.3
    spine = (j[5] + j[6]) / 2 - (j[11] + j[12]) / 2
    leaning += abs(np.arctan2(spine[0], -spine[1])) > 0.5
  assert raised > 0.1 * len(people)
  assert crouched > 0.1 * len(people)
  assert leaning > 0.05 * len(people)


def test_no_two_images_share_a_background():
  backgrounds = [s.background().astype(np.int16) for s in stills.make_stills(**SMALL)]
  for i, a in enumerate(backgrounds):
    for b in backgrounds[i + 1:]:
      assert np.abs(a - b).mean() > 5


def test_left_side_is_lighter():
  """The weak left/right cue: the clothes of the person's left limbs are lighter than the
  right's (each person drawn alone, compared at the middle of the upper arms and thighs)."""
  lighter = darker = 0
  for s in stills.make_stills(**{**SMALL, 'num_images': 40}):
    for person in s.people:
      img = np.zeros((s.height, s.width, 3), np.uint8)
      stills.draw_person(img, np.zeros(img.shape[:2], np.uint8), 1, person)
      j = person.joints
      for left, right in (((5, 7), (6, 8)), ((11, 13), (12, 14))):
        (lx, ly), (rx, ry) = j[list(left)].mean(axis=0), j[list(right)].mean(axis=0)
        inside = all(0 <= x < s.width and 0 <= y < s.height for x, y in ((lx, ly), (rx, ry)))
        if inside and np.hypot(lx - rx, ly - ry) > 0.1 * person.height:
          lum_left = int(img[int(ly), int(lx)].astype(int).sum())
          lum_right = int(img[int(ry), int(rx)].astype(int).sum())
          lighter += lum_left > lum_right
          darker += lum_left < lum_right
  # Not always: one limb may cover the other's middle.
  assert lighter > 50 and lighter > 4 * darker


def test_limb_code_colours_the_limbs_as_the_videos_do_and_leaves_the_rest():
  """limb_code=1: each arm and leg segment in the videos' colour for it (synthetic.LIMBS),
  at the segment's middle, each person drawn alone; 0: the clothes'. The same people, poses
  and labels either way (the share draws nothing)."""
  colours = {(a, b): np.array(c) for a, b, c, _ in synthetic.LIMBS}
  distances = {0.0: [], 1.0: []}
  for code in distances:
    for s in stills.make_stills(**{**SMALL, 'num_images': 20, 'limb_code': code}):
      for person in s.people:
        img = np.zeros((s.height, s.width, 3), np.uint8)
        stills.draw_person(img, np.zeros(img.shape[:2], np.uint8), 1, person)
        for (a, b), colour in colours.items():
          x, y = person.joints[[a, b]].mean(axis=0)
          long = np.hypot(*(person.joints[a] - person.joints[b])) > 0.08 * person.height
          if long and 0 <= x < s.width and 0 <= y < s.height:
            distances[code].append(np.abs(img[int(y), int(x)].astype(int) - colour).max())
  # Not every middle shows its limb (another limb or the torso may cover it).
  assert np.median(distances[1.0]) < 10 < np.median(distances[0.0])
  plain, coded = (stills.make_stills(**{**SMALL, 'num_images': 5, 'limb_code': c})
                  for c in (0.0, 1.0))
  assert all((p.joints == q.joints).all() for a, b in zip(plain, coded, strict=True)
             for p, q in zip(a.people, b.people, strict=True))
  with pytest.raises(ValueError, match='limb_code'):
    stills.make_stills(**{**SMALL, 'limb_code': 1.5})


def test_converted_layout(small, converted):
  root, _ = small
  data = load(root)
  by_image = {}
  for ann in data['annotations']:
    by_image.setdefault(ann['image_id'], []).append(ann)
  files = sorted((converted / 'annotations' / 'train').glob('*.json'))
  with_keypoints = [i for i, anns in by_image.items() if any(a['num_keypoints'] for a in anns)]
  assert len(files) == len(with_keypoints)
  assert not (converted / 'annotations' / 'val').exists()
  for image_id in with_keypoints:
    seq = f'{image_id:06d}_coco_train'
    video = json.loads((converted / 'annotations' / 'train' / f'{seq}.json').read_text())
    assert set(video) == {'categories', 'images', 'annotations'}
    assert video['categories'][0]['keypoints'] == COCO_NAMES  # the meaning of the slots
    (entry,) = video['images']
    iid = int(f'1{image_id:06d}0000')
    assert entry == {'has_no_densepose': True, 'is_labeled': True,
                     'file_name': f'images/train/{seq}/000000.jpg', 'nframes': 1,
                     'frame_id': iid, 'vid_id': f'{image_id:06d}', 'id': iid}
    frame = converted / entry['file_name']
    source = root / stills.IMAGES / f'{image_id:012d}.jpg'
    assert frame.read_bytes() == source.read_bytes()
    assert os.path.samefile(frame, source)  # a hard link, not a copy
    coco = [a for a in by_image[image_id] if a['num_keypoints']]
    assert len(video['annotations']) == len(coco)
    for k, (ann, person) in enumerate(zip(coco, video['annotations'], strict=True)):
      assert set(person) == {'bbox_head', 'keypoints', 'track_id', 'image_id', 'bbox', 'scores',
                             'category_id', 'id'}
      assert (person['image_id'], person['track_id'], person['id']) == (iid, k, iid * 100 + k)
      assert person['bbox'] == ann['bbox'] and person['scores'] == []
      ours = np.array(person['keypoints']).reshape(17, 3)
      theirs = np.array(ann['keypoints']).reshape(17, 3)
      np.testing.assert_array_equal(ours[:, :2], theirs[:, :2])  # slot i -> slot i
      np.testing.assert_array_equal(ours[:, 2], (theirs[:, 2] > 0).astype(int))
      assert person['bbox_head'][2] > 0 and person['bbox_head'][3] > 0


def test_head_box_matches_the_drawn_head():
  """bbox_head's size (what PCKh uses) from the labels alone, against the head drawn (0.116
  of the standing height wide, the box 1.1x that): within a factor of 1.5 for most people with
  a labeled face and limbs."""
  ratios = []
  for s in stills.make_stills(**{**SMALL, 'num_images': 40}):
    _, annotations = s.render()
    for person, ann in zip(s.people, annotations, strict=True):
      if ann is None:
        continue
      v = np.array(ann['keypoints'][2::3])
      if v[:5].any() and v[5:].sum() >= 6:
        width = coco.head_box(ann['keypoints'], ann['bbox'])[2]
        ratios.append(width / (1.1 * 0.116 * person.height))
  ratios = np.array(ratios)
  assert len(ratios) > 20
  assert 0.65 < np.median(ratios) < 1.15
  assert np.mean((ratios > 1 / 1.5) & (ratios < 1.5)) > 0.8


def test_builder_and_training_stream_read_the_conversion(converted, tmp_path):
  builder = prepare(converted, tmp_path / 'tfds')
  assert set(builder.info.splits) == {'train'}  # a train-only directory is enough
  records = builder.as_data_source('train')
  table = FrameTable.from_builder(builder, 'train')
  files = list((converted / 'annotations' / 'train').glob('*.json'))
  assert len(records) == len(files)
  assert (table.nframes == 1).all() and table.is_labeled.all()
  config = TrainingInput(image_size=(128, 96), k=0, global_batch=4, num_devices=1,
                         single_frame=True)
  batch = next(iter(training_dataset(records, table, config)))
  assert batch['frames_a'].shape == (1, 4, 128, 96, 3)
  assert batch['targets'].shape == (1, 4, 32, 24, kp.NUM_JOINTS)
  assert batch['target_weights'].sum() > 0


# The files of these arguments, pinned when stills.py was split into modules (each image is a
# function of the arguments, so a refactor must leave every byte). The JPEG hashes also pin the
# encoder (opencv-python-headless 5.0.0.93, requirements.lock): a new libjpeg changes them and
# not the JSON's; regenerate then, after checking that the JSON hashes still match.
GOLDEN = dict(seed=5, num_images=4, width=96, height=72, max_people=4, limb_code=0.5)
GOLDEN_SHA256 = {
    'annotations/person_keypoints_train2017.json':
        '487ee920924cf765e0d9d6fdf8b6d43f789a894a3ada584ee781dbd395dbe87c',
    'train2017/000000022654.jpg':
        'ef0bd9281a4d7023a74cf3114657224060c2459eea773486e9304e734c493848',
    'train2017/000000670788.jpg':
        '922606bd8f20f375de7e18c47b5c55df510fec3190e911fb93cdad61c55affeb',
    'train2017/000000805001.jpg':
        'cce44b9ba2c11e4014e7dbfe04f52b3d1cadbff4da004d57a1e1ad1d55949a40',
    'train2017/000000807940.jpg':
        'c9da05d2d04829bdd70a9845d24cbcb47ef41028ff86bc97a2366e65ed0a8002',
}
# Their conversion's annotation files (the images are the same files, hard-linked).
GOLDEN_CONVERTED_SHA256 = {
    '022654_coco_train.json': '0809e7c8fc953d064ee6ffe5e36f9f2b94966196d2386b71299871e84f789463',
    '670788_coco_train.json': '4aa2348d6d5a1dfb92ced6d5e7a069432406e4801097b01cfa5f682b0a002189',
    '805001_coco_train.json': 'e082ffe15a9f9f108352c13569c67f8072c14cede16cd054f607f5347ed91083',
    '807940_coco_train.json': '21b964f86009750de3f3c9fa17802853b5928fe223a7ac0beb20dd7dced81932',
}


def test_output_is_pinned_byte_for_byte(tmp_path):
  summary = stills.generate_stills(tmp_path / 'coco', **GOLDEN)
  assert digest(tmp_path / 'coco') == GOLDEN_SHA256
  assert (summary['images'], summary['annotations'], summary['keypoints_occluded']) == (4, 9, 2)
  converted = coco.to_posetrack18(tmp_path / 'coco', tmp_path / 'pt')
  assert digest(converted / 'annotations' / 'train') == GOLDEN_CONVERTED_SHA256


# --- The command line: as a user types it, from their own folder with relative paths ---------

CLI_SETTINGS = dict(seed=1, num_images=3, width=96, height=72, max_people=3, limb_code=0.5)
CLI_ARGS = ['--seed', '1', '--num_images', '3', '--width', '96', '--height', '72',
            '--max_people', '3', '--limb_code', '0.5']


def stills_cli(cwd: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'posewarper_jax.data.stills', *args], cwd=cwd,
                        env={**os.environ, 'PYTHONPATH': str(ROOT)}, capture_output=True,
                        text=True, timeout=300)


def refused(done: subprocess.CompletedProcess, *words: str) -> None:
  """Exit status 2 and a message naming `words`, not a traceback."""
  assert done.returncode == 2, (done.stdout, done.stderr)
  assert 'Traceback' not in done.stderr and done.stderr.startswith(
      'python -m posewarper_jax.data.stills: error: '), done.stderr
  for word in words:
    assert word in done.stderr, done.stderr


def test_cli_writes_the_stills_of_its_arguments_and_their_conversion_once(tmp_path):
  user = tmp_path / 'user'
  user.mkdir()
  done = stills_cli(user, '--out', 'sets/coco', *CLI_ARGS, '--posetrack18', 'sets/pt')
  assert done.returncode == 0, done.stderr
  assert '3 images' in done.stdout and 'one-frame train videos' in done.stdout
  # The stills generate_stills writes with these arguments (--limb_code included), marked done
  # with them as pretrain.py marks its own.
  stills.generate_stills(tmp_path / 'reference', **CLI_SETTINGS)
  made = digest(user / 'sets' / 'coco')
  assert (json.loads((user / 'sets' / 'coco' / 'GENERATED').read_text())
          == {**CLI_SETTINGS, 'jpeg_quality': 90})
  del made['GENERATED']
  assert made == digest(tmp_path / 'reference')
  # Converted by the dataset package's converter (its marker), each image one video.
  pt = user / 'sets' / 'pt'
  marker = json.loads((pt / coco.MARKER).read_text())
  assert marker['annotations'] == str(user / 'sets' / 'coco' / stills.ANNOTATIONS)
  assert len(list((pt / 'annotations' / 'train').glob('*.json'))) == marker['videos'] == 3
  before = {p: (p.stat().st_mtime_ns, digest(p)) for p in (user / 'sets' / 'coco', pt)}
  # Again: done, nothing written.
  again = stills_cli(user, '--out', 'sets/coco', *CLI_ARGS, '--posetrack18', 'sets/pt')
  assert again.returncode == 0, again.stderr
  assert 'already holds these stills' in again.stdout
  assert 'already holds their conversion' in again.stdout
  assert {p: (p.stat().st_mtime_ns, digest(p)) for p in before} == before
  # Other settings into the same folder: refused, nothing changed.
  refused(stills_cli(user, '--out', 'sets/coco', *CLI_ARGS, '--seed', '2'),
          'sets/coco was made with other settings', 'seed: 1 before, 2 now',
          'Choose another --out')
  assert digest(user / 'sets' / 'coco') == before[user / 'sets' / 'coco'][1]
  assert sorted(p.name for p in (user / 'sets').iterdir()) == ['coco', 'pt']  # no leftovers


def test_cli_refuses_a_folder_it_did_not_make(tmp_path):
  """A user's COCO (or anything else) in --out or --posetrack18 is never written into: exit 2
  before anything is generated."""
  theirs = tmp_path / 'coco'
  (theirs / 'annotations').mkdir(parents=True)
  (theirs / stills.ANNOTATIONS).write_text('{"the user": "COCO"}')
  refused(stills_cli(tmp_path, '--out', 'coco', *CLI_ARGS), 'coco is not empty',
          'no finished stills')
  assert (theirs / stills.ANNOTATIONS).read_text() == '{"the user": "COCO"}'
  assert [p.name for p in theirs.iterdir()] == ['annotations']
  (tmp_path / 'pt').mkdir()
  (tmp_path / 'pt' / 'notes.txt').write_text('mine')
  refused(stills_cli(tmp_path, '--out', 'new', *CLI_ARGS, '--posetrack18', 'pt'),
          'pt is not empty', coco.MARKER)
  assert not (tmp_path / 'new').exists()
  # Arguments generate_stills refuses: exit 2, and no half-written folder.
  refused(stills_cli(tmp_path, '--out', 'new', *CLI_ARGS, '--limb_code', '1.5'), 'limb_code')
  assert sorted(p.name for p in tmp_path.iterdir()) == ['coco', 'pt']
