"""The synthetic PoseTrack 2018 (posewarper_jax.data.synthetic) and the keypoint definitions.

The format checks compare against the real sample in ../shared/data/posetrack18_sample when it is
there (the mmpose-only fields width, height, mask_file, iscrowd, num_keypoints excluded).
"""

from __future__ import annotations

import json
import pathlib

import cv2
import numpy as np
import pytest

from posewarper_jax.data import synthetic
from tests.shared_data import SAMPLE
from tfds_posetrack.posetrack18 import keypoints as kp

MMPOSE_IMAGE_FIELDS = {'width', 'height', 'mask_file'}
MMPOSE_ANNOTATION_FIELDS = {'iscrowd', 'num_keypoints'}
IGNORE_FIELDS = {'ignore_regions_x', 'ignore_regions_y'}

SMALL = dict(seed=1, num_train=2, num_val=2, num_test=2, frames=40, width=192, height=144)


def load(root: pathlib.Path) -> dict[str, dict[str, dict]]:
  """{split: {seq: annotation file}}."""
  return {split: {f.stem: json.loads(f.read_text())
                  for f in sorted((root / 'annotations' / split).glob('*.json'))}
          for split in synthetic.SPLITS}


@pytest.fixture(scope='module')
def small(tmp_path_factory) -> pathlib.Path:
  root = tmp_path_factory.mktemp('small')
  synthetic.generate(root, **SMALL)
  return root


@pytest.fixture(scope='module')
def default_set(tmp_path_factory) -> tuple[pathlib.Path, dict]:
  """The defaults: 12 / 4 / 4 videos of 40-80 frames at 384x288."""
  root = tmp_path_factory.mktemp('default')
  return root, synthetic.generate(root)


def real_sample() -> dict[str, dict]:
  if not (SAMPLE / 'annotations' / 'val').is_dir():
    pytest.skip(f'real PoseTrack 2018 sample not found at {SAMPLE}')
  return {f.stem: json.loads(f.read_text())
          for f in sorted((SAMPLE / 'annotations' / 'val').glob('*.json'))}


def test_keypoint_definitions():
  assert kp.NUM_JOINTS == len(kp.JOINT_NAMES) == 17
  assert len(kp.SKELETON) == 19
  assert all(1 <= a <= 17 and 1 <= b <= 17 for a, b in kp.SKELETON)
  perm = kp.flip_permutation()
  assert perm[1] == 1 and perm[2] == 2 and perm[0] == 0  # midline joints stay
  for a, b in kp.FLIP_PAIRS:
    assert kp.JOINT_NAMES[a].replace('left', 'right') == kp.JOINT_NAMES[b]
  assert sorted(kp.UPPER_BODY_JOINTS + kp.LOWER_BODY_JOINTS) == list(range(17))
  cats = kp.categories()
  cats[0]['keypoints'].append('x')  # a fresh copy each time
  assert len(kp.categories()[0]['keypoints']) == 17


def test_categories_match_real_files():
  for data in real_sample().values():
    assert data['categories'] == kp.categories()


def test_schema_matches_real_files(small):
  real = real_sample()
  image_keys = {k for d in real.values() for im in d['images'] for k in im}
  ann_keys = {k for d in real.values() for a in d['annotations'] for k in a}
  image_keys -= MMPOSE_IMAGE_FIELDS
  ann_keys -= MMPOSE_ANNOTATION_FIELDS
  top_keys = {k for d in real.values() for k in d}
  data = load(small)
  for split, files in data.items():
    for d in files.values():
      want = top_keys - {'annotations'} if split == 'test' else top_keys
      assert set(d) == want
      for im in d['images']:
        assert set(im) in (image_keys, image_keys - IGNORE_FIELDS)
        for key in im:  # the same JSON types as the real files
          assert type(im[key]) is type(real['012834_mpii_test']['images'][0][key]), key
      for a in d.get('annotations', []):
        assert set(a) in (ann_keys, ann_keys - {'bbox'})


