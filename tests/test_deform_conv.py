"""The deformable convolution against torchvision (golden files and live), lax.conv and itself."""

from __future__ import annotations

import functools
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from posewarper_jax.models.layers import DeformConv, identity_kernel_init
from posewarper_jax.ops import deform_conv2d
from tests.numerics import assert_close_to_scale

GOLDEN_DIR = pathlib.Path(__file__).parent / 'golden' / 'deform_conv'
GOLDEN_FILES = sorted(GOLDEN_DIR.glob('*.npz'))


# torchvision's layouts -> ours.
def _nchw_to_nhwc(a):
  return np.transpose(a, (0, 2, 3, 1))


def _oihw_to_hwio(a):
  return np.transpose(a, (2, 3, 1, 0))


def _assert_close(actual, expected, name, rtol=2e-5):
  assert_close_to_scale(actual, expected, rtol, name, floor=1.0)


def _golden_args(g):
  x = jnp.asarray(_nchw_to_nhwc(g['input']), jnp.float32)
  off = jnp.asarray(_nchw_to_nhwc(g['offset']), jnp.float32)
  kernel = jnp.asarray(_oihw_to_hwio(g['weight']), jnp.float32)
  mask = jnp.asarray(_nchw_to_nhwc(g['mask']), jnp.float32) if 'mask' in g else None
  conv = dict(strides=tuple(g['stride'].tolist()), padding=tuple(g['padding'].tolist()),
              dilation=tuple(g['dilation'].tolist()),
              feature_group_count=int(g['weight_groups']))
  return x, off, kernel, mask, conv


def test_golden_files_are_there():
  # The parametrized test below would silently run zero cases without them.
  assert len(GOLDEN_FILES) >= 8, f'golden files missing in {GOLDEN_DIR}'


