"""A COCO stand-in: labeled still images of posed people, in COCO's official keypoint layout.

    stills.generate_stills(out_dir, seed=0, num_images=3000, width=384, height=288,
                           max_people=6, limb_code=0.0)
    python -m posewarper_jax.data.stills --out DIR [--limb_code 1.0] [--posetrack18 DIR]

The paper pretrains HRNet on COCO (labeled still photographs of another domain) before it
fine-tunes on sparsely labeled PoseTrack videos. This is that first dataset's analog for the
project's synthetic videos (synthetic.py): stills that teach pose but differ from the synthetic
videos the way COCO differs from PoseTrack. tfds_posetrack/posetrack18/coco.py converts them (or
the real COCO) to the PoseTrack18 layout that the dataset builder reads, each image one labeled
one-frame video.

Joints are COCO's, in COCO's order: slots 1 and 2 are the eyes, where PoseTrack18 has
head_bottom and head_top. That is kept on purpose: the release fine-tunes a COCO network on
PoseTrack, and those two channels change meaning between the stages.

How the stills differ from the synthetic videos, each on purpose, and where:

- Appearance (render.py, clothes.py): filled bodies in clothes, left and right told apart by weak
  cues (a lighter left side, a face towards the camera), not by one saturated colour per limb.
- Backgrounds (backgrounds.py): rooms, streets, walls and studios, sharp, often saturated, with
  per-pixel noise, not blurred noise textures.
- Scale and crowding (writer.py): 1 to max_people people per image, from small to larger than the
  frame, often overlapping.
- No motion blur, no defocus, no sweeping foreground occluders, no camera motion: single sharp
  images (writer.py).
- Pose statistics (body.py): random articulated poses within joint limits, any turn about the
  vertical axis, not a walking gait.

The modules, each importing only those above it: clothes.py (colours), body.py (the body model
and the Person it makes), backgrounds.py, render.py (drawing a Still and its labels), writer.py
(make_stills, generate_stills) and __main__.py (the command line).

Deterministic: the same arguments give byte-identical JSON and identical JPEG files; each image
draws from its own child of SeedSequence(seed), so images are independent of one another.
Everything in pixels scales with the image size.
"""

from posewarper_jax.data.stills.backgrounds import BACKGROUNDS, background
from posewarper_jax.data.stills.body import Person, make_person
from posewarper_jax.data.stills.clothes import Clothes, random_clothes
from posewarper_jax.data.stills.render import Still, draw_person
from posewarper_jax.data.stills.writer import (
    ANNOTATIONS,
    GENERATED,
    IMAGES,
    JPEG_QUALITY,
    SETTINGS_ADDED,
    generate_stills,
    make_stills,
)

__all__ = ['ANNOTATIONS', 'BACKGROUNDS', 'GENERATED', 'IMAGES', 'JPEG_QUALITY', 'SETTINGS_ADDED',
           'Clothes', 'Person', 'Still',
           'background', 'draw_person', 'generate_stills', 'make_person', 'make_stills',
           'random_clothes']
