"""run.py --mode=augment_grid, shortened: the paper's augmentation experiment for one label
subset of a tiny synthetic set, from a tiny COCO stand-in (two steps per training), run as a user
runs it, then again (it must redo nothing); and the pieces it is made of."""

import csv
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from posewarper_jax import config_checks, label_grid, plots
from posewarper_jax.data import source
from posewarper_jax.metrics import posetrack_map
from tests.helpers import ROOT, posewarper_config, tiny_model_overrides
from tfds_posetrack.posetrack18 import FrameTable

POINTS = '((-1, 2),)'  # one point: the suite's time; plots.label_grid's order is tested below


def _start(cwd: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, os.path.relpath(ROOT / 'run.py', cwd),
       f'--config={os.path.relpath(ROOT / "configs" / "posewarper.py", cwd)}'
       ':synthetic_grid,standin',
       '--mode=augment_grid', *tiny_model_overrides(), '--config.sigma=1.0',
       '--config.pretrain.stills=6', '--config.pretrain.stage1.global_batch=4',
       '--config.data.synthetic_videos=(4, 1)', '--config.data.synthetic_frame_size=(144, 192)',
       '--config.stage1.global_batch=4', '--config.stage2.global_batch=4',
       '--config.grid.retrain.stage1.global_batch=4', '--config.grid.retrain.stage2.global_batch=4',
       '--config.train.num_steps=2', '--config.eval.batch=16', '--config.eval.gallery=False',
       f'--config.grid.labels={POINTS}', f'--config.grid.spread_points={POINTS}',
       '--config.grid.initialisations=2', *args],
      cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope='module')
def grid(tmp_path_factory):
  """(workdir, stdout of the first run, stdout of the second), from another folder with a
  relative --workdir."""
  cwd = tmp_path_factory.mktemp('user')
  outputs = []
  for _ in range(2):
    done = _start(cwd, '--workdir=runs/grid')
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    outputs.append(done.stdout)
  return cwd / 'runs' / 'grid', *outputs


