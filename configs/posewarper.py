"""PoseWarper on PoseTrack18: the paper's experiment and its variants.

    python run.py --config=configs/posewarper.py --workdir=DIR          # stage 2, the paper's
    python run.py --config=configs/posewarper.py:stage1 --workdir=DIR   # a named variant
    python run.py --config=configs/posewarper.py:synthetic,w32 ...      # variants combine
    --config.data.max_gap=1                                             # any field, overridden

`get_config(arg)` takes comma-separated variant names (see VARIANTS). A run's workdir holds one
folder per stage (DIR/stage1, DIR/stage2): checkpoints, metrics.jsonl and TensorBoard events;
the other modes of run.py write DIR/eval, DIR/propagate, DIR/augment and DIR/infer (config.eval
and config.infer below).
"""

from __future__ import annotations

import ml_collections


def _paper() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # Crops fed to the network (H, W); heatmaps are a quarter of that (96 x 72).
  config.image_size = (384, 288)
  # The std (heatmap pixels) of the Gaussian targets (spec 2.3), and of the ground-truth maps
  # that propagation warps. HRNet scales it with the heatmap: 2 at 64 x 48, 3 at 96 x 72.
  config.sigma = 3.0

  # Which stages `run.py --mode=train` runs, in order (spec 2.1): 1 fine-tunes the single-frame
  # HRNet, 2 trains the warping head on the frozen stage-1 network.
  config.stages = (2,)
  config.seed = 0
  # What the train mode does once the stages are trained, in order (posewarper_jax/report.py):
  # 'eval' (the mAP table), 'propagate' (against copying labels), 'render' (poses drawn on a
  # validation video); then <workdir>/results.md. The paper's run stops after training.
  config.after_training = ()

  config.data = ml_collections.ConfigDict()
  # The dataset directory in any official layout, detected (PoseTrack18: images/ and
  # annotations/{train,val,test}; PoseTrack21: images/ and posetrack_data/{train,val};
  # PoseTrack17: annotations/ in the 2017 format); '' reads $POSETRACK18_DIR. tfds_dir: where
  # the TFDS build goes ('' = <root>/tfds).
  config.data.root = ''
  config.data.tfds_dir = ''
  # Generate a synthetic PoseTrack18 in <workdir>/data instead (posewarper_jax/data/synthetic.py).
  config.data.synthetic = False
  config.data.synthetic_videos = (12, 4)  # train, val
  config.data.synthetic_frame_size = (288, 384)  # (H, W)
  # The layout the synthetic set is written in: 'posetrack18', 'posetrack21' or 'posetrack17'.
  config.data.synthetic_layout = 'posetrack18'
  # k: the supporting frame B is t + delta, delta uniform in [-k, k] (spec 2.2: T = 2). Frames
  # are stored within stored_gap of a label (the builder's max_gap): any k <= 7 needs no rebuild.
  config.data.max_gap = 2
  config.data.stored_gap = 7
  # The paper's sparse labels (spec 7): only V videos (labeled_videos) and N labeled frames in
  # each (labeled_frames_per_video) keep their labels in training, both stages; -1 = all. The
  # rule that picks them: tfds_posetrack/posetrack18/pairs.py, sparse_labels.
  config.data.labeled_videos = -1
  config.data.labeled_frames_per_video = -1
  # The seed of the draw of the V videos; -1: config.seed. The grid's further initialisations of
  # a sparse baseline pin it, so that config.seed changes the network and not its labels.
  config.data.labeled_seed = -1
  # What the training set's 17 slots mean, for the flip augmentation: 'posetrack18', or 'coco'
  # (slots 1 and 2 are the eyes, which a flip swaps): the COCO stand-in's pretraining sets it.
  config.data.joints = 'posetrack18'
  config.data.num_workers = 8         # Grain worker processes per host (0: in the main process)
  # JPEG DCT scaling when the crop is at most half-resolution: faster input, but not the
  # release's pixels (it always decodes full frames), so off for the paper (docs/benchmarks.md).
  config.data.reduced_decode = False

  config.model = ml_collections.ConfigDict()
  config.model.dtype = 'float32'  # computation dtype, 'float32' or 'bfloat16'; params stay f32
  # HRNet-W48 (spec 1.1): branch b has width * 2^b channels; stage s has s branches.
  config.model.backbone = ml_collections.ConfigDict(dict(
      width=48,
      stage_modules=(1, 4, 3),   # stage2, stage3, stage4
      stage_blocks=(4, 4, 4),    # BasicBlocks per branch
      stem_features=64,
      layer1_planes=64,
      layer1_blocks=4,
      # Recompute the residual blocks' activations in the backward pass (memory for about one
      # more forward pass; the same function): for batches or crops larger than a chip holds
      # (the release's 16 crops per device fit every chip without it: docs/accelerators.md).
      remat=False,
  ))
  # The warping head (spec 1.3).
  config.model.head = ml_collections.ConfigDict(dict(
      num_blocks=20,
      features=128,
      dilations=(3, 6, 12, 18, 24),
      remat=False,  # recompute offset-block activations in the backward (memory; CPU speed)
  ))

  # Training (spec 2.1): Adam (betas 0.9/0.999, eps 1e-8, no weight decay), the learning rate
  # multiplied by lr_drop_factor at the start of each epoch in lr_drop_epochs (0-based). The
  # release configures LR_STEP and its scheduler call order applies each drop one epoch earlier,
  # in both stages (spec 2.1): these are the epochs its numbers were trained with.
  config.stage1 = ml_collections.ConfigDict(dict(
      # A COCO-pretrained HRNet: a .pth (official or mmpose), a .npz, a converted checkpoint
      # (python -m posewarper_jax.convert) or a run's workdir. '' trains from scratch.
      init='',
      num_epochs=10,
      global_batch=128,    # 16 per GPU x 8
      learning_rate=1e-4,
      lr_drop_epochs=(4, 6),  # LR_STEP 5 and 7
  ))
  config.stage2 = ml_collections.ConfigDict(dict(
      # The stage-1 network ('' = <workdir>/stage1 of this run), in any of stage1.init's forms.
      init='',
      # The yaml's 20; the helper scripts behind the published numbers end at 19 (spec 2.1).
      num_epochs=19,
      global_batch=64,     # 8 pairs per GPU x 8
      learning_rate=1e-4,
      lr_drop_epochs=(9, 14),  # LR_STEP 10 and 15
      # The frozen backbone's BatchNorm: 'frozen' (inference mode, as mmpose) or 'batch' (the
      # release: batch statistics, running averages updated; its weights stay frozen).
      backbone_bn='frozen',
      # What the head warps in training: 'prediction', frame B's predicted heatmaps (the
      # release); 'ground_truth', frame B's own labels of the person where it has them, as
      # propagation warps a labeled frame's (a diagnostic: it reads labels a sparse subset
      # drops; docs/quickstart.md, section 5.6).
      warp_input='prediction',
  ))
  config.train = ml_collections.ConfigDict(dict(
      lr_drop_factor=0.1,
      grad_clip=0.0,           # global-norm clipping; 0 = none
      num_steps=0,             # stop after this many steps (0: the schedule's end); for trials
      log_every=50,            # steps between console / metrics.jsonl / TensorBoard lines
      checkpoint_every=1000,   # steps between checkpoints (and at the end, and on SIGTERM)
      keep_checkpoints=3,
      # How the step spreads over devices (posewarper_jax/parallel.py): 'pmap' over each
      # process's devices, or 'jit' over a Mesh of every device with the batch sharded by
      # NamedSharding (TPU pods, current JAX). The same step and checkpoints either way.
      parallel='pmap',
  ))
  # run.py --mode=augment_grid (posewarper_jax/label_grid.py): the augmentation experiment of
  # spec 7 for each (V, N) in labels. Its sparse runs train with stage1 / stage2 above; the
  # baseline retrained on kept + propagated labels (and PoseWarper on it, for aggregation)
  # with retrain's. PoseTrack17's grid (V 100, 175, 250 at N = 1; V = 50 at N = 1, 2, 4),
  # V scaled by PoseTrack18's 593 train videos over PoseTrack17's 250. retrain holds schedules
  # only: the retrained baseline starts from config.stage1.init (COCO) as the sparse one does.
  schedule = lambda stage: ml_collections.ConfigDict(
      {f: stage[f] for f in ('num_epochs', 'global_batch', 'learning_rate', 'lr_drop_epochs')})
  config.grid = ml_collections.ConfigDict(dict(
      labels=((237, 1), (415, 1), (-1, 1), (119, 1), (119, 2), (119, 4)),
      retrain=ml_collections.ConfigDict(dict(stage1=schedule(config.stage1),
                                             stage2=schedule(config.stage2))),
      # Controls, each one more retrained baseline per point on the same frames: 'copy' (the
      # kept poses copied, not warped), 'ground_truth' (those frames' own labels).
      controls=(),
      # The spread: at these (V, N) of labels (() = at none) the sparse baseline (stage 1), the
      # retrained baseline, PoseWarper on it and each control are trained `initialisations`
      # times, the further runs with config.seed + 1, + 2, ... (their initialisation and the
      # order of their batches; the sparse baseline keeps the first run's labels, the
      # retrainings the sparse run's enlarged sets). The table gives their mean and range, the
      # figure their range.
      spread_points=(),
      initialisations=1,
  ))
  # A stand-in for COCO pretraining on synthetic videos (posewarper_jax/pretrain.py): with
  # stills > 0, that many labeled still images are generated into <workdir>/data/stills (drawn
  # unlike the videos: posewarper_jax/data/stills), stage 1 is trained on them from scratch
  # in <workdir>/pretrain with stage1's schedule below (evaluate: its single frame then scored
  # on the validation videos), and the run's stage 1 starts from it (config.stage1.init stays
  # empty). Made once per workdir and resumed like every stage. 0: no stand-in.
  config.pretrain = ml_collections.ConfigDict(dict(
      stills=0,
      seed=0,
      max_people=6,           # people per still: 1 to this many
      # The share of the videos' limb colours in the stills' limbs (data/stills/writer.py,
      # generate_stills): how much of the videos' "anatomy" the stand-in's people share.
      limb_code=0.0,
      evaluate=True,
      stage1=schedule(config.stage1),
  ))
  # Evaluation (spec 3 and 5): run.py --mode=eval.
  config.eval = ml_collections.ConfigDict(dict(
      split='validation',
      # The network: '' = <workdir>/stage2 (else <workdir>/stage1 for the single-frame row);
      # or a run, a converted checkpoint or a .pth.
      checkpoint='',
      boxes='gt',              # 'gt', or a detection JSON (COCO results or the release's list)
      min_box_score=0.2,       # detector boxes kept (the release: 0.2)
      aggregate=True,          # also the spatiotemporal aggregation row (needs stage 2)
      flip_test=False,         # the release: off
      oks_nms=0.0,             # OKS-NMS threshold for overlapping poses (HRNet: 0.9); 0 = off
      neck_from_shoulders=False,  # the release's "neck"; only to compare with its tables
      gallery=True,            # PNGs of the worst frames per joint (eval/<split>/<row>/gallery)
      batch=32,
  ))
  # run.py --mode=infer: a user's own video or frame folder.
  config.infer = ml_collections.ConfigDict(dict(
      input='',                # a video file (.mp4, ...) or a folder of frames
      # A JSON list of {"frame": index or file name, "bbox": [x, y, w, h], "score": s}; '' puts
      # one box around the whole frame (a single person).
      boxes='',
      aggregate=True,          # PoseWarper's aggregation over frames -2..+2 (needs stage 2)
      min_score=0.2,           # joints drawn from this score up
  ))
  return config


