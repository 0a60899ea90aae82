"""run.py --mode=propagate: with the warping head at its initialization (the identity), PoseWarper
propagation must reproduce copying the labeled pose; the tables, files and plot are written."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from posewarper_jax import convert, propagate, train
from posewarper_jax.data import source
from posewarper_jax.data.synthetic import generate
from tests.test_train import tiny_config
from tfds_posetrack.posetrack18 import propagation_protocol


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
  root = tmp_path_factory.mktemp('posetrack18_propagate')
  generate(root, seed=7, num_train=1, num_val=2, num_test=0, frames=40, width=192, height=144)
  return root


def test_an_identity_head_returns_the_labeled_gaussians(data_root, tmp_path):
  config = tiny_config(data_root, stages=(1, 2), num_steps=1, checkpoint_every=1)
  config.stage2.learning_rate = 0.0  # the head stays the identity it starts as (spec 1.5)
  config.eval.batch = 12
  for stage in (1, 2):
    train.train_stage(config, tmp_path, stage)
  records, table = source.open_split(config, data_root, 'validation')
  items = propagate._items(records, propagation_protocol(table))
  assert len(items) > 12 and len(items) % 12  # several batches, the last one partial
  variables = train.load_pretrained(tmp_path / 'stage2')
  seen = 0
  for gaussians, warped, _, _ in propagate.warp_heatmaps(config, records, items, variables):
    np.testing.assert_allclose(warped, gaussians, atol=1e-5)
    seen += len(warped)
  assert seen == len(items)

  results = propagate.propagate(config, tmp_path)
  assert list(results) == list(propagate.ROWS)
  assert set(results['copy']) == {'1', '2', '3', 'all'}
  # The synthetic people move: copying gets worse with the distance to the label.
  assert results['copy']['1'] > results['copy']['3']
  out = tmp_path / 'propagate' / 'val'
  saved = json.loads((out / 'results.json').read_text())
  assert saved['total'] == results
  assert '| PoseWarper |' in (out / 'results.md').read_text()
  image = cv2.imread(str(out / 'propagation.png'))
  assert image is not None and image.shape == (420, 640, 3)
  assert len(np.unique(image.reshape(-1, 3), axis=0)) > 3  # something drawn


def test_propagation_needs_a_warping_head(data_root, tmp_path):
  config = tiny_config(data_root, stages=(1,), num_steps=1, checkpoint_every=1)
  train.train_stage(config, tmp_path, 1)
  backbone_only = {k: {'backbone': v['backbone']}
                   for k, v in train.load_pretrained(tmp_path / 'stage1').items()}
  convert.save_variables(backbone_only, tmp_path / 'hrnet')  # as a converted COCO HRNet
  config.eval.checkpoint = str(tmp_path / 'hrnet')
  with pytest.raises(ValueError, match='hrnet has no warping head'):
    propagate.propagate(config, tmp_path)
