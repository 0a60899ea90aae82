"""Numerical building blocks with no Flax state."""

from posewarper_jax.ops.deform_conv import deform_conv2d

__all__ = ['deform_conv2d']