def _stage1(config: ml_collections.ConfigDict) -> None:
  """Stage 1 alone: the single-frame HRNet on PoseTrack18 (from config.stage1.init)."""
  config.stages = (1,)


def _stage2(config: ml_collections.ConfigDict) -> None:
  """Stage 2 alone (the default): the warping head on the frozen stage-1 network."""
  config.stages = (2,)


def _w32(config: ml_collections.ConfigDict) -> None:
  """HRNet-W32: the usual smaller backbone (channels 32/64/128/256)."""
  config.model.backbone.width = 32


def _small(config: ml_collections.ConfigDict) -> None:
  """A CPU-sized network for tests and the synthetic quick start (3 branches, 128x96 crops)."""
  config.image_size = (128, 96)
  config.model.backbone.update(width=16, stage_modules=(1, 1), stage_blocks=(2, 2),
                               stem_features=32, layer1_planes=16, layer1_blocks=1)
  config.model.head.update(num_blocks=4, features=32, dilations=(3, 6, 12))


def _synthetic(config: ml_collections.ConfigDict) -> None:
  """The quick start: generated videos, both stages from scratch with the small network, then
  eval, propagation and rendering; 11 to 29 minutes on two CPU cores, by host. How these values
  were found, measured: docs/quickstart.md."""
  _small(config)
  config.stages = (1, 2)
  config.after_training = ('eval', 'propagate', 'render')
  # 32 x 24 heatmaps: the targets narrowed with them, as HRNet narrows them (3 at 96 x 72).
  # Single-frame mAP, measured: sigma 3 -> 2 gave +10.6, 2 -> 1.5 another +3.1.
  config.sigma = 1.5
  config.data.synthetic = True
  config.data.synthetic_videos = (96, 12)  # train, val: fewer train videos overfit
  config.data.num_workers = 0
  config.data.reduced_decode = False  # 384x288 frames: nothing to gain
  config.stage1.update(num_epochs=8, global_batch=16, learning_rate=1e-3, lr_drop_epochs=(6,))
  # 1e-3 made the deformable kernels mix joints (Adam's steps on tiny gradients) and the
  # aggregation lost to the single frame; the paper's 1e-4 does not.
  config.stage2.update(num_epochs=2, global_batch=16, learning_rate=1e-4, lr_drop_epochs=(1,))
  config.train.update(log_every=50, checkpoint_every=250)