def test_every_point_trains_on_its_subset_and_writes_the_figure(grid):
  workdir, first, _ = grid
  rows = json.loads((workdir / 'grid' / 'results.json').read_text())
  assert [r['point'] for r in rows] == ['Vall_N2']
  # Four synthetic train videos: N = 2 in each keeps 8 frames.
  assert [(r['labeled_videos_kept'], r['labeled_frames']) for r in rows] == [(4, 8)]
  curves = (*label_grid.CURVES, '+ copied poses', '+ their true labels')  # synthetic_grid's
  # Each curve's first run is the official mAP of the prediction files that run wrote, on the
  # true labels of the validation videos.
  predictions = {'baseline': 'sparse/eval/val/single_frame',
                 '+ PoseWarper augmentation': 'retrain/eval/val/single_frame',
                 '+ aggregation': 'retrain/eval/val/aggregation',
                 '+ copied poses': 'retrain_copy/eval/val/single_frame',
                 '+ their true labels': 'retrain_ground_truth/eval/val/single_frame'}
  gt_dir = workdir / 'data' / 'posetrack18' / 'annotations' / 'val'
  for curve in curves:
    pred_dir = workdir / 'grid' / 'Vall_N2' / predictions[curve] / 'predictions'
    assert rows[0][f'{curve} runs'][0] == posetrack_map.evaluate(gt_dir, pred_dir)['ap'][-1], curve
  # The sparse runs trained on their subset (both stages, and the baseline's second
  # initialisation), the retrained ones on kept + propagated labels.
  assert first.count('training labels: 4 of 4 videos, 8 labeled frames') == 3
  for point in ('Vall_N2',):
    sparse = json.loads((workdir / 'grid' / point / 'sparse' / 'config.json').read_text())
    retrain = json.loads((workdir / 'grid' / point / 'retrain' / 'config.json').read_text())
    assert sparse['data']['labeled_frames_per_video'] == 2
    assert retrain['data']['labeled_frames_per_video'] == -1
    # Recorded relative to the run's folder (provenance.py: the workdir can move).
    assert retrain['data']['root'] == '../sparse/augment/posetrack18'
    assert (workdir / 'grid' / point / 'retrain' / 'stage2' / 'checkpoints').is_dir()
    # The controls: the baseline alone, on the same frames with copied poses or their labels.
    for control in ('copy', 'ground_truth'):
      run = workdir / 'grid' / point / f'retrain_{control}'
      config = json.loads((run / 'config.json').read_text())
      assert config['data']['root'] == f'../sparse/augment_{control}/posetrack18'
      assert config['stages'] == [1] and not (run / 'stage2').exists()
  # The spread point: the sparse baseline (stage 1 alone, on the same labels) and every
  # retraining (on the same enlarged sets) again with the next seed; each curve there is the
  # mean of its initialisations' own scores.
  base = json.loads((workdir / 'grid' / 'Vall_N2' / 'retrain' / 'config.json').read_text())
  assert rows[0]['initialisations'] == 2
  again = json.loads((workdir / 'grid' / 'Vall_N2' / 'sparse_init1' / 'config.json').read_text())
  assert again['stages'] == [1] and not (workdir / 'grid' / 'Vall_N2' / 'sparse_init1' /
                                         'stage2').exists()
  assert again['data']['labeled_seed'] == base['seed']  # the draw of the first run's labels
  assert again['data']['labeled_frames_per_video'] == 2
  for curve, run, row in ((c, predictions[c].split('/')[0], predictions[c].split('/', 1)[1])
                          for c in curves):
    again = workdir / 'grid' / 'Vall_N2' / f'{run}_init1'
    config = json.loads((again / 'config.json').read_text())
    assert config['seed'] == base['seed'] + 1
    assert config['data']['root'] == json.loads(
        (workdir / 'grid' / 'Vall_N2' / run / 'config.json').read_text())['data']['root']
    runs = [posetrack_map.evaluate(gt_dir, folder / row / 'predictions')['ap'][-1]
            for folder in (workdir / 'grid' / 'Vall_N2' / run, again)]
    assert rows[0][f'{curve} runs'] == runs, curve
    assert rows[0][curve] == sum(runs) / 2, curve
  # One synthetic set and one stand-in for the whole grid; every run's stage 1 starts from it.
  assert sorted(p.name for p in (workdir / 'data').iterdir()) == [
      'posetrack18', 'stills', 'stills_posetrack18', 'stills_tfds', 'tfds']
  for run in ('sparse', 'retrain', 'retrain_copy', 'retrain_ground_truth', 'sparse_init1',
              'retrain_init1', 'retrain_copy_init1', 'retrain_ground_truth_init1'):
    config = json.loads((workdir / 'grid' / 'Vall_N2' / run / 'config.json').read_text())
    assert config['stage1']['init'] == '../../../pretrain', run  # <workdir>/pretrain
  assert first.count('stage 1: backbone from') == 8
  assert (workdir / 'pretrain' / 'eval' / 'val' / 'results.json').is_file()
  assert not (workdir / 'grid' / 'Vall_N2' / 'sparse' / 'data').exists()
  png = workdir / 'grid' / 'label_grid.png'
  assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  with png.with_suffix('.csv').open() as f:
    table = list(csv.reader(f))
  assert table[0] == ['curve', 'Vall_N2']
  assert [line[0] for line in table[1:]] == list(curves)
  text = (workdir / 'grid' / 'results.md').read_text()
  assert text.strip() in first
  cells = next(line for line in text.splitlines() if line.startswith('| Vall_N2 |')).split('|')
  assert [c.strip() for c in cells[2:5]] == ['-1', '2', f'8 ({rows[0]["labeled_people"]})']
  assert [c.strip() for c in cells[5:5 + len(curves)]] == [
      f'{rows[0][c]:.1f} ({min(rows[0][c + " runs"]):.1f}-{max(rows[0][c + " runs"]):.1f})'
      for c in curves]
  assert [line[1] for line in table[1:]] == [f'{rows[0][c]:.1f}' for c in curves]  # the CSV
  # The propagation columns: the release's scoring (every frame of the runs), then moved frames.
  propagated = json.loads((workdir / 'grid' / 'Vall_N2' / 'sparse' / 'propagate' / 'val' /
                           'results.json').read_text())['total']
  for row in ('PoseWarper', 'copy'):
    assert rows[0][f'propagation {row}'] == propagated[row]['runs']
    assert rows[0][f'propagation {row}, moved frames'] == propagated[row]['all']
  assert 'propagation: PoseWarper | copy | moved frames: PoseWarper | copy |' in text
  # How right the retrained baselines' moved labels are (augment's label_accuracy.json).
  for row, folder in (('PoseWarper', 'augment'), ('copy', 'augment_copy')):
    accuracy = json.loads((workdir / 'grid' / 'Vall_N2' / 'sparse' / folder /
                           'label_accuracy.json').read_text())
    assert rows[0][f'train labels pckh {row}'] == accuracy['all']['pckh']
    assert rows[0][f'train labels offset {row}'] == accuracy['all']['offset']
  assert '| train labels PCKh: PoseWarper | copy | offset: PoseWarper | copy |' in text


