"""The COCO stand-in's writer: `make_stills` composes the stills, `generate_stills` writes them in
COCO's keypoint layout.

    generate_stills(out_dir, seed=0, num_images=3000, width=384, height=288, max_people=6,
                    limb_code=0.0)

writes

  train2017/<12-digit image id>.jpg
  annotations/person_keypoints_train2017.json   {info, images, annotations, categories}

(coco.IMAGES and coco.ANNOTATIONS: tfds_posetrack/posetrack18/coco.py, which converts them to
PoseTrack18) with COCO's fields: image {id, file_name, width, height}; annotation {id, image_id,
category_id 1, keypoints 17 x (x, y, v) flat, num_keypoints, bbox [x, y, w, h], area, iscrowd
0}; the one category with COCO's 17 keypoint names and 19-limb skeleton (1-based). People with
visible pixels but no labeled joint (e.g. a belly filling the frame) are kept with num_keypoints
0, as COCO's person_keypoints files keep unlabeled people; people with no visible pixel are left
out.

Scale and crowding: 1 to max_people people per image, standing heights from 0.15 of the image
height to about twice it (cut off by the frame), often grouped so that they overlap, drawn far
(small) to near (large) so that nearer people occlude farther ones. No motion blur, no defocus,
no sweeping foreground occluders, no camera motion: single sharp images.

Deterministic: the same arguments give byte-identical JSON and identical JPEG files; each image
draws from its own child of SeedSequence(seed), so images are independent of one another.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
from typing import Any

import cv2
import numpy as np

from posewarper_jax.data.stills.body import make_person
from posewarper_jax.data.stills.render import Still
from tfds_posetrack.posetrack18 import coco

JPEG_QUALITY = 90
# Written last into a folder of finished stills, with their settings (provenance.record).
GENERATED = 'GENERATED'
# Settings recorded since the first stills were made, as they were then (provenance's `added`).
SETTINGS_ADDED = {'jpeg_quality': JPEG_QUALITY}
IMAGES = coco.IMAGES
ANNOTATIONS = coco.ANNOTATIONS
_INFO = {'description': 'Synthetic COCO stand-in: posed people in still images '
                        '(posewarper_jax.data.stills)',
         'url': '', 'version': '1.0', 'year': 2024, 'contributor': 'posewarper_jax',
         'date_created': '2024/01/01'}  # fixed, so that the file is a function of the arguments


def make_stills(*, seed: int = 0, num_images: int = 3000, width: int = 384, height: int = 288,
                max_people: int = 6, limb_code: float = 0.0) -> list[Still]:
  """The stills `generate_stills` writes with the same arguments (cheap: nothing is drawn)."""
  if num_images < 1 or not 1 <= max_people <= 250 or width < 16 or height < 16:
    raise ValueError(f'need num_images >= 1, 1 <= max_people <= 250 and an image of at least '
                     f'16x16; got {num_images}, {max_people}, {width}x{height}')
  if not 0 <= limb_code <= 1:
    raise ValueError(f'limb_code is a share in [0, 1], got {limb_code!r}')
  if num_images >= 10**6:
    raise ValueError(f'at most 999999 images (ids are 6-digit PoseTrack video numbers once '
                     f'converted), got {num_images}')
  rng = np.random.default_rng(seed)
  # Distinct ids spread over COCO's range (below 10^6, as COCO's: coco.to_posetrack18 needs
  # it).
  ids = np.sort(rng.choice(np.arange(1, 10**6), size=num_images, replace=False))
  stills = []
  for image_id, child in zip(ids, np.random.SeedSequence(seed).spawn(num_images), strict=True):
    r = np.random.default_rng(child)
    n = int(r.integers(1, max_people + 1))
    # Half the images group their people around a point, so that they overlap.
    group = ((r.uniform(0.2, 0.8) * width, r.uniform(0.08, 0.3) * width) if r.random() < 0.5
             else None)
    people = [make_person(r, width, height, group, limb_code) for _ in range(n)]
    # Far to near: the smaller (farther) first, so that nearer people occlude them.
    people.sort(key=lambda p: p.height)
    stills.append(Still(int(image_id), width, height, tuple(people), int(r.integers(2**63))))
  return stills


def generate_stills(out_dir: str | os.PathLike, *, seed: int = 0, num_images: int = 3000,
                    width: int = 384, height: int = 288, max_people: int = 6,
                    limb_code: float = 0.0, jpeg_quality: int = JPEG_QUALITY) -> dict[str, Any]:
  """Writes the COCO stand-in under `out_dir` (see the module docstring).

  Args:
    out_dir: the root (created): train2017/ and annotations/person_keypoints_train2017.json;
      files of the same names are replaced, others left alone (the command line, __main__.py,
      refuses a folder it did not make).
    seed: everything is a function of the arguments: the same seed gives identical files.
    num_images: images to write (below 10^6).
    width, height: image size in pixels.
    max_people: each image has 1 to max_people people (those entirely hidden are not
      annotated).
    limb_code: the share (0 to 1) of the synthetic videos' colour per limb (warm on the left,
      cool on the right, one hue per segment) in each arm and leg segment's colour, the rest
      the clothes'. The videos' people tell left from right and one limb from another by those
      colours, as real people by their anatomy; 0 leaves the stills only the weak cues that
      render.py describes, and the calibration of this share is in docs/quickstart.md,
      section 5.6.
    jpeg_quality: the JPEG quality of the images.

  Returns:
    {'root', 'images', 'annotations', 'annotations_without_keypoints', 'keypoints_visible'
    (v = 2), 'keypoints_occluded' (v = 1), 'people_per_image': {count: images}}.
  """
  root = pathlib.Path(out_dir)
  (root / IMAGES).mkdir(parents=True, exist_ok=True)
  (root / ANNOTATIONS).parent.mkdir(parents=True, exist_ok=True)
  images, annotations = [], []
  per_image: collections.Counter = collections.Counter()
  for still in make_stills(seed=seed, num_images=num_images, width=width, height=height,
                           max_people=max_people, limb_code=limb_code):
    img, anns = still.render()
    anns = [a for a in anns if a is not None]
    ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
      raise RuntimeError(f'JPEG encoding failed for image {still.image_id}')
    (root / IMAGES / still.file_name).write_bytes(buf.tobytes())
    images.append({'id': still.image_id, 'file_name': still.file_name, 'width': width,
                   'height': height})
    for ann in anns:
      annotations.append({'id': len(annotations) + 1, **ann})
    per_image[len(anns)] += 1
  data = {'info': dict(_INFO), 'images': images, 'annotations': annotations,
          'categories': [coco.category()]}
  with open(root / ANNOTATIONS, 'w') as f:
    json.dump(data, f, separators=(',', ':'))
  v = np.array([a['keypoints'][2::3] for a in annotations]).reshape(-1)
  return {'root': str(root), 'images': len(images), 'annotations': len(annotations),
          'annotations_without_keypoints': sum(a['num_keypoints'] == 0 for a in annotations),
          'keypoints_visible': int((v == 2).sum()), 'keypoints_occluded': int((v == 1).sum()),
          'people_per_image': dict(sorted(per_image.items()))}
