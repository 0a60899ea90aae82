"""PyTorch checkpoints to Flax: the official W48 listing, mmpose names, and a PyTorch reference.

The reference is tests/golden/torch_posewarper.py (official module names, random weights and
batch statistics). Its outputs are committed in tests/golden/posewarper/tiny.npz, so the numeric
comparison runs without torch; with torch installed it also runs live on fresh weights.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re
import sys

import jax
import numpy as np
import pytest
from flax import traverse_util

from posewarper_jax import convert
from posewarper_jax.models import PoseWarper, build_posewarper, num_params
from tests.helpers import TINY, jitted_apply, load_script
from tests.numerics import assert_close_to_scale

GOLDEN = pathlib.Path(__file__).parent / 'golden'
# A copy of ../shared/reference/posewarper_w48_state_dict.txt: names and shapes of the official
# 2-frame W48 checkpoint.
LISTING = GOLDEN / 'posewarper_w48_state_dict.txt'
TINY_NPZ = GOLDEN / 'posewarper' / 'tiny.npz'


def _listing() -> dict[str, tuple[int, ...]]:
  shapes = {}
  for line in LISTING.read_text().splitlines():
    if line.strip() and not line.startswith('#'):
      m = re.fullmatch(r'(\S+) \(([\d, ]*)\)', line)
      shapes[m[1]] = tuple(int(d) for d in m[2].replace(',', ' ').split())
  return shapes


@functools.cache
def _random_w48() -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  return {name: (np.array(7, np.int64) if name.endswith('num_batches_tracked')
                 else rng.standard_normal(shape, dtype=np.float32))
          for name, shape in _listing().items()}


def _to_mmpose(name: str) -> str:
  m = re.match(r'(offsets|deform_conv)(\d)\.(.*)', name)
  if m:
    layer = {'offsets': 'offset_layers', 'deform_conv': 'deform_conv_layers'}[m[1]]
    return f'neck.{layer}.{int(m[2]) - 1}.{m[3]}'
  if name.startswith('final_layer.'):
    return 'neck.trans_layer.' + name[len('final_layer.'):]
  if name.startswith('offset_feats.'):
    return 'neck.' + name
  return 'backbone.' + name


def _check_filled(variables, state_dict):
  """Every Flax leaf of W48 holds its PyTorch tensor, in HWIO for kernels."""
  flat = traverse_util.flatten_dict(variables)
  assert num_params(variables['params']) == 71_154_350
  for (collection, _, *path), value in flat.items():
    leaf = convert.LEAF_NAMES[collection][path[-1]]
    source = state_dict[convert.torch_name((*path[:-1], leaf))]
    expected = source.transpose(2, 3, 1, 0) if path[-1] == 'kernel' else source
    np.testing.assert_array_equal(value, expected)


def test_torch_names():
  assert convert.torch_name(('stage3_1', 'fuse_layers_2_0_1_1', 'scale')) == (
      'stage3.1.fuse_layers.2.0.1.1.scale')
  assert convert.torch_name(('transition1_1_0_0', 'kernel')) == 'transition1.1.0.0.kernel'
  assert convert.torch_name(('offset_feats_0', 'downsample_1', 'bias')) == (
      'offset_feats.0.downsample.1.bias')
  assert convert.torch_name(('deform_conv5', 'weight')) == 'deform_conv5.weight'


def test_a_networks_shapes_are_traced_once_and_each_caller_gets_its_own():
  build = lambda: build_posewarper(TINY['backbone'], TINY['head'])
  first = convert.variable_shapes(build())
  before = convert._traced_shapes.cache_info()
  first['params'].clear()  # a caller's change stays in its own dicts
  again = convert.variable_shapes(build())  # an equal network
  after = convert._traced_shapes.cache_info()
  assert (after.hits - before.hits, after.misses - before.misses) == (1, 0)
  assert set(again['params']) == {'backbone', 'warper'}


def test_official_w48_listing_fills_every_leaf():
  state_dict = _random_w48()
  variables = convert.torch_to_flax(state_dict)
  _check_filled(variables, state_dict)
  assert convert.infer_architecture(state_dict) == {
      'backbone': dict(width=48, stage_modules=(1, 4, 3), stage_blocks=(4, 4, 4),
                       stem_features=64, layer1_planes=64, layer1_blocks=4),
      'head': dict(num_blocks=20, features=128, dilations=(3, 6, 12, 18, 24)),
      'num_joints': 17}


def test_mmpose_and_dataparallel_names():
  state_dict = _random_w48()
  mmpose = {_to_mmpose(n): v for n, v in state_dict.items()}
  _check_filled(convert.torch_to_flax(mmpose), state_dict)
  _check_filled(convert.torch_to_flax(mmpose, layout='mmpose'), state_dict)
  wrapped = {'module.' + n: v for n, v in state_dict.items()}
  _check_filled(convert.torch_to_flax(wrapped, layout='official'), state_dict)


def test_hrnet_only_checkpoint_fills_the_backbone():
  backbone = {n: v for n, v in _random_w48().items()
              if not n.startswith(('offset_feats.', 'offsets', 'deform_conv'))}
  variables = convert.torch_to_flax(backbone)
  assert set(variables['params']) == {'backbone'} == set(variables['batch_stats'])
  assert num_params(variables['params']) == 63_595_745


def test_errors_list_every_name():
  state_dict = dict(_random_w48())
  del state_dict['stage2.0.fuse_layers.0.1.1.running_var']
  del state_dict['offsets3.weight']
  state_dict['stage2.0.extra.weight'] = np.zeros(3, np.float32)
  state_dict['deform_conv2.weight'] = np.zeros((17, 17, 5, 5), np.float32)
  with pytest.raises(convert.ConversionError) as info:
    convert.torch_to_flax(state_dict, model=build_posewarper(
        convert.infer_architecture(state_dict)['backbone'],
        dict(num_blocks=20, features=128, dilations=(3, 6, 12, 18, 24))))
  message = str(info.value)
  for name in ('stage2.0.fuse_layers.0.1.1.running_var', 'offsets3.weight',
               'stage2.0.extra.weight', 'deform_conv2.weight: checkpoint (17, 17, 5, 5)'):
    assert name in message
  assert '1 unknown' in message and '2 missing' in message and '1 shape mismatches' in message
  with pytest.raises(ValueError, match='layout must be one of'):
    convert.torch_to_flax(state_dict, layout='detectron')
  with pytest.raises(convert.ConversionError, match="no 'final_layer.weight'"):
    convert.torch_to_flax({'conv1.weight': np.zeros((64, 3, 3, 3), np.float32)})


# --- Numbers: against the PyTorch reference -----------------------------------------------------


def _model_for(config: dict) -> PoseWarper:
  backbone = {k: tuple(v) if isinstance(v, list) else v for k, v in config['backbone'].items()}
  head = {k: tuple(v) if isinstance(v, list) else v for k, v in config['head'].items()}
  return build_posewarper(backbone, head, num_joints=backbone.pop('num_joints'))


def _outputs(model: PoseWarper, variables, inputs) -> dict[str, np.ndarray]:
  """The four golden quantities, from NHWC inputs."""
  apply = functools.partial(jitted_apply, model, variables)
  return {
      'single_frame': apply(inputs['frames_a'], method=PoseWarper.single_frame),
      'pair': apply(inputs['frames_a'], inputs['frames_b']),
      'aggregate': apply(inputs['agg_frames'], tuple(float(w) for w in inputs['agg_weights']),
                         method=PoseWarper.aggregate),
      'propagate': apply(inputs['frames_a'], inputs['frames_b'], inputs['prop_heatmaps'],
                         method=PoseWarper.propagate),
  }


def _assert_matches(ours, reference, rtol=1e-4):
  for name, expected in reference.items():
    assert_close_to_scale(ours[name], expected, rtol, name)


def test_golden_pytorch_reference():
  golden = np.load(TINY_NPZ)
  config = json.loads(str(golden['config']))
  state_dict = {k[len('sd/'):]: golden[k] for k in golden.files if k.startswith('sd/')}
  model = _model_for(config)
  variables = convert.torch_to_flax(state_dict, model=model)
  ours = _outputs(model, variables, golden)
  _assert_matches(ours, {k: golden[k] for k in ours})
  # The offsets matter in this case: with the offset convs zeroed the pair would differ.
  flat = traverse_util.flatten_dict(variables)
  zeroed = traverse_util.unflatten_dict({
      k: np.zeros_like(v) if k[2].startswith('offsets') else v for k, v in flat.items()})
  still = jitted_apply(model, zeroed, golden['frames_a'], golden['frames_b'])
  assert np.abs(still - golden['pair']).max() > 0.1 * np.abs(golden['pair']).max()


@pytest.fixture(scope='module')
def torch_reference():
  torch = pytest.importorskip('torch')
  pytest.importorskip('torchvision')
  return torch, load_script(GOLDEN / 'torch_posewarper.py')


def test_live_pytorch_reference(torch_reference):
  torch, tp = torch_reference
  config = json.loads(str(np.load(TINY_NPZ)['config']))
  reference = tp.randomize_(tp.build(config), seed=123).double().eval()
  state_dict = {k: v.numpy() for k, v in reference.state_dict().items()}
  rng = np.random.default_rng(5)
  inputs = {
      'frames_a': rng.standard_normal((2, 128, 96, 3)).astype(np.float32),
      'frames_b': rng.standard_normal((2, 128, 96, 3)).astype(np.float32),
      'agg_frames': rng.standard_normal((2, 5, 128, 96, 3)).astype(np.float32),
      'agg_weights': np.array([0.3, 0.25, 0.1, 0.25, 0.1]),
      'prop_heatmaps': rng.uniform(size=(2, 32, 24, 17)).astype(np.float32),
  }
  t = lambda x: torch.from_numpy(np.ascontiguousarray(x, np.float64))
  nchw = lambda x: t(np.moveaxis(x, -1, -3))
  nhwc = lambda x: np.moveaxis(x.numpy(), -3, -1)
  with torch.no_grad():
    expected = {
        'single_frame': nhwc(reference.single_frame(nchw(inputs['frames_a']))),
        'pair': nhwc(reference(nchw(inputs['frames_a']), nchw(inputs['frames_b']))),
        'aggregate': nhwc(reference.aggregate(nchw(inputs['agg_frames']),
                                              inputs['agg_weights'].tolist())),
        'propagate': nhwc(reference.propagate(nchw(inputs['frames_a']),
                                              nchw(inputs['frames_b']),
                                              nchw(inputs['prop_heatmaps']))),
    }
  model = _model_for(config)
  ours = _outputs(model, convert.torch_to_flax(state_dict, model=model), inputs)
  _assert_matches(ours, expected)


def test_load_pth_and_convert_command(torch_reference, tmp_path):
  torch, _ = torch_reference
  golden = np.load(TINY_NPZ)
  state_dict = {k[len('sd/'):]: golden[k] for k in golden.files if k.startswith('sd/')}
  path = tmp_path / 'model.pth'
  torch.save({'state_dict': {'module.' + k: torch.from_numpy(v) for k, v in state_dict.items()},
              'epoch': 3}, path)
  loaded = convert.load_state_dict(path)
  assert set(loaded) == {'module.' + k for k in state_dict}
  assert convert.main(['--input', str(path), '--output', str(tmp_path / 'ckpt')]) == 0
  _assert_checkpoint_holds(tmp_path / 'ckpt', state_dict)


def _assert_checkpoint_holds(directory: pathlib.Path, state_dict: dict[str, np.ndarray]):
  """The checkpoint written at `directory`, read back, is the state dict's variables by value."""
  restored = convert.load_variables(directory)
  expected = convert.torch_to_flax(state_dict)
  assert jax.tree.structure(restored) == jax.tree.structure(expected)
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(expected), strict=True):
    np.testing.assert_array_equal(a, b)


