"""The comparison as text, markdown, CSV, JSON or a self-contained HTML page.

Every format says the same things: the full-epoch seconds of each cell (a
`*` where it was scaled from a fraction of an epoch), the spread when several
runs stand behind it, the speed-up against the baseline machine, the extra
figures asked for, what happened where a machine did not finish, and the
cells measured with another config than their row's, apart with the reason.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

from rich.table import Table

from benchd import __version__
from benchd.comparison.results import Column
from benchd.comparison.table import Cell, Comparison, Row
from benchd.text import csv_cell, html_text, markdown_cell, terminal

SCALED_NOTE = "* scaled to a full epoch from a fraction of one"
CONTENDED_NOTE = ("(contended): measured beside foreign load, where the machine has no clean figure "
                  "(--include-contended); no speed-up is computed from it")  # fmt: skip


def format_bytes(value: float) -> str:
    return f"{value / 1e9:.2f} GB" if value >= 1e8 else f"{value / 1e6:.0f} MB"


def format_flops(value: float, unit: str = "FLOP/s") -> str:
    """FLOP counts and rates with an SI prefix: 4.2 GFLOP/s, 312.0 TFLOP/s."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


EXTRA_FORMATS = {
    "memory": format_bytes,
    "temperature": lambda v: f"{v:.0f} C",
    "power": lambda v: f"{v:.0f} W",
    "energy": lambda v: f"{v:,.0f} J/epoch",
    "flops": format_flops,
    "mfu": lambda v: f"MFU {v:.1%}",
}


def cell_lines(cell: Cell, column: Column, comparison: Comparison, extras: tuple[str, ...]) -> list[str]:
    lines = [cell.text]
    if cell.spread is not None:
        lines.append(f"±{cell.spread:.0%} over {cell.runs} runs" + (", unstable" if cell.unstable else ""))
    elif cell.unstable:  # one figure (Prometheus' last run) whose daemon measured its config's variation
        lines.append(f"unstable (runs vary {cell.cv:.0%})")
    if column == comparison.baseline and cell.seconds is not None:
        lines.append("baseline")
    elif cell.speedup is not None:
        lines.append(f"x{cell.speedup:.2f}" + (" (within noise)" if cell.within_noise else ""))
    shown = [EXTRA_FORMATS[name](cell.extras[name]) for name in extras if name in cell.extras]
    if shown:
        lines.append(", ".join(shown))
    return lines


def _grid(comparison: Comparison, extras: tuple[str, ...]) -> list[tuple[Row, str, list[list[str]]]]:
    """Each row with its setup and each column's lines ("-" where that machine has no cell)."""
    result = []
    for row in comparison.rows:
        cells = []
        for column in comparison.columns:
            cell = comparison.cell(row, column)
            cells.append(cell_lines(cell, column, comparison, extras) if cell else ["-"])
        result.append((row, comparison.row_setups[row], cells))
    return result


def _failed(comparison: Comparison, row: Row, column: Column) -> bool:
    cell = comparison.cell(row, column)
    return cell is not None and cell.seconds is None


def notes(comparison: Comparison) -> list[str]:
    """The lines under the table: the baseline, the scaling mark, and every cell kept apart."""
    lines = []
    if comparison.baseline is not None:
        lines.append(
            f"speed-up: the baseline's seconds over the cell's; baseline {comparison.baseline.label}"
        )
    if any(cell.scaled for cell in comparison.cells.values()) or any(a.cell.scaled for a in comparison.apart):
        lines.append(SCALED_NOTE)
    for column in comparison.synthetic:
        lines.append(f"synthetic data: {column.label} was measured on generated datasets of the real format "
                     "and size, not the real ones (benchd data fetch gets those)")  # fmt: skip
    for apart in comparison.apart:
        workload, preset = apart.row
        lines.append(
            f"apart: {workload} {preset} on {apart.column.label}: {apart.cell.text} s with config "
            f"{apart.config_id}, which differs from the row's: {apart.reason}"
        )
    if any(cell.contended for cell in comparison.cells.values()) or any(
        a.cell.contended for a in comparison.apart
    ):
        lines.append(CONTENDED_NOTE)
    return lines + comparison.fingerprints


def as_rich(comparison: Comparison, extras: tuple[str, ...], *, wide: bool) -> Table:
    """For a terminal: a machine's label on two lines so that three machines fit in 100 columns."""
    caption = terminal("\n".join(notes(comparison)), multiline=True)
    table = Table(title="benchd comparison: seconds per epoch", caption=caption, caption_justify="left",
                  show_lines=True)  # fmt: skip
    table.add_column("workload")
    table.add_column("preset" if wide else "setup")
    if wide:
        table.add_column("setup")
        table.add_column("config")
    for column in comparison.columns:
        table.add_column(
            terminal(f"{column.host}\n{column.device_name} ({column.device_type.upper()})", multiline=True),
            justify="right",
        )
    for row, setup, cells in _grid(comparison, extras):
        leading = [row[0], row[1], setup, comparison.row_configs[row] or "-"] if wide else [row[0], setup]
        table.add_row(*map(terminal, leading), *("\n".join(map(terminal, lines)) for lines in cells))
    return table


