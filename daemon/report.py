"""How runs and workloads are shown: the comparison's table layout, and JSON for scripts."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from benchd.catalog import WORKLOADS
from benchd.store import BASIS_FIRST, Run


def workloads_json() -> list[dict[str, Any]]:
    rows = []
    for workload in WORKLOADS.values():
        for preset in workload.presets:
            rows.append(
                {
                    "workload": workload.name,
                    "preset": preset.name,
                    "parameters": workload.parameters(preset.options),
                    "batch_size": preset.batch_size,
                    "options": dict(preset.options),
                    "dataset": workload.dataset,
                    "sample_unit": workload.sample_unit,
                }
            )
    return rows


def workloads_table() -> Table:
    table = Table(title="benchd workloads")
    for column in ("workload", "preset", "batch", "parameters", "dataset"):
        table.add_column(column, justify="right" if column in ("batch", "parameters") else "left")
    for row in workloads_json():
        table.add_row(
            row["workload"], row["preset"], str(row["batch_size"]), f"{row['parameters']:,}", row["dataset"]
        )
    return table


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e9:.2f} GB" if value >= 1e8 else f"{value / 1e6:.0f} MB"


def _unit(value: float | None, template: str) -> str:
    return "-" if value is None else template.format(value)


def _epoch_cell(run: Run) -> str:
    summary = run.summary
    if summary is None:
        return "-"
    basis = "1st epoch" if summary.basis == BASIS_FIRST else f"median of {len(summary.epochs)}"
    return f"{summary.epoch_seconds:.3f} ({basis})"


def _outcome_cell(run: Run) -> str:
    if run.outcome == "ok":
        return "ok"
    label = {"oom": "DNF (out of memory)", "error": "runtime error"}.get(run.outcome or "", run.outcome)
    return f"{label}: {run.message}" if run.message else str(label)


def runs_table(runs: list[Run]) -> Table:
    """One row per run: the comparison's columns, with the epoch fraction beside the time."""
    table = Table(title="benchd results")
    columns = [
        ("run", "right"),
        ("workload", "left"),
        ("preset", "left"),
        ("device", "left"),
        ("data", "left"),
        ("fraction", "right"),
        ("epoch s", "right"),
        ("samples/s", "right"),
        ("peak device mem", "right"),
        ("peak host mem", "right"),
        ("max temp", "right"),
        ("avg power", "right"),
        ("energy/epoch", "right"),
        ("outcome", "left"),
    ]
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for run in runs:
        summary = run.summary
        sensors = run.energy_summary()
        table.add_row(
            str(run.id),
            run.workload,
            run.preset,
            f"{run.device_name} ({run.device_type})" if run.device_name else run.requested_device,
            run.data_kind or "-",
            f"{run.fraction:g}",
            _epoch_cell(run),
            f"{summary.samples_per_second:,.1f} {run.sample_unit}" if summary else "-",
            _bytes(run.peak_device_bytes),
            _bytes(run.peak_host_rss_bytes),
            _unit(sensors.get("max_temperature_celsius"), "{:.0f} C"),
            _unit(sensors.get("average_power_watts"), "{:.1f} W"),
            _unit(sensors.get("energy_joules"), "{:,.1f} J"),
            _outcome_cell(run),
        )
    return table


def print_table(table: Table) -> None:
    """Full width when piped to a file or another program: truncated cells help no one there."""
    Console(width=None if sys.stdout.isatty() else 240).print(table)
