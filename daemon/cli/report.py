"""How runs and workloads are shown: the comparison's table layout, and JSON for scripts."""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from benchd.catalog import listing, options_text
from benchd.comparison.render import format_flops
from benchd.results.model import BASIS_FIRST, Outcome, Run
from benchd.text import terminal


def workloads_table() -> Table:
    table = Table(title="benchd workloads")
    for column in ("workload", "preset", "batch", "parameters", "dataset"):
        table.add_column(column, justify="right" if column in ("batch", "parameters") else "left")
    for row in listing():
        table.add_row(
            row["workload"], row["preset"], str(row["batch_size"]), f"{row['parameters']:,}", row["dataset"]
        )
    return table


def _bytes(value: int | None) -> str:
    from benchd.comparison.render import format_bytes

    return "-" if value is None else format_bytes(value)


def _unit(value: float | None, template: str) -> str:
    return "-" if value is None else template.format(value)


def _epoch_cell(run: Run) -> str:
    """The representative time with the epoch fraction beside it: a figure never travels without it."""
    summary = run.summary
    if summary is None:
        return "-"
    basis = "1st epoch" if summary.basis == BASIS_FIRST else f"median of {len(summary.epochs)}"
    share = f"{run.fraction:.0%} epoch, " if run.fraction < 1 else ""
    return f"{summary.epoch_seconds:.3f}\n({share}{basis})"  # the figure on a line of its own: never folded


def _time_cell(run: Run) -> str:
    moment = run.finished_at or run.started_at or run.queued_at
    return time.strftime("%m-%d %H:%M", time.localtime(moment))


def _preset_cell(run: Run) -> str:
    return f"{run.preset} (modified)" if (run.setup() or {}).get("overridden") else run.preset


def _setup_cell(run: Run) -> str:
    """The published table's columns: batch; image size; embedding size, layers, hidden units."""
    columns = run.setup() or {}
    parts = [f"bs {columns['batch_size']}"] if "batch_size" in columns else []
    if "image_size" in columns:
        parts.append(f"{columns['image_size']} px")
    options = {k: v for k, v in columns.items() if k not in ("batch_size", "image_size", "overridden")}
    if options:
        parts.append(options_text(run.workload, options))
    return ", ".join(parts) or "-"


def _data_cell(run: Run) -> str:
    if run.data_kind == "synthetic" and run.data_scale is not None and run.data_scale != 1:
        return f"synthetic x{run.data_scale:g}"
    return run.data_kind or "-"


def _outcome_cell(run: Run) -> str:
    if run.outcome is None:
        return str(run.state)  # queued or running
    label = Outcome(run.outcome).label + (f" (contended: {run.contention_reason})" if run.contended else "")
    return f"{label}: {run.message}" if run.message and run.outcome != Outcome.OK else label


# (name, justify, wide): a wide column is shown only with --wide, so the default fits 100 columns.
RESULT_COLUMNS = (
    ("run", "right", False),
    ("time", "left", False),
    ("origin", "left", True),
    ("workload", "left", False),
    ("preset", "left", False),
    ("setup", "left", True),
    ("config", "left", True),
    ("device", "left", False),
    ("timing", "left", True),
    ("data", "left", True),
    ("workers", "right", True),
    ("epoch s", "right", False),
    ("samples/s", "right", True),
    ("FLOP/s", "right", True),
    ("MFU", "right", False),
    ("peak device mem", "right", False),
    ("peak host mem", "right", True),
    ("max temp", "right", True),
    ("avg power", "right", True),
    ("energy/epoch", "right", True),
    ("outcome", "left", False),
)
# Identifiers are never cut or wrapped: each such column is as wide as its longest value. The rest wrap.
IDENTIFIER_COLUMNS = {"run", "workload", "preset", "config"}
# What vendors put in a device's name that says nothing about it (the full name is in `show`).
_DEVICE_NAME_NOISE = re.compile(r"\((R|TM|C)\)|\bNVIDIA GeForce\b|\bGeForce\b|\bProcessor\b|\bCPU\b", re.I)


def short_device_name(name: str) -> str:
    """ "Intel(R) Xeon(R) Processor" as "Intel Xeon", "NVIDIA GeForce RTX 2070 SUPER" as "NVIDIA RTX 2070
    SUPER": a table's device column, which wrapped over four lines."""
    shortened = " ".join(_DEVICE_NAME_NOISE.sub(" ", name).split())
    return shortened or name


def run_lines(run: Run, *, wide: bool = False) -> list[str]:
    """One run as `name: value` lines (`benchd show`): the table's columns, the device's full name, and
    nothing a narrow terminal has to squeeze into a one-row table."""
    row = _result_row(run)
    lines = []
    for (name, _justify, only_wide), cell in zip(RESULT_COLUMNS, row, strict=True):
        value = f"{run.device_name} ({run.device_type})" if name == "device" and run.device_name else cell
        if (wide or not only_wide) and value != "-":
            lines.append(f"{name}: {' '.join(value.split())}")
    return lines


def _result_row(run: Run) -> tuple[str, ...]:
    summary = run.summary
    sensors = run.energy_summary()
    compute = run.compute_summary()
    return (
        str(run.id),
        _time_cell(run),
        run.origin,
        run.workload,
        _preset_cell(run),
        _setup_cell(run),
        run.config_id or "-",
        f"{short_device_name(run.device_name)} ({run.device_type})"
        if run.device_name
        else run.requested_device,
        run.timing or "-",
        _data_cell(run),
        "-" if run.workers is None else str(run.workers),
        _epoch_cell(run),
        f"{summary.samples_per_second:,.1f} {run.sample_unit}" if summary else "-",
        "-" if "flops_per_second" not in compute else format_flops(compute["flops_per_second"]),
        _unit(compute.get("mfu_ratio"), "{:.1%}"),
        _bytes(run.peak_device_bytes),
        _bytes(run.peak_host_rss_bytes),
        _unit(sensors.get("max_temperature_celsius"), "{:.0f} C"),
        _unit(sensors.get("average_power_watts"), "{:.1f} W"),
        _unit(sensors.get("energy_joules"), "{:,.1f} J"),
        _outcome_cell(run),
    )


