"""Stage 1 from a pretrained HRNet (config.stage1.init): an official or an mmpose .pth, an .npz
of a state dict, a converted checkpoint (python -m posewarper_jax.convert) or a run of this
project.

The checkpoint is the tiny experiment's HRNet with random weights and BatchNorm statistics,
committed in tests/golden/pretrained/ by make_pretrained_golden.py: two .pth files (read only
where torch is installed) and an .npz of the very same tensors. Each kind trains stage 1 for one
step; the variables train_stage builds its step-0 state from are recorded and compared, tensor
by tensor under its PyTorch name, with the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from posewarper_jax import convert, train
from posewarper_jax.data import source, transforms
from posewarper_jax.data.pipeline import training_dataset
from posewarper_jax.models import PoseWarper, build_posewarper, create_model, init_variables
from tests.helpers import ROOT, TINY, tiny_config
from tfds_posetrack.posetrack18 import sparse_labels
from tfds_posetrack.posetrack18.keypoints import NUM_JOINTS

GOLDEN = ROOT / 'tests' / 'golden' / 'pretrained'
NPZ = GOLDEN / 'hrnet_tiny.npz'
PTH = {'official_pth': GOLDEN / 'hrnet_tiny_official.pth',
       'mmpose_pth': GOLDEN / 'hrnet_tiny_mmpose.pth'}
KINDS = (*PTH, 'npz', 'converted', 'run')
# Flax leaf -> the last part of its PyTorch name.
_LEAVES = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean',
           'var': 'running_var'}
# The first logged loss (the mean over 4 devices) against the same loss on one device.
_LOSS_RTOL = 1e-5


def _state_dict() -> dict[str, np.ndarray]:
  with np.load(NPZ) as npz:
    return {name: npz[name] for name in npz.files}


def _flat(tree) -> dict[tuple[str, ...], np.ndarray]:
  return {tuple(k.key for k in path): np.asarray(x)
          for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _torch_name(path: tuple[str, ...]) -> str:
  """The release's name of a Flax variable below 'backbone': Flax writes module indices as
  '_i' ('stage2_0', 'fuse_layers_0_1_1', 'kernel' -> 'stage2.0.fuse_layers.0.1.1.weight').

  Written here again on purpose, not convert.torch_name: the mapping under test is convert's,
  and an oracle that called it would agree with any mistake in it."""
  *modules, leaf = path
  return '.'.join([re.sub(r'_(\d+)', r'.\1', m) for m in modules] + [_LEAVES[leaf]])


def _in_torch_layout(variables) -> dict[str, np.ndarray]:
  """A backbone's params and batch_stats as a PyTorch state dict (HWIO kernels as OIHW)."""
  out = {}
  for collection in ('params', 'batch_stats'):
    for path, x in _flat(variables[collection]['backbone']).items():
      name = _torch_name(path)
      assert name not in out, name
      out[name] = x.transpose(3, 2, 0, 1) if path[-1] == 'kernel' else x
  return out


def _assert_fresh_head(variables) -> None:
  """Spec 1.5: identity deformable kernels, zero offset convs, the offset network's convs
  N(0, 0.001) and its BatchNorms gamma 1, beta 0 (statistics 0 and 1)."""
  joints = NUM_JOINTS
  offset_convs = []
  for path, x in _flat(variables['params']['warper']).items():
    if path[0].startswith('deform_conv'):
      identity = np.zeros((3, 3, joints, joints), np.float32)
      identity[1, 1, np.arange(joints), np.arange(joints)] = 1
      np.testing.assert_array_equal(x, identity, err_msg=str(path))
    elif path[0].startswith('offsets'):
      assert not np.any(x), path
    elif path[-1] == 'kernel':
      offset_convs.append(x.ravel())
    else:
      np.testing.assert_array_equal(x, np.full_like(x, path[-1] == 'scale'), err_msg=str(path))
  drawn = np.concatenate(offset_convs)
  assert drawn.size > 2000 and abs(drawn.mean()) < 1e-4 and 0.9e-3 < drawn.std() < 1.1e-3
  for path, x in _flat(variables['batch_stats']['warper']).items():
    np.testing.assert_array_equal(x, np.full_like(x, path[-1] == 'var'), err_msg=str(path))


@dataclasses.dataclass(frozen=True)
class _Start:
  """One step of stage 1 from a checkpoint: the variables train_stage built its step-0 state
  from, step 1's logged loss, and the state after it."""

  init: pathlib.Path
  variables: dict
  first_loss: float
  final: train.TrainState


