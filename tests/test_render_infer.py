"""Rendering (skeletons, grids, MP4) and run.py --mode=infer on a frame folder and on the real
clip of the PoseTrack18 sample."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from posewarper_jax import infer, predictor, render
from tests.helpers import ROOT, tiny_config, tiny_overrides
from tests.shared_data import SAMPLE
from tfds_posetrack.posetrack18.keypoints import JOINT_INDEX, NUM_JOINTS

CLIP = SAMPLE / 'videos'


def test_draw_poses_colours_confident_joints_and_skips_the_rest():
  frame = np.zeros((100, 120, 3), np.uint8)
  xy = np.zeros((1, NUM_JOINTS, 2))
  scores = np.zeros((1, NUM_JOINTS))
  xy[0, JOINT_INDEX['nose']] = (30, 40)
  scores[0, JOINT_INDEX['nose']] = 1.0
  xy[0, JOINT_INDEX['left_wrist']] = (90, 60)
  scores[0, JOINT_INDEX['left_wrist']] = 0.1  # below the threshold: not drawn
  image = render.draw_poses(frame, xy, scores, threshold=0.2)
  assert tuple(image[40, 30]) == render.score_colour(1.0)
  assert image[40, 30, 0] > 100 and image[40, 30, 2] < 100  # red for a confident joint
  assert not image[55:66, 85:96].any()
  assert not frame.any()  # the input is not drawn on


def test_offsets_become_a_flow_image():
  taps, joints = 9, 3
  offsets = np.zeros((1, 2, 2, 2 * joints * taps), np.float32)
  offsets[..., 0::2] = 1.0    # dy of every tap of every joint group
  offsets[..., 1::2] = -2.0   # dx
  offsets[0, 1, 1] = 0.0      # one pixel does not move
  mean = render.mean_displacement([offsets, 3 * offsets], kernel_taps=taps)
  np.testing.assert_allclose(mean[0, 0, 0], [2.0, -4.0])
  flow = render.flow_image(mean[0])
  assert flow.shape == (2, 2, 3) and flow.dtype == np.uint8
  assert not flow[1, 1].any() and flow[0, 0].max() == 255  # still: black; the largest: full
  left = render.flow_image(np.array([[[0.0, -1.0]], [[0.0, 1.0]]]))
  assert tuple(left[0, 0]) != tuple(left[1, 0])  # opposite directions, different hues


def test_grid_video_and_frame_folder_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(4)]
  assert render.grid(frames, columns=3).shape == (2 * 48 + 4, 3 * 64 + 8, 3)
  render.write_video(frames, tmp_path / 'v.mp4', fps=5)
  back, names, fps = render.read_frames(tmp_path / 'v.mp4')
  assert len(back) == 4 and back[0].shape == (48, 64, 3) and fps == pytest.approx(5)
  assert names == ['000000', '000001', '000002', '000003']
  for i, frame in enumerate(frames):
    render.save_image(frame, tmp_path / 'folder' / f'{i:03d}.png')
  back, names, _ = render.read_frames(tmp_path / 'folder')
  assert names == ['000.png', '001.png', '002.png', '003.png']
  np.testing.assert_array_equal(back[2], frames[2])  # PNG is lossless; RGB order kept


def test_reading_the_real_clip():
  if not CLIP.exists():
    pytest.skip(f'the PoseTrack18 sample clip is not at {CLIP} (../shared)')
  folder, _, _ = render.read_frames(CLIP / '000001_mpiinew_test')
  video, _, _ = render.read_frames(next(CLIP.rglob('*.mp4')))
  assert len(folder) == len(video) == 5 and folder[0].shape == video[0].shape == (720, 1280, 3)


def test_bad_inputs_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match='nothing.mp4'):
    render.read_frames(tmp_path / 'nothing.mp4')
  boxes = tmp_path / 'boxes.json'
  boxes.write_text(json.dumps([{'frame': 'missing.jpg', 'bbox': [0, 0, 5, 5]}]))
  with pytest.raises(ValueError, match="box 0: frame 'missing.jpg'"):
    infer.read_boxes(str(boxes), ['a.jpg'], [(10, 10)])
  boxes.write_text(json.dumps([{'frame': 0, 'bbox': [0, 0, -5, 5]}]))
  with pytest.raises(ValueError, match='box 0: bbox must be'):
    infer.read_boxes(str(boxes), ['a.jpg'], [(10, 10)])


GOOD_BOX = {'frame': 0, 'bbox': [1, 1, 5, 5], 'score': 0.5}


@pytest.mark.parametrize('bad, message', [
    ({'frame': 1, 'bbox': [0, float('nan'), 5, 5]}, r'bbox must be .*\(nan\)'),
    ({'frame': 1, 'bbox': [0, 0, float('inf'), 5]}, r'bbox must be .*\(inf\)'),
    ({'frame': 1, 'bbox': [0, '0', 5, 5]}, r"bbox must be .*\('0' \(str\)\)"),
    ({'frame': 1, 'bbox': [0, 0, 5, None]}, r'bbox must be .*\(None \(null\)\)'),
    ({'frame': 1, 'bbox': [0, 0, 5, 5], 'score': float('nan')}, 'score must be a finite number'),
    ({'frame': 1, 'bbox': [0, 0, 5, 5], 'score': 'high'}, 'score must be a finite number'),
    ({'frame': 1, 'bbox': [0, 0, 5, 5], 'score': None}, 'score must be a finite number'),
    ({'frame': True, 'bbox': [0, 0, 5, 5]}, r'frame must be an integer index .*True \(bool\)'),
    ({'frame': 1.0, 'bbox': [0, 0, 5, 5]}, r'frame must be an integer index .*1.0 \(float\)'),
    ({'frame': 1, 'bbox': [20, 0, 5, 5]}, r'bbox \[20, 0, 5, 5\] lies wholly outside frame b.jpg'),
], ids=['nan', 'inf', 'string', 'null', 'nan_score', 'string_score', 'null_score',
        'bool_frame', 'float_frame', 'outside'])
def test_read_boxes_names_the_file_box_and_field(tmp_path, bad, message):
  # Box 1 is the bad one: the message must point at it, not at the file as a whole.
  path = tmp_path / 'boxes.json'
  path.write_text(json.dumps([GOOD_BOX, bad]))
  with pytest.raises(ValueError, match=rf'{re.escape(str(path))}: box 1: {message}'):
    infer.read_boxes(str(path), ['a.jpg', 'b.jpg'], [(10, 10), (10, 10)])


def test_read_boxes_refuses_an_empty_list_and_reads_good_boxes(tmp_path):
  path = tmp_path / 'boxes.json'
  path.write_text('[]')
  with pytest.raises(ValueError, match=rf'{re.escape(str(path))}: the list has no box'):
    infer.read_boxes(str(path), ['a.jpg'], [(10, 10)])
  path.write_text(json.dumps([GOOD_BOX, {'frame': 'b', 'bbox': [-2, -2, 5.5, 5]}]))
  boxes = infer.read_boxes(str(path), ['a.jpg', 'b.jpg'], [(10, 10), (10, 10)])
  assert [(i, b.tolist(), s) for i, b, s in boxes] == [(0, [1, 1, 5, 5], 0.5),
                                                      (1, [-2, -2, 5.5, 5], 1.0)]


def _clip(root, tmp_path, name: str, count: int):
  """A frame folder of `count` synthetic validation frames, and the infer config over it."""
  folder = sorted((root / 'images' / 'val').iterdir())[0]
  clip = tmp_path / name
  clip.mkdir()
  for frame in sorted(folder.glob('*.jpg'))[:count]:
    (clip / frame.name).write_bytes(frame.read_bytes())
  config = tiny_config(root, stages=(1, 2))
  config.infer.input = str(clip)
  return config


def _over_previous_outputs(root, identity_run, tmp_path, name: str, count: int):
  """(config, workdir, out, files): a clip of `count` frames whose infer folder already holds a
  previous run's outputs `files` (any bytes will do: they must come through unchanged)."""
  config, workdir = _clip(root, tmp_path, name, count), identity_run[1]
  out = workdir / 'infer' / name
  out.mkdir(parents=True, exist_ok=True)
  files = {'predictions.json': b'{"previous": true}', 'poses.mp4': b'old video',
           'grid.png': b'old grid', 'offsets.png': b'old offsets'}
  for file, data in files.items():
    (out / file).write_bytes(data)
  return config, workdir, out, files


