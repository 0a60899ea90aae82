"""PoseTrack 2018 as a TFDS dataset (one record per frame) and its pair/evaluation views.

    python -m tfds_posetrack.posetrack18 --manual_dir=POSETRACK18 --data_dir=~/tensorflow_datasets

manual_dir may be in the PoseTrack18, PoseTrack21 or PoseTrack17 layout (layouts.py); formats.py
reads and writes both annotation formats.
"""

from tfds_posetrack.posetrack18.pair_source import PairSource
from tfds_posetrack.posetrack18.pairs import (
    PROPAGATION_DISTANCE,
    PROPAGATION_MIN_RUN,
    FrameTable,
    augmentation_targets,
    labeled_records,
    longest_labeled_run,
    neighbours,
    propagation_protocol,
    sparse_labels,
    training_pairs,
)
from tfds_posetrack.posetrack18.posetrack18_dataset_builder import (
    SPLITS,
    Builder,
    PoseTrack18Config,
    make_config,
    prepare,
    split_directory,
)

__all__ = ['PROPAGATION_DISTANCE', 'PROPAGATION_MIN_RUN', 'SPLITS', 'Builder', 'FrameTable',
           'PairSource', 'PoseTrack18Config', 'augmentation_targets', 'labeled_records',
           'longest_labeled_run', 'make_config', 'neighbours', 'prepare', 'propagation_protocol',
           'sparse_labels', 'split_directory', 'training_pairs']