@pytest.fixture(scope='module')
def start(synthetic_root, tmp_path_factory):
  """kind -> _Start, each kind trained once (the run kind is the .npz kind's workdir)."""
  root = tmp_path_factory.mktemp('pretrained_start')
  made = {}

  def init_path(kind: str) -> pathlib.Path:
    if kind in PTH:
      return PTH[kind]
    if kind == 'npz':
      return NPZ
    if kind == 'converted':
      assert convert.main(['--input', str(NPZ), '--output', str(root / 'converted')]) == 0
      return root / 'converted'
    run('npz')
    return root / 'npz'

  def run(kind: str) -> _Start:
    if kind not in made:
      config = tiny_config(synthetic_root, num_steps=1, checkpoint_every=1)
      config.stage1.init = str(init_path(kind))
      captured = []
      create = train.create_train_state

      def recording(model, variables, *args, **kwargs):
        captured.append(jax.tree.map(np.array, variables))
        return create(model, variables, *args, **kwargs)

      with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, 'create_train_state', recording)
        final = train.train_stage(config, root / kind, 1)
      (variables,) = captured
      logged = (root / kind / 'stage1' / 'metrics.jsonl').read_text().splitlines()
      first_loss = json.loads(logged[0])['loss']
      made[kind] = _Start(pathlib.Path(config.stage1.init), variables, first_loss, final)
    return made[kind]

  return run


@pytest.fixture(scope='module')
def first_batch_loss(synthetic_root):
  """variables -> the loss of stage 1's first batch, computed on one device; and the loss of
  the network stage 1 starts from without a checkpoint."""
  config = tiny_config(synthetic_root)
  records, table = source.open_split(config, synthetic_root, 'train')
  table = sparse_labels(table, config.data.labeled_videos, config.data.labeled_frames_per_video,
                        config.seed)
  batch = next(iter(training_dataset(records, table, train.input_config(config, 1))))
  batch = {k: batch[k].reshape(-1, *batch[k].shape[2:]) for k in train.device_batch(batch)}
  model = create_model(config)

  @jax.jit
  def loss(variables):
    predicted, _ = model.apply(variables, transforms.normalize(batch['frames_a'], jnp.float32),
                               train=True, method=PoseWarper.single_frame,
                               mutable=['batch_stats'])
    return train.heatmap_loss(predicted, batch['targets'], batch['target_weights'])

  scratch = jax.device_get(init_variables(model, config.seed, tuple(config.image_size)))
  return lambda variables: float(loss(variables)), float(loss(scratch))


def test_the_golden_checkpoint_is_the_tiny_hrnet():
  """The committed state dict is an HRNet-only checkpoint of TINY's backbone (the model the
  tests train), with every BatchNorm's running statistics and step counter."""
  state_dict = _state_dict()
  assert convert.infer_architecture(state_dict) == {
      'backbone': TINY['backbone'], 'head': None, 'num_joints': 17}
  means = {n for n in state_dict if n.endswith('.running_mean')}
  assert means and {n.replace('running_mean', 'running_var') for n in means} <= state_dict.keys()
  assert {n.replace('running_mean', 'num_batches_tracked') for n in means} <= state_dict.keys()


@pytest.mark.parametrize('kind', KINDS)
def test_stage1_starts_from_the_checkpoint(kind, start, first_batch_loss):
  """The step-0 state holds the checkpoint's backbone, every tensor under its PyTorch name
  (kernels OIHW -> HWIO, BatchNorm running statistics included; a run's: its saved state), the
  warping head the checkpoint lacks as spec 1.5 initializes it, and step 1's logged loss is the
  loss of those weights on the first batch."""
  if kind in PTH:
    pytest.importorskip('torch')
  started = start(kind)
  got = _in_torch_layout(started.variables)
  if kind == 'run':
    source_run = start('npz').final
    expected = _in_torch_layout({'params': source_run.params,
                                 'batch_stats': source_run.batch_stats})
  else:
    expected = {n: x for n, x in _state_dict().items() if not n.endswith('num_batches_tracked')}
  assert sorted(got) == sorted(expected)
  for name, x in expected.items():
    np.testing.assert_array_equal(got[name], x, err_msg=f'{kind}: {name}')
  _assert_fresh_head(started.variables)

  loss_of, scratch_loss = first_batch_loss
  np.testing.assert_allclose(started.first_loss, loss_of(started.variables), rtol=_LOSS_RTOL)
  # The loss tells a checkpoint's start from a fresh network's.
  assert abs(scratch_loss - started.first_loss) > 1e3 * _LOSS_RTOL * started.first_loss


def test_batchnorm_running_statistics_come_along(start):
  """Every BatchNorm of the state dict: running_mean -> batch_stats mean and running_var -> var
  of the same layer, no layer left at the fresh 0 and 1; num_batches_tracked has no counterpart."""
  state_dict = _state_dict()
  stats = {_torch_name(path): x
           for path, x in _flat(start('npz').variables['batch_stats']['backbone']).items()}
  layers = sorted(n.rpartition('.')[0] for n in state_dict if n.endswith('.running_mean'))
  assert len(stats) == 2 * len(layers)
  for layer in layers:
    for leaf, fresh in (('running_mean', 0.0), ('running_var', 1.0)):
      np.testing.assert_array_equal(stats[f'{layer}.{leaf}'], state_dict[f'{layer}.{leaf}'])
      assert not np.all(stats[f'{layer}.{leaf}'] == fresh), f'{layer}.{leaf}'


def _mmpose_name(name: str) -> str:
  return ('keypoint_head.' if name.startswith('final_layer.') else 'backbone.') + name