def test_running_it_again_redoes_nothing(grid):
  _, _, second = grid
  # (sparse, retrain, retrain_init1) x 2 stages, sparse_init1, 2 controls x 2, the stand-in
  assert second.count('nothing to do') == 12
  # eval, propagate, augment; sparse_init1's eval; 3 evals x 2; the stand-in's
  assert second.count('done before with this config') == 11
  assert second.count('was written before') == 4  # the controls' sets, for each initialisation
  assert 'generating a synthetic' not in second and 'pretrain: generating' not in second


def test_bad_grid_settings_are_refused_by_name():
  config = posewarper_config.get_config('synthetic_grid')
  config_checks.check_grid(config)
  for labels, message in [(((0, 1),), 'labeled_videos'), (((-1, 1), (-1, 1)), 'repeats'),
                          (((5,),), 'each entry'), ((), 'empty')]:
    config.grid.labels = labels
    with pytest.raises(ValueError, match=message):
      config_checks.check_grid(config)
  config.grid.labels = ((12, 1), (6, 2), (6, 4))
  for bad in (('warp',), ('copy', 'copy')):
    config.grid.controls = bad
    with pytest.raises(ValueError, match='config.grid.controls'):
      config_checks.check_grid(config)
  config.grid.controls = ()
  for bad, message in [(((6, 1),), r'each entry is a \(V, N\) of .* got \(6, 1\)'),
                       ((12, 1), 'each entry is a .* got 12'),
                       (((6, 2), (6, 2)), r'repeats \(6, 2\)')]:
    config.grid.spread_points = bad
    with pytest.raises(ValueError, match='config.grid.spread_points'):
      config_checks.check_grid(config)
    with pytest.raises(ValueError, match=message):
      config_checks.check_grid(config)
  config.grid.update(spread_points=((6, 2),), initialisations=0)
  with pytest.raises(ValueError, match='config.grid.initialisations must be an integer >= 1'):
    config_checks.check_grid(config)


def test_a_spread_cell_is_the_mean_and_range_of_its_initialisations(tmp_path):
  row = {'point': 'V12_N1', 'labeled_videos': 12, 'labeled_frames_per_video': 1,
         'labeled_frames': 12, 'labeled_people': 23, 'baseline': 53.1,
         '+ PoseWarper augmentation': 50.0, '+ PoseWarper augmentation runs': [48.5, 50.5, 51.0],
         '+ aggregation': 51.0}
  table = label_grid.results_table([row], 'val')
  cells = [c.strip() for c in table.splitlines()[-1].split('|')]
  assert cells[5:8] == ['53.1', '50.0 (48.5-51.0)', '51.0']
  figure = plots.label_grid(['V12_N1', 'V6_N2'], [12, 12],
                            {'baseline': [53.1, 40.0], 'retrained': [50.0, 41.0]},
                            tmp_path / 'figure.png', ranges={'retrained': [(48.5, 51.0), None]})
  (bars,) = figure.axes[0].collections  # one error bar: the point with initialisations
  ((x_low, low), (x_high, high)) = bars.get_segments()[0]
  assert (low, high) == (48.5, 51.0)
  # Beside the other curve's point, on its own curve's: bars of close values stay apart.
  baseline, retrained = figure.axes[0].get_lines()[:2]
  assert x_low == x_high == retrained.get_xdata()[0] != baseline.get_xdata()[0]