def _unchanged(out, files):
  return {p.name: p.read_bytes() for p in out.iterdir()} == files


def test_infer_refuses_a_nan_box_and_leaves_the_previous_output(synthetic_root, identity_run,
                                                                 tmp_path):
  config, workdir, out, files = _over_previous_outputs(synthetic_root, identity_run, tmp_path,
                                                       'nan_box_clip', 2)
  boxes = tmp_path / 'boxes.json'
  boxes.write_text(json.dumps([{'frame': 0, 'bbox': [10, float('nan'), 60, 100]}]))
  config.infer.boxes = str(boxes)
  with pytest.raises(ValueError, match='box 0: bbox must be'):
    infer.infer(config, workdir)
  assert _unchanged(out, files)


def test_infer_writes_nothing_when_the_network_gives_nan(synthetic_root, identity_run, tmp_path,
                                                         monkeypatch):
  config, workdir, out, files = _over_previous_outputs(synthetic_root, identity_run, tmp_path,
                                                       'nan_network_clip', 2)
  decode = predictor.codec.decode

  def diverged(heatmaps, center, scale):  # what a checkpoint with NaN weights gives
    return decode(np.full_like(heatmaps, np.nan), center, scale)

  monkeypatch.setattr(predictor.codec, 'decode', diverged)
  with pytest.raises(ValueError, match=r'non-finite keypoints or scores for 2 of 2 boxes.*'
                                       r'box 0, frame 000000.jpg.*nothing was written'):
    infer.infer(config, workdir)
  assert _unchanged(out, files)


