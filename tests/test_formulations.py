"""The speed rewrites compute the same function: each against its plain formulation, forward and
every gradient (parameters and input), on the network's own structure.

docs/benchmarks.md ("Where the step's time goes") says why each rewrite exists and what it
saved.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from posewarper_jax.models import hrnet
from posewarper_jax.ops import conv
from tests.numerics import assert_close_to_scale

# Every block kind and fuse path, small: a Bottleneck with projection, BasicBlocks, the
# transitions, and a two-branch module (upsampling and a stride-2 conv into the fuse sums).
_NETWORK = dict(width=8, stage_modules=(1,), stage_blocks=(2,), stem_features=16,
                layer1_planes=8, layer1_blocks=1, num_joints=5)


def _loss_and_grads(model, variables, images):
  def loss(params, images):
    heatmaps, updates = model.apply({'params': params, 'batch_stats': variables['batch_stats']},
                                    images, train=True, mutable=['batch_stats'])
    return jnp.sum(jnp.sin(heatmaps)), updates

  (value, updates), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
      variables['params'], images)
  return value, updates, grads


def _barriers(model, variables, images) -> int:
  text = jax.jit(lambda v, x: model.apply(v, x)).lower(variables, images).as_text()
  return text.count('stablehlo.optimization_barrier')


def test_materialized_block_outputs_are_the_same_function(monkeypatch):
  """hrnet.materialize (an optimization barrier at every block output and fuse sum) against the
  network without it: the loss, the BatchNorm statistics and every gradient equal to float32
  rounding. Not bitwise: other fusions add the reductions (BatchNorm statistics, bias
  gradients) in another order, 7e-6 of a tensor's scale at most here."""
  assert jax.default_backend() == 'cpu'
  model = hrnet.HRNet(**_NETWORK)
  images = jax.random.normal(jax.random.key(0), (2, 32, 24, 3))
  # Random values of the variables' shapes (no init to compile): BatchNorm scales, biases and
  # statistics far from 1 and 0, so the recomputed chains are not identities.
  rng = np.random.default_rng(2)
  shapes = jax.eval_shape(model.init, jax.random.key(1), images)
  variables = jax.tree_util.tree_map_with_path(
      lambda path, s: (0.5 + rng.uniform(size=s.shape) if jax.tree_util.keystr(path).endswith(
          "['var']") else 0.1 * rng.normal(size=s.shape)).astype(s.dtype), shapes)
  # One Bottleneck, two BasicBlocks on each of the two branches, one fuse sum (the last module
  # fuses branch 0 only).
  assert _barriers(model, variables, images) == 1 + 2 * 2 + 1
  fast = _loss_and_grads(model, variables, images)

  monkeypatch.setattr(hrnet, 'materialize', lambda x: x)
  assert _barriers(model, variables, images) == 0
  plain = _loss_and_grads(model, variables, images)
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(fast)[0],
                          jax.tree_util.tree_leaves(plain), strict=True):
    assert_close_to_scale(a, b, 2e-5, jax.tree_util.keystr(path))


@pytest.mark.parametrize('backend, barrier', [('cpu', True), ('gpu', False), ('tpu', False)])
def test_materialize_is_a_barrier_on_the_cpu_only(monkeypatch, backend, barrier):
  monkeypatch.setattr(jax, 'default_backend', lambda: backend)
  text = jax.jit(lambda x: hrnet.materialize(x)).lower(jnp.ones((2, 3))).as_text()
  assert ('optimization_barrier' in text) == barrier


