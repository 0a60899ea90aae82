"""Sub-pixel drawing with OpenCV, shared by the generated videos and stills.

cv2's drawing functions take fixed-point coordinates with SHIFT fractional bits (their `shift`
argument), so that figures are drawn where the (float) keypoints say, not rounded to whole
pixels:

    cv2.circle(img, pt(x, y), round(r * ONE), colour, -1, cv2.LINE_AA, SHIFT)
"""

from __future__ import annotations

SHIFT = 4
ONE = 1 << SHIFT


def pt(x: float, y: float) -> tuple[int, int]:
  """A point (x, y) in pixels as cv2's fixed-point coordinates."""
  return int(round(x * ONE)), int(round(y * ONE))
