"""Writes the pretrained-start golden files: one tiny HRNet state dict as PyTorch saves it.

Stage 1 starts from a COCO-pretrained HRNet (config.stage1.init). Reading a .pth needs torch,
which is not a dependency of the project, so the state dict is committed three times: as the
two .pth files users have, and as an .npz of the very same tensors that the tests read
without torch. Run it from the repository root in a Python 3.12 venv with requirements.txt
plus torch==2.14.1 torchvision==0.29.1:

    python tests/golden/make_pretrained_golden.py

The network is the HRNet of the tests' tiny experiment (TINY's backbone in tests/helpers.py,
17 joints), built by torch_posewarper.py (the release's module names) with random weights and
BatchNorm statistics (torch_posewarper.randomize_, seed SEED); the warping head is left out, as
a pretrained HRNet has none. In tests/golden/pretrained/:
- hrnet_tiny_official.pth: the bare state dict, saved as the official COCO HRNet
  (pose_hrnet_w48_384x288.pth) is: official names, num_batches_tracked included;
- hrnet_tiny_mmpose.pth: mmpose's top-down checkpoint of the same tensors,
  {'meta': {...}, 'state_dict': {...}} with the backbone under 'backbone.' and the final layer
  as 'keypoint_head.final_layer.' (TopdownHeatmapSimpleHead); meta records the versions;
- hrnet_tiny.npz: the official state dict as NumPy arrays (float32, num_batches_tracked int64).
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib

import numpy as np
import torch
import torchvision

HERE = pathlib.Path(__file__).parent
OUT_DIR = HERE / 'pretrained'
SEED = 0
# TINY['backbone'] of tests/helpers.py, and the dataset's 17 joints; the head is built only
# because the reference network has one, and is dropped.
BACKBONE = {'width': 8, 'stage_modules': (1,), 'stage_blocks': (1,), 'stem_features': 16,
            'layer1_planes': 8, 'layer1_blocks': 1, 'num_joints': 17}
HEAD = {'num_blocks': 2, 'features': 8, 'dilations': (3,)}


def _reference_module():
  spec = importlib.util.spec_from_file_location('torch_posewarper', HERE / 'torch_posewarper.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _mmpose_name(name: str) -> str:
  if name.startswith('final_layer.'):
    return 'keypoint_head.' + name
  return 'backbone.' + name


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out_dir', type=pathlib.Path, default=OUT_DIR)
  args = parser.parse_args()

  tp = _reference_module()
  model = tp.randomize_(tp.build({'backbone': BACKBONE, 'head': HEAD}), SEED)
  state_dict = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()
                if not name.startswith(tp.HEAD_PREFIXES)}
  assert all(t.dtype == (torch.int64 if n.endswith('num_batches_tracked') else torch.float32)
             for n, t in state_dict.items())
  versions = f'torch {torch.__version__}, torchvision {torchvision.__version__}'

  args.out_dir.mkdir(parents=True, exist_ok=True)
  official = args.out_dir / 'hrnet_tiny_official.pth'
  torch.save(state_dict, official)
  mmpose = args.out_dir / 'hrnet_tiny_mmpose.pth'
  torch.save({'meta': {'versions': versions},
              'state_dict': {_mmpose_name(n): t for n, t in state_dict.items()}}, mmpose)
  npz = args.out_dir / 'hrnet_tiny.npz'
  np.savez_compressed(npz, **{n: t.numpy() for n, t in state_dict.items()})
  parameters = sum(t.numel() for n, t in state_dict.items() if 'running' not in n
                   and not n.endswith('num_batches_tracked'))
  print(f'{len(state_dict)} tensors, {parameters:,} parameters ({versions})')
  for path in (official, mmpose, npz):
    print(f'{path}: {path.stat().st_size / 1024:.0f} KiB')


if __name__ == '__main__':
  main()
