"""Evaluation metrics: the official PoseTrack mAP (posetrack_map)."""