def _augmented(config: ml_collections.ConfigDict) -> None:
  """Stage 1 retrained on a training set enlarged with propagated labels (run.py
  --mode=augment writes it; point config.data.root at it), from COCO with the paper's stage-1
  settings, as the release retrains its baseline (spec 7). The enlarged set holds only the kept
  and the propagated labels: all of them train."""
  config.stages = (1,)
  config.data.synthetic = False
  config.data.labeled_videos = config.data.labeled_frames_per_video = -1


def _sparse_propagation(config: ml_collections.ConfigDict) -> None:
  """The release's propagation experiment (spec 7): both stages on N = 5 labeled frames per
  video, then --mode=propagate's scores. The release's V = 250 is every PoseTrack17 train video;
  scaled to PoseTrack18 that is all 593 (-1). Its baseline trains at 8 per GPU x 8 = 64."""
  config.stages = (1, 2)
  config.data.labeled_videos = -1
  config.data.labeled_frames_per_video = 5
  config.stage1.global_batch = 64
  config.after_training = ('propagate',)


def _augmentation_grid(config: ml_collections.ConfigDict) -> None:
  """The release's augmentation experiment (spec 7), for run.py --mode=augment_grid: the sparse
  baseline at 8 per GPU x 8 = 64, the retrained one at the paper's stage-1 settings."""
  config.stage1.global_batch = 64