def test_layout_ids_and_labels(small):
  data = load(small)
  for split, files in data.items():
    assert len(files) == 2
    for seq, d in files.items():
      vid = seq[:6]
      assert seq == f'{vid}_mpii_{"train" if split == "train" else "test"}'
      assert d['categories'] == kp.categories()
      n = len(d['images'])
      images = {}
      for t, im in enumerate(d['images']):
        assert im['file_name'] == f'images/{split}/{seq}/{t:06d}.jpg'
        assert im['id'] == im['frame_id'] == int(f'1{vid}{t:04d}')
        assert len(str(im['id'])) == 11 and im['id'] > 2**31  # int64
        assert im['vid_id'] == vid and im['nframes'] == n and im['has_no_densepose'] is True
        assert isinstance(im['is_labeled'], bool)
        img = cv2.imread(str(small / im['file_name']))
        assert img is not None and img.shape == (144, 192, 3)
        for xs, ys in zip(im.get('ignore_regions_x', []), im.get('ignore_regions_y', []),
                          strict=True):
          assert len(xs) == len(ys) >= 3
          assert all(isinstance(v, int) for v in xs + ys)
        images[im['id']] = im
      assert len(list((small / 'images' / split / seq).iterdir())) == n
      if split == 'test':
        continue
      ids = set()
      for a in d['annotations']:
        im = images[a['image_id']]
        assert im['is_labeled']
        assert a['id'] // 100 == a['image_id'] and len(str(a['id'])) == 13
        ids.add(a['id'])
        assert a['category_id'] == 1 and a['scores'] == []
        assert len(a['bbox_head']) == 4 and all(isinstance(v, int) for v in a['bbox_head'])
        k = np.asarray(a['keypoints'], np.float64).reshape(17, 3)
        assert set(k[:, 2]) <= {0, 1}
        assert all(isinstance(v, int) for v in a['keypoints'][2::3])
        assert np.all(k[list(kp.UNANNOTATED_JOINTS)] == 0)  # ears never annotated
        assert np.all(k[k[:, 2] == 0] == 0)  # unannotated joints are exactly (0, 0, 0)
        vis = k[k[:, 2] == 1, :2]
        assert np.all((vis >= 0) & (vis <= [191, 143]))
        if len(vis) == 0:
          assert 'bbox' not in a
          continue
        lo, hi = vis.min(0), vis.max(0)
        size = (hi - lo) * 1.3
        np.testing.assert_allclose(a['bbox'], [*((lo + hi) / 2 - size / 2), *size], atol=1e-6)
      assert len(ids) == len(d['annotations'])
      # The same track never appears twice in one frame.
      pairs = [(a['image_id'], a['track_id']) for a in d['annotations']]
      assert len(set(pairs)) == len(pairs)


@pytest.mark.parametrize('n', [1, 12, 30, 40, 81, 150])
def test_labeled_protocol(n):
  train = synthetic.labeled_frames('train', n)
  val = synthetic.labeled_frames('val', n)
  assert synthetic.labeled_frames('test', n) == val
  idx = [t for t, f in enumerate(train) if f]
  assert len(idx) == min(30, n) and idx == list(range(idx[0], idx[0] + len(idx)))
  assert abs(idx[0] - (n - 1 - idx[-1])) <= 1  # in the middle
  assert [t for t, f in enumerate(val) if f] == sorted(set(idx) | set(range(0, n, 4)))


def test_written_labels_follow_protocol(small):
  for split, files in load(small).items():
    for d in files.values():
      flags = [im['is_labeled'] for im in d['images']]
      assert flags == synthetic.labeled_frames(split, len(flags))


def test_deterministic(small, tmp_path):
  again = tmp_path / 'again'
  synthetic.generate(again, **SMALL)
  files = sorted(p.relative_to(small) for p in small.rglob('*') if p.is_file())
  assert files == sorted(p.relative_to(again) for p in again.rglob('*') if p.is_file())
  for f in files:
    assert (small / f).read_bytes() == (again / f).read_bytes(), f
  other = tmp_path / 'other'
  synthetic.generate(other, **{**SMALL, 'seed': 2})
  assert load(other) != load(small)


def test_defaults_motion_and_people(default_set):
  root, summary = default_set
  splits = summary['splits']
  assert [splits[s]['videos'] for s in synthetic.SPLITS] == [12, 4, 4]
  assert splits['test']['annotations'] == 0 and splits['train']['annotations'] > 0
  data = load(root)
  assert all('annotations' not in d for d in data['test'].values())
  displacement, crowded, absent, no_kpts, ignore = [], 0, 0, 0, 0
  for split in ('train', 'val'):
    for d in data[split].values():
      labeled = {im['id']: t for t, im in enumerate(d['images']) if im['is_labeled']}
      ignore += sum('ignore_regions_x' in im for im in d['images'])
      tracks: dict[int, dict[int, np.ndarray]] = {}
      per_frame: dict[int, int] = {}
      for a in d['annotations']:
        t = labeled[a['image_id']]
        tracks.setdefault(a['track_id'], {})[t] = np.reshape(a['keypoints'], (17, 3))
        per_frame[t] = per_frame.get(t, 0) + 1
        no_kpts += 'bbox' not in a
      crowded += sum(c >= 2 for c in per_frame.values())
      absent += sum(len(frames) < len(labeled) for frames in tracks.values())
      if split != 'train':
        continue
      for frames in tracks.values():
        for t, k in frames.items():
          if t + 3 in frames:
            both = (k[:, 2] > 0) & (frames[t + 3][:, 2] > 0)
            if both.any():
              step = np.linalg.norm(k[both, :2] - frames[t + 3][both, :2], axis=1)
              displacement.append(step.mean())
  # Copying a pose from 3 frames away is clearly wrong: several pixels at 384x288.
  assert np.mean(displacement) > 4, np.mean(displacement)
  assert np.mean(np.asarray(displacement) > 2) > 0.8
  assert crowded > 0 and absent > 0 and no_kpts > 0 and ignore > 0


