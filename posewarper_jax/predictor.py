"""The network's functions over batches of crops, shared by every mode (the shape of
big_vision's evaluators, which take a predict_fn).

    predictor = Predictor(config, network.variables)        # checkpoints.load_network(...)
    heatmaps = predictor('single frame', frames)             # frames [N, T, H, W, 3] uint8
    heatmaps = predictor('aggregation', frames)              # T = len(AGGREGATION_DELTAS)
    warped = predictor.propagate(source, target, heatmaps)   # [N, H, W, 3] x 2, [N, h, w, J]
    poses = predict_poses(predictor, ('single frame',), crop_stream(...))   # frame pixels

Frames are crops from the crop stream (data/pipeline.py: crop 0 of each row is the frame of
the box, the others its neighbours), uint8 RGB, normalized on the device. Heatmaps are
[N, h, w, J] float32. Each function is compiled once: a call of any N runs in chunks of
config.eval.batch crops, the last padded with zeros and trimmed, so every call reuses the one
compilation, and the variables go to the device once. Inference-mode BatchNorm makes every crop's
output independent of the others in its batch, padding included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import numpy as np

from posewarper_jax.data import codec, pipeline, transforms
from posewarper_jax.models import AGGREGATION_DELTAS, PoseWarper, create_model
from posewarper_jax.ops import backend

ROWS = ('single frame', 'aggregation')
# Both rows from one call: the single frame is the current frame's pass of the aggregation's
# backbone (PoseWarper.single_and_aggregate), so an evaluation of both runs the backbone on each
# crop once, not twice.
BOTH = 'single frame and aggregation'


def heatmap_functions(model: PoseWarper, flip_test: bool = False) -> dict[str, Callable]:
  """The network's pure functions over crops, before jit: 'single frame' and 'aggregation'
  (variables, frames [N, T, H, W, 3] uint8) -> [N, h, w, J]; BOTH, the two from one backbone
  pass -> ([N, h, w, J], [N, h, w, J]); and 'propagation' (variables, source, target
  [N, H, W, 3] uint8, heatmaps [N, h, w, J]) -> [N, h, w, J]. The Predictor jits them;
  posewarper_jax.aot compiles them for accelerators.

  flip_test: HRNet's flip test for the rows (the mirrored crops' heatmaps, mirrored back,
  averaged with the plain ones).
  """

  def single(variables, frames):
    return model.apply(variables, transforms.normalize(frames[:, 0]),
                       method=PoseWarper.single_frame)

  def aggregated(variables, frames):
    return model.apply(variables, transforms.normalize(frames), method=PoseWarper.aggregate)

  def both(variables, frames):
    return model.apply(variables, transforms.normalize(frames),
                       method=PoseWarper.single_and_aggregate)

  def with_flip(fn):
    if not flip_test:
      return fn
    def flipped(variables, frames):
      back = jax.tree.map(codec.flip_back, fn(variables, frames[:, :, :, ::-1]))
      return jax.tree.map(lambda a, b: 0.5 * (a + b), fn(variables, frames), back)
    return flipped

  def propagated(variables, source, target, heatmaps):
    return model.apply(variables, transforms.normalize(source), transforms.normalize(target),
                       heatmaps, method=PoseWarper.propagate)

  return {'single frame': with_flip(single), 'aggregation': with_flip(aggregated),
          BOTH: with_flip(both), 'propagation': propagated}


class Predictor:
  """The jitted heatmap functions of one network (see the module docstring and
  heatmap_functions)."""

  def __init__(self, config, variables: dict[str, Any], flip_test: bool = False):
    self.model = create_model(config)
    self.batch = int(config.eval.batch)
    self.variables = jax.device_put(variables)
    functions = heatmap_functions(self.model, flip_test)
    self._rows = {row: backend.jit(functions[row]) for row in (*ROWS, BOTH)}
    self._propagate = backend.jit(functions['propagation'])

  def __call__(self, row: str, frames: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
    """Heatmaps [N, h, w, J] of a row ('single frame', 'aggregation') for crops [N, T, H, W, 3];
    for BOTH, the two rows' (one backbone pass)."""
    if row not in self._rows:
      raise ValueError(f'no row {row!r}; the rows are {", ".join((*ROWS, BOTH))}')
    return self._chunked(self._rows[row], frames)

  def propagate(self, source: np.ndarray, target: np.ndarray,
                heatmaps: np.ndarray) -> np.ndarray:
    """heatmaps [N, h, w, J] in the source crops [N, H, W, 3], warped to the target crops."""
    return self._chunked(self._propagate, source, target, heatmaps)

  def offsets(self, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """The head's sampling offsets for crops a, b [N, H, W, 3] (one array per dilation, in
    torchvision's layout [N, h, w, 2 * J * taps]); a handful of crops, for pictures."""
    _, state = self.model.apply(self.variables, transforms.normalize(a), transforms.normalize(b),
                                mutable=['intermediates'])
    return [np.asarray(o) for o in state['intermediates']['warper']['offsets']]

  def _chunked(self, fn: Callable, *arrays: np.ndarray) -> np.ndarray:
    n = len(arrays[0])
    outputs = []
    for start in range(0, max(n, 1), self.batch):
      chunk = [np.asarray(a[start:start + self.batch]) for a in arrays]
      size = len(chunk[0])
      if size < self.batch:  # the one compiled shape
        chunk = [np.concatenate([c, np.zeros((self.batch - size, *c.shape[1:]), c.dtype)])
                 for c in chunk]
      outputs.append(jax.tree.map(lambda x, size=size: np.asarray(x)[:size],
                                  fn(self.variables, *chunk)))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)