def test_convert_command_writes_an_orbax_checkpoint(tmp_path, capsys, monkeypatch):
  golden = np.load(TINY_NPZ)
  state_dict = {k[len('sd/'):]: golden[k] for k in golden.files if k.startswith('sd/')}
  npz = tmp_path / 'tiny_state_dict.npz'
  np.savez(npz, **state_dict)
  monkeypatch.chdir(tmp_path)  # relative paths, as typed (Orbax itself takes only absolute)
  assert convert.main(['--input', npz.name, '--output', 'ckpt']) == 0
  assert 'warper' in capsys.readouterr().out
  _assert_checkpoint_holds(tmp_path / 'ckpt', state_dict)
  # A bad checkpoint: a message with the names, exit status 1, nothing written.
  del state_dict['bn1.running_var']
  np.savez(npz, **state_dict)
  assert convert.main(['--input', str(npz), '--output', str(tmp_path / 'bad')]) == 1
  assert 'missing tensors' in capsys.readouterr().err
  assert not (tmp_path / 'bad').exists()
  with pytest.raises(FileNotFoundError, match='no checkpoint file'):
    convert.load_state_dict(tmp_path / 'missing.pth')


def test_pth_without_torch_says_what_to_install(tmp_path, monkeypatch):
  path = tmp_path / 'model.pth'
  path.write_bytes(b'not read')
  monkeypatch.setitem(sys.modules, 'torch', None)  # import torch now raises ImportError
  with pytest.raises(ImportError, match=r'needs PyTorch \(pip install torch'):
    convert.load_state_dict(path)
