"""PyTorch checkpoints (the official release, COCO HRNet, mmpose) to Flax variables.

    python -m posewarper_jax.convert --input pose_hrnet_w48_384x288.pth --output DIR

writes an Orbax checkpoint of {'params', 'batch_stats'} that training can start from (for an
HRNet-only checkpoint, only the 'backbone' part of each collection).

The mapping is mechanical because the Flax modules are named after the official PyTorch
modules (hrnet.py): a Flax path ('backbone', 'stage3_1', 'fuse_layers_2_0_1_1', 'scale') is the
PyTorch name 'stage3.1.fuse_layers.2.0.1.1.weight'. Layouts:
  official  names as in the release's state_dict (COCO HRNet-W48 and PoseWarper checkpoints);
  mmpose    the backbone under 'backbone.', the head under 'neck.' (trans_layer = final_layer,
            offset_layers.{k} = offsets{k+1}, deform_conv_layers.{k} = deform_conv{k+1}); a
            top-down HRNet's (COCO) final layer under 'keypoint_head.' (mmpose 0.x) or 'head.'
            (1.x).
A 'module.' prefix (checkpoints saved from DataParallel) is removed in both.

The architecture is read from the checkpoint itself (channels, modules, blocks); give `model`
to check a checkpoint against a configured network instead. Every tensor must be used exactly
once: unknown, missing and mis-shaped tensors are reported together, by name.

Reading .pth files needs PyTorch (`pip install torch`); `torch_to_flax` itself needs only NumPy
arrays, and .npz files of the state dict are read without PyTorch.
"""

from __future__ import annotations

import argparse
import functools
import pathlib
import re
import sys
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from posewarper_jax import paths
from posewarper_jax.models import (
    HRNet,
    PoseWarper,
    build_posewarper,
    num_params,
)