def _posetrack17(config: ml_collections.ConfigDict) -> None:
  """The paper's PoseTrack17 experiments (its val17 81.2 row, propagation and augmentation):
  --config.data.root= a PoseTrack17 directory (the download's posetrack_data: annotations/ in
  the 2017 format; the layout is detected, as PoseTrack21's is). The augmentation grid as the
  release runs it on PoseTrack17's 250 train videos, unscaled (V = 250 is every video: -1);
  with sparse_propagation, V = 250 = all and N = 5 as on PoseTrack18."""
  config.grid.labels = ((100, 1), (175, 1), (-1, 1), (50, 1), (50, 2), (50, 4))


def _synthetic_grid(config: ml_collections.ConfigDict) -> None:
  """The augmentation experiment on the quick start's synthetic videos (--mode=augment_grid),
  shaped like the paper's: labeled videos at N = 1 (12 and 24 of the 96), and N = 2 and 4 at a
  small V (6); N = 1 at V = 6 would be about 11 people, less than one batch. Few videos, because
  the generated people and backgrounds are alike enough that one frame in each of the 96 videos
  trains nearly as well as all their labels (docs/quickstart.md, section 5): labels must be
  scarce for more of them to matter. Epochs as the paper's, the same at every point: set for
  the 12-frame points, whose subset is about 23 people, one step of 16 per epoch, so the sparse
  runs take 960 and 240 epochs; the enlarged set (each kept frame and its six neighbours) about
  8 steps per epoch, so 137 and 32: there every network trains for about the same number of
  steps as its sparse counterpart, and the 24-frame points for about twice as many. The sparse
  baseline and the retrainings at V12 N1 and at V6 N4 three times (grid.spread_points).
  Measured: docs/quickstart.md, section 5."""
  _synthetic(config)
  config.after_training = ()
  config.grid.labels = ((12, 1), (24, 1), (6, 2), (6, 4))
  config.grid.controls = ('copy', 'ground_truth')
  config.grid.update(spread_points=((12, 1), (6, 4)), initialisations=3)
  config.stage1.update(num_epochs=960, lr_drop_epochs=(720,))
  config.stage2.update(num_epochs=240, lr_drop_epochs=(120,))
  config.grid.retrain.stage1.update(num_epochs=137, global_batch=16, learning_rate=1e-3,
                                    lr_drop_epochs=(103,))
  config.grid.retrain.stage2.update(num_epochs=32, global_batch=16, learning_rate=1e-4,
                                    lr_drop_epochs=(16,))


