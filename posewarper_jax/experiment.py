"""A training experiment in a workdir: everything checked first, then the stand-in, the stages
and the steps after training, each resumed or skipped when done.

    experiment.run(config, workdir)                # run.py's train mode
    experiment.train_run(Run(config, folder, home))  # one run (the grid's, the stand-in's)

The sequence of one training run (`train_run`), the same for run.py's train mode, every run of the
augmentation grid (label_grid.py) and the COCO stand-in's own pretraining (pretrain.py):

1. its config recorded in <run>/config.json (provenance.write_config);
2. the stages of config.stages, in order (train.train_stage: each resumes where it stopped);
3. the steps of config.after_training, and the run's results table (report.py: each skipped
   when done with the same config and checkpoints).

Before any of it writes, `check` refuses what cannot go on (provenance.py's rule): a run whose
trained stages were trained with another config, data or stills generated with other settings;
config_checks ran before that, in run.py, before the workdir was created. A run's `home` is the
workdir the user named (the grid's runs lie below it): paths inside it are recorded relative to
the run's folder, so that a workdir can be moved.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import ml_collections

from posewarper_jax import pretrain, provenance, report, train
from posewarper_jax.data import source


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run: `config` trained in `workdir`; `home` the workdir the user named (default:
  `workdir`); `after` the config of its steps after training where it differs from `config` (the
  stand-in's evaluation reads other data than it trains on)."""

  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  home: pathlib.Path | None = None
  after: ml_collections.ConfigDict | None = None

  @property
  def root(self) -> pathlib.Path:
    return pathlib.Path(self.home or self.workdir)


def standin(config, home: pathlib.Path) -> Run | None:
  """The stand-in's run of an experiment in `home` (config.pretrain.stills > 0), or None."""
  if not config.pretrain.stills:
    return None
  made = pretrain.standin_run(config, home)
  return Run(made.config, made.workdir, home, made.after)


def check(config, home: pathlib.Path, runs: list[Run]) -> None:
  """provenance.Refused when anything the runs would reuse was made otherwise: the synthetic
  set, the stand-in's stills and its run, and each run's trained stages. Reads, never writes."""
  source.check_synthetic(config, home)
  if config.pretrain.stills:
    pretrain.check_stills(config, home)
  for run in runs:
    provenance.check_resume(run.config, run.workdir, run.root)


def make_standin(config, home: pathlib.Path, run: Run | None) -> None:
  """The stills generated and converted, then `run`, the stand-in's run (`standin`), trained
  and scored (each done once: pretrain.py); nothing when there is no stand-in (None)."""
  if run is not None:
    pretrain.make_stills(config, home)
    train_run(run)


def train_run(run: Run) -> None:
  """The sequence of one training run (the module docstring): config.json, the stages, the steps
  after training."""
  provenance.check_resume(run.config, run.workdir, run.root)
  if jax.process_index() == 0:
    provenance.write_config(run.config, run.workdir, run.root)
  for stage in run.config.stages:
    train.train_stage(run.config, run.workdir, stage)
  report.run_after_training(run.after or run.config, run.workdir, run.root)


def run(config, workdir: str | pathlib.Path) -> None:
  """run.py's train mode: the checks, the stand-in (config.pretrain), then the run."""
  workdir = pathlib.Path(workdir)
  config = pretrain.with_standin(config, workdir)
  main = Run(config, workdir)
  extra = standin(config, workdir)
  check(config, workdir, [main, *([extra] if extra else [])])
  make_standin(config, workdir, extra)
  train_run(main)