def test_figures_drawn_at_keypoints(small):
  """At annotated wrists and ankles the frame differs from the empty background."""
  videos = {v.name: v for v in synthetic.make_videos(**SMALL)}
  diffs = []
  for split in ('train', 'val'):
    for seq, d in load(small)[split].items():
      video = videos[seq]
      canvas = video.background_canvas()
      frames = {im['id']: t for t, im in enumerate(d['images'])}
      for a in d['annotations']:
        t = frames[a['image_id']]
        img = cv2.imread(str(small / d['images'][t]['file_name'])).astype(np.float64)
        bg = video.background(t, canvas).astype(np.float64)
        np.testing.assert_array_equal(video.frame(t, canvas).shape, img.shape)
        k = np.reshape(a['keypoints'], (17, 3))
        for j in (9, 10, 15, 16):
          if k[j, 2]:
            x, y = int(round(k[j, 0])), int(round(k[j, 1]))
            win = np.s_[max(0, y - 1):y + 2, max(0, x - 1):x + 2]
            diffs.append(np.abs(img[win].mean((0, 1)) - bg[win].mean((0, 1))).sum())
  assert len(diffs) > 50
  assert np.mean(np.asarray(diffs) > 30) > 0.8, np.mean(np.asarray(diffs) > 30)


def test_images_match_render(small):
  """The JPEGs are the rendered frames (up to compression)."""
  video = synthetic.make_videos(**SMALL)[0]
  canvas = video.background_canvas()
  for t in (0, video.nframes // 2):
    path = small / 'images' / video.split / video.name / f'{t:06d}.jpg'
    img = cv2.imread(str(path)).astype(np.float64)
    assert np.abs(img - video.frame(t, canvas)).mean() < 4


def test_command_line(tmp_path, capsys):
  out = tmp_path / 'cli'
  assert synthetic.main(['--out', str(out), '--seed', '3', '--train', '1', '--val', '1',
                         '--test', '0', '--frames', '8,12', '--width', '96', '--height',
                         '64']) == 0
  printed = capsys.readouterr().out
  assert 'train: 1 videos' in printed
  (train,) = (out / 'annotations' / 'train').glob('*.json')
  d = json.loads(train.read_text())
  assert 8 <= len(d['images']) <= 12 and all(im['is_labeled'] for im in d['images'])
  assert cv2.imread(str(out / d['images'][0]['file_name'])).shape == (64, 96, 3)
  assert not (out / 'annotations' / 'test').exists()
  # Into a folder that holds anything (here its own output): refused, nothing replaced.
  before = train.read_bytes()
  with pytest.raises(SystemExit):
    synthetic.main(['--out', str(out), '--seed', '4', '--train', '1', '--val', '0', '--test',
                    '0', '--frames', '8', '--width', '96', '--height', '64'])
  assert 'exists and is not empty' in capsys.readouterr().err
  assert train.read_bytes() == before


def test_full_hd_frame(tmp_path):
  """The real data's frame size works (one short video)."""
  summary = synthetic.generate(tmp_path, num_train=1, num_val=0, num_test=0, frames=3,
                               width=1920, height=1080)
  assert summary['splits']['train']['frames'] == 3
  (img_path,) = list((tmp_path / 'images' / 'train').glob('*/000001.jpg'))
  assert cv2.imread(str(img_path)).shape == (1080, 1920, 3)


def _sharpness(img: np.ndarray) -> float:
  return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_some_frames_are_blurred_or_occluded_and_their_neighbours_not():
  """About one frame in eight is blurred, and foreground poles sweep across in a few frames:
  the frame-specific degradations that temporal aggregation can repair."""
  videos = synthetic.make_videos(seed=0, num_train=20, num_val=0, num_test=0)
  blurs = [b for v in videos for b in v.effects()[0]]
  assert 0.07 < np.mean([b is not None for b in blurs]) < 0.17
  assert {b[0] for b in blurs if b} == {'shake', 'defocus'}
  assert sum(len(v.effects()[1]) for v in videos) > 20
  video = next(v for v in videos if any(v.effects()[0][1:-1]))
  assert video.effects() == video.effects()  # a function of the seed
  canvas = video.background_canvas()
  blurs, occluders = video.effects()
  t = next(i for i in range(1, video.nframes - 1) if blurs[i] and not blurs[i - 1])
  sharp = _sharpness(video.frame(t - 1, canvas))
  assert _sharpness(video.frame(t, canvas)) < 0.5 * sharp, blurs[t]
  # An occluder in view covers its band with its own colour, over everyone: checked at the
  # centre row, in the middle of its crossing, on the first occluder whose middle is unblurred.
  checked = 0
  for video in videos:
    blurs, occluders = video.effects()
    for occluder in occluders:
      t = int(np.ceil(occluder.t0 + 0.5 * video.width / abs(occluder.speed)))
      x = int(round(occluder.centre_x(t, video.width)))
      if 0 <= t < video.nframes and not blurs[t] and 0 <= x < video.width and not checked:
        img = video.frame(t, video.background_canvas())
        np.testing.assert_allclose(img[video.height // 2, x], occluder.colour, atol=2)
        checked += 1
  assert checked
