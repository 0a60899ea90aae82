"""The stills' backgrounds: random scenes, sharp and often saturated, unlike the synthetic videos'.

`background(rng, width, height)` draws one of BACKGROUNDS: indoor rooms (flat walls, framed
rectangles, a perspective tiled floor), outdoor scenes (sky gradient, buildings with window grids,
blocky ground texture), brick or tile walls, studio gradients, in colours that may be saturated,
with per-pixel sensor noise and no smoothing (synthetic.py's are blurred, desaturated noise with
stripes and blobs). Everything in pixels scales with the image size (synthetic.frame_scale).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from posewarper_jax.data.drawing import hsv
from posewarper_jax.data.synthetic import frame_scale

BACKGROUNDS = ('indoor', 'outdoor', 'bricks', 'studio')


def _colour(rng: np.random.Generator, sat: tuple[float, float] = (20, 160),
            val: tuple[float, float] = (60, 230)) -> np.ndarray:
  return np.array(hsv(rng.uniform(0, 180), rng.uniform(*sat), rng.uniform(*val)), np.float32)


def _rectangle(img: np.ndarray, rng: np.random.Generator, box: tuple[int, int, int, int],
               scale: float) -> None:
  """A framed rectangle (door, window, picture, shelf): fill, a darker frame, maybe bars."""
  x1, y1, x2, y2 = box
  fill = _colour(rng)
  frame = fill * rng.uniform(0.3, 0.7)
  cv2.rectangle(img, (x1, y1), (x2, y2), fill.tolist(), -1)
  t = max(1, round(rng.uniform(1, 4) * scale))
  cv2.rectangle(img, (x1, y1), (x2, y2), frame.tolist(), t)
  if rng.random() < 0.4:  # window bars
    cv2.line(img, ((x1 + x2) // 2, y1), ((x1 + x2) // 2, y2), frame.tolist(), t)
    cv2.line(img, (x1, (y1 + y2) // 2), (x2, (y1 + y2) // 2), frame.tolist(), t)


def _floor(img: np.ndarray, rng: np.random.Generator, horizon: int) -> None:
  """Below `horizon`: a floor in perspective, tiled (checker) or plain with a gradient."""
  h, w = img.shape[:2]
  if horizon >= h:
    return
  yy, xx = np.mgrid[horizon:h, 0:w].astype(np.float32)
  d = yy - horizon + 0.08 * h  # distance below the vanishing line (the camera's height)
  a, b = _colour(rng, (0, 120), (50, 220)), _colour(rng, (0, 120), (50, 220))
  if rng.random() < 0.6:
    vx = rng.uniform(0.2, 0.8) * w
    tiles = (np.floor((xx - vx) / d * rng.uniform(1.5, 5)) + np.floor(rng.uniform(8, 30) * h
                                                                          / (d * 10))) % 2
    floor = a + tiles[..., None] * (b - a)
  else:
    floor = a + (d / d.max())[..., None] * (b - a)
  img[horizon:] = floor


def _outdoor(img: np.ndarray, rng: np.random.Generator, scale: float) -> None:
  h, w = img.shape[:2]
  horizon = int(rng.uniform(0.2, 0.65) * h)
  sky_top = _colour(rng, (40, 160), (120, 230))
  sky_low = np.array(hsv(rng.uniform(90, 125), rng.uniform(0, 60), rng.uniform(180, 250)),
                     np.float32)
  t = np.linspace(0, 1, max(horizon, 1), dtype=np.float32)[:, None, None]
  img[:horizon] = sky_top + t * (sky_low - sky_top)
  # Buildings standing on the horizon, with grids of windows.
  for _ in range(int(rng.integers(0, 6))):
    bw = int(rng.uniform(0.1, 0.4) * w)
    x1 = int(rng.uniform(-0.1, 1.0) * w)
    y1 = int(horizon - rng.uniform(0.1, 0.6) * h)
    xs, ys = slice(max(x1, 0), max(min(x1 + bw, w), 0)), slice(max(y1, 0), horizon)
    wall = _colour(rng, (0, 80), (70, 220))
    img[ys, xs] = wall
    px, py = max(4, int(rng.uniform(8, 25) * scale)), max(4, int(rng.uniform(10, 30) * scale))
    yy, xx = np.mgrid[ys, xs]
    windows = ((xx - x1) % px < px * 0.55) & ((yy - y1) % py < py * 0.55)
    img[ys, xs][windows] = wall * rng.uniform(0.3, 0.7)
  # The ground: a colour with blocky patches (nearest-neighbour upscaled noise).
  ground = _colour(rng, (20, 140), (50, 180))
  gh, gw = max(1, (h - horizon) // max(2, int(rng.uniform(6, 20) * scale))), max(
      1, w // max(2, int(rng.uniform(6, 20) * scale)))
  patches = cv2.resize(rng.normal(0, rng.uniform(5, 25), (gh, gw)).astype(np.float32),
                       (w, h - horizon), interpolation=cv2.INTER_NEAREST)
  img[horizon:] = ground + patches[..., None]


def _bricks(img: np.ndarray, rng: np.random.Generator, scale: float) -> None:
  """Bricks or tiles covering the image: rows of offset blocks, each its own shade."""
  h, w = img.shape[:2]
  bh = max(4, int(rng.uniform(8, 40) * scale))
  bw = max(4, int(bh * rng.uniform(1.0, 3.0)))
  offset = bw // 2 if rng.random() < 0.7 else 0  # bricks; tiles are aligned
  mortar_width = max(1, round(rng.uniform(1, 3) * scale))
  yy, xx = np.mgrid[0:h, 0:w]
  row = yy // bh
  xs = xx + (row % 2) * offset
  block = row * (w // bw + 2) + xs // bw
  base, mortar = _colour(rng, (30, 170), (60, 200)), _colour(rng, (0, 40), (120, 230))
  shades = rng.normal(1.0, rng.uniform(0.03, 0.15), int(block.max()) + 1).astype(np.float32)
  img[:] = base * shades[block][..., None]
  img[((yy % bh) < mortar_width) | ((xs % bw) < mortar_width)] = mortar


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
  """A random scene of one of BACKGROUNDS: [height, width, 3] uint8 BGR."""
  scale = frame_scale(width, height)
  img = np.zeros((height, width, 3), np.float32)
  kind = str(rng.choice(BACKGROUNDS, p=(0.4, 0.3, 0.15, 0.15)))
  if kind == 'indoor':
    horizon = int(rng.uniform(0.35, 0.8) * height)
    wall = _colour(rng)
    shade = np.linspace(rng.uniform(0.75, 1.1), rng.uniform(0.85, 1.15), height,
                        dtype=np.float32)[:horizon, None, None]
    img[:horizon] = wall * shade
    for _ in range(int(rng.integers(1, 6))):
      rw, rh = rng.uniform(0.05, 0.3) * width, rng.uniform(0.1, 0.6) * height
      x1, y1 = rng.uniform(-0.05, 1.0) * width, rng.uniform(0.0, 0.9) * horizon - rh / 2
      _rectangle(img, rng, (int(x1), int(y1), int(x1 + rw), int(min(y1 + rh, horizon))), scale)
    _floor(img, rng, horizon)
    # A skirting board where the wall meets the floor.
    board = max(1, round(rng.uniform(2, 8) * scale))
    img[max(0, horizon - board):horizon] = _colour(rng, (0, 60), (30, 240))
  elif kind == 'outdoor':
    _outdoor(img, rng, scale)
  elif kind == 'bricks':
    _bricks(img, rng, scale)
  else:  # studio: a flat colour with a gradient and a vignette
    a, b = _colour(rng), _colour(rng)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    t = ((xx / width - 0.5) * math.cos(ang) + (yy / height - 0.5) * math.sin(ang) + 0.7) / 1.4
    r2 = ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2)[..., None]
    img[:] = (a + t[..., None] * (b - a)) * (1 - rng.uniform(0, 0.8) * r2)
  # Sensor noise: per pixel (synthetic.py's grain is smooth, several pixels wide), grey.
  noise = rng.standard_normal((height, width, 1), np.float32) * rng.uniform(1.5, 6)
  return np.clip(img + noise, 0, 255).astype(np.uint8)