def test_the_sparse_and_retrain_configs():
  config = posewarper_config.get_config('augmentation_grid')
  config.stage1.init = '/coco.pth'
  config.stage2.init = '/elsewhere'
  config.eval.checkpoint = '/elsewhere'
  sparse = label_grid.sparse_config(config, config.data, 119, 2)
  assert (sparse.data.labeled_videos, sparse.data.labeled_frames_per_video) == (119, 2)
  assert sparse.stage1.global_batch == 64
  assert sparse.stage2.init == sparse.eval.checkpoint == ''  # its own networks only
  assert sparse.stage1.init == '/coco.pth'
  retrain = label_grid.retrain_config(config, config.data, pathlib.Path('/aug/posetrack18'))
  assert retrain.data.root == '/aug/posetrack18' and retrain.data.tfds_dir == ''
  assert (retrain.data.labeled_videos, retrain.data.labeled_frames_per_video) == (-1, -1)
  # The release's retrain: from COCO, batch 128, 10 epochs, drops at 5 and 7 (0-based 4, 6).
  assert retrain.stage1.init == '/coco.pth'
  assert (retrain.stage1.global_batch, retrain.stage1.num_epochs,
          tuple(retrain.stage1.lr_drop_epochs)) == (128, 10, (4, 6))
  assert retrain.stage2.init == retrain.eval.checkpoint == '' and retrain.eval.aggregate
  control = label_grid.control_config(config, config.data, pathlib.Path('/aug/posetrack18'))
  assert tuple(control.stages) == (1,) and not control.eval.aggregate
  assert control.stage1.to_dict() == retrain.stage1.to_dict()


def test_a_baselines_further_initialisation_keeps_the_grids_labels():
  config = posewarper_config.get_config('synthetic_grid')
  config.seed = 4
  again = label_grid.baseline_config(config, config.data, 2, 1, initialisation=2)
  assert again.seed == 6 and tuple(again.stages) == (1,) and again.after_training == ('eval',)
  # Six videos of 30 labeled frames: V = 2 is a draw, which config.seed would change.
  table = FrameTable.from_metadata({
      'video_id': [f'v{v}' for v in range(6) for _ in range(30)],
      'frame_index': [f for _ in range(6) for f in range(30)], 'nframes': [30] * 180,
      'is_labeled': [True] * 180, 'people': [1] * 180})
  kept = lambda run: np.flatnonzero(source.labeled_subset(run, table).is_labeled).tolist()
  assert kept(again) == kept(label_grid.sparse_config(config, config.data, 2, 1))
  again.data.labeled_seed = -1  # the draw of config.seed = 6
  assert kept(again) != kept(label_grid.sparse_config(config, config.data, 2, 1))


def test_the_figure_leaves_a_nan_as_a_gap(tmp_path):
  path = tmp_path / 'figure.png'
  plots.label_grid(['V2_N1', 'V1_N1'], [20, 10],
                   {'baseline': [math.nan, 40.0], '+ aggregation': [50.0, 45.0]}, path)
  assert path.stat().st_size > 0
  assert path.with_suffix('.csv').read_text().splitlines() == [
      'curve,V1_N1,V2_N1', 'baseline,40.0,', '+ aggregation,45.0,50.0']


