"""Where the workplace's shared data is: ../shared beside the checkout.

A fresh clone has no ../shared; the tests that use it skip when a path here is missing.
"""

import pathlib

SHARED = pathlib.Path(__file__).resolve().parents[2] / 'shared'
SAMPLE = SHARED / 'data' / 'posetrack18_sample'  # real PoseTrack18 frames, official layout
