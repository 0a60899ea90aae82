"""run.py --mode=infer: poses on a user's own video or frame folder.

    python run.py --config=configs/posewarper.py --workdir=runs/w48 --mode=infer \\
        --config.infer.input=clip.mp4 [--config.infer.boxes=boxes.json]

Every box (from config.infer.boxes, or one box around the whole frame for a single person) is
cropped, its heatmaps come from the single-frame network or, with a warping head and
config.infer.aggregate, from PoseWarper's aggregation over frames t-2..t+2 of the same box
(clipped to the video), and are decoded as in evaluation. Writes <workdir>/infer/<input name>/:
predictions.json, poses.mp4 (the skeletons drawn on every frame), grid.png (six frames) and,
with a warping head, offsets.png (the first box's crops of its frame and the next, and the
head's mean sampling offsets between them as a flow image).
"""

from __future__ import annotations

import json
import pathlib

import cv2
import jax
import numpy as np

from posewarper_jax import checkpoints, evaluate, inference, render, train
from posewarper_jax.data import transforms
from posewarper_jax.data.keypoints import JOINT_NAMES
from posewarper_jax.models import AGGREGATION_DELTAS, create_model


def read_boxes(path: str, names: list[str], frame_sizes: list[tuple[int, int]]
               ) -> list[tuple[int, np.ndarray, float]]:
  """(frame index, [x, y, w, h], score) for every box; '' = the whole of every frame."""
  if not path:
    return [(i, np.array([0.0, 0.0, w, h]), 1.0) for i, (h, w) in enumerate(frame_sizes)]
  try:
    entries = json.loads(pathlib.Path(path).expanduser().read_text())
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f'config.infer.boxes: cannot read {path} ({e})') from None
  if not isinstance(entries, list):
    raise ValueError(f'{path}: expected a list of {{"frame", "bbox", "score"}}')
  by_name = {n: i for i, n in enumerate(names)} | {pathlib.Path(n).stem: i
                                                   for i, n in enumerate(names)}
  boxes = []
  for k, entry in enumerate(entries):
    if not isinstance(entry, dict) or 'frame' not in entry or 'bbox' not in entry:
      raise ValueError(f'{path}: box {k} needs "frame" (index or file name) and "bbox" '
                       f'[x, y, w, h], got {entry!r}')
    frame = entry['frame']
    index = frame if isinstance(frame, int) else by_name.get(str(frame))
    if index is None or not 0 <= index < len(names):
      raise ValueError(f'{path}: box {k}: frame {frame!r} is not one of the {len(names)} '
                       'frames of the input')
    box = np.asarray(entry['bbox'], np.float64)
    if box.shape != (4,) or box[2] <= 0 or box[3] <= 0:
      raise ValueError(f'{path}: box {k}: bbox must be [x, y, w, h] with w, h > 0, got '
                       f'{entry["bbox"]}')
    boxes.append((index, box, float(entry.get('score', 1.0))))
  return boxes


def infer(config, workdir: str | pathlib.Path) -> pathlib.Path:
  """Runs the mode; returns the output folder."""
  settings = config.infer
  if not settings.input:
    raise ValueError('config.infer.input is empty: name a video file or a folder of frames '
                     '(--config.infer.input=clip.mp4)')
  workdir = pathlib.Path(workdir)
  frames, names, fps = render.read_frames(settings.input)
  boxes = read_boxes(settings.boxes, names, [f.shape[:2] for f in frames])
  network = checkpoints.load_network(config, workdir)
  variables, path = network.variables, network.checkpoint.describe()
  row = ('aggregation' if settings.aggregate and network.has_head
         else 'single frame')
  print(f'infer: {path} on {len(frames)} frames, {len(boxes)} boxes ({row})', flush=True)
  function = evaluate.heatmap_functions(create_model(config), flip_test=False)[row]
  variables = jax.device_put(variables)
  height, width = config.image_size
  deltas = AGGREGATION_DELTAS if row == 'aggregation' else (0,)
  batch = config.eval.batch
  xys, scores = [], []
  for start in range(0, len(boxes), batch):
    chunk = boxes[start:start + batch]
    crops, centers, scales = [], [], []
    for index, box, _ in chunk:
      center, scale, matrix = transforms.box_crop(box, (width, height))
      crops.append([transforms.warp_image(frames[int(np.clip(index + d, 0, len(frames) - 1))],
                                          matrix, (width, height)) for d in deltas])
      centers.append(center)
      scales.append(scale)
    heatmaps = np.asarray(function(variables, np.asarray(crops, np.uint8)))
    xy, peak = inference.decode(heatmaps, np.stack(centers), np.stack(scales))
    xys.append(xy)
    scores.append(peak * np.array([s for _, _, s in chunk])[:, None])
  xy, score = np.concatenate(xys), np.concatenate(scores)

  out = workdir / 'infer' / pathlib.Path(settings.input).stem
  per_frame = [[] for _ in frames]
  for k, (index, _, _) in enumerate(boxes):
    per_frame[index].append(k)
  predictions = {'input': str(settings.input), 'network': str(network.checkpoint.directory),
                 'mode': row,
                 'joints': list(JOINT_NAMES), 'frames': [
                     {'name': names[i], 'people': [
                         {'bbox': boxes[k][1].tolist(), 'box_score': boxes[k][2],
                          'keypoints': np.concatenate([xy[k], score[k][:, None]], 1).tolist()}
                         for k in people]}
                     for i, people in enumerate(per_frame)]}
  out.mkdir(parents=True, exist_ok=True)
  (out / 'predictions.json').write_text(json.dumps(predictions))
  drawn = [render.draw_poses(frame, xy[people], score[people], settings.min_score,
                             boxes=np.stack([boxes[k][1] for k in people]) if people else None)
           for frame, people in zip(frames, per_frame, strict=True)]
  render.write_video(drawn, out / 'poses.mp4', fps)
  chosen = np.unique(np.linspace(0, len(drawn) - 1, min(6, len(drawn))).round().astype(int))
  render.save_grid([drawn[i] for i in chosen], out / 'grid.png', columns=3)
  written = 'predictions.json, poses.mp4, grid.png'
  if network.has_head and len(frames) > 1 and boxes:
    draw_offsets(config, variables, frames, boxes[0], out / 'offsets.png')
    written += ', offsets.png'
  print(f'infer: {written} in {out}', flush=True)
  return out


def draw_offsets(config, variables, frames, box, path: pathlib.Path) -> None:
  """The head's offsets for the first box on its frame (A) and the next one (B): A's crop, B's
  crop and the mean sampling displacement as a flow image, side by side."""
  index, xywh, _ = box
  index = min(index, len(frames) - 2)
  height, width = config.image_size
  _, _, matrix = transforms.box_crop(xywh, (width, height))
  crops = [transforms.warp_image(frames[i], matrix, (width, height)) for i in (index, index + 1)]
  a, b = (train.normalize(np.asarray(c)[None]) for c in crops)
  _, state = create_model(config).apply(variables, a, b, mutable=['intermediates'])
  offsets = state['intermediates']['warper']['offsets']
  flow = render.flow_image(render.mean_displacement(offsets)[0])
  render.save_grid([*crops, cv2.resize(flow, (width, height), interpolation=cv2.INTER_NEAREST)],
                   path, columns=3)