@pytest.mark.parametrize('path', GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_matches_torchvision_golden(path):
  g = dict(np.load(path))
  x, off, kernel, mask, conv = _golden_args(g)

  @jax.jit
  def run(x, off, kernel, mask, gout):
    out, vjp = jax.vjp(lambda *a: deform_conv2d(*a, **conv), x, off, kernel, mask)
    return out, vjp(gout)

  gout = jnp.asarray(_nchw_to_nhwc(g['grad_output']), jnp.float32)
  out, (gx, goff, gk, gmask) = run(x, off, kernel, mask, gout)
  _assert_close(out, _nchw_to_nhwc(g['output']), 'output')
  _assert_close(gx, _nchw_to_nhwc(g['grad_input']), 'grad inputs')
  _assert_close(goff, _nchw_to_nhwc(g['grad_offset']), 'grad offsets')
  _assert_close(gk, _oihw_to_hwio(g['grad_weight']), 'grad kernel')
  if mask is not None:
    _assert_close(gmask, _nchw_to_nhwc(g['grad_mask']), 'grad mask')


def _pair(v):
  return (v, v) if isinstance(v, int) else tuple(v)


def _random_case(rng, n=2, h=9, w=8, cin=6, cout=4, kh=3, kw=3, strides=1, padding=1,
                 dilation=1, groups=3, feature_groups=1, with_mask=True, offset_scale=2.0,
                 dtype=np.float32):
  (sh, sw), (ph, pw), (dh, dw) = _pair(strides), _pair(padding), _pair(dilation)
  ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
  wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
  x = rng.normal(size=(n, h, w, cin)).astype(dtype)
  off = (rng.normal(size=(n, ho, wo, 2 * groups * kh * kw)) * offset_scale).astype(dtype)
  kernel = rng.normal(size=(kh, kw, cin // feature_groups, cout)).astype(dtype)
  mask = rng.uniform(0, 1, size=(n, ho, wo, groups * kh * kw)).astype(dtype) if with_mask else None
  conv = dict(strides=strides, padding=padding, dilation=dilation,
              feature_group_count=feature_groups)
  return x, off, kernel, mask, conv


LIVE_CASES = {
    'posewarper_dil6': dict(n=2, h=20, w=15, cin=17, cout=17, padding=6, dilation=6, groups=17,
                            with_mask=False, offset_scale=4.0),
    'stride2_k3x2_groups': dict(n=3, h=11, w=10, cin=6, cout=4, kw=2, strides=2, padding=(1, 0),
                                groups=3, feature_groups=2),
    'far_dilated': dict(n=1, h=12, w=16, cin=4, cout=2, padding=0, dilation=(3, 5), groups=1,
                        offset_scale=20.0),
}


@pytest.mark.parametrize('name', sorted(LIVE_CASES))
def test_matches_torchvision_live(name):
  torch = pytest.importorskip('torch')
  tv_ops = pytest.importorskip('torchvision.ops')
  rng = np.random.default_rng(7)
  x, off, kernel, mask, conv = _random_case(rng, **LIVE_CASES[name])
  gout = rng.normal(size=deform_conv2d(x, off, kernel, mask, **conv).shape).astype(np.float32)

  def to_torch(a, perm):
    return torch.tensor(np.transpose(a, perm).astype(np.float64), requires_grad=True)

  tx, toff, tmask = (None if a is None else to_torch(a, (0, 3, 1, 2)) for a in (x, off, mask))
  tk = to_torch(kernel, (3, 2, 0, 1))
  t_out = tv_ops.deform_conv2d(tx, toff, tk, mask=tmask, stride=conv['strides'],
                               padding=conv['padding'], dilation=conv['dilation'])
  wrt = [tx, toff, tk] + ([tmask] if tmask is not None else [])
  t_grads = torch.autograd.grad(t_out, wrt, torch.tensor(np.transpose(gout, (0, 3, 1, 2))))

  out, vjp = jax.vjp(lambda *a: deform_conv2d(*a, **conv), x, off, kernel, mask)
  grads = vjp(jnp.asarray(gout))
  _assert_close(out, np.transpose(t_out.detach().numpy(), (0, 2, 3, 1)), 'output')
  names = ['inputs', 'offsets', 'kernel', 'mask'][:len(t_grads)]
  for ours, theirs, name in zip(grads, t_grads, names, strict=False):
    perm = (2, 3, 1, 0) if name == 'kernel' else (0, 2, 3, 1)
    _assert_close(ours, np.transpose(theirs.numpy(), perm), f'grad {name}')


def test_check_grads_float64():
  # Finite differences need float64 (the op then samples in float64) and sample points away
  # from integers, where the bilinear interpolation has kinks.
  with jax.enable_x64(True):
    rng = np.random.default_rng(3)
    x, off, kernel, mask, conv = _random_case(rng, n=1, h=6, w=5, cin=4, cout=3, groups=2,
                                              dtype=np.float64)
    off = np.floor(off) + rng.uniform(0.2, 0.8, size=off.shape)
    f = functools.partial(deform_conv2d, **conv)
    check_grads(f, (x, off, kernel, mask), order=1, modes=['rev'], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize('conv', [
    dict(strides=1, padding=1, dilation=1, feature_group_count=1),
    dict(strides=2, padding=(2, 1), dilation=(2, 3), feature_group_count=2),
    dict(strides=(1, 2), padding=0, dilation=4, feature_group_count=6),
])
def test_zero_offsets_equal_regular_conv(conv):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 13, 11, 6)).astype(np.float32)
  kernel = rng.normal(size=(3, 3, 6 // conv['feature_group_count'], 6)).astype(np.float32)
  ref = lax.conv_general_dilated(
      x, kernel, window_strides=_pair(conv['strides']),
      padding=[(p, p) for p in _pair(conv['padding'])], rhs_dilation=_pair(conv['dilation']),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=conv['feature_group_count'], precision=lax.Precision.HIGHEST)
  off = np.zeros(ref.shape[:3] + (2 * 3 * 9,), np.float32)  # 3 offset groups
  _assert_close(deform_conv2d(x, off, kernel, **conv), ref, 'zero offsets vs conv')


def test_integer_offsets_shift_the_input():
  # A whole-pixel offset (dy, dx) = (2, -1) on every tap moves each window by (2, -1): the same
  # as a regular conv whose windows start at (oy + 1, ox - 2) of the zero-extended input.
  rng = np.random.default_rng(2)
  x = rng.normal(size=(1, 10, 9, 2)).astype(np.float32)
  kernel = rng.normal(size=(3, 3, 2, 3)).astype(np.float32)
  off = np.tile(np.array([2.0, -1.0], np.float32), (1, 10, 9, 9))
  extended = np.pad(x, ((0, 0), (5, 5), (5, 5), (0, 0)))
  windows = extended[:, 5 + 1:5 + 1 + 10 + 2, 5 - 2:5 - 2 + 9 + 2]
  ref = lax.conv_general_dilated(windows, kernel, (1, 1), 'VALID',
                                 dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                 precision=lax.Precision.HIGHEST)
  _assert_close(deform_conv2d(x, off, kernel, padding=1), ref, 'integer shift')


def test_vmap_jit_and_grad_compose():
  rng = np.random.default_rng(4)
  cases = [_random_case(rng, n=2, groups=2) for _ in range(3)]
  conv = cases[0][4]
  stack = [np.stack([c[i] for c in cases]) for i in range(4)]
  f = functools.partial(deform_conv2d, **conv)
  batched = jax.jit(jax.vmap(f))(*stack)
  for i, c in enumerate(cases):
    _assert_close(batched[i], f(*c[:4]), f'vmap item {i}')

  loss = lambda *a: jnp.sum(jnp.sin(f(*a)))  # noqa: E731
  grads = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1, 2, 3))))(*stack)
  for i, c in enumerate(cases):
    for got, want in zip(grads, jax.grad(loss, argnums=(0, 1, 2, 3))(*c[:4]), strict=True):
      _assert_close(got[i], want, f'vmap grad item {i}')