def test_points_with_equal_labels_stand_apart(tmp_path):
  # The synthetic grid's V12_N1 and V6_N2 both label 12 frames; on a numeric axis their points
  # fell on one x and each curve became a vertical line.
  figure = plots.label_grid(['V12_N1', 'V6_N2', 'V3_N1'], [12, 12, 3],
                            {'baseline': [46.0, 38.4, 30.0]}, tmp_path / 'figure.png')
  (line,) = figure.axes[0].get_lines()
  assert list(line.get_xdata()) == [0, 1, 2]
  assert list(line.get_ydata()) == [30.0, 46.0, 38.4]
  assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == [
      'V3_N1\n3 frames', 'V12_N1\n12 frames', 'V6_N2\n12 frames']


def test_a_point_added_to_the_grid_does_not_refuse_the_points_trained(grid, capsys):
  import ml_collections

  from posewarper_jax import provenance, report

  workdir, _, _ = grid
  run = workdir / 'grid' / 'Vall_N2' / 'sparse'
  config = ml_collections.ConfigDict(json.loads((run / 'config.json').read_text()))
  config.grid.labels = ((-1, 2), (3, 1))
  config.grid.controls = ('copy',)
  provenance.check_resume(config, run)  # the grid's fields are not the run's
  # ... nor what its steps after training depend on: none runs again.
  capsys.readouterr()
  report.run_after_training(config, run)
  out = capsys.readouterr().out
  assert out.count('done before with this config') == len(config.after_training) == 3, out
  # A field added to the config since the steps ran is not a change either; one they ran with,
  # changed, is.
  steps = provenance.Steps(run / report.AFTER_TRAINING_RECORD, run)
  config.eval.added_since = 3
  assert steps.done('eval', provenance.stamp(config, run))
  config.eval.batch += 1
  assert not steps.done('eval', provenance.stamp(config, run))
  assert not steps.done('render', provenance.stamp(config, run))  # never ran
  config.eval.batch -= 1
  config.stage1.num_epochs += 1
  with pytest.raises(ValueError, match='stage1.num_epochs'):
    provenance.check_resume(config, run)


def test_a_curve_is_the_total_of_its_row(grid, tmp_path):
  """The grid's runs score 0 in every group at two steps, so the equalities above cannot tell
  one group from another: here the sparse run's own results.json, with a distinct number in
  each group, must give its Total."""
  workdir, _, _ = grid
  results = json.loads((workdir / 'grid' / 'Vall_N2' / 'sparse' / 'eval' / 'val' /
                        'results.json').read_text())
  groups = results['single frame']['groups']
  assert 'Total' in groups and len(groups) > 2
  results['single frame']['groups'] = {name: 10.0 + i for i, name in enumerate(groups)}
  path = tmp_path / 'results.json'
  path.write_text(json.dumps(results))
  assert label_grid.curve_total(path, 'single frame') == 10.0 + list(groups).index('Total')
  assert math.isnan(label_grid.curve_total(path, 'no such row'))


def test_each_curve_reads_its_own_runs(tmp_path):
  """The grid's runs all score 0, so the fixture cannot tell which folder a curve read: here each
  run's results.json has a number of its own."""
  scores = {}
  for i, run in enumerate(('sparse', 'sparse_init1', 'retrain', 'retrain_init1', 'retrain_copy',
                           'retrain_copy_init1')):
    scores[run] = (float(i), 10.0 + i)
    path = tmp_path / run / 'eval' / 'val' / 'results.json'
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({'single frame': {'groups': {'Total': scores[run][0]}},
                                'aggregation': {'groups': {'Total': scores[run][1]}}}))
  curves = label_grid.point_curves(tmp_path, 'val', ('copy',), runs=2)
  single = lambda *runs: [scores[r][0] for r in runs]
  assert curves == {'baseline': single('sparse', 'sparse_init1'),
                    '+ PoseWarper augmentation': single('retrain', 'retrain_init1'),
                    '+ aggregation': [scores['retrain'][1], scores['retrain_init1'][1]],
                    '+ copied poses': single('retrain_copy', 'retrain_copy_init1')}
