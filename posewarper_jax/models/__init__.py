"""Flax Linen modules of posewarper_jax (NHWC)."""