def test_bfloat16_inputs_sample_in_float32():
  rng = np.random.default_rng(5)
  x, off, kernel, mask, conv = _random_case(rng, groups=3)
  ref = deform_conv2d(x, off, kernel, mask, **conv)
  as_bf16 = [jnp.asarray(a, jnp.bfloat16) for a in (x, off, kernel, mask)]
  out = jax.jit(functools.partial(deform_conv2d, **conv))(*as_bf16)
  assert out.dtype == jnp.bfloat16
  # Only the rounding of the arguments and of the matmul operands to bfloat16 remains.
  err = np.abs(np.asarray(out, np.float32) - ref).max() / np.abs(ref).max()
  assert err < 0.03, err
  grads = jax.grad(lambda *a: jnp.sum(deform_conv2d(*a, **conv).astype(jnp.float32)),
                   argnums=(0, 1, 2, 3))(*as_bf16)
  assert [g.dtype for g in grads] == [jnp.bfloat16] * 4
  assert all(bool(jnp.isfinite(g.astype(jnp.float32)).all()) for g in grads)


def _compiled_backward(argnums):
  rng = np.random.default_rng(6)
  x, off, kernel, _, conv = _random_case(rng, groups=6, with_mask=False)
  loss = lambda *a: jnp.sum(deform_conv2d(*a, **conv) ** 2)  # noqa: E731
  return jax.jit(jax.grad(loss, argnums=argnums)).lower(x, off, kernel).compile().as_text()


def test_no_scatter_when_inputs_need_no_gradient():
  # PoseWarper's case: the inputs are a frozen backbone's heatmaps.
  assert not re.search(r'\bscatter', _compiled_backward((1, 2))), 'scatter in frozen backward'
  # ... and the check can see one when the inputs are differentiated.
  assert re.search(r'\bscatter', _compiled_backward((0, 1, 2)))


@pytest.mark.parametrize('kwargs, message', [
    (dict(x=(2, 8, 8)), 'inputs must be'),
    (dict(off=(2, 8, 8, 18, 1)), 'offsets must be'),
    (dict(kernel=(3, 3, 6)), 'kernel must be'),
    (dict(off=(2, 8, 8, 17)), r'offset channels \(17\) must be a multiple of 2 \* kh \* kw = 18'),
    (dict(off=(2, 8, 8, 72)), r'not divisible by the 4 offset groups'),
    (dict(off=(2, 7, 8, 18)), r'offsets must be \[N, Ho, Wo, ...\] = \[2, 8, 8, ...\]'),
    (dict(kernel=(3, 3, 4, 4)), r'kernel input channels \(4\) must equal'),
    (dict(kernel=(3, 3, 3, 5), fgc=2), r'kernel output channels \(5\) are not divisible'),
    (dict(fgc=4), r'input channels \(6\) are not divisible by feature_group_count \(4\)'),
    (dict(mask=(2, 8, 8, 10)), r'mask must be \[N, Ho, Wo, G \* kh \* kw\]'),
    (dict(strides=0), 'strides must be >= 1'),
    (dict(padding=(1, 2, 3)), 'padding must be an int or a pair'),
    (dict(dilation=20), 'output would be empty'),
])
def test_bad_arguments_name_the_mismatch(kwargs, message):
  shapes = dict(x=(2, 8, 8, 6), off=(2, 8, 8, 18), kernel=(3, 3, 6, 4), mask=None)
  shapes.update({k: v for k, v in kwargs.items() if k in shapes})
  arrays = {k: None if v is None else jnp.zeros(v) for k, v in shapes.items()}
  with pytest.raises(ValueError, match=message):
    deform_conv2d(arrays['x'], arrays['off'], arrays['kernel'], arrays['mask'],
                  strides=kwargs.get('strides', 1), padding=kwargs.get('padding', 1),
                  dilation=kwargs.get('dilation', 1), feature_group_count=kwargs.get('fgc', 1))


def test_module_identity_init_returns_its_input():
  x = jax.random.normal(jax.random.key(0), (2, 12, 9, 17))
  offsets = jnp.zeros((2, 12, 9, 2 * 17 * 9))
  layer = DeformConv(17, padding=3, dilation=3, kernel_init=identity_kernel_init)
  variables = layer.init(jax.random.key(1), x, offsets)
  assert jax.tree.map(jnp.shape, variables) == {'params': {'kernel': (3, 3, 17, 17)}}
  np.testing.assert_array_equal(layer.apply(variables, x, offsets), x)
  # Non-zero offsets move the samples: the output changes.
  moved = layer.apply(variables, x, offsets + 0.5)
  assert not np.allclose(moved, x)


def test_module_matches_the_op_with_bias_and_mask():
  rng = np.random.default_rng(8)
  x, off, kernel, mask, _ = _random_case(rng, groups=3, strides=2, padding=1)
  layer = DeformConv(4, strides=2, padding=1, use_bias=True,
                     bias_init=jax.nn.initializers.constant(0.5))
  variables = layer.init(jax.random.key(0), x, off, mask)
  variables = {'params': {'kernel': jnp.asarray(kernel), 'bias': variables['params']['bias']}}
  want = deform_conv2d(x, off, kernel, mask, strides=2, padding=1) + 0.5
  _assert_close(layer.apply(variables, x, off, mask), want, 'module')


def test_identity_init_rejects_even_kernels():
  with pytest.raises(ValueError, match='odd kernel'):
    identity_kernel_init(jax.random.key(0), (2, 3, 4, 4))
