"""The figures of `benchd report`: grouped bars by machine, as people draw such comparisons.

matplotlib (the `report` extra) draws them on its object API, never pyplot's
global state, so a daemon-side caller could never leak figures. The report
embeds each figure as an SVG data URI, so the page needs no network and no
files beside it; PNG or SVG files are written on request.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchd.comparison.results import Column
from benchd.comparison.table import Cell, Comparison
from benchd.text import mathtext

Drawing = tuple[str, Any]  # (title, a matplotlib Figure)


class PlottingUnavailableError(Exception):
    """matplotlib is not installed: say how to get it."""


def _figure_class() -> type:
    try:
        from matplotlib.figure import Figure as MatplotlibFigure
    except ImportError:
        raise PlottingUnavailableError(
            "plots need matplotlib: pip install 'benchd[report]' (or --no-plots)"
        ) from None
    return MatplotlibFigure


# One colour per machine column, the same in every figure (matplotlib's default cycle, then repeating).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")  # fmt: skip


def colour(comparison: Comparison, column: Column) -> str:
    return PALETTE[comparison.columns.index(column) % len(PALETTE)]


def _bars(title: str, ylabel: str, comparison: Comparison, value: Callable[[Cell], float | None],
          *, skip_baseline: bool = False, reference: float | None = None) -> Drawing | None:  # fmt: skip
    """One panel per workload; presets along x, a bar per machine column measured in that panel, centred
    on the preset's tick; a dashed line at `reference` (1.0 for speed-ups); None if nothing to draw."""
    columns = [c for c in comparison.columns if not (skip_baseline and c == comparison.baseline)]
    workloads = list(dict.fromkeys(workload for workload, _ in comparison.rows))
    values = {
        (row, column): value(cell)
        for row in comparison.rows
        for column in columns
        if (cell := comparison.cell(row, column)) is not None
    }
    drawn = [w for w in workloads if any(v is not None for (row, _c), v in values.items() if row[0] == w)]
    if not drawn:
        return None
    figure = _figure_class()(figsize=(10, 3.2 * len(drawn)), layout="constrained")
    axes = figure.subplots(len(drawn), 1, squeeze=False)[:, 0]
    for ax, workload in zip(axes, drawn, strict=True):
        rows = [row for row in comparison.rows if row[0] == workload]
        # Only the machines with a figure or a failure in this panel: no empty legend entries, no gaps.
        shown = [c for c in columns if any(values.get((row, c)) is not None or _failed(comparison, row, c)
                                           for row in rows)]  # fmt: skip
        width = 0.8 / max(1, len(shown))
        for index, column in enumerate(shown):
            xs = [i + (index - (len(shown) - 1) / 2) * width for i in range(len(rows))]
            heights = [values.get((row, column)) for row in rows]
            drawn_bars = any(h is not None for h in heights)  # else only its failures are written in
            ax.bar([x for x, h in zip(xs, heights, strict=True) if h is not None],
                   [h for h in heights if h is not None], width,
                   label=mathtext(column.label) if drawn_bars else "_nolegend_",
                   color=colour(comparison, column))  # fmt: skip
            for x, row, height in zip(xs, rows, heights, strict=True):
                cell = comparison.cell(row, column)
                if height is None and cell is not None and cell.failure:
                    ax.annotate(
                        mathtext(cell.failure), (x, 0), rotation=90, ha="center", va="bottom", fontsize=7
                    )
        if reference is not None:
            ax.axhline(reference, color="black", linestyle="--", linewidth=0.8)
        ax.set_xticks(
            range(len(rows)),
            [f"{mathtext(row[1])}\n{mathtext(comparison.row_setups[row])}" for row in rows],
            fontsize=8,
        )
        ax.set_title(mathtext(workload))
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    figure.suptitle(mathtext(title))
    return title, figure


def _failed(comparison: Comparison, row: tuple[str, str], column: Column) -> bool:
    cell = comparison.cell(row, column)
    return cell is not None and cell.failure is not None


def drawings(comparison: Comparison) -> list[Drawing]:
    """Seconds per epoch, speed-up against the baseline, and energy per epoch where it was measured."""
    baseline = comparison.baseline.label if comparison.baseline else "the first machine"
    candidates = [
        _bars("Seconds per epoch by machine (lower is faster)", "seconds per epoch", comparison,
              lambda cell: cell.seconds),
        _bars(f"Speed-up against {baseline} (above 1: faster)", "speed-up", comparison,
              lambda cell: cell.speedup, skip_baseline=True, reference=1.0),
        _bars("Peak device memory per run (where measured)", "GB", comparison,
              lambda cell: None if "memory" not in cell.extras else cell.extras["memory"] / 1e9),
        _bars("Average power per epoch (where measured)", "watts", comparison,
              lambda cell: cell.extras.get("power")),
        _bars("Energy per epoch (where measured)", "joules", comparison,
              lambda cell: cell.extras.get("energy")),
    ]  # fmt: skip
    return [figure for figure in candidates if figure is not None]


def svg_uri(figure: Any) -> str:
    """The figure as an SVG data URI, for an <img> that needs no file beside the page."""
    out = io.StringIO()
    figure.savefig(out, format="svg")
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue().encode()).decode()


def save(drawn: list[Drawing], directory: Path, plot_format: str) -> list[Path]:
    """Each figure as a file (svg or png), named by its position and title."""
    paths = []
    for index, (title, figure) in enumerate(drawn, start=1):
        slug = "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split()[:4])
        path = directory / f"{index}-{slug}.{plot_format}"
        figure.savefig(path, format=plot_format, dpi=120)
        paths.append(path)
    return paths