LAYOUTS = ('auto', 'official', 'mmpose')
_PAPER_DILATIONS = (3, 6, 12, 18, 24)
_HEAD_NAMES = ('offset_feats.', 'offsets', 'deform_conv')
# Flax leaf name -> PyTorch parameter name, per collection.
LEAF_NAMES = {
    'params': {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias'},
    'batch_stats': {'mean': 'running_mean', 'var': 'running_var'},
}
_MMPOSE_RENAMES = (
    (re.compile(r'^backbone\.'), ''),
    (re.compile(r'^neck\.trans_layer\.'), 'final_layer.'),
    (re.compile(r'^(?:keypoint_head|head)\.final_layer\.'), 'final_layer.'),
    (re.compile(r'^neck\.offset_feats\.'), 'offset_feats.'),
    (re.compile(r'^neck\.offset_layers\.(\d+)\.'), lambda m: f'offsets{int(m[1]) + 1}.'),
    (re.compile(r'^neck\.deform_conv_layers\.(\d+)\.'),
     lambda m: f'deform_conv{int(m[1]) + 1}.'),
)


class ConversionError(ValueError):
  """A checkpoint does not fit the network; the message lists every offending name."""


def torch_name(path: tuple[str, ...]) -> str:
  """The official PyTorch name of a Flax variable path below 'backbone' or 'warper'.

  ('stage3_1', 'fuse_layers_2_0_1_1', 'scale') -> 'stage3.1.fuse_layers.2.0.1.1.weight'.
  The trailing _<digits> groups of a module name are PyTorch's indices into ModuleLists and
  Sequentials; the collection-specific leaf names are in LEAF_NAMES.
  """
  *modules, leaf = path
  parts = []
  for name in modules:
    base, indices = re.fullmatch(r'(.*?)((?:_\d+)*)', name).groups()
    parts.append(base + indices.replace('_', '.'))
  return '.'.join(parts + [leaf])


def to_official_names(state_dict: Mapping[str, Any], layout: str = 'auto') -> dict[str, Any]:
  """Renames a state dict to the official layout; drops a DataParallel 'module.' prefix."""
  if layout not in LAYOUTS:
    raise ValueError(f'layout must be one of {", ".join(LAYOUTS)}, got {layout!r}')
  names = list(state_dict)
  if names and all(n.startswith('module.') for n in names):
    state_dict = {n[len('module.'):]: v for n, v in state_dict.items()}
  if layout == 'auto':
    mmpose = any(n.startswith(('backbone.', 'neck.')) for n in state_dict)
    layout = 'mmpose' if mmpose else 'official'
  if layout == 'official':
    return dict(state_dict)
  out = {}
  for name, value in state_dict.items():
    new = name
    for pattern, repl in _MMPOSE_RENAMES:
      new, n = pattern.subn(repl, name)
      if n:
        break
    else:
      # Left as is: reported as unknown unless it happens to be an official name.
      new = name
    if new in out:
      raise ConversionError(f'two mmpose tensors map to the official name {new!r}')
    out[new] = value
  return out


def _count(names: list[str], prefix: str) -> int:
  """Number of consecutive indices i with some name starting with f'{prefix}{i}.'."""
  i = 0
  while any(n.startswith(f'{prefix}{i}.') for n in names):
    i += 1
  return i


def _shape(state_dict: Mapping[str, Any], name: str) -> tuple[int, ...]:
  if name not in state_dict:
    raise ConversionError(f'cannot read the architecture: the checkpoint has no {name!r}')
  return tuple(np.shape(state_dict[name]))


def infer_architecture(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """Reads the network's sizes from an official-layout state dict.

  Returns {'backbone': HRNet fields, 'head': WarpingHead fields or None, 'num_joints': J}.
  Dilations are not stored in weights: PoseWarper's (3, 6, 12, 18, 24) are assumed for five
  offset layers, 1, 2, ... otherwise (they do not change any shape).
  """
  names = list(state_dict)
  num_joints, width = _shape(state_dict, 'final_layer.weight')[:2]
  stage_modules, stage_blocks = [], []
  stage = 2
  while any(n.startswith(f'stage{stage}.') for n in names):
    stage_modules.append(_count(names, f'stage{stage}.'))
    stage_blocks.append(_count(names, f'stage{stage}.0.branches.0.'))
    stage += 1
  backbone = dict(width=width, stage_modules=tuple(stage_modules),
                  stage_blocks=tuple(stage_blocks),
                  stem_features=_shape(state_dict, 'conv1.weight')[0],
                  layer1_planes=_shape(state_dict, 'layer1.0.conv1.weight')[0],
                  layer1_blocks=_count(names, 'layer1.'))
  head = None
  if any(n.startswith(_HEAD_NAMES) for n in names):
    num_dilations = 0
    while f'offsets{num_dilations + 1}.weight' in state_dict:
      num_dilations += 1
    dilations = (_PAPER_DILATIONS if num_dilations == len(_PAPER_DILATIONS)
                 else tuple(range(1, num_dilations + 1)))
    head = dict(num_blocks=_count(names, 'offset_feats.'),
                features=_shape(state_dict, 'offset_feats.0.conv1.weight')[0],
                dilations=dilations)
  return dict(backbone=backbone, head=head, num_joints=num_joints)


def model_from_state_dict(state_dict: Mapping[str, Any], layout: str = 'auto') -> PoseWarper:
  """The PoseWarper whose shapes fit the checkpoint (an HRNet-only one gets the paper's head)."""
  arch = infer_architecture(to_official_names(state_dict, layout))
  head = arch['head'] or dict(num_blocks=20, features=128, dilations=_PAPER_DILATIONS)
  return build_posewarper(arch['backbone'], head, num_joints=arch['num_joints'])


def variable_shapes(model: PoseWarper | HRNet) -> dict[str, Any]:
  """{'params': ..., 'batch_stats': ...} of ShapeDtypeStructs, by jax.eval_shape (no compile).

  For a PoseWarper the trees have 'backbone' and 'warper' at the top; an HRNet alone is put
  under 'backbone', where it sits inside PoseWarper. Traced once per network in a process
  (tracing W48 takes seconds; the tests convert many checkpoints of one architecture); each
  call returns its own dicts.
  """
  return jax.tree.map(lambda shape: shape, _traced_shapes(model))


@functools.lru_cache(maxsize=8)
def _traced_shapes(model: PoseWarper | HRNet) -> dict[str, Any]:
  backbone = model.backbone if isinstance(model, PoseWarper) else model
  side = 4 * 2 ** len(backbone.stage_modules)
  x = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
  if isinstance(model, PoseWarper):
    return jax.eval_shape(lambda a: model.init(jax.random.key(0), a, a), x)
  shapes = jax.eval_shape(lambda a: model.init(jax.random.key(0), a), x)
  return {col: {'backbone': tree} for col, tree in shapes.items()}


def _to_flax_layout(value: np.ndarray, leaf: str) -> np.ndarray:
  value = np.asarray(value, dtype=np.float32)
  if leaf == 'kernel':
    return np.ascontiguousarray(value.transpose(2, 3, 1, 0))  # OIHW -> HWIO
  return value


def torch_to_flax(state_dict: Mapping[str, Any], layout: str = 'auto',
                  model: PoseWarper | HRNet | None = None) -> dict[str, Any]:
  """Converts a PyTorch state dict (name -> NumPy array) to Flax variables.

  Args:
    state_dict: PyTorch names to arrays in PyTorch's layouts (OIHW kernels).
    layout: 'official', 'mmpose' or 'auto' (mmpose when names start with backbone./neck.).
    model: the network to fill; by default the one whose sizes the checkpoint has. A checkpoint
      without the warping head fills only the backbone.
  Returns:
    {'params': {'backbone': ..., ['warper': ...]}, 'batch_stats': {...}} of float32 NumPy
    arrays, nested like the Flax variables.
  Raises:
    ConversionError: listing every unknown, missing and mis-shaped tensor.
  """
  official = to_official_names(state_dict, layout)
  if model is None:
    model = model_from_state_dict(official, 'official')
  has_head = any(n.startswith(_HEAD_NAMES) for n in official)
  targets = traverse_util.flatten_dict(variable_shapes(model))

  out, used, missing, mismatched = {}, set(), [], []
  for (collection, part, *path), target in targets.items():
    if part == 'warper' and not has_head:
      continue
    name = torch_name((*path[:-1], LEAF_NAMES[collection][path[-1]]))
    if name not in official:
      missing.append(name)
      continue
    used.add(name)
    value = _to_flax_layout(official[name], path[-1])
    if value.shape != target.shape:
      mismatched.append(f'{name}: checkpoint {tuple(np.shape(official[name]))} -> '
                        f'{value.shape}, model {target.shape}')
      continue
    out[(collection, part, *path)] = value
    if collection == 'batch_stats':
      # A BatchNorm's step counter has no Flax counterpart; it is consumed, not converted.
      used.add(name.rsplit('.', 1)[0] + '.num_batches_tracked')
  unknown = sorted(set(official) - used)
  if unknown or missing or mismatched:
    raise ConversionError(_report(unknown, missing, mismatched))
  return traverse_util.unflatten_dict(out)


def _report(unknown: list[str], missing: list[str], mismatched: list[str], limit: int = 40) -> str:
  lines = ['the checkpoint does not fit the network:']
  for title, names in (('unknown tensors (in the checkpoint, not in the model)', unknown),
                       ('missing tensors (in the model, not in the checkpoint)', missing),
                       ('shape mismatches', mismatched)):
    if names:
      lines.append(f'{len(names)} {title}:')
      lines += [f'  {n}' for n in names[:limit]]
      if len(names) > limit:
        lines.append(f'  ... and {len(names) - limit} more')
  return '\n'.join(lines)


def load_state_dict(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """Reads a state dict from a .pth/.pt (PyTorch, weights_only) or .npz file as NumPy arrays.

  Unwraps the usual checkpoint dicts: {'state_dict': ...} (mmpose, HRNet's checkpoint.pth),
  {'best_state_dict': ...}, {'model': ...}.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'no checkpoint file at {path}')
  if path.suffix == '.npz':
    with np.load(path, allow_pickle=False) as npz:
      return {k: npz[k] for k in npz.files}
  try:
    import torch
  except ImportError as e:
    raise ImportError(f'reading {path} needs PyTorch (pip install torch; it is not a dependency '
                      'of posewarper_jax), or save the state dict as .npz and pass that') from e
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # torch raises several types for a bad or unsafe file
    raise ValueError(f'{path}: not a PyTorch checkpoint that loads with weights_only=True '
                     f'({type(e).__name__}: {e})') from e
  for key in ('state_dict', 'best_state_dict', 'model'):
    if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
      obj = obj[key]
      break
  if not isinstance(obj, Mapping):
    raise ValueError(f'{path}: expected a state dict (a mapping of names to tensors), '
                     f'got {type(obj).__name__}')
  out = {}
  for name, tensor in obj.items():
    if not isinstance(tensor, torch.Tensor):
      raise ValueError(f'{path}: entry {name!r} is a {type(tensor).__name__}, not a tensor')
    tensor = tensor.detach().cpu()
    out[name] = (tensor.float() if tensor.is_floating_point() else tensor).numpy()
  return out


def save_variables(variables: dict[str, Any], directory: str | pathlib.Path,
                   metadata: dict[str, Any] | None = None) -> pathlib.Path:
  """Writes variables as an Orbax checkpoint (StandardCheckpointer) at `directory`."""
  import orbax.checkpoint as ocp

  directory = pathlib.Path(directory).absolute()
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(directory, variables, custom_metadata=metadata or {})
  return directory


def load_variables(directory: str | pathlib.Path) -> dict[str, Any]:
  """Reads variables written by `save_variables` (or `python -m posewarper_jax.convert`)."""
  import orbax.checkpoint as ocp

  with ocp.StandardCheckpointer() as checkpointer:
    return checkpointer.restore(pathlib.Path(directory).absolute())


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m posewarper_jax.convert',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--input', required=True, help='.pth/.pt (needs torch) or .npz state dict')
  parser.add_argument('--output', required=True, help='directory of the Orbax checkpoint')
  parser.add_argument('--layout', default='auto', choices=LAYOUTS)
  args = parser.parse_args(argv)
  args.input, args.output = paths.absolute(args.input), paths.absolute(args.output)

  state_dict = load_state_dict(args.input)
  try:
    official = to_official_names(state_dict, args.layout)
    arch = infer_architecture(official)
    variables = torch_to_flax(official, 'official')
  except ConversionError as e:
    print(f'{args.input}: {e}', file=sys.stderr)
    return 1
  params = variables['params']
  print(f'{args.input}: {len(state_dict)} tensors; backbone {arch["backbone"]}; '
        f'head {arch["head"]}')
  print('parameters: ' + ', '.join(f'{k} {num_params(v):,}' for k, v in params.items()))
  out = save_variables(variables, args.output,
                       {'source': str(args.input), 'architecture': arch})
  print(f'wrote {out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