def _standin(config: ml_collections.ConfigDict) -> None:
  """Stage 1 from the COCO stand-in (config.pretrain) instead of from scratch, for the synthetic
  videos: combine with synthetic or synthetic_grid (`:synthetic_grid,standin`). 3,000 stills of
  1 to 6 people at the videos' frame size, pretrained from scratch for 3 epochs of batch 16 at
  the quick start's rate (about 1,900 steps: as long as the quick start's stage 1). From a
  pretrained start, stage 1 and the grid's retraining fine-tune at the release's rate from
  COCO, 1e-4, not the 1e-3 the synthetic variants train from scratch with. How these were
  chosen, measured: docs/quickstart.md, section 5.6."""
  config.pretrain.update(stills=3000, max_people=6, limb_code=1.0)
  config.pretrain.stage1.update(num_epochs=3, global_batch=16, learning_rate=1e-3,
                                lr_drop_epochs=(2,))
  config.stage1.learning_rate = 1e-4
  config.grid.retrain.stage1.learning_rate = 1e-4


VARIANTS = {
    'stage1': _stage1,
    'stage2': _stage2,
    'w32': _w32,
    'small': _small,
    'synthetic': _synthetic,
    'augmented': _augmented,
    'sparse_propagation': _sparse_propagation,
    'augmentation_grid': _augmentation_grid,
    'posetrack17': _posetrack17,
    'synthetic_grid': _synthetic_grid,
    'standin': _standin,
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = _paper()
  for name in filter(None, (arg or '').split(',')):
    if name not in VARIANTS:
      raise ValueError(f'configs/posewarper.py: unknown variant {name!r}; known variants: '
                       f'{", ".join(sorted(VARIANTS))}')
    VARIANTS[name](config)
  return config