def test_infer_replaces_outputs_only_when_all_are_written(synthetic_root, identity_run, tmp_path,
                                                          monkeypatch):
  config, workdir, out, files = _over_previous_outputs(synthetic_root, identity_run, tmp_path,
                                                       'write_fails_clip', 1)

  def disk_full(frames, path, fps):
    pathlib.Path(path).write_bytes(b'half a vid')
    raise OSError('no space left on device')

  with monkeypatch.context() as patch:
    patch.setattr(infer.render, 'write_video', disk_full)
    with pytest.raises(OSError, match='no space left'):
      infer.infer(config, workdir)
  assert _unchanged(out, files)  # no temporary file left either
  # Written for real: every output replaced, and a single frame has no offsets image, so the
  # previous network's is gone rather than left beside this run's poses.
  infer.infer(config, workdir)
  assert sorted(p.name for p in out.iterdir()) == ['grid.png', 'poses.mp4', 'predictions.json']
  predictions = json.loads((out / 'predictions.json').read_text())
  assert [len(f['people']) for f in predictions['frames']] == [1]
  assert len(render.read_frames(out / 'poses.mp4')[0]) == 1


def test_infer_mode_on_a_frame_folder_with_boxes(synthetic_root, identity_run, tmp_path):
  """run.py --mode=infer as a user types it: from their folder, every path relative to it."""
  root, workdir = synthetic_root, identity_run[1]
  folder = sorted((root / 'images' / 'val').iterdir())[0]
  names = sorted(p.name for p in folder.glob('*.jpg'))[:6]
  clip = tmp_path / 'clip'
  clip.mkdir()
  for name in names:
    (clip / name).write_bytes((folder / name).read_bytes())
  boxes = tmp_path / 'boxes.json'
  boxes.write_text(json.dumps([{'frame': names[0], 'bbox': [10, 10, 60, 100], 'score': 0.9},
                               {'frame': 3, 'bbox': [80, 20, 50, 90]},
                               {'frame': 3, 'bbox': [20, 20, 50, 90]}]))
  relative = lambda path: os.path.relpath(path, tmp_path)
  command = [sys.executable, relative(ROOT / 'run.py'),
             f'--config={relative(ROOT / "configs" / "posewarper.py")}:synthetic',
             f'--workdir={relative(workdir)}', '--mode=infer',
             *tiny_overrides(pathlib.Path(relative(root))),
             '--config.infer.input=clip', '--config.infer.boxes=boxes.json']
  done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
  out = workdir / 'infer' / 'clip'
  predictions = json.loads((out / 'predictions.json').read_text())
  assert predictions['mode'] == 'aggregation'
  assert [len(f['people']) for f in predictions['frames']] == [1, 0, 0, 2, 0, 0]
  person = predictions['frames'][0]['people'][0]
  assert np.asarray(person['keypoints']).shape == (NUM_JOINTS, 3) and person['box_score'] == 0.9
  frames, _, _ = render.read_frames(out / 'poses.mp4')
  assert len(frames) == 6 and frames[0].shape == (144, 192, 3)
  assert (out / 'grid.png').exists() and (out / 'offsets.png').exists()


def test_infer_mode_on_the_real_clip(synthetic_root, identity_run):
  if not CLIP.exists():
    pytest.skip(f'the PoseTrack18 sample clip is not at {CLIP} (../shared)')
  root, workdir = synthetic_root, identity_run[1]
  config = tiny_config(root, stages=(1, 2))
  config.infer.input = str(next(CLIP.rglob('*.mp4')))  # one person box around each frame
  out = infer.infer(config, workdir)
  predictions = json.loads((out / 'predictions.json').read_text())
  assert [len(f['people']) for f in predictions['frames']] == [1] * 5
  assert predictions['frames'][0]['people'][0]['bbox'] == [0, 0, 1280, 720]
  frames, _, _ = render.read_frames(out / 'poses.mp4')
  assert len(frames) == 5 and frames[0].shape == (720, 1280, 3)