@pytest.mark.parametrize('form', tuple(conv.KERNEL_GRADIENTS))
@pytest.mark.parametrize('cin, cout, dilation, size, batch', [
    (128, 306, 24, (48, 72), 1),  # W48's offsets5 (padding 24 of 72 columns)
    (128, 306, 3, (24, 18), 2),
    (32, 306, 12, (32, 24), 4),   # the quick start's head
    (17, 128, 1, (16, 12), 3),
    (48, 48, 1, (96, 72), 2),     # W48's first branch
    (24, 40, (2, 3), (20, 14), 3),  # unequal dilations
])
def test_each_kernel_gradient_form_gives_the_convolutions_gradients(cin, cout, dilation, size,
                                                                    batch, form):
  """ops.conv.conv_general_dilated (the kernel gradient as per-tap products, or as a 1-D
  convolution over the rows) against lax.conv_general_dilated: the output, the input gradient
  and the kernel gradient, to float32 rounding (they add the pixels in another order)."""
  keys = jax.random.split(jax.random.key(cin + cout), 3)
  x = jax.random.normal(keys[0], (batch, *size, cin))
  kernel = 0.05 * jax.random.normal(keys[1], (3, 3, cin, cout))
  g = jax.random.normal(keys[2], (batch, *size, cout))
  dilation = dilation if isinstance(dilation, tuple) else (dilation, dilation)
  pad = ((dilation[0], dilation[0]), (dilation[1], dilation[1]))
  results = []
  for fn in (functools.partial(conv.conv_general_dilated, kernel_gradient=form),
             lax.conv_general_dilated):
    f = lambda x, k, fn=fn: fn(x, k, (1, 1), pad, rhs_dilation=dilation,
                               dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    out, vjp = jax.vjp(jax.jit(f), x, kernel)
    results.append((out, *vjp(g)))
  for name, a, b in zip(('output', 'input gradient', 'kernel gradient'), *results, strict=True):
    assert_close_to_scale(a, b, 1e-5, name)


def test_tap_products_are_used_where_they_apply(monkeypatch):
  """The rewrite applies to stride-1 NHWC convolutions on the CPU; anything else is lax's."""
  x, kernel = jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 4, 5))

  def uses_tap_products(strides, backend='cpu', kernel=kernel):
    monkeypatch.setattr(jax, 'default_backend', lambda: backend)
    jaxpr = jax.make_jaxpr(lambda x, k: conv.conv_general_dilated(
        x, k, strides, ((1, 1), (1, 1)), dimension_numbers=('NHWC', 'HWIO', 'NHWC')))(x, kernel)
    return 'custom_vjp' in str(jaxpr)

  assert uses_tap_products((1, 1))
  assert not uses_tap_products((1, 1), kernel=jnp.ones((1, 1, 4, 5)))  # one product already
  assert not uses_tap_products((2, 2))
  assert not uses_tap_products((1, 1), backend='gpu')
  with pytest.raises(ValueError, match="kernel_gradient must be one of .*'columns'"):
    conv.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                              dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                              kernel_gradient='columns')


@pytest.mark.parametrize('cin, cout, size, stride, dilation, batch', [
    (48, 48, (96, 72), 1, 1, 2),   # W48's first branch
    (384, 384, (12, 9), 1, 1, 2),  # its last, where oneDNN's kernel gradient is slower
    (16, 32, (32, 24), 2, 1, 4),   # a transition down (input gradient: base dilation)
    (32, 306, (32, 24), 1, 12, 2),  # the quick start's dilated offset convolution
    (64, 17, (24, 18), 1, 1, 3),   # the final 1x1 layer's shape, as a 3x3
])
def test_the_cpu_compiler_options_compute_the_same_convolutions(cin, cout, size, stride,
                                                               dilation, batch):
  """backend.jit (XLA:CPU's convolutions on oneDNN, backend.CPU_COMPILER_OPTIONS) against jax.jit
  with XLA's defaults: the output, the input gradient and the kernel gradient, to float32
  rounding (another library adds the products in another order)."""
  from posewarper_jax.ops import backend

  keys = jax.random.split(jax.random.key(cin + cout + stride + dilation), 3)
  x = jax.random.normal(keys[0], (batch, *size, cin))
  kernel = 0.05 * jax.random.normal(keys[1], (3, 3, cin, cout))
  out_size = tuple(s // stride for s in size)
  g = jax.random.normal(keys[2], (batch, *out_size, cout))

  def f(x, k, g):
    conv_fn = lambda x, k: lax.conv_general_dilated(
        x, k, (stride, stride), ((dilation, dilation), (dilation, dilation)),
        rhs_dilation=(dilation, dilation), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    out, vjp = jax.vjp(conv_fn, x, k)
    return (out, *vjp(g))

  chosen = jax.jit(f).lower(x, kernel, g).compile(compiler_options=backend.CPU_COMPILER_OPTIONS)
  assert 'onednn' in chosen.as_text()  # the library changed
  with_options, default = chosen(x, kernel, g), jax.jit(f)(x, kernel, g)
  for name, a, b in zip(('output', 'input gradient', 'kernel gradient'), with_options, default,
                        strict=True):
    assert_close_to_scale(a, b, 1e-5, name)


def test_the_compiler_options_are_the_cpus_only(monkeypatch):
  from posewarper_jax.ops import backend

  monkeypatch.delenv(backend.DEFAULTS_VARIABLE, raising=False)  # the suite's (conftest.py)
  assert backend.compiler_options('cpu') == backend.CPU_COMPILER_OPTIONS
  assert backend.compiler_options('gpu') == backend.compiler_options('tpu') == {}
  with backend.compiling_for('tpu'):
    assert backend.compiler_options() == {}
  f = backend.jit(lambda x, k: lax.conv_general_dilated(x, k, (1, 1), 'SAME'))
  x, k = jnp.ones((1, 4, 8, 8)), jnp.ones((4, 4, 3, 3))
  f(x, k)
  (compiled,) = f._compiled.values()
  assert 'onednn' in compiled.as_text()  # what a call compiles, run.py's way
  monkeypatch.setenv(backend.DEFAULTS_VARIABLE, 'default')
  assert backend.compiler_options('cpu') == {}
