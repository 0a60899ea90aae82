"""The PyTorch reference the benchmarks time beside ours: tests/golden/torch_posewarper.py (the
release's architecture, torch's convolutions, torchvision's deformable convolution).

torch is optional: `build` returns None when torch or torchvision does not import. On a machine
with a GPU the reference runs there too (`device`), and every case waits for the GPU to finish.
"""

from __future__ import annotations

import os
import sys

import common
import numpy as np

from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS


def default_device() -> str:
  """'cuda' when JAX and torch both see a GPU, else 'cpu': both sides on the same kind of chip."""
  import jax
  try:
    import torch
  except ImportError:  # build() says so
    return 'cpu'
  return 'cuda' if jax.default_backend() == 'gpu' and torch.cuda.is_available() else 'cpu'


def build(config, device: str = 'cpu'):
  """(reference module on `device`, its state dict as NumPy) with random weights for
  config.model, or None without torch."""
  try:
    import torch  # noqa: F401
    import torchvision  # noqa: F401
  except ImportError:
    return None
  sys.path.insert(0, os.path.join(common.ROOT, 'tests', 'golden'))
  import torch_posewarper as tp

  model = config.model
  ref_config = {'backbone': {**model.backbone.to_dict(), 'num_joints': NUM_JOINTS},
                'head': model.head.to_dict()}
  reference = tp.randomize_(tp.build(ref_config), seed=0).float()
  state = {k: v.numpy() for k, v in reference.state_dict().items()}
  return reference.to(device), state


def nchw(x, device: str = 'cpu'):
  """[N, H, W, C] array -> a contiguous [N, C, H, W] torch tensor on `device`."""
  import torch

  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 1))).to(device)


def cases(reference, a, b, targets, autocast: bool = False) -> dict:
  """name -> a callable running it once on normalized frames a, b [N, H, W, 3] and targets.

  single frame / pair forward: inference. stage-1 step: the whole network trained on A (Adam,
  BatchNorm on batch statistics). stage-2 step: the head trained on the frozen backbone
  (backbone BatchNorm in inference mode, no backward through it), as our default. autocast:
  forwards and losses under torch.autocast in bfloat16 (PyTorch's mixed precision; the weights
  and Adam stay float32), the counterpart of our config.model.dtype='bfloat16'.
  """
  import contextlib

  import torch

  head_prefixes = ('offset_feats', 'offsets', 'deform_conv')
  device = next(reference.parameters()).device
  ta, tb, tt = nchw(a, device), nchw(b, device), nchw(targets, device)
  head_params = [p for n, p in reference.named_parameters() if n.startswith(head_prefixes)]
  backbone_params = [p for n, p in reference.named_parameters()
                     if not n.startswith(head_prefixes)]
  head_optimizer = torch.optim.Adam(head_params, lr=1e-4)
  backbone_optimizer = torch.optim.Adam(backbone_params, lr=1e-4)
  mixed = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if autocast else (
      contextlib.nullcontext)

  def single():
    with torch.no_grad(), mixed():
      reference.eval().single_frame(ta)

  def pair():
    with torch.no_grad(), mixed():
      reference.eval()(ta, tb)

  def stage1_step():
    reference.train()
    with mixed():
      loss = 0.5 * torch.mean(torch.square(reference.single_frame(ta).float() - tt))
    backbone_optimizer.zero_grad()
    loss.backward()
    backbone_optimizer.step()

  def stage2_step():
    reference.eval()
    for name, module in reference.named_modules():
      if name.startswith(head_prefixes):
        module.train()
    with torch.no_grad(), mixed():
      h = reference.single_frame(torch.cat([ta, tb]))
    h_a, h_b = h[:len(ta)], h[len(ta):]
    with mixed():
      loss = 0.5 * torch.mean(torch.square(reference.warp(h_a, h_b, h_b).float() - tt))
    head_optimizer.zero_grad()
    loss.backward()
    head_optimizer.step()

  def synchronized(fn):
    def run():
      fn()
      if device.type == 'cuda':
        torch.cuda.synchronize()
    return run

  return {name: synchronized(fn) for name, fn in (
      ('single frame', single), ('pair forward', pair), ('stage-1 step', stage1_step),
      ('stage-2 step', stage2_step))}
