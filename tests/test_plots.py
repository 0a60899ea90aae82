"""plots.propagation: a PNG of the fixed size in each row's colour, and beside it a CSV of exactly
the values it shows; a NaN (a subset without ground truth for some joint) is a gap, not a crash."""

from __future__ import annotations

import cv2
import numpy as np
from matplotlib.colors import to_rgb

from posewarper_jax import plots

NAN = float('nan')
RESULTS = {'PoseWarper': {'1': 90.04, '2': NAN, '3': 70.0, 'all': 80.0},
           'copy': {'1': 95.0, '2': 80.26, '3': 60.0, 'all': 78.0},
           'single frame': {'1': 75.5, '2': 75.5, '3': 75.5, 'all': 75.5},
           'no ground truth, anywhere': {'1': NAN, '2': NAN, '3': NAN, 'all': NAN}}


def _has_colour(image_bgr: np.ndarray, colour: str) -> bool:
  """Whether some pixel of an (H, W, 3) BGR uint8 image is exactly `colour` (marker interiors
  are drawn unblended)."""
  rgb = np.round(np.array(to_rgb(colour)) * 255).astype(np.uint8)
  return bool((image_bgr[..., ::-1] == rgb).all(axis=-1).any())


def test_propagation_writes_the_png_and_the_values_it_shows(tmp_path):
  path = tmp_path / 'propagate' / 'val' / 'propagation.png'  # the parent does not exist yet
  plots.propagation(RESULTS, ['1', '2', '3'], path)

  image = cv2.imread(str(path))
  assert image is not None and image.shape == (420, 640, 3)
  for row in ('PoseWarper', 'copy', 'single frame'):
    assert _has_colour(image, plots.ROW_COLOURS[row]), row
  # 'all' is not a distance: it is neither drawn nor written.
  assert (path.parent / 'propagation.csv').read_text() == (
    'row,1,2,3\n'
    'PoseWarper,90.0,,70.0\n'
    'copy,95.0,80.3,60.0\n'
    'single frame,75.5,75.5,75.5\n'
    '"no ground truth, anywhere",,,\n')


def test_propagation_is_deterministic(tmp_path):
  a, b = tmp_path / 'a.png', tmp_path / 'b.png'
  plots.propagation(RESULTS, ['1', '2', '3'], a)
  plots.propagation(RESULTS, ['1', '2', '3'], b)
  assert a.read_bytes() == b.read_bytes()


def test_row_colours_are_stable_and_distinct():
  colours = plots.row_colours(['mine', 'copy', 'theirs', 'PoseWarper'])
  assert colours['copy'] == plots.ROW_COLOURS['copy']
  assert colours['PoseWarper'] == plots.ROW_COLOURS['PoseWarper']
  assert len(set(colours.values())) == 4
  assert colours['mine'] not in plots.ROW_COLOURS.values()
