"""The numeric comparison the tests share."""

from __future__ import annotations

import numpy as np


def assert_close_to_scale(actual, expected, rtol: float, name: str = '', floor: float = 0.0):
  """Elementwise |actual - expected| <= rtol * (|expected| + max(max |expected|, floor)).

  The absolute part scales with the whole reference tensor: elementwise relative error means
  nothing near zero, and sums taken in another order (other framework, other batch size) differ
  by rounding relative to the tensor's scale.
  """
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  assert actual.shape == expected.shape, f'{name}: shape {actual.shape} != {expected.shape}'
  scale = max(float(np.abs(expected).max(initial=0.0)), floor)
  np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=name)