def as_markdown(comparison: Comparison, extras: tuple[str, ...]) -> str:
    header = ["workload", "preset", "setup", *(markdown_cell(c.label) for c in comparison.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row, setup, cells in _grid(comparison, extras):
        values = [markdown_cell(v) for v in (row[0], row[1], setup)]
        values += ["<br>".join(markdown_cell(line) for line in cell) for cell in cells]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines + [""] + [f"- {markdown_cell(note)}" for note in notes(comparison)]) + "\n"


def records(comparison: Comparison) -> list[dict[str, Any]]:
    """One record per cell, in the table's order, then the cells apart: what CSV and JSON hold."""
    result = []
    for row in comparison.rows:
        for column in comparison.columns:
            cell = comparison.cell(row, column)
            if cell is not None:
                result.append(_record(row, column, comparison.row_configs[row], cell, comparison, None))
    for apart in comparison.apart:
        result.append(_record(apart.row, apart.column, apart.config_id, apart.cell, comparison, apart.reason))
    return result


def _record(row: Row, column: Column, config: str | None, cell: Cell, comparison: Comparison,
            apart: str | None) -> dict[str, Any]:  # fmt: skip
    return {
        "workload": row[0],
        "preset": row[1],
        "setup": comparison.row_setups[row],
        "config": config,
        "host": column.host,
        "device_type": column.device_type,
        "device_name": column.device_name,
        "epoch_seconds": cell.seconds,
        "scaled": cell.scaled,
        "runs": cell.runs,
        "spread_ratio": cell.spread,
        "speedup": cell.speedup,
        "cv": cell.cv,
        "contended": cell.contended,
        "unstable": cell.unstable,
        "within_noise": cell.within_noise,
        "baseline": column == comparison.baseline,
        "failure": cell.failure,
        "peak_device_memory_bytes": cell.extras.get("memory"),
        "max_temperature_celsius": cell.extras.get("temperature"),
        "average_power_watts": cell.extras.get("power"),
        "energy_joules": cell.extras.get("energy"),
        "flops_per_second": cell.extras.get("flops"),
        "mfu_ratio": cell.extras.get("mfu"),
        "apart": apart,
    }


def as_csv(comparison: Comparison) -> str:
    rows = records(comparison)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: csv_cell(value) for key, value in row.items()} for row in rows)
    return out.getvalue()


def as_json(comparison: Comparison) -> str:
    columns = [
        {"host": c.host, "device_type": c.device_type, "device_name": c.device_name, "label": c.label}
        for c in comparison.columns
    ]
    baseline = comparison.baseline.label if comparison.baseline else None
    return (
        json.dumps({"columns": columns, "baseline": baseline, "cells": records(comparison)}, indent=2) + "\n"
    )


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; }
td.cell { text-align: right; white-space: nowrap; }
td.failed { color: #b00; }
.detail { color: #666; font-size: 0.85em; }
figure { margin: 1.5em 0; }
"""


def html_table(comparison: Comparison, extras: tuple[str, ...]) -> str:
    header = "".join(f"<th>{html_text(h)}</th>" for h in ("workload", "preset", "setup"))
    header += "".join(f"<th>{html_text(c.label)}</th>" for c in comparison.columns)
    body = []
    for row, setup, cells in _grid(comparison, extras):
        tds = "".join(f"<td>{html_text(v)}</td>" for v in (row[0], row[1], setup))
        for column, lines in zip(comparison.columns, cells, strict=True):
            failed = _failed(comparison, row, column)
            detail = "".join(f'<div class="detail">{html_text(line)}</div>' for line in lines[1:])
            tds += f'<td class="cell{" failed" if failed else ""}">{html_text(lines[0])}{detail}</td>'
        body.append(f"<tr>{tds}</tr>")
    return f'<table id="comparison"><thead><tr>{header}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def as_html(
    comparison: Comparison, extras: tuple[str, ...], figures: list[tuple[str, str]] | None = None
) -> str:
    """One self-contained page (no network needed): the table, its notes, and figures as inline data URIs."""
    notes_html = "".join(f"<li>{html_text(n)}</li>" for n in notes(comparison))
    made = time.strftime("%Y-%m-%d %H:%M %Z")
    machines_html = "".join(
        f"<li><b>{html_text(column.label)}</b>: {html_text(comparison.machines.get(column, ''))}</li>"
        for column in comparison.columns
    )
    figures_html = "".join(
        f'<figure><img alt="{html_text(title)}" src="{uri}">'
        f"<figcaption>{html_text(title)}</figcaption></figure>"
        for title, uri in figures or []
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>benchd comparison</title><style>{PAGE_STYLE}</style></head><body>"
        "<h1>benchd comparison: seconds per epoch</h1>"
        f'<p class="made">Made {html_text(made)} by benchd {html_text(__version__)}.</p>'
        f'<ul class="machines">{machines_html}</ul>'
        f"{html_table(comparison, extras)}<ul>{notes_html}</ul>{figures_html}</body></html>\n"
    )
