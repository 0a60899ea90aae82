"""Writes the deformable-convolution golden files from torchvision.ops.deform_conv2d.

Run it wherever torch and torchvision import (neither is a dependency of the project); the
committed files were written in a Python 3.12 venv with requirements.lock plus `torch==2.14.1
torchvision==0.29.1`:

    python tests/golden/make_deform_conv_golden.py

Each case is one .npz in tests/golden/deform_conv/, in torchvision's own layouts (NCHW inputs,
offsets and mask; OIHW weight), so the test that reads them also checks the layout mapping to
our NHWC/HWIO op. The reference runs in float64; inputs are stored as float16 and chosen to be
exactly representable there (and so in float32), outputs and gradients as float32.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import torch
import torchvision
from torchvision.ops import deform_conv2d

OUT_DIR = pathlib.Path(__file__).parent / 'deform_conv'

# name: (batch, height, width, in_ch, out_ch, kh, kw, stride, padding, dilation, offset_groups,
#        weight_groups, mask, offset_kind, offset_scale)
CASES = {
    # PoseWarper's layer at a small size: 17 channels, one offset group per channel.
    'posewarper_like_g17': (1, 16, 12, 17, 17, 3, 3, 1, 3, 3, 17, 1, False, 'normal', 3.0),
    # PoseWarper's largest dilation on the real 96x72 heatmap; many samples leave the map.
    'dil24_96x72': (1, 96, 72, 4, 3, 3, 3, 1, 24, 24, 1, 1, False, 'normal', 10.0),
    'stride2_pad0_dil24_96x72_g3_mask': (1, 96, 72, 3, 2, 3, 3, 2, 0, 24, 3, 1, True, 'normal',
                                         4.0),
    'k3x2_weight_groups2_g3_mask_batch5': (5, 9, 11, 6, 4, 3, 2, 1, (1, 2), (2, 1), 3, 2, True,
                                           'normal', 2.0),
    'g17_mask_batch5_far_outside': (5, 8, 7, 17, 6, 3, 3, 1, 1, 1, 17, 1, True, 'far', 5.0),
    'stride2_k3x2_weight_groups2': (2, 10, 9, 4, 4, 3, 2, 2, 1, 1, 1, 2, False, 'normal', 1.5),
    # Integer sample positions, including exactly y = -1 and y = H on the padded border.
    'zero_offsets_pad2_dil2_mask': (2, 7, 6, 2, 3, 3, 3, 1, 2, 2, 1, 1, True, 'zero', 0.0),
    # Every sample in a band around the image border: y in (-1.5, 0.5) or (H - 1.5, H + 0.5).
    'straddle_border_g3': (1, 6, 5, 3, 2, 3, 3, 1, 1, 1, 3, 1, False, 'border', 0.0),
}


def _pair(v):
  return (v, v) if isinstance(v, int) else tuple(v)


def _f16_exact(a: np.ndarray) -> np.ndarray:
  """Rounds to values that float16 (and so float32) represents exactly."""
  return a.astype(np.float16).astype(np.float64)


def _make_offsets(rng, kind, scale, n, g, kh, kw, ho, wo, h, w, stride, padding, dilation):
  shape = (n, g, kh * kw, 2, ho, wo)
  if kind == 'zero':
    return np.zeros(shape)
  if kind == 'normal':
    return rng.normal(size=shape) * scale
  if kind == 'far':
    off = rng.normal(size=shape) * scale
    far = rng.random(shape) < 0.1
    return np.where(far, rng.choice([-1, 1], size=shape) * rng.uniform(50, 300, size=shape), off)
  if kind == 'border':
    # Offsets that move each tap's sample into a band straddling the image border.
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    ii, jj = np.divmod(np.arange(kh * kw), kw)
    base_y = (np.arange(ho) * sh - ph)[None, :] + (ii * dh)[:, None]  # [taps, Ho]
    base_x = (np.arange(wo) * sw - pw)[None, :] + (jj * dw)[:, None]  # [taps, Wo]

    def band(size, extent):
      low = rng.uniform(-1.5, 0.5, size=size)
      high = rng.uniform(extent - 1.5, extent + 0.5, size=size)
      return np.where(rng.random(size) < 0.5, low, high)

    ty = band((n, g, kh * kw, ho, wo), h)
    tx = band((n, g, kh * kw, ho, wo), w)
    off = np.empty(shape)
    off[:, :, :, 0] = ty - base_y[None, None, :, :, None]
    off[:, :, :, 1] = tx - base_x[None, None, :, None, :]
    return off
  raise ValueError(kind)


def make_case(name, spec, seed):
  (n, h, w, cin, cout, kh, kw, stride, padding, dilation, g, wg, with_mask, kind,
   scale) = spec
  rng = np.random.default_rng(seed)
  (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
  ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
  wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
  x = _f16_exact(rng.normal(size=(n, cin, h, w)))
  off = _f16_exact(_make_offsets(rng, kind, scale, n, g, kh, kw, ho, wo, h, w, stride, padding,
                                 dilation)).reshape(n, 2 * g * kh * kw, ho, wo)
  weight = _f16_exact(rng.normal(size=(cout, cin // wg, kh, kw)) * 0.5)
  mask = _f16_exact(rng.uniform(0, 1.5, size=(n, g * kh * kw, ho, wo))) if with_mask else None
  grad_out = _f16_exact(rng.normal(size=(n, cout, ho, wo)))

  tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True)
             for a in (x, off, weight)]
  t_mask = None if mask is None else torch.tensor(mask, dtype=torch.float64, requires_grad=True)
  # torchvision infers the weight groups from weight.shape[1] and the offset groups from the
  # offset channels, as our op does.
  out = deform_conv2d(tensors[0], tensors[1], tensors[2], stride=(sh, sw), padding=(ph, pw),
                      dilation=(dh, dw), mask=t_mask)
  wrt = tensors + ([t_mask] if t_mask is not None else [])
  grads = torch.autograd.grad(out, wrt, torch.tensor(grad_out))
  record = {
      'input': x.astype(np.float16), 'offset': off.astype(np.float16),
      'weight': weight.astype(np.float16), 'grad_output': grad_out.astype(np.float16),
      'output': out.detach().numpy().astype(np.float32),
      'grad_input': grads[0].numpy().astype(np.float32),
      'grad_offset': grads[1].numpy().astype(np.float32),
      'grad_weight': grads[2].numpy().astype(np.float32),
      'stride': np.array([sh, sw]), 'padding': np.array([ph, pw]),
      'dilation': np.array([dh, dw]), 'weight_groups': np.array(wg),
      'versions': np.array(f'torch {torch.__version__}, torchvision {torchvision.__version__}'),
  }
  if mask is not None:
    record['mask'] = mask.astype(np.float16)
    record['grad_mask'] = grads[3].numpy().astype(np.float32)
  return record


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out_dir', type=pathlib.Path, default=OUT_DIR)
  args = parser.parse_args()
  args.out_dir.mkdir(parents=True, exist_ok=True)
  for seed, (name, spec) in enumerate(sorted(CASES.items())):
    record = make_case(name, spec, seed)
    path = args.out_dir / f'{name}.npz'
    np.savez_compressed(path, **record)
    print(f'{path}: output {record["output"].shape}, {path.stat().st_size / 1024:.0f} KiB')


if __name__ == '__main__':
  main()