def runs_table(runs: list[Run], *, wide: bool = False, title: str = "benchd results") -> Table:
    """One row per run: the comparison's columns, with the epoch fraction beside the time.

    A column no run has a figure for (sensors this host lacks, device memory
    on a CPU) is left out rather than printed as a column of dashes; the
    setup, config, timing, data and other detail columns come with `wide`.
    """
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    rows = [tuple(terminal(cell, multiline=True) for cell in _result_row(run)) for run in runs]
    shown = [
        i
        for i, (_name, _justify, only_wide) in enumerate(RESULT_COLUMNS)
        if (wide or not only_wide) and (not rows or any(row[i] != "-" for row in rows))
    ]
    for i in shown:
        name, justify, _wide = RESULT_COLUMNS[i]
        if name in IDENTIFIER_COLUMNS:
            longest = max([len(name), *(len(line) for row in rows for line in row[i].splitlines())])
            table.add_column(name, justify=justify, no_wrap=True, min_width=longest)  # type: ignore[arg-type]
        else:
            table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table


def system_line(system: dict[str, Any] | None) -> str:
    """Where a run ran, in one line: host, OS, CPU, memory, accelerator, software."""
    if not system:
        return "system not recorded"
    parts = [
        f"host {system.get('hostname')}",
        f"{system.get('os')} {system.get('kernel')}",
        f"{system.get('cpu')} ({system.get('logical_cpus')} CPUs, {_bytes(system.get('memory_bytes'))})",
    ]
    accelerator = system.get("accelerator") or {}
    if accelerator:
        limit = accelerator.get("power_limit_watts")
        parts.append(
            f"{accelerator.get('name')} {accelerator.get('uuid') or ''}".strip()
            + (f", {limit:.0f} W limit" if limit else "")
        )
    software = [f"torch {system.get('torch')}"]
    software += [
        f"{name} {system[key]}" for key, name in (("cuda", "CUDA"), ("cudnn", "cuDNN")) if system.get(key)
    ]
    if system.get("image"):
        software.append(f"image {system['image']}")
    return "; ".join([*parts, ", ".join(software)])


def epoch_line(epoch: dict[str, Any]) -> str:
    """One epoch of a run's JSON: its time, samples, and where the time went."""
    line = f"{epoch['duration_seconds']:.3f} s, {epoch['samples']} samples"
    phases = epoch.get("phases") or {"data_wait": epoch["data_wait_seconds"]}
    line += ", " + ", ".join(f"{name.replace('_', ' ')} {seconds:.3f} s" for name, seconds in phases.items())
    if epoch.get("validation_loss") is not None:
        line += f", validation loss {epoch['validation_loss']:.3f}"
    return line


def slowdown_line(slowdown: dict[str, Any]) -> str | None:
    """Why the run was as fast as it was, in one line (Run.slowdown_summary); None when nothing says."""
    parts = []
    throttled = slowdown.get("throttle_seconds")
    if throttled is not None:
        held = ", ".join(
            f"{reason.replace('_', ' ')} {seconds:.1f} s" for reason, seconds in throttled.items()
        )
        parts.append(f"clocks held down per epoch: {held}" if held else "clocks never held down")
    for name, key in (("SM", "sm_clock_hertz"), ("memory", "memory_clock_hertz")):
        if f"mean_{key}" in slowdown:
            mean, low = slowdown[f"mean_{key}"] / 1e9, slowdown[f"min_{key}"] / 1e9
            parts.append(f"{name} clock {mean:.2f} GHz (min {low:.2f})")
    if "power_limit_watts" in slowdown:
        parts.append(f"power limit {slowdown['power_limit_watts']:.0f} W")
    if "pcie_link" in slowdown:
        parts.append(f"PCIe gen {slowdown['pcie_link']['generation']} x{slowdown['pcie_link']['width']}")
    return "; ".join(parts) or None


def compute_line(compute: dict[str, Any]) -> str | None:
    """What the run computed, in one line (Run.compute_summary); None for runs from before FLOPs."""
    if "flops_per_step" not in compute:
        return None
    parts = [format_flops(compute["flops_per_step"], "FLOP") + " per step"]
    if "flops_per_second" in compute:
        parts.append(f"{format_flops(compute['flops_per_second'])} achieved")
    if "mfu_ratio" in compute:
        peak = f"{format_flops(compute['peak_flops'])} ({compute['peak_source']})"
        parts.append(f"MFU {compute['mfu_ratio']:.1%} of {peak}")
    elif "peak_unavailable" in compute:
        parts.append(f"MFU unavailable: {compute['peak_unavailable']}")
    if "compile_seconds" in compute:
        parts.append(f"compiled in {compute['compile_seconds']:.1f} s before the first epoch")
    return "; ".join(parts)


def plain_console(**options: Any) -> Console:
    """A console that prints text as text: no markup (`[bold]` in a hostname stays as typed), no emoji
    codes, no highlighting. Control characters are the cells' business (benchd.text.terminal)."""
    return Console(markup=False, emoji=False, highlight=False, **options)


PIPED_WIDTH = 320  # every --wide column of a run on one line, sensors and compute included


def print_table(table: Table) -> None:
    """Full width when piped to a file or another program (truncated cells help no one there),
    unless COLUMNS says how wide the reader's screen is."""
    plain_console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH).print(
        table
    )
