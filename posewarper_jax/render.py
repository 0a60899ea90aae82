"""Drawing poses: skeletons on frames with joint confidences, grids as PNG, videos as MP4.

    image = draw_poses(frame_rgb, xy [P, 17, 2], scores [P, 17])
    save_grid([image, ...], 'grid.png', columns=3)
    write_video([image, ...], 'poses.mp4', fps=10)

Limbs are drawn between joints that both score at least `threshold`; a joint's dot is coloured by
its score (blue for low, through green, to red for 1) so that confidence can be read off the
picture. Frames are RGB uint8 [H, W, 3] throughout (the pipeline's layout).
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import cv2
import numpy as np

from tfds_posetrack.posetrack18.keypoints import JOINT_NAMES, NUM_JOINTS, SKELETON

# Limb colours (RGB): the left side warm, the right side cool, the head grey.
_LEFT, _RIGHT, _MIDDLE = (230, 120, 40), (40, 140, 230), (170, 170, 170)


def _limb_colour(a: int, b: int) -> tuple[int, int, int]:
  names = JOINT_NAMES[a] + JOINT_NAMES[b]
  if 'left' in names and 'right' not in names:
    return _LEFT
  if 'right' in names and 'left' not in names:
    return _RIGHT
  return _MIDDLE


def score_colour(score: float) -> tuple[int, int, int]:
  """RGB of a confidence in [0, 1] on OpenCV's JET map (blue low, red high)."""
  value = np.uint8(np.clip(score, 0.0, 1.0) * 255)
  bgr = cv2.applyColorMap(np.array([[value]], np.uint8), cv2.COLORMAP_JET)[0, 0]
  return int(bgr[2]), int(bgr[1]), int(bgr[0])


def draw_poses(frame: np.ndarray, xy: np.ndarray, scores: np.ndarray,
               threshold: float = 0.2, boxes: np.ndarray | None = None,
               thickness: int | None = None) -> np.ndarray:
  """A copy of `frame` (RGB uint8 [H, W, 3]) with poses xy [P, 17, 2] (frame pixels) and
  scores [P, 17]; optional boxes [P, 4] (x, y, w, h)."""
  image = np.ascontiguousarray(frame, np.uint8).copy()
  xy = np.asarray(xy, np.float64).reshape(-1, NUM_JOINTS, 2)
  scores = np.asarray(scores).reshape(-1, NUM_JOINTS)
  thickness = thickness or max(1, round(min(image.shape[:2]) / 240))
  for p in range(len(xy)):
    if boxes is not None:
      x, y, w, h = (int(round(v)) for v in boxes[p])
      cv2.rectangle(image, (x, y), (x + w, y + h), (255, 255, 255), 1, cv2.LINE_AA)
    for a, b in SKELETON:
      a, b = a - 1, b - 1  # SKELETON is 1-based, as in the official files
      if scores[p, a] >= threshold and scores[p, b] >= threshold:
        cv2.line(image, tuple(int(round(v)) for v in xy[p, a]),
                 tuple(int(round(v)) for v in xy[p, b]), _limb_colour(a, b), thickness,
                 cv2.LINE_AA)
    for j in range(NUM_JOINTS):
      if scores[p, j] >= threshold:
        cv2.circle(image, tuple(int(round(v)) for v in xy[p, j]), thickness + 2,
                   score_colour(scores[p, j]), -1, cv2.LINE_AA)
  return image


