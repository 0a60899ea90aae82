"""A small PyTorch reference of PoseWarper (pose HRNet + warping head), for the golden files.

torch and torchvision are not dependencies of the project: this module is imported only by
tests/golden/make_posewarper_golden.py and by live comparison tests, which must skip when torch
is missing (sys.path.insert(0, 'tests/golden'); import torch_posewarper).
It follows the authors' release (lib/models/pose_hrnet.py and pose_hrnet_PoseAgg.py of
facebookresearch/PoseWarper, built on Sun et al.'s pose_hrnet.py) module for module, so that
`build(W48).state_dict()` has exactly the names and shapes of the official checkpoint
(tests/golden/posewarper_w48_state_dict.txt). Everything is NCHW / OIHW.

Public API:
  build(config) -> PoseWarper      config is a plain dict; W48 below is the published model.
  randomize_(model, seed, offset_std=1.5) -> model  deterministic random weights (numpy's
                                    default_rng), BN statistics included, scaled so that the
                                    activations stay O(1) and the offsets are a few pixels;
                                    float32-exact values (model.double() keeps them). Then
                                    model.double().eval() for the float64 reference.
  count_params(model, prefix=None)  number of parameters (BN running statistics excluded);
                                    with prefix, only those whose name starts with it.
  backbone_param_names(model), HEAD_PREFIXES  which parameters belong to the backbone / head.
  check_w48(listing_path) -> dict   builds W48, asserts its state_dict equals the official listing
                                    (names, shapes) and the parameter counts 71,154,350 in all,
                                    63,595,745 in HRNet-W48 + final_layer.
  read_state_dict_listing(path)     {name: shape} of that listing.

  PoseWarper methods (NCHW tensors; use model.eval() for inference-mode BatchNorm):
    single_frame(x)                 backbone + final_layer: heatmaps [N, J, H/4, W/4].
    forward(a, b)                   one backbone pass on cat([a, b]); warps H_B with offsets
                                    from H_A - H_B (the training forward of the release).
    warp(h_target, h_source, heatmaps)  the head: offsets from h_target - h_source, deforming
                                    `heatmaps`; output = mean over the dilations.
    aggregate(frames, weights)      frames [N, T, 3, H, W], t = 0 the current frame; one
                                    backbone pass over all N*T crops; sum_t weights[t] *
                                    warp(H[:, 0], H[:, t], H[:, t]) (pose_hrnet_PoseAgg.py).
    propagate(frames_source, frames_target, heatmaps)  one backbone pass on cat([source,
                                    target]); warp(H_target, H_source, heatmaps) (the release's
                                    `warping_reverse` inference).
    offsets(d) -> list of offset tensors, deform(source, offsets) -> mean of the deformable
                                    convolutions: the two halves of the head, for inspection.

Config fields (the same names as the Flax side):
  backbone: stem_features, layer1_planes, layer1_blocks, width, stage_modules, stage_blocks,
            num_joints.  Stage s = 2, 3, ... has s branches of width * 2**b channels.
  head: num_blocks, features, dilations.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision
from torch import nn

W48 = {
    'backbone': {
        'stem_features': 64,
        'layer1_planes': 64,
        'layer1_blocks': 4,
        'width': 48,
        'stage_modules': (1, 4, 3),
        'stage_blocks': (4, 4, 4),
        'num_joints': 17,
    },
    'head': {
        'num_blocks': 20,
        'features': 128,
        'dilations': (3, 6, 12, 18, 24),
    },
}

BN_MOMENTUM = 0.1
HEAD_PREFIXES = ('offset_feats.', 'offsets', 'deform_conv')


def conv3x3(cin, cout, stride=1):
  return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def bn(c):
  return nn.BatchNorm2d(c, momentum=BN_MOMENTUM, eps=1e-5)


class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, cin, planes, downsample=None):
    super().__init__()
    self.conv1 = conv3x3(cin, planes)
    self.bn1 = bn(planes)
    self.conv2 = conv3x3(planes, planes)
    self.bn2 = bn(planes)
    self.downsample = downsample

  def forward(self, x):
    out = torch.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    residual = x if self.downsample is None else self.downsample(x)
    return torch.relu(out + residual)


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, cin, planes, downsample=None):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
    self.bn1 = bn(planes)
    self.conv2 = conv3x3(planes, planes)
    self.bn2 = bn(planes)
    self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
    self.bn3 = bn(planes * 4)
    self.downsample = downsample

  def forward(self, x):
    out = torch.relu(self.bn1(self.conv1(x)))
    out = torch.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    residual = x if self.downsample is None else self.downsample(x)
    return torch.relu(out + residual)


def projection(cin, cout):
  """The 1x1 conv + BN residual projection ('downsample' in the release; stride 1 here)."""
  return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), bn(cout))


def make_blocks(block, cin, planes, num_blocks):
  """A Sequential of blocks; the first projects its residual when the channels change."""
  cout = planes * block.expansion
  downsample = projection(cin, cout) if cin != cout else None
  layers = [block(cin, planes, downsample)]
  layers += [block(cout, planes) for _ in range(1, num_blocks)]
  return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
  """Parallel branches of BasicBlocks, then the exchange ('fuse') across resolutions."""

  def __init__(self, channels, num_blocks, multi_scale_output=True):
    super().__init__()
    n = len(channels)
    self.num_branches = n
    self.branches = nn.ModuleList(
        [make_blocks(BasicBlock, c, c, num_blocks) for c in channels])
    fuse_layers = []
    for i in range(n if multi_scale_output else 1):
      row = []
      for j in range(n):
        if j > i:  # lower resolution -> higher: 1x1 conv + BN, nearest upsampling.
          row.append(nn.Sequential(
              nn.Conv2d(channels[j], channels[i], 1, bias=False), bn(channels[i]),
              nn.Upsample(scale_factor=2**(j - i), mode='nearest')))
        elif j == i:
          row.append(None)
        else:  # higher resolution -> lower: i - j strided 3x3 convs, ReLU on all but the last.
          steps = []
          for k in range(i - j):
            if k == i - j - 1:
              steps.append(nn.Sequential(conv3x3(channels[j], channels[i], 2), bn(channels[i])))
            else:
              steps.append(nn.Sequential(conv3x3(channels[j], channels[j], 2), bn(channels[j]),
                                         nn.ReLU()))
          row.append(nn.Sequential(*steps))
      fuse_layers.append(nn.ModuleList(row))
    self.fuse_layers = nn.ModuleList(fuse_layers)

  def forward(self, xs):
    xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
    out = []
    for i, fuse in enumerate(self.fuse_layers):
      y = xs[0] if i == 0 else fuse[0](xs[0])
      for j in range(1, self.num_branches):
        y = y + (xs[j] if i == j else fuse[j](xs[j]))
      out.append(torch.relu(y))
    return out


def make_transition(prev_channels, channels):
  """transition{s-1}: adapts the branches of the previous stage and adds the new one(s)."""
  layers = []
  for i, c in enumerate(channels):
    if i < len(prev_channels):
      if c != prev_channels[i]:
        layers.append(nn.Sequential(conv3x3(prev_channels[i], c), bn(c), nn.ReLU()))
      else:
        layers.append(None)
    else:
      steps = []
      for k in range(i + 1 - len(prev_channels)):
        cin = prev_channels[-1]
        cout = c if k == i - len(prev_channels) else cin
        steps.append(nn.Sequential(conv3x3(cin, cout, 2), bn(cout), nn.ReLU()))
      layers.append(nn.Sequential(*steps))
  return nn.ModuleList(layers)


class PoseWarper(nn.Module):

  def __init__(self, config):
    super().__init__()
    bb, hd = config['backbone'], config['head']
    stem, planes, width = bb['stem_features'], bb['layer1_planes'], bb['width']
    joints = bb['num_joints']
    stage_modules, stage_blocks = tuple(bb['stage_modules']), tuple(bb['stage_blocks'])
    if len(stage_modules) != len(stage_blocks) or not stage_modules:
      raise ValueError(f'stage_modules {stage_modules} and stage_blocks {stage_blocks}')
    self.num_stages = len(stage_modules)  # stages after layer1: stage2 .. stage{num_stages+1}
    self.dilations = tuple(hd['dilations'])

    # Stem and layer1.
    self.conv1 = nn.Conv2d(3, stem, 3, stride=2, padding=1, bias=False)
    self.bn1 = bn(stem)
    self.conv2 = nn.Conv2d(stem, stem, 3, stride=2, padding=1, bias=False)
    self.bn2 = bn(stem)
    self.layer1 = make_blocks(Bottleneck, stem, planes, bb['layer1_blocks'])

    # transition1, stage2, transition2, stage3, ...: registered in the release's order.
    prev = [planes * Bottleneck.expansion]
    for idx, (modules, blocks) in enumerate(zip(stage_modules, stage_blocks, strict=True)):
      s = idx + 2
      channels = [width * 2**b for b in range(s)]
      setattr(self, f'transition{s - 1}', make_transition(prev, channels))
      last_stage = idx == self.num_stages - 1
      setattr(self, f'stage{s}', nn.Sequential(*[
          HighResolutionModule(channels, blocks,
                               multi_scale_output=not (last_stage and m == modules - 1))
          for m in range(modules)]))
      prev = channels
    self.final_layer = nn.Conv2d(width, joints, 1, bias=True)

    # Warping head.
    self.offset_feats = make_blocks(BasicBlock, joints, hd['features'], hd['num_blocks'])
    for k, r in enumerate(self.dilations, start=1):
      setattr(self, f'offsets{k}',
              nn.Conv2d(hd['features'], joints * 9 * 2, 3, padding=r, dilation=r, bias=False))
    for k, r in enumerate(self.dilations, start=1):
      setattr(self, f'deform_conv{k}',
              torchvision.ops.DeformConv2d(joints, joints, 3, padding=r, dilation=r, bias=False))

  # --- backbone ---------------------------------------------------------------------------

  def single_frame(self, x):
    x = torch.relu(self.bn1(self.conv1(x)))
    x = torch.relu(self.bn2(self.conv2(x)))
    ys = [self.layer1(x)]
    for s in range(2, self.num_stages + 2):
      transition = getattr(self, f'transition{s - 1}')
      xs = []
      for i, t in enumerate(transition):
        if i < len(ys):  # an existing branch, adapted only when its channels change
          xs.append(ys[i] if t is None else t(ys[i]))
        else:  # a new branch, from the lowest-resolution output of the previous stage
          xs.append(t(ys[-1]))
      ys = getattr(self, f'stage{s}')(xs)
    return self.final_layer(ys[0])

  # --- head ---------------------------------------------------------------------------------

  def offsets(self, d):
    feats = self.offset_feats(d)
    return [getattr(self, f'offsets{k}')(feats) for k in range(1, len(self.dilations) + 1)]

  def deform(self, source, offsets):
    outs = [getattr(self, f'deform_conv{k}')(source, off)
            for k, off in enumerate(offsets, start=1)]
    return (1.0 / len(outs)) * sum(outs)  # the release: 0.2 * (x1 + x2 + x3 + x4 + x5)

  def warp(self, h_target, h_source, heatmaps):
    return self.deform(heatmaps, self.offsets(h_target - h_source))

  # --- the release's three uses ----------------------------------------------------------------

  def forward(self, a, b):
    h = self.single_frame(torch.cat([a, b]))
    h_a, h_b = h[:a.shape[0]], h[a.shape[0]:]
    return self.warp(h_a, h_b, h_b)

  def aggregate(self, frames, weights):
    n, t = frames.shape[:2]
    # Time-major batch, as the release concatenates (current, prev1, prev2, next1, next2).
    h = self.single_frame(frames.transpose(0, 1).reshape(t * n, *frames.shape[2:]))
    h = h.reshape(t, n, *h.shape[1:])
    warped = self.warp(h[0:1].expand_as(h).reshape(t * n, *h.shape[2:]),
                       h.reshape(t * n, *h.shape[2:]), h.reshape(t * n, *h.shape[2:]))
    warped = warped.reshape(t, n, *warped.shape[1:])
    w = torch.as_tensor(weights, dtype=warped.dtype)
    return sum(w[i] * warped[i] for i in range(t))

  def propagate(self, frames_source, frames_target, heatmaps):
    h = self.single_frame(torch.cat([frames_source, frames_target]))
    n = frames_source.shape[0]
    return self.warp(h[n:], h[:n], heatmaps)


def build(config) -> PoseWarper:
  return PoseWarper(config)


def count_params(model, prefix=None):
  return sum(p.numel() for name, p in model.named_parameters()
             if prefix is None or name.startswith(prefix))


def backbone_param_names(model):
  return [name for name, _ in model.named_parameters() if not name.startswith(HEAD_PREFIXES)]


def _summed_convs(model):
  """{conv: number of terms} for the convs whose output is added to other terms.

  They are the last conv of each residual branch and of each projection (2 terms: the block and
  its shortcut) and the last conv of each fuse path (as many terms as the module has branches).
  """
  out = {}
  for m in model.modules():
    if isinstance(m, BasicBlock | Bottleneck):
      out[m.conv3 if isinstance(m, Bottleneck) else m.conv2] = 2
      if m.downsample is not None:
        out[m.downsample[0]] = 2
    elif isinstance(m, HighResolutionModule):
      for i, row in enumerate(m.fuse_layers):
        for j, f in enumerate(row):
          if j != i:
            out[f[0] if j > i else f[-1][0]] = m.num_branches
  return out


def _grid(values, std):
  """Rounds to multiples of a power of two between std / 8 and std / 4: float32-exact values
  with few significant bits, so that the golden file compresses."""
  step = 2.0 ** np.floor(np.log2(std / 4))
  return (np.round(np.asarray(values) / step) * step).astype(np.float32)


def randomize_(model, seed, offset_std=1.5):
  """Fills every parameter and BN buffer with deterministic random values; returns the model.

  Drawn with numpy's default_rng(seed), module by module in named_modules() order, rounded to
  a power-of-two grid (4 to 8 steps per standard deviation), so float32-exact:
  - convs: N(0, 2 / fan_in) (He) where a ReLU follows; the convs whose output is summed get
    N(0, 0.5 / fan_in) on residual paths and N(0, 0.5 / (fan_in * (branches - 1))) in the fuse
    layers, which keeps the activations O(1) through the stages; final_layer's bias N(0, 0.1^2);
  - offsets{k}: N(0, offset_std^2 / fan_in), offsets of about offset_std pixels for unit
    features; deform_conv{k}: N(0, 1 / fan_in) (not the identity of the release's init);
  - BN: weight U(0.5, 1.5), bias N(0, 0.1^2), running_mean N(0, 0.1^2), running_var
    U(0.5, 2), num_batches_tracked a random int.
  """
  rng = np.random.default_rng(seed)
  summed = _summed_convs(model)

  def fill(tensor, values, std):
    with torch.no_grad():
      tensor.copy_(torch.from_numpy(_grid(values, std)))

  for name, m in model.named_modules():
    if isinstance(m, nn.Conv2d | torchvision.ops.DeformConv2d):
      fan_in = m.weight[0].numel()
      if isinstance(m, torchvision.ops.DeformConv2d):
        std = (1 / fan_in) ** 0.5
      elif name.startswith('offsets'):
        std = offset_std / fan_in**0.5
      elif m in summed:
        std = (0.5 / (fan_in * max(summed[m] - 1, 1))) ** 0.5
      else:
        std = (2 / fan_in) ** 0.5
      fill(m.weight, rng.normal(size=m.weight.shape) * std, std)
      if m.bias is not None:
        fill(m.bias, rng.normal(size=m.bias.shape) * 0.1, 0.1)
    elif isinstance(m, nn.BatchNorm2d):
      c = m.num_features
      fill(m.weight, rng.uniform(0.5, 1.5, c), 0.5)
      fill(m.bias, rng.normal(size=c) * 0.1, 0.1)
      fill(m.running_mean, rng.normal(size=c) * 0.1, 0.1)
      fill(m.running_var, rng.uniform(0.5, 2.0, c), 0.5)
      m.num_batches_tracked.fill_(int(rng.integers(0, 100_000)))
  return model


def read_state_dict_listing(path):
  """{name: shape} from posewarper_w48_state_dict.txt ('#' lines are comments)."""
  out = {}
  for line in open(path).read().splitlines():
    line = line.strip()
    if not line or line.startswith('#'):
      continue
    name, shape = line.split(' ', 1)
    out[name] = tuple(int(v) for v in shape.strip('()').split(',') if v.strip())
  return out


def check_w48(listing_path):
  """Builds W48 and compares its state_dict with the official listing; returns a report dict.

  Raises AssertionError on any difference in names, shapes or parameter counts.
  """
  model = build(W48)
  ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
  ref = read_state_dict_listing(listing_path)
  missing, extra = sorted(set(ref) - set(ours)), sorted(set(ours) - set(ref))
  shapes = sorted(k for k in set(ref) & set(ours) if ref[k] != ours[k])
  assert not missing and not extra and not shapes, (missing[:10], extra[:10], shapes[:10])
  total = count_params(model)
  backbone = sum(p.numel() for name, p in model.named_parameters()
                 if not name.startswith(HEAD_PREFIXES))
  assert total == 71_154_350, total
  assert backbone == 63_595_745, backbone
  return {'entries': len(ours), 'same_order': list(ours) == list(ref), 'params': total,
          'backbone_params': backbone, 'head_params': total - backbone}
