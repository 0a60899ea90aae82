"""The project's charts, drawn with matplotlib: researchers read and restyle its figures.

    plots.propagation(results, ['1', '2', '3'], out / 'propagation.png')

Each chart is written as a PNG and, beside it under the same stem, a CSV of exactly the numbers
it shows, so a figure can be re-plotted or checked without reading pixels. Figures are built with
matplotlib's object API (Figure + the Agg canvas), never pyplot: no GUI backend is needed, no
global figure registry fills up, and the figure is freed with its last reference.
"""

from __future__ import annotations

import csv
import math
import pathlib
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# A fixed size and resolution, so the same results give the same PNG: 640 x 420 pixels.
SIZE_INCHES = (6.4, 4.2)
DPI = 100

# The propagation rows keep their colours in every figure (the hues the OpenCV plot used).
ROW_COLOURS = {'PoseWarper': '#1e5ac8', 'copy': '#c82828', 'single frame': '#3ca03c'}
# Other rows, in order of appearance: colours unlike the three above, cycled.
OTHER_COLOURS = ('tab:orange', 'tab:purple', 'tab:brown', 'tab:pink', 'tab:olive', 'tab:cyan',
                 'tab:gray')


def row_colours(rows: Sequence[str]) -> dict[str, str]:
  """A matplotlib colour per row name: ROW_COLOURS for the known ones, OTHER_COLOURS in turn
  for the rest (so two unknown rows of one figure differ)."""
  others = [row for row in rows if row not in ROW_COLOURS]
  return {row: ROW_COLOURS.get(row) or OTHER_COLOURS[others.index(row) % len(OTHER_COLOURS)]
          for row in rows}


def propagation(results: dict[str, dict[str, float]], distances: Sequence[str],
                path: pathlib.Path) -> None:
  """Total mAP (0-100) against |delta|, one line with markers per row, as a PNG at `path`.

  results: row name ('PoseWarper', 'copy', 'single frame', ...) -> {distance: Total mAP}, as
    propagate.propagate returns it; keys other than `distances` (such as 'all') are not drawn.
  distances: the x axis, in order, labeled as given (e.g. ['1', '2', '3']).

  A NaN (poseval's mAP of a subset without ground truth for some joint) is left out: a gap in
  its line. The parent folder is created. Beside the PNG, `<path stem>.csv` holds what the PNG
  shows: a header `row,<d1>,<d2>,...`, then one line per row in the order of `results`, each
  mAP with one decimal, an empty cell for a NaN.
  """
  path = pathlib.Path(path)
  rows = list(results)
  values = {row: [float(results[row][d]) for d in distances] for row in rows}
  colours = row_colours(rows)

  figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout='constrained')
  canvas = FigureCanvasAgg(figure)
  axes = figure.add_subplot()
  x = range(len(distances))
  for row in rows:
    # matplotlib breaks a line at a NaN and draws no marker there; an inf is a gap too.
    y = [v if math.isfinite(v) else math.nan for v in values[row]]
    axes.plot(x, y, marker='o', linewidth=2, color=colours[row], label=row)
  axes.set_xticks(x, list(distances))
  axes.set_xlim(-0.5, max(len(distances), 1) - 0.5)
  axes.set_ylim(0, 100)
  _finish(canvas, axes, '|delta| (frames from the labeled frame)', path, 'row', distances,
          values)


def label_grid(points: Sequence[str], labels: Sequence[int], curves: dict[str, Sequence[float]],
               path: pathlib.Path,
               ranges: dict[str, Sequence[tuple[float, float] | None]] | None = None) -> Figure:
  """The paper's augmentation figure: Total mAP (0-100) at each grid point, one line with
  markers per curve ('baseline', '+ PoseWarper augmentation', '+ aggregation'), as a PNG at
  `path`; returns the figure.

  points: the grid points' names ('V50_N1'); labels: the labeled frames each trained on;
  curves: curve -> one Total mAP per point, in the order of `points`. The points stand at equal
  steps along x, in order of labeled frames (ties in the given order), each tick naming the
  point and its labeled frames: grids hold points with equal labels (PoseTrack17's V100 N1 and
  V50 N2 both label 100 frames), which a numeric axis would draw on top of each other. A NaN is
  a gap. Beside the PNG, `<path stem>.csv`: a header `curve,<points in x order>`, then one line
  per curve. ranges: curve -> per point (lowest, highest) of its initialisations or None,
  drawn as an error bar from lowest to highest around the curve's value.
  """
  path = pathlib.Path(path)
  ranges = ranges or {}
  order = sorted(range(len(points)), key=lambda i: labels[i])
  values = {c: [float(v[i]) for i in order] for c, v in curves.items()}
  palette = ('#c82828', '#1e5ac8', '#3ca03c', *OTHER_COLOURS)
  colours = {curve: palette[i % len(palette)] for i, curve in enumerate(curves)}
  figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout='constrained')
  canvas = FigureCanvasAgg(figure)
  axes = figure.add_subplot()
  # With ranges, each curve stands a little to the side of the point, so that error bars of
  # close values do not hide each other.
  dodge = 0.06 if ranges else 0.0
  for k, (curve, y) in enumerate(values.items()):
    x = [j + dodge * (k - (len(values) - 1) / 2) for j in range(len(order))]
    axes.plot(x, [v if math.isfinite(v) else math.nan for v in y], marker='o', linewidth=2,
              color=colours[curve], label=curve)
    spans = [ranges[curve][i] for i in order] if curve in ranges else [None] * len(order)
    bars = [j for j, span in enumerate(spans) if span is not None and math.isfinite(y[j])]
    if bars:
      axes.errorbar([x[j] for j in bars], [y[j] for j in bars], fmt='none',
                    ecolor=colours[curve], capsize=4,
                    yerr=[[y[j] - spans[j][0] for j in bars], [spans[j][1] - y[j] for j in bars]])
  x = range(len(order))
  axes.set_xticks(x, [f'{points[i]}\n{labels[i]} frames' for i in order])
  axes.set_xlim(-0.5, max(len(order), 1) - 0.5)
  _finish(canvas, axes, 'grid point: labeled videos V, frames per video N', path, 'curve',
          [points[i] for i in order], values)
  return figure


def _finish(canvas: FigureCanvasAgg, axes, xlabel: str, path: pathlib.Path, name: str,
            columns: Sequence[str], values: dict[str, Sequence[float]]) -> None:
  """The shared labels, grid and legend; the PNG at path and the CSV beside it (header
  `<name>,<columns>`, one line per series, one decimal, a NaN as an empty cell)."""
  axes.set_xlabel(xlabel)
  axes.set_ylabel('Total mAP')
  axes.grid(True, alpha=0.4)
  axes.set_axisbelow(True)
  if values:
    axes.legend(loc='best')
  path.parent.mkdir(parents=True, exist_ok=True)
  # print_png, not figure.savefig: savefig takes its dpi and bounding box from the user's
  # matplotlibrc (savefig.bbox: tight would change the size); this writes the figure as built.
  canvas.print_png(path)
  with path.with_suffix('.csv').open('w', newline='') as f:
    writer = csv.writer(f, lineterminator='\n')
    writer.writerow([name, *columns])
    for series, y in values.items():
      writer.writerow([series, *(f'{v:.1f}' if math.isfinite(v) else '' for v in y)])
