"""The comparison table: rows workload x preset, columns machine x device, like-for-like cells only.

Each row has one config (the one most machines ran); a machine whose runs of
that row used another config gets no cell in the row but an entry "apart",
with a line saying how its config differs, so figures of different work are
never set side by side. A cell is the median full-epoch time of the config's
ok, uncontended runs, scaled from a fraction of an epoch where that is what
ran (and marked so), with the spread of its runs; a machine that only failed
says how.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field, replace

from benchd.catalog import WORKLOADS, options_text, suites
from benchd.comparison.results import Column, Result
from benchd.results.baseline import UNSTABLE_CV, repeats_of, within_noise
from benchd.results.model import Outcome

# The labels a row's config and a differing config are compared on, in the order a reason names them.
REASON_FIELDS = ("batch_size", "options", "fraction", "epochs", "workers", "timing", "precision", "data",
                 "data_scale")  # fmt: skip
Row = tuple[str, str]  # workload, preset


class ComparisonError(Exception):
    """A comparison that cannot be made as asked (an unknown baseline, nothing to compare)."""


@dataclass(frozen=True)
class Cell:
    seconds: float | None  # full-epoch seconds, the median over runs; None when no run was ok
    scaled: bool  # measured on a fraction of an epoch and scaled to a full one
    runs: int  # ok, uncontended runs the median is of
    spread: float | None  # half the range of those runs over their median; None for one run
    failure: str | None  # what happened when no run was ok: "DNF (out of memory)", "runtime error", ...
    extras: dict[str, float] = field(default_factory=dict)
    speedup: float | None = None  # the baseline's seconds over this cell's, same config
    cv: float | None = None  # the runs' coefficient of variation; None for one run
    within_noise: bool = False  # the speed-up is closer to 1 than the two machines' run-to-run variation
    contended: bool = False  # measured beside foreign load (--include-contended): shown, never compared

    @property
    def unstable(self) -> bool:
        return self.cv is not None and self.cv > UNSTABLE_CV

    @property
    def text(self) -> str:
        if self.seconds is None:
            return self.failure or "-"
        return (
            f"{self.seconds:,.3f}" + ("*" if self.scaled else "") + (" (contended)" if self.contended else "")
        )


@dataclass(frozen=True)
class Apart:
    """A machine's figures for a row, measured with another config than the row's."""

    row: Row
    column: Column
    config_id: str
    reason: str
    cell: Cell


@dataclass
class Comparison:
    columns: list[Column]
    rows: list[Row]
    row_configs: dict[Row, str | None]
    row_setups: dict[Row, str]
    cells: dict[tuple[Row, Column], Cell]
    apart: list[Apart]
    baseline: Column | None
    synthetic: list[Column] = field(default_factory=list)  # columns with a figure measured on generated data
    machines: dict[Column, str] = field(default_factory=dict)  # each column's host and software, described
    fingerprints: list[str] = field(default_factory=list)  # deterministic runs that disagree (bundles only)
    include_contended: bool = False  # contended figures shown, marked, where a machine has no clean one

    def cell(self, row: Row, column: Column) -> Cell | None:
        return self.cells.get((row, column))


def _row_order(row: Row) -> tuple[int, int, str, str]:
    """The catalog's order (the published table's), then anything else by name."""
    names = list(WORKLOADS)
    workload, preset = row
    if workload not in WORKLOADS:
        return (len(names), 0, workload, preset)
    presets = [p.name for p in WORKLOADS[workload].presets]
    return (
        names.index(workload),
        presets.index(preset) if preset in presets else len(presets),
        workload,
        preset,
    )


def _column_order(columns: list[Column], hosts: list[str]) -> list[Column]:
    """Hosts in the order given, then on each host the CPU first and accelerators by name."""
    return sorted(
        columns, key=lambda c: (hosts.index(c.host), c.device_type != "cpu", c.device_type, c.device_name)
    )


def setup_text(workload: str, labels: dict[str, str]) -> str:
    """A config in the published table's words: `bs 20 e200 l2 h200`."""
    options = dict(option.split("=", 1) for option in labels.get("options", "").split(",") if "=" in option)
    return " ".join(
        part for part in (f"bs {labels.get('batch_size', '?')}", options_text(workload, options)) if part
    )


def make_cell(results: list[Result], include_contended: bool = False) -> Cell:
    """A machine's figure for a row: its clean runs'; with `include_contended` and no clean run, its
    contended runs', marked so."""
    ok = [r for r in results if r.outcome == Outcome.OK and r.epoch_seconds is not None]
    measured = [r for r in ok if not r.contended]
    contended = not measured and include_contended and bool(ok)
    if contended:
        measured = ok
    if not measured:
        failed = [r for r in results if r.outcome != Outcome.OK]
        latest = max(failed, key=lambda r: r.finished_at) if failed else None
        failure = Outcome(latest.outcome).label if latest else "contended (not comparable)"
        return Cell(None, False, 0, None, failure)
    seconds = [r.epoch_seconds / r.fraction for r in measured if r.epoch_seconds is not None]
    middle = statistics.median(seconds)
    spread = (max(seconds) - min(seconds)) / 2 / middle if len(seconds) > 1 and middle > 0 else None
    names = {name for r in measured for name in r.extras}
    extras = {name: statistics.median(r.extras[name] for r in measured if name in r.extras) for name in names}
    found = repeats_of(seconds)
    reported = [r.variation for r in measured if r.variation is not None]
    # Several runs here say how they vary; one run from Prometheus carries its daemon's measure of it.
    cv = found.cv if found is not None and found.runs > 1 else (max(reported) if reported else None)
    return Cell(middle, any(r.fraction < 1 for r in measured), len(seconds), spread, None, extras, cv=cv,
                contended=contended)  # fmt: skip


