"""PoseTrack 2018 as a TFDS dataset (one record per frame) and its pair/evaluation views.

    python -m tfds_posetrack.posetrack18 --manual_dir=POSETRACK18 --data_dir=~/tensorflow_datasets

manual_dir may be in the PoseTrack18, PoseTrack21 or PoseTrack17 layout (layouts.py); formats.py
reads and writes both annotation formats. open_records(builder, split) opens a split's records
checked for damage (damage.py: a missing, truncated or corrupt shard is a DamagedDatasetError
that names it and the folder to delete).
"""

from tfds_posetrack.posetrack18.damage import (
    CheckedDataSource,
    DamagedDatasetError,
    check_shards,
    open_records,
)
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

__all__ = ['PROPAGATION_DISTANCE', 'PROPAGATION_MIN_RUN', 'SPLITS', 'Builder', 'CheckedDataSource',
           'DamagedDatasetError', 'FrameTable', 'PairSource', 'PoseTrack18Config',
           'augmentation_targets', 'check_shards', 'labeled_records', 'longest_labeled_run',
           'make_config', 'neighbours', 'open_records', 'prepare', 'propagation_protocol',
           'sparse_labels', 'split_directory', 'training_pairs']
