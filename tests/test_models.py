"""HRNet and PoseWarper: sizes of the paper's network (by eval_shape), behaviour of a tiny one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import traverse_util

from configs.posewarper import get_config
from posewarper_jax.models import (
    AGGREGATION_WEIGHTS,
    PoseWarper,
    build_posewarper,
    create_model,
    init_variables,
    initializer,
    num_params,
)
from tests.helpers import jitted_apply
from tests.numerics import assert_close_to_scale

# The tiny network of the PyTorch golden file (tests/golden/make_posewarper_golden.py): four
# branches (so fuse chains of three stride-2 convs), two modules in a stage, two dilations.
TINY_BACKBONE = dict(width=4, stage_modules=(1, 2, 2), stage_blocks=(1, 1, 2), stem_features=8,
                     layer1_planes=8, layer1_blocks=1)
TINY_HEAD = dict(num_blocks=2, features=8, dilations=(1, 3))
TINY_IMAGE = (128, 96)


def _shapes(model, image_size, batch=1):
  x = jax.ShapeDtypeStruct((batch, *image_size, 3), jnp.float32)
  return jax.eval_shape(lambda a: model.init(jax.random.key(0), a, a), x)


@pytest.fixture(scope='module')
def w48():
  model = create_model(get_config())
  return model, _shapes(model, (384, 288))


def _he_scaled(params):
  """Conv kernels rescaled from HRNet's N(0, 0.001) to He's N(0, 2 / fan_in), so that heatmaps
  in inference mode are of order one (with 0.001 they vanish, ~1e-12, and every comparison
  would be between rounding errors). Zero offset convs and identity kernels stay as they are."""

  def scale(path, x):
    names = [p.key for p in path]
    if names[-1] != 'kernel' or names[-2].startswith(('offsets', 'deform_conv')):
      return x
    return x * (np.sqrt(2.0 / np.prod(x.shape[:-1])) / 0.001)

  return jax.tree_util.tree_map_with_path(scale, params)


@pytest.fixture(scope='module')
def tiny():
  model = build_posewarper(TINY_BACKBONE, TINY_HEAD)
  variables = init_variables(model, 0, TINY_IMAGE)
  return model, {**variables, 'params': _he_scaled(variables['params'])}


_apply = jitted_apply


def _close(actual, expected, rtol=1e-5):
  # Convolutions of different batch sizes may sum in different orders.
  assert_close_to_scale(actual, expected, rtol)


def _frames(seed, *shape):
  return jax.random.normal(jax.random.key(seed), (*shape, *TINY_IMAGE, 3))


def _sum_under(tree, prefix):
  flat = traverse_util.flatten_dict(tree)
  return sum(int(v.size) for k, v in flat.items() if k[0].startswith(prefix))


def test_w48_parameter_counts(w48):
  _, variables = w48
  params = variables['params']
  assert set(params) == {'backbone', 'warper'} == set(variables['batch_stats'])
  assert num_params(params['backbone']) == 63_595_745  # HRNet-W48 + final_layer (spec 1.1)
  head = params['warper']
  assert num_params(head) == 7_558_605
  assert _sum_under(head, 'offset_feats_') == 5_783_040
  assert _sum_under(head, 'offsets') == 1_762_560
  assert _sum_under(head, 'deform_conv') == 13_005
  assert num_params(params) == 71_154_350
  # Batch statistics are counted apart: a mean and a variance for every BatchNorm scale.
  flat = traverse_util.flatten_dict(params)
  bn_channels = sum(v.size for k, v in flat.items() if k[-1] == 'scale')
  assert num_params(variables['batch_stats']) == 2 * bn_channels > 0


def test_w48_output_shapes(w48):
  model, variables = w48
  crops = jax.ShapeDtypeStruct((2, 384, 288, 3), jnp.float32)
  maps = jax.ShapeDtypeStruct((2, 96, 72, 17), jnp.float32)
  expected = jax.ShapeDtypeStruct((2, 96, 72, 17), jnp.float32)
  assert jax.eval_shape(lambda v, a, b: model.apply(v, a, b), variables, crops, crops) == expected
  assert jax.eval_shape(lambda v, a: model.apply(v, a, method=PoseWarper.single_frame),
                        variables, crops) == expected
  stack = jax.ShapeDtypeStruct((2, 5, 384, 288, 3), jnp.float32)
  assert jax.eval_shape(lambda v, f: model.apply(v, f, method=PoseWarper.aggregate),
                        variables, stack) == expected
  assert jax.eval_shape(lambda v, a, b, h: model.apply(v, a, b, h, method=PoseWarper.propagate),
                        variables, crops, crops, maps) == expected
  heatmaps, features = jax.eval_shape(
      lambda v, a: model.backbone.apply({k: c['backbone'] for k, c in v.items()}, a,
                                        return_features=True), variables, crops)
  assert heatmaps.shape == (2, 96, 72, 17) and features.shape == (2, 96, 72, 48)


def test_w32_variant():
  model = create_model(get_config('w32'))
  variables = _shapes(model, (256, 192))
  backbone = variables['params']['backbone']
  assert backbone['final_layer']['kernel'].shape == (1, 1, 32, 17)
  assert backbone['stage4_0']['branches_3_0']['conv1']['kernel'].shape == (3, 3, 256, 256)
  assert num_params(variables['params']['warper']) == 7_558_605


def test_fresh_head_returns_the_warped_heatmaps(tiny):
  """Spec 1.5: identity deformable kernels and zero offsets reproduce H_B."""
  model, variables = tiny
  a, b = _frames(1, 2), _frames(2, 2)
  h_b = _apply(model, variables, b, method=PoseWarper.single_frame)
  pair = _apply(model, variables, a, b)
  _close(pair, h_b)
  # On maps of ordinary magnitude, through the head alone.
  maps = jax.random.uniform(jax.random.key(3), (2, 32, 24, 17))
  d = jax.random.normal(jax.random.key(4), maps.shape)
  warped = _apply(model, variables, d, jnp.zeros_like(d), maps, method=PoseWarper.warp)
  np.testing.assert_allclose(warped, maps, rtol=1e-6, atol=0)
  propagated = _apply(model, variables, a, b, maps, method=PoseWarper.propagate)
  np.testing.assert_allclose(propagated, maps, rtol=1e-6, atol=0)


def test_aggregation_of_a_fresh_head_is_the_weighted_sum(tiny):
  model, variables = tiny
  frames = _frames(5, 2, 5)
  agg = _apply(model, variables, frames, method=PoseWarper.aggregate)
  single = _apply(model, variables, frames.reshape(10, *TINY_IMAGE, 3),
                       method=PoseWarper.single_frame).reshape(2, 5, 32, 24, 17)
  expected = np.einsum('t,nthwj->nhwj', np.asarray(AGGREGATION_WEIGHTS), single)
  _close(agg, expected)
  # Other weights, other T.
  agg3 = _apply(model, variables, frames[:, :3], (0.5, 0.5, 0.0), method=PoseWarper.aggregate)
  _close(agg3, 0.5 * (single[:, 0] + single[:, 1]))


def test_trained_head_moves_heatmaps(tiny):
  """With non-zero offset convs the head reads the difference: the warp is no longer identity."""
  model, variables = tiny
  params = jax.tree.map(lambda x: x, variables['params'])
  params['warper']['offsets1']['kernel'] = 0.5 * jax.random.normal(
      jax.random.key(6), params['warper']['offsets1']['kernel'].shape)
  maps = jax.random.uniform(jax.random.key(3), (1, 32, 24, 17))
  d = jax.random.normal(jax.random.key(4), maps.shape)
  moved = _apply(model, {**variables, 'params': params}, d, jnp.zeros_like(d), maps,
                      method=PoseWarper.warp)
  assert float(jnp.abs(moved - maps).max()) > 0.05


def test_frozen_backbone_keeps_its_statistics(tiny):
  model, variables = tiny
  a, b = _frames(1, 2), _frames(2, 2)
  _, updates = _apply(model, variables, a, b, train=True, backbone_train=False,
                           mutable='batch_stats')
  new = updates['batch_stats']
  for old, fresh in zip(jax.tree.leaves(variables['batch_stats']['backbone']),
                        jax.tree.leaves(new['backbone']), strict=True):
    np.testing.assert_array_equal(old, fresh)
  changed = [not np.array_equal(o, f) for o, f in zip(
      jax.tree.leaves(variables['batch_stats']['warper']), jax.tree.leaves(new['warper']),
      strict=True)]
  assert all(changed)
  # Training mode everywhere updates the backbone's statistics too.
  _, updates = _apply(model, variables, a, b, train=True, mutable='batch_stats')
  assert not np.array_equal(variables['batch_stats']['backbone']['bn1']['mean'],
                            updates['batch_stats']['backbone']['bn1']['mean'])


def test_bfloat16_compute_keeps_float32_params(tiny):
  model, variables = tiny
  model16 = build_posewarper(TINY_BACKBONE, TINY_HEAD, dtype=jnp.bfloat16)
  a, b = _frames(1, 2), _frames(2, 2)
  # Batch statistics, so that activations stay of order one through the network.
  out32, _ = _apply(model, variables, a, b, train=True, mutable='batch_stats')
  out16, _ = _apply(model16, variables, a, b, train=True, mutable='batch_stats')
  assert out16.dtype == jnp.float32
  rel = float(jnp.linalg.norm(out16 - out32) / jnp.linalg.norm(out32))
  assert rel < 0.05, rel
  fresh = init_variables(model16, 0, TINY_IMAGE)
  assert {x.dtype for x in jax.tree.leaves(fresh)} == {jnp.dtype(jnp.float32)}


def test_bad_inputs_are_named(tiny):
  model, variables = tiny
  with pytest.raises(ValueError, match='divisible by 32'):
    _apply(model, variables, jnp.zeros((1, 100, 96, 3)), method=PoseWarper.single_frame)
  with pytest.raises(ValueError, match='frames_a .* frames_b'):
    _apply(model, variables, _frames(1, 2), _frames(1, 1))
  with pytest.raises(ValueError, match='T = 5'):
    _apply(model, variables, _frames(1, 2, 3), method=PoseWarper.aggregate)


def test_config_variants_and_errors():
  assert get_config().model.backbone.width == 48
  small = get_config('small,w32')
  assert small.model.backbone.width == 32 and small.image_size == (128, 96)
  with pytest.raises(ValueError, match="unknown variant 'w64'"):
    get_config('w64')
  config = get_config()
  config.model.backbone.widht = 32
  with pytest.raises(ValueError, match='config.model.backbone: unknown field.*widht'):
    create_model(config)
  config = get_config()
  config.model.head.dilations = (3, 0)
  with pytest.raises(ValueError, match='config.model.head.dilations'):
    create_model(config)
  config = get_config()
  config.model.dtype = 'float16'
  with pytest.raises(ValueError, match='config.model.dtype'):
    create_model(config)


def test_config_fields_are_overridable():
  """Overridden fields shape the network that is built: its parameters, not only its fields."""
  config = get_config()
  assert isinstance(config, ml_collections.ConfigDict)
  config.model.head.update(num_blocks=3, dilations=(3, 6))
  config.model.backbone.width = 32
  shapes = _shapes(create_model(config), TINY_IMAGE)['params']
  warper = shapes['warper']
  assert sorted(k for k in warper if k.startswith('offset_feats_')) == [
      f'offset_feats_{n}' for n in range(3)]
  assert sorted(k for k in warper if k.startswith(('offsets', 'deform_conv'))) == [
      'deform_conv1', 'deform_conv2', 'offsets1', 'offsets2']
  # The highest-resolution branch of every stage is `width` wide, and the heatmaps come from it.
  widths = {v.shape[-1] for k, v in traverse_util.flatten_dict(shapes).items()
            if k[-1] == 'kernel' and any(n.startswith('branches_0_') for n in k)}
  assert widths == {32}, widths
  assert shapes['backbone']['final_layer']['kernel'].shape == (1, 1, 32, 17)


def test_remat_head_gives_the_same_gradients(tiny):
  model, variables = tiny
  remat = build_posewarper(TINY_BACKBONE, {**TINY_HEAD, 'remat': True})
  a, b = _frames(1, 2), _frames(2, 2)
  targets = jax.random.uniform(jax.random.key(7), (2, 32, 24, 17))

  def grads(m):
    def loss(head):
      params = {**variables['params'], 'warper': head}
      out, _ = m.apply({**variables, 'params': params}, a, b, train=True, backbone_train=False,
                       mutable='batch_stats')
      return jnp.mean(jnp.square(out - targets))
    return jax.jit(jax.grad(loss))(variables['params']['warper'])

  for x, y in zip(jax.tree.leaves(grads(model)), jax.tree.leaves(grads(remat)), strict=True):
    _close(x, y, rtol=1e-4)


def test_an_equal_network_is_initialized_by_the_first_ones_compilation(tiny):
  """init_variables traces and compiles model.init once per network and crop size in a process
  (the grid's runs initialize the same network again and again); the seed still decides the
  weights. The network is the `tiny` fixture's, so that its compilation (seconds: one threefry
  hash per parameter) serves this test too."""
  del tiny
  build = lambda: build_posewarper(TINY_BACKBONE, TINY_HEAD)
  first = init_variables(build(), 0, TINY_IMAGE)
  before = initializer.cache_info()
  again = init_variables(build(), 0, TINY_IMAGE)  # another module object, equal to the first
  other_seed = init_variables(build(), 1, TINY_IMAGE)
  after = initializer.cache_info()
  assert (after.hits - before.hits, after.misses - before.misses) == (2, 0)
  jax.tree.map(np.testing.assert_array_equal, again, first)
  kernels = lambda variables: [x for path, x in traverse_util.flatten_dict(
      variables['params']['backbone']).items() if path[-1] == 'kernel']  # N(0, 0.001) draws
  assert not any(np.array_equal(a, b) for a, b in zip(kernels(other_seed), kernels(first),
                                                      strict=True))
