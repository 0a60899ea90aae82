"""run.py --mode=infer: poses on a user's own video or frame folder.

    python run.py --config=configs/posewarper.py --workdir=runs/w48 --mode=infer \\
        --config.infer.input=clip.mp4 [--config.infer.boxes=boxes.json]
    infer_frames(config, network, frames, names, boxes, fps, out, name)   # frames in memory

Every box (from config.infer.boxes, or one box around the whole frame for a single person) is
cropped, its heatmaps come from the single-frame network or, with a warping head and
config.infer.aggregate, from PoseWarper's aggregation over frames t-2..t+2 of the same box
(clipped to the video), and are decoded as in evaluation. Writes <workdir>/infer/<input name>/:
predictions.json, poses.mp4 (the skeletons drawn on every frame), grid.png (six frames) and,
with a warping head, offsets.png (the first box's crops of its frame and the next, and the
head's mean sampling offsets between them as a flow image).

The boxes file is checked before anything runs (read_boxes: finite numbers, boxes with area on
their frame), the poses after (finite), and the outputs are written only once everything is
computed, each to a temporary file in the same folder renamed over the old one: a failed or
interrupted run leaves a previous run's outputs as they were, never half of them.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from posewarper_jax import checkpoints, predictor, render
from posewarper_jax.data import transforms
from posewarper_jax.data.pipeline import Crops, box_from_json, crop_stream, score_from_json
from posewarper_jax.models import AGGREGATION_DELTAS
from tfds_posetrack.posetrack18.keypoints import JOINT_NAMES


def read_boxes(path: str, names: list[str], frame_sizes: list[tuple[int, int]]
               ) -> list[tuple[int, np.ndarray, float]]:
  """(frame index, [x, y, w, h], score) for every box; '' = the whole of every frame.

  The file is a JSON list of {"frame": index or file name, "bbox": [x, y, w, h], "score"
  (optional, 1)}: bbox four finite numbers with w, h > 0, overlapping its frame (frame_sizes are
  (height, width)), score a finite number. Anything else, or no box at all, is a ValueError that
  names the file, the box index and the field.
  """
  if not path:
    return [(i, np.array([0.0, 0.0, w, h]), 1.0) for i, (h, w) in enumerate(frame_sizes)]
  try:
    entries = json.loads(pathlib.Path(path).expanduser().read_text())
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f'config.infer.boxes: cannot read {path} ({e})') from None
  if not isinstance(entries, list):
    raise ValueError(f'{path}: expected a list of {{"frame", "bbox", "score"}}')
  if not entries:
    # Nothing to infer: an empty list is a detector that found no one, or the wrong file.
    raise ValueError(f'{path}: the list has no box (leave config.infer.boxes empty for one box '
                     'around each whole frame)')
  by_name = {n: i for i, n in enumerate(names)} | {pathlib.Path(n).stem: i
                                                   for i, n in enumerate(names)}
  boxes = []
  for k, entry in enumerate(entries):
    if not isinstance(entry, dict) or 'frame' not in entry or 'bbox' not in entry:
      raise ValueError(f'{path}: box {k} needs "frame" (index or file name) and "bbox" '
                       f'[x, y, w, h], got {entry!r}')
    frame = entry['frame']
    if isinstance(frame, str):
      index = by_name.get(frame)
    elif isinstance(frame, int) and not isinstance(frame, bool):
      index = frame
    else:  # 1.0, true: neither an index nor a name (true would silently be frame 1)
      raise ValueError(f'{path}: box {k}: frame must be an integer index or a file name, got '
                       f'{frame!r} ({type(frame).__name__})')
    if index is None or not 0 <= index < len(names):
      raise ValueError(f'{path}: box {k}: frame {frame!r} is not one of the {len(names)} '
                       'frames of the input')
    box = box_from_json(entry['bbox'], f'{path}: box {k}')
    height, width = frame_sizes[index]
    if box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
      raise ValueError(f'{path}: box {k}: bbox {entry["bbox"]} lies wholly outside frame '
                       f'{names[index]} ({width}x{height} pixels)')
    score = score_from_json(entry.get('score', 1.0), f'{path}: box {k}')
    boxes.append((index, box, score))
  return boxes


def infer(config, workdir: str | pathlib.Path) -> pathlib.Path:
  """Runs the mode on config.infer.input; returns the output folder."""
  settings = config.infer
  if not settings.input:
    raise ValueError('config.infer.input is empty: name a video file or a folder of frames '
                     '(--config.infer.input=clip.mp4)')
  workdir = pathlib.Path(workdir)
  frames, names, fps = render.read_frames(settings.input)
  boxes = read_boxes(settings.boxes, names, [f.shape[:2] for f in frames])
  network = checkpoints.load_network(config, workdir)
  return infer_frames(config, network, frames, names, boxes, fps,
                      workdir / 'infer' / pathlib.Path(settings.input).stem, str(settings.input))


def infer_frames(config, network: checkpoints.Network, frames: Sequence[np.ndarray],
                 names: Sequence[str], boxes: Sequence[tuple[int, np.ndarray, float]],
                 fps: float, out: pathlib.Path, input_name: str) -> pathlib.Path:
  """Poses in `boxes` ((frame index, [x, y, w, h], score), as read_boxes gives them) on frames
  in memory (RGB uint8 [H, W, 3], named `names`), written to `out`; returns `out`."""
  settings = config.infer
  path = network.checkpoint.describe()
  row = 'aggregation' if settings.aggregate and network.has_head else 'single frame'
  print(f'infer: {path} on {len(frames)} frames, {len(boxes)} boxes ({row})', flush=True)
  deltas = np.asarray(AGGREGATION_DELTAS if row == 'aggregation' else (0,))
  index = np.asarray([i for i, _, _ in boxes], np.int64)
  crops = Crops(np.stack([box for _, box, _ in boxes]),
                np.clip(index[:, None] + deltas[None, :], 0, len(frames) - 1))
  network_predictor = predictor.Predictor(config, network.variables)
  stream = crop_stream(frames.__getitem__, crops, tuple(config.image_size),
                       network_predictor.batch)
  xy, peak = predictor.predict_poses(network_predictor, [row], stream)[row]
  score = peak * np.array([s for _, _, s in boxes])[:, None]
  broken = np.flatnonzero(~(np.isfinite(xy).all((1, 2)) & np.isfinite(score).all(1)))
  if len(broken):
    # A diverged checkpoint gives NaN heatmaps; their poses must not become the output.
    k = int(broken[0])
    raise ValueError(f'infer: the network {path} gave non-finite keypoints or scores for '
                     f'{len(broken)} of {len(boxes)} boxes (the first: box {k}, frame '
                     f'{names[boxes[k][0]]}); nothing was written')

  # Everything is computed before anything is written: a failure leaves a previous run's
  # outputs as they were.
  per_frame = [[] for _ in frames]
  for k, (i, _, _) in enumerate(boxes):
    per_frame[i].append(k)
  predictions = {'input': input_name, 'network': str(network.checkpoint.directory),
                 'mode': row,
                 'joints': list(JOINT_NAMES), 'frames': [
                     {'name': names[i], 'people': [
                         {'bbox': boxes[k][1].tolist(), 'box_score': boxes[k][2],
                          'keypoints': np.concatenate([xy[k], score[k][:, None]], 1).tolist()}
                         for k in people]}
                     for i, people in enumerate(per_frame)]}
  text = json.dumps(predictions, allow_nan=False)  # checked above; strict JSON all the same
  drawn = [render.draw_poses(frame, xy[people], score[people], settings.min_score,
                             boxes=np.stack([boxes[k][1] for k in people]) if people else None)
           for frame, people in zip(frames, per_frame, strict=True)]
  chosen = np.unique(np.linspace(0, len(drawn) - 1, min(6, len(drawn))).round().astype(int))
  images = {'grid.png': render.grid([drawn[i] for i in chosen], columns=3)}
  if network.has_head and len(frames) > 1:
    images['offsets.png'] = offsets_image(config, network_predictor, frames, boxes[0])

  out.mkdir(parents=True, exist_ok=True)
  writers = {'predictions.json': lambda file: _write_text(file, text),
             'poses.mp4': lambda file: render.write_video(drawn, file, fps)}
  writers |= {name: (lambda file, image=image: render.save_image(image, file))
              for name, image in images.items()}
  _write_all(out, writers)
  if 'offsets.png' not in images:
    # A previous network's offsets beside this network's poses would describe neither.
    (out / 'offsets.png').unlink(missing_ok=True)
  print(f'infer: {", ".join(writers)} in {out}', flush=True)
  return out


def _write_text(path: pathlib.Path, text: str) -> None:
  with open(path, 'w') as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())  # on disk before the rename makes it the file


def _write_all(out: pathlib.Path, writers: dict[str, Callable[[pathlib.Path], None]]) -> None:
  """Calls writers[name](temporary path) for each output file, each temporary file in `out`
  beside its final name (same suffix: OpenCV picks the format by it), then renames them all
  over the final names (os.replace, atomic within a folder). A failing writer leaves every
  previous output as it was and no temporary file behind."""
  staged = {}
  try:
    for name, write in writers.items():
      final = out / name
      temporary = out / f'.{final.stem}.partial-{os.getpid()}{final.suffix}'
      staged[final] = temporary
      write(temporary)
  except BaseException:
    for temporary in staged.values():
      temporary.unlink(missing_ok=True)
    raise
  for final, temporary in staged.items():
    os.replace(temporary, final)


def offsets_image(config, network_predictor: predictor.Predictor, frames, box) -> np.ndarray:
  """The head's offsets for the first box on its frame (A) and the next one (B): A's crop, B's
  crop and the mean sampling displacement as a flow image, side by side (one RGB grid)."""
  index, xywh, _ = box
  index = min(index, len(frames) - 2)
  height, width = config.image_size
  _, _, matrix = transforms.box_crop(xywh, (width, height))
  crops = [transforms.warp_image(frames[i], matrix, (width, height)) for i in (index, index + 1)]
  offsets = network_predictor.offsets(crops[0][None], crops[1][None])
  flow = render.flow_image(render.mean_displacement(offsets)[0])
  return render.grid([*crops, cv2.resize(flow, (width, height), interpolation=cv2.INTER_NEAREST)],
                     columns=3)
