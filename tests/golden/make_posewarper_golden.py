"""Writes the PoseWarper golden file from the PyTorch reference in torch_posewarper.py.

Run it wherever torch and torchvision import (neither is a dependency of the project; on the
development machine a Python 3.11 venv with `pip install torch==2.14.1 torchvision==0.29.1`):

    /path/to/python-with-torch tests/golden/make_posewarper_golden.py

It first builds the W48 configuration and checks that its state_dict matches the official
listing (tests/golden/posewarper_w48_state_dict.txt, or --listing) name for name and
shape for shape, with 71,154,350 parameters of which 63,595,745 in HRNet-W48 + final_layer.

Then it writes tests/golden/posewarper/tiny.npz from a tiny configuration (TINY below) with
random weights everywhere (torch_posewarper.randomize_), evaluated in float64 in eval mode:
- 'config': the configuration as a JSON string;
- 'sd/<torch name>': every state_dict entry in torch's own layout (OIHW), float32 (the values
  are float32-exact), num_batches_tracked int64;
- inputs, NHWC float32: 'frames_a', 'frames_b' [2, 128, 96, 3], 'agg_frames' [2, 5, 128, 96, 3]
  (t = 0 the current frame) and 'prop_heatmaps' [2, 32, 24, 17], all float16-exact;
  'agg_weights' [5] = (0.3, 0.25, 0.1, 0.25, 0.1) as float32 (the reference used these values);
- outputs, NHWC float32: 'single_frame' (heatmaps of frames_a), 'pair' (forward(frames_a,
  frames_b): H_B warped with offsets from H_A - H_B), 'aggregate' (agg_frames, agg_weights),
  'propagate' (prop_heatmaps warped from frames_a as the source to frames_b as the target);
- 'versions': the torch and torchvision versions.
The crops are constant over 4x4 pixels and the weights lie on a coarse power-of-two grid, to
keep the file small (about 0.8 MB: the four float32 outputs and the zip headers of the ~600
state_dict entries alone take about 0.5 MB).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import torch_posewarper as tp  # noqa: E402

OUT_PATH = pathlib.Path(__file__).parent / 'posewarper' / 'tiny.npz'
# A copy of ../shared/reference/posewarper_w48_state_dict.txt.
LISTING = pathlib.Path(__file__).parent / 'posewarper_w48_state_dict.txt'

TINY = {
    'backbone': {'stem_features': 8, 'layer1_planes': 8, 'layer1_blocks': 1, 'width': 4,
                 'stage_modules': (1, 2, 2), 'stage_blocks': (1, 1, 2), 'num_joints': 17},
    'head': {'num_blocks': 2, 'features': 8, 'dilations': (1, 3)},
}
SEED = 0
BATCH, TIME, HEIGHT, WIDTH = 2, 5, 128, 96
BLOCK = 4  # the crops are constant over BLOCK x BLOCK pixels
AGG_WEIGHTS = (0.3, 0.25, 0.1, 0.25, 0.1)  # current, prev1, prev2, next1, next2 (the release)


def _crops(rng, *lead):
  """N(0, 1) crops rounded to multiples of 1/4 and constant over 4x4 pixels, both to keep the
  file small; NHWC. The stride-2 stem still sees 4x4 blocks across its taps: a wrong padding
  ('SAME' pads (0, 1) for stride 2) or a transposed kernel changes the result."""
  low = np.round(rng.normal(size=(*lead, HEIGHT // BLOCK, WIDTH // BLOCK, 3)) * 4) / 4
  return low.repeat(BLOCK, axis=-3).repeat(BLOCK, axis=-2).astype(np.float32)


def _heatmaps(rng, n, h, w, joints):
  """One Gaussian (sigma 2, peak 1) per map at a random place, some partly off the map; NHWC."""
  yy, xx = np.mgrid[0:h, 0:w]
  cy = rng.uniform(-2, h + 1, size=(n, 1, 1, joints))
  cx = rng.uniform(-2, w + 1, size=(n, 1, 1, joints))
  g = np.exp(-((yy[None, :, :, None] - cy)**2 + (xx[None, :, :, None] - cx)**2) / (2 * 2.0**2))
  return (np.round(g * 1024) / 1024).astype(np.float32)


def _nchw(a):
  return torch.from_numpy(np.moveaxis(a, -1, -3).astype(np.float64))


def _nhwc(t):
  return np.moveaxis(t.detach().numpy(), -3, -1).astype(np.float32)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', type=pathlib.Path, default=OUT_PATH)
  parser.add_argument('--listing', type=pathlib.Path, default=LISTING)
  args = parser.parse_args()

  report = tp.check_w48(args.listing)
  print(f'W48 check passed: {report}')

  model = tp.randomize_(tp.build(TINY), SEED).double().eval()
  rng = np.random.default_rng(SEED + 1)
  inputs = {
      'frames_a': _crops(rng, BATCH),
      'frames_b': _crops(rng, BATCH),
      'agg_frames': _crops(rng, BATCH, TIME),
      'agg_weights': np.array(AGG_WEIGHTS, np.float32),
      'prop_heatmaps': _heatmaps(rng, BATCH, HEIGHT // 4, WIDTH // 4,
                                 TINY['backbone']['num_joints']),
  }
  a, b = _nchw(inputs['frames_a']), _nchw(inputs['frames_b'])
  with torch.no_grad():
    outputs = {
        'single_frame': model.single_frame(a),
        'pair': model(a, b),
        'aggregate': model.aggregate(_nchw(inputs['agg_frames']),
                                     inputs['agg_weights'].astype(np.float64)),
        'propagate': model.propagate(a, b, _nchw(inputs['prop_heatmaps'])),
    }
    # The offsets must matter: the same head with its offsets zeroed.
    h = model.single_frame(torch.cat([a, b]))
    offsets = model.offsets(h[:BATCH] - h[BATCH:])
    zeroed = model.deform(h[BATCH:], [torch.zeros_like(o) for o in offsets])

  print(f'heatmaps of A and B: std {h.std():.3f}, mean {h.mean():.3f}; '
        f'H_A - H_B std {(h[:BATCH] - h[BATCH:]).std():.3f}')
  print('offsets (pair) std: ' + ', '.join(f'{o.std():.2f}' for o in offsets)
        + '; max |offset| ' + ', '.join(f'{o.abs().max():.1f}' for o in offsets))
  print(f'max |pair - same head with zero offsets|: {(outputs["pair"] - zeroed).abs().max():.3f}'
        f' (pair std {outputs["pair"].std():.3f})')
  for name, out in outputs.items():
    print(f'{name}: {tuple(out.shape)} std {out.std():.4f}, mean {out.mean():.4f}, '
          f'max |.| {out.abs().max():.3f}')

  record = {'config': np.array(json.dumps(TINY)),
            'versions': np.array(f'torch {torch.__version__}, '
                                 f'torchvision {torchvision.__version__}')}
  for name, value in model.state_dict().items():
    if name.endswith('num_batches_tracked'):
      record[f'sd/{name}'] = value.numpy().astype(np.int64)
    else:
      as32 = value.numpy().astype(np.float32)
      assert np.array_equal(as32.astype(np.float64), value.numpy()), name
      record[f'sd/{name}'] = as32
  record.update(inputs)
  record.update({name: _nhwc(out) for name, out in outputs.items()})
  args.out.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(args.out, **record)
  print(f'{args.out}: {len(record)} arrays, {args.out.stat().st_size / 1024:.0f} KiB')


if __name__ == '__main__':
  main()
