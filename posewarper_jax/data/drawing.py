"""Sub-pixel drawing and colours with OpenCV, shared by the generated videos and stills.

cv2's drawing functions take fixed-point coordinates with SHIFT fractional bits (their `shift`
argument), so that figures are drawn where the (float) keypoints say, not rounded to whole
pixels:

    cv2.circle(img, pt(x, y), round(r * ONE), colour, -1, cv2.LINE_AA, SHIFT)
"""

from __future__ import annotations

import cv2
import numpy as np

SHIFT = 4
ONE = 1 << SHIFT


def pt(x: float, y: float) -> tuple[int, int]:
  """A point (x, y) in pixels as cv2's fixed-point coordinates."""
  return int(round(x * ONE)), int(round(y * ONE))


def hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
  """The BGR colour (0 .. 255 each) of OpenCV's 8-bit HSV: h in 0 .. 180, s and v 0 .. 255
  (truncated to integers first, as uint8)."""
  bgr = cv2.cvtColor(np.array([[[h, s, v]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
  return tuple(int(c) for c in bgr)
