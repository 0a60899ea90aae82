"""PoseTrack 2018 as a TFDS dataset (one record per frame) and its pair/evaluation views.

    python -m tfds_posetrack.posetrack18 --manual_dir=POSETRACK18 --data_dir=~/tensorflow_datasets
"""

from tfds_posetrack.posetrack18.pairs import (
    FrameTable,
    labeled_records,
    longest_labeled_run,
    neighbours,
    propagation_protocol,
    training_pairs,
)
from tfds_posetrack.posetrack18.posetrack18_dataset_builder import (
    Builder,
    PoseTrack18Config,
    make_config,
    prepare,
)

__all__ = ['Builder', 'FrameTable', 'PoseTrack18Config', 'labeled_records',
           'longest_labeled_run', 'make_config', 'neighbours', 'prepare', 'propagation_protocol',
           'training_pairs']
