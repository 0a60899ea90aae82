"""PoseTrack 2018: the official per-video annotation files, read into per-frame records."""