def test_mmpose_names_of_a_top_down_hrnet_convert_to_the_same_variables():
  """mmpose's COCO HRNet: the backbone under 'backbone.', the final layer under
  'keypoint_head.' (mmpose 0.x) or 'head.' (1.x)."""
  state_dict = _state_dict()
  expected = _flat(convert.torch_to_flax(state_dict))
  for head in ('keypoint_head.', 'head.'):
    renamed = {_mmpose_name(n).replace('keypoint_head.', head): x for n, x in state_dict.items()}
    got = _flat(convert.torch_to_flax(renamed))
    assert got.keys() == expected.keys()
    for key, x in expected.items():
      np.testing.assert_array_equal(got[key], x, err_msg=f'{head}: {key}')


@pytest.mark.parametrize('kind', PTH)
def test_each_pth_holds_the_npz_tensors(kind):
  """The .pth files (official: a bare state dict; mmpose: {'meta', 'state_dict'}) hold the
  very tensors of the .npz, and so give exactly its variables."""
  pytest.importorskip('torch')
  from_pth = convert.load_state_dict(PTH[kind])
  state_dict = _state_dict()
  if kind == 'mmpose_pth':
    assert sorted(from_pth) == sorted(map(_mmpose_name, state_dict))
  official = convert.to_official_names(from_pth)
  assert sorted(official) == sorted(state_dict)
  for name, x in state_dict.items():
    assert official[name].dtype == x.dtype, name
    np.testing.assert_array_equal(official[name], x, err_msg=name)
  got, expected = _flat(convert.torch_to_flax(from_pth)), _flat(convert.torch_to_flax(state_dict))
  assert got.keys() == expected.keys()
  for key, x in expected.items():
    np.testing.assert_array_equal(got[key], x, err_msg=str(key))


# --- Checkpoints that do not fit ----------------------------------------------------------------

def _converted(directory: pathlib.Path, edit) -> pathlib.Path:
  """A converted checkpoint of the .npz's variables after edit(variables)."""
  variables = convert.torch_to_flax(_state_dict())
  edit(variables)
  return convert.save_variables(variables, directory)


def _without_final_layer_with_a_stage3(variables):
  del variables['params']['backbone']['final_layer']
  variables['params']['backbone']['stage3_0'] = {'conv1': {'kernel': np.zeros((3, 3, 8, 8))}}


def _narrower(path: pathlib.Path) -> pathlib.Path:
  """An .npz of an HRNet of width 4 (TINY's is 8): zeros, only names and shapes matter (taken
  without compiling anything)."""
  model = build_posewarper({**TINY['backbone'], 'width': 4}, TINY['head'])
  zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), convert.variable_shapes(model))
  np.savez(path, **_in_torch_layout(zeros))
  return path


def _without_running_statistics(path: pathlib.Path) -> pathlib.Path:
  state_dict = _state_dict()
  del state_dict['bn1.running_mean'], state_dict['stage2.0.branches.1.0.bn2.running_var']
  np.savez(path, **state_dict)
  return path


@pytest.mark.parametrize('case, error, messages', [
    ('width 4', ValueError, [
        'the initial checkpoint does not fit config.model:',
        "params/backbone['final_layer']['kernel']: shape (1, 1, 4, 17), the model has "
        '(1, 1, 8, 17)',
        "params/backbone['stage2_0']['branches_1_0']['conv1']['kernel']: shape (3, 3, 8, 8), "
        'the model has (3, 3, 16, 16)']),
    ('groups', ValueError, [
        "params/backbone['final_layer']['bias']: missing",
        "params/backbone['final_layer']['kernel']: missing",
        "params/backbone['stage3_0']['conv1']['kernel']: not in this model"]),
    ('no batch_stats', ValueError, ['no backbone batch_stats']),
    ('running statistics', convert.ConversionError, [
        '2 missing tensors', '  bn1.running_mean', '  stage2.0.branches.1.0.bn2.running_var']),
])
def test_a_checkpoint_that_does_not_fit_is_refused_by_name(case, error, messages,
                                                          synthetic_root, tmp_path):
  """Another architecture, a missing or foreign group, a collection or tensors missing: refused
  before the first step, the message naming each offending variable."""
  config = tiny_config(synthetic_root, num_steps=1)
  init = {
      'width 4': lambda: _narrower(tmp_path / 'narrow.npz'),
      'groups': lambda: _converted(tmp_path / 'ckpt', _without_final_layer_with_a_stage3),
      'no batch_stats': lambda: _converted(tmp_path / 'ckpt',
                                           lambda v: v.pop('batch_stats')),
      'running statistics': lambda: _without_running_statistics(tmp_path / 'stats.npz'),
  }[case]()
  config.stage1.init = str(init)
  with pytest.raises(error) as info:
    train.train_stage(config, tmp_path / 'run', 1)
  for message in messages:
    assert message in str(info.value), (message, str(info.value))
  assert not (tmp_path / 'run').exists()  # refused before the stage wrote anything