def predict_poses(predictor: Predictor, rows: Sequence[str], stream: Iterable[dict]
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Row -> (xy [N, 17, 2] frame pixels, peak [N, 17]) for every crop of the stream, in order
  (each batch read once for every row)."""
  outputs = {row: ([], []) for row in rows}
  together = set(ROWS) <= set(rows)  # both rows from one backbone pass (BOTH)
  for batch in stream:
    heatmaps = (dict(zip(ROWS, predictor(BOTH, batch['frames']), strict=True)) if together
                else {})
    for row in rows:
      row_heatmaps = heatmaps[row] if row in heatmaps else predictor(row, batch['frames'])
      xy, peak = codec.decode(row_heatmaps, batch['center'], batch['scale'])
      outputs[row][0].append(xy)
      outputs[row][1].append(peak)
  return {row: (np.concatenate(xy), np.concatenate(peak)) for row, (xy, peak) in outputs.items()}


def warped_heatmaps(predictor: Predictor, stream: Iterable[dict]):
  """Per batch of a propagation crop stream (frames [B, 2, ...]: the source crop, then the
  target's; 'heatmaps': the source person's Gaussians): (those heatmaps, the same warped to the
  target crop, center [B, 2], scale [B, 2])."""
  for batch in stream:
    frames = batch['frames']
    warped = predictor.propagate(frames[:, 0], frames[:, 1], batch['heatmaps'])
    yield batch['heatmaps'], warped, batch['center'], batch['scale']


def propagate_poses(predictor: Predictor, stream: Iterable[dict]
                    ) -> tuple[np.ndarray, np.ndarray]:
  """PoseWarper's propagation: (xy [M, 17, 2] in the target frames, scores [M, 17] = the warped
  peaks) for every crop of a propagation crop stream."""
  decoded = [codec.decode(warped, center, scale)
             for _, warped, center, scale in warped_heatmaps(predictor, stream)]
  return np.concatenate([d[0] for d in decoded]), np.concatenate([d[1] for d in decoded])


def poses_in_boxes(predictor: Predictor, config, records: Sequence[dict], table,
                   boxes: pipeline.Boxes, rows: Sequence[str]
                   ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Row -> (image_ids [N], xy [N, 17, 2] frame pixels, scores [N, 17] = peak x box score) of
  boxes of a split (records and its FrameTable), in box order; the aggregation row crops the
  frames at AGGREGATION_DELTAS."""
  deltas = AGGREGATION_DELTAS if 'aggregation' in rows else (0,)
  stream = pipeline.crop_stream(pipeline.record_frames(records),
                                pipeline.box_crops(table, boxes, deltas),
                                tuple(config.image_size), predictor.batch)
  image_ids = pipeline.image_ids_of(records, boxes.record)
  return {row: (image_ids, xy, peak * boxes.score[:, None])
          for row, (xy, peak) in predict_poses(predictor, rows, stream).items()}