def grid(images: Sequence[np.ndarray], columns: int = 3, gap: int = 4) -> np.ndarray:
  """Images (RGB, any sizes) tiled row by row on a white canvas, each scaled to the first's
  height."""
  if not images:
    raise ValueError('grid: no images')
  height = images[0].shape[0]
  tiles = [cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height))
           for im in images]
  width = max(t.shape[1] for t in tiles)
  rows = -(-len(tiles) // columns)
  canvas = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
  for i, tile in enumerate(tiles):
    r, c = divmod(i, columns)
    canvas[r * (height + gap):r * (height + gap) + height,
           c * (width + gap):c * (width + gap) + tile.shape[1]] = tile
  return canvas


def save_image(image: np.ndarray, path: str | pathlib.Path) -> None:
  """Writes an RGB image (PNG, JPEG by the file's extension)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
    raise OSError(f'could not write {path}')


def save_grid(images: Sequence[np.ndarray], path: str | pathlib.Path, columns: int = 3) -> None:
  save_image(grid(images, columns), path)


def write_video(frames: Sequence[np.ndarray], path: str | pathlib.Path, fps: float = 10.0) -> None:
  """RGB frames of one size -> an MP4 (OpenCV's mp4v codec, which every OpenCV wheel has)."""
  if not frames:
    raise ValueError('write_video: no frames')
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  height, width = frames[0].shape[:2]
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
  if not writer.isOpened():
    raise OSError(f'could not open {path} for writing an MP4')
  try:
    for frame in frames:
      if frame.shape[:2] != (height, width):
        raise ValueError(f'write_video: frame of {frame.shape[:2]}, the first was '
                         f'{(height, width)}')
      writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  finally:
    writer.release()


def read_frames(path: str | pathlib.Path) -> tuple[list[np.ndarray], list[str], float]:
  """A video file or a folder of images (sorted by name) -> (RGB frames, names, fps).

  Names are the images' file names, or 000000, 000001, ... for a video; fps is the video's
  (10 for a folder).
  """
  path = pathlib.Path(path).expanduser()
  if path.is_dir():
    files = sorted(p for p in path.iterdir()
                   if p.suffix.lower() in ('.jpg', '.jpeg', '.png', '.bmp'))
    if not files:
      raise FileNotFoundError(f'{path}: no .jpg, .png or .bmp frames in this folder')
    frames = []
    for f in files:
      image = cv2.imread(str(f), cv2.IMREAD_COLOR_RGB)
      if image is None:
        raise ValueError(f'{f}: not a readable image')
      frames.append(image)
    return frames, [f.name for f in files], 10.0
  if not path.exists():
    raise FileNotFoundError(f'{path}: no such video file or frame folder')
  capture = cv2.VideoCapture(str(path))
  if not capture.isOpened():
    raise ValueError(f'{path}: OpenCV cannot open this video')
  fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
  frames = []
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
  capture.release()
  if not frames:
    raise ValueError(f'{path}: no frame could be decoded')
  return frames, [f'{i:06d}' for i in range(len(frames))], float(fps)


def mean_displacement(offsets: Sequence[np.ndarray], kernel_taps: int = 9) -> np.ndarray:
  """The head's offsets (one [N, h, w, 2 * J * taps] per dilation, torchvision's layout: per
  joint group a block of 2 * taps channels, tap t at (2t, 2t + 1) = (dy, dx)) -> their mean
  (dy, dx) over taps, joints and dilations, [N, h, w, 2]."""
  means = []
  for o in offsets:
    o = np.asarray(o, np.float32)
    means.append(o.reshape(*o.shape[:3], -1, kernel_taps, 2).mean(axis=(3, 4)))
  return np.mean(means, axis=0)


def flow_image(displacement: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
  """[h, w, 2] (dy, dx) -> RGB uint8 [h, w, 3] in the usual optical-flow colouring: the hue is
  the direction, the brightness the length (relative to max_magnitude, default the largest)."""
  dy, dx = displacement[..., 0], displacement[..., 1]
  magnitude = np.hypot(dx, dy)
  scale = max_magnitude or max(float(magnitude.max()), 1e-6)
  hsv = np.zeros((*magnitude.shape, 3), np.uint8)
  hsv[..., 0] = ((np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * 179).astype(np.uint8)
  hsv[..., 1] = 255
  hsv[..., 2] = (np.clip(magnitude / scale, 0, 1) * 255).astype(np.uint8)
  return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