def _reason(labels: dict[str, str], row_labels: dict[str, str]) -> str:
    differences = [
        f"{name} {labels.get(name) or '-'} (row: {row_labels.get(name) or '-'})"
        for name in REASON_FIELDS
        if labels.get(name, "") != row_labels.get(name, "")
    ]
    return ", ".join(differences) or "the same settings on another dataset or benchd version"


def _choose_row_config(
    by_config: dict[str | None, dict[Column, list[Result]]], baseline: Column | None
) -> str | None:
    """The config most machines ran; ties go to the baseline's, then to the one with more runs."""
    known = {config: columns for config, columns in by_config.items() if config is not None}
    if not known:
        return None
    return max(
        sorted(known),  # a stable order before max() picks among ties
        key=lambda c: (len(known[c]), baseline in known[c], sum(len(v) for v in known[c].values())),
    )


def _pick_baseline(columns: list[Column], baseline: str) -> Column:
    """`host` (its first column) or `host/type` (e.g. m1-ultra/mps)."""
    host, _, device_type = baseline.partition("/")
    for column in columns:
        if column.host == host and (not device_type or column.device_type == device_type):
            return column
    known = ", ".join(sorted({c.host for c in columns} | {f"{c.host}/{c.device_type}" for c in columns}))
    raise ComparisonError(f"baseline {baseline!r} is not among the machines compared: {known}")


ByConfig = dict[str | None, dict[Column, list[Result]]]  # a row's results by config, then by column


def _selected(results: list[Result], suite: str | None, config: str | None) -> list[Result]:
    if suite is not None:
        results = [r for r in results if suites.includes(suite, r.suite, r.workload)]
    if config is not None:
        results = [r for r in results if r.config_id == config]
    if not results:
        which = f" of suite {suite}" if suite else f" of config {config}" if config else ""
        raise ComparisonError(f"no finished runs{which} to compare")
    return results


def _fill_row(
    comparison: Comparison, row: Row, by_config: ByConfig, labels: dict[str, dict[str, str]]
) -> None:
    """The row's config, its cells, and the cells of other configs, apart."""
    row_config = _choose_row_config(by_config, comparison.baseline)
    comparison.row_configs[row] = row_config
    row_labels = labels.get(row_config, {}) if row_config else next(iter(by_config[None].values()))[0].labels
    comparison.row_setups[row] = setup_text(row[0], row_labels)
    unknown = by_config.get(None, {})
    for column in comparison.columns:
        chosen = by_config.get(row_config, {}).get(column) if row_config else None
        if chosen or column in unknown:
            comparison.cells[(row, column)] = make_cell(
                chosen or unknown[column], comparison.include_contended
            )
    for config_id, by_column in by_config.items():
        if config_id is None or config_id == row_config:
            continue
        reason = _reason(labels[config_id], row_labels)
        for column, chosen in by_column.items():
            comparison.apart.append(
                Apart(row, column, config_id, reason, make_cell(chosen, comparison.include_contended))
            )


def _most_measured(comparison: Comparison) -> Column:
    """The default baseline: the machine with the most figures, so that most cells get a speed-up."""
    measured = [
        sum(1 for (_row, c), cell in comparison.cells.items() if c == column and cell.seconds)
        for column in comparison.columns
    ]
    return comparison.columns[measured.index(max(measured))]


def build(results: list[Result], hosts: list[str], *, baseline: str | None = None, suite: str | None = None,
          config: str | None = None, include_contended: bool = False) -> Comparison:  # fmt: skip
    """Pivot results into the table; `suite` or `config` first keep only the runs of those configs;
    `include_contended` shows a machine's contended figure, marked, where it has no clean one."""
    results = _selected(results, suite, config)
    columns = _column_order(list({r.column: None for r in results}), hosts)
    base = _pick_baseline(columns, baseline) if baseline is not None else None
    grouped: dict[Row, ByConfig] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    labels: dict[str, dict[str, str]] = {}
    for result in results:
        grouped[(result.workload, result.preset)][result.config_id][result.column].append(result)
        if result.config_id is not None:
            labels.setdefault(result.config_id, result.labels)
    comparison = Comparison(columns, sorted(grouped, key=_row_order), {}, {}, {}, [], base,
                            include_contended=include_contended)  # fmt: skip
    comparison.synthetic = [c for c in columns if any(r.column == c and r.labels.get("data") == "synthetic"
                                                        for r in results)]  # fmt: skip
    comparison.machines = {column: _describe(column, results) for column in columns}
    for row, by_config in grouped.items():
        _fill_row(comparison, row, by_config, labels)
    if comparison.baseline is None:
        comparison.baseline = _most_measured(comparison)
    _add_speedups(comparison)
    return comparison


def _describe(column: Column, results: list[Result]) -> str:
    """A column's machine and the software its figures were measured with (every version seen)."""
    own = [r for r in results if r.column == column]
    machine = next((r.machine for r in own if r.machine), "")
    versions = []
    for name in ("benchd", "torch", "driver"):
        seen = sorted({r.software[name] for r in own if name in r.software})
        versions.append(f"{name} {', '.join(seen) if seen else 'unknown'}")
    return "; ".join(part for part in (machine, ", ".join(versions)) if part)


def _add_speedups(comparison: Comparison) -> None:
    base = comparison.baseline
    for (row, column), cell in list(comparison.cells.items()):
        reference = comparison.cells.get((row, base)) if base else None
        if reference and reference.seconds and cell.seconds and not (reference.contended or cell.contended):
            speedup = reference.seconds / cell.seconds
            noise = within_noise(speedup, cell.cv or 0.0, reference.cv or 0.0) and column != base
            comparison.cells[(row, column)] = replace(cell, speedup=speedup, within_noise=noise)
