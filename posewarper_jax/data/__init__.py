"""PoseTrack 2018 data: keypoint definitions and a synthetic dataset in the official format."""
