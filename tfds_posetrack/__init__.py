"""TFDS datasets of posewarper_jax: PoseTrack 2018 (posetrack18/)."""
