"""posewarper_jax: PoseWarper (NeurIPS 2019) in JAX/Flax."""
