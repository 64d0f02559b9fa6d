"""A run's vocabulary and data model: what every part of benchd says about runs.

The outcomes, origins and states a run can have, and the run, its epochs and
its summary with their JSON, defined once here and apart from the SQLite
layer, so the HTTP client, the report renderers and the generators of rules
and dashboards use the same words without importing the database.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from benchd import catalog
from benchd.catalog import suites

MAX_RUN_ID = 2**63 - 1  # SQLite's largest rowid: an id beyond it names no run


class Word(str, Enum):
    """A vocabulary word: compares, formats, serialises and binds as its plain string value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)


class Outcome(Word):
    """How a run ended: exactly one per run, set once (docs/cli.md)."""

    OK = "ok"
    OOM = "oom"  # device or host out of memory: the comparison's "DNF"
    ERROR = "error"  # any other failure, e.g. an operator the backend lacks: "runtime error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # a scheduled run not started (host busy, queue full)
    INTERRUPTED = "interrupted"  # the daemon stopped or died while it ran
    PREEMPTED = "preempted"  # stopped to yield its device to a tenant that arrived (lifecycle/tenants.py)

    @property
    def label(self) -> str:
        """How the published table and the dashboards write it."""
        return _OUTCOME_LABELS.get(self, self.value)


_OUTCOME_LABELS = {Outcome.OOM: "DNF (out of memory)", Outcome.ERROR: "runtime error"}

OUTCOMES = tuple(Outcome)
FAILED_OUTCOMES = (Outcome.OOM, Outcome.ERROR, Outcome.TIMEOUT, Outcome.INTERRUPTED)
"""Outcomes that mean the machine could not do the work (cancelled, skipped and preempted runs are not
failures: someone or something else stopped them)."""


class Origin(Word):
    """Who asked for a run."""

    CLI = "cli"  # `benchd run` in the foreground
    API = "api"  # `benchd trigger` or a POST to the daemon
    SCHEDULE = "schedule"
    SELFTEST = "selftest"  # `benchd selftest`: never a baseline, a verdict or a fingerprint to agree with


class State(Word):
    """Where a run is in its life: queued -> running -> finished."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"


BASIS_FIRST = "first-epoch"
BASIS_MEDIAN = "median-after-first"


@dataclass(frozen=True)
class Epoch:
    index: int
    duration_seconds: float
    samples: int
    steps: int
    data_wait_seconds: float
    peak_allocated_bytes: int | None
    peak_reserved_bytes: int | None
    loss: float | None
    telemetry: dict[str, Any] | None = None
    phases: dict[str, float] | None = None  # seconds by phase (protocol.PHASES); None before schema 4
    validation_loss: float | None = None
    loss_bits: str | None = None  # deterministic runs: each step's loss, float32 little-endian, as hex

    def domain(self, name: str) -> dict[str, Any]:
        """This epoch's sensor figures for one domain (`cpu`, `cuda:0`), empty when none."""
        return ((self.telemetry or {}).get("domains") or {}).get(name, {})

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "samples_per_second": self.samples_per_second}


@dataclass(frozen=True)
class Summary:
    """The run's representative figures and which epochs they come from."""

    basis: str
    epoch_seconds: float
    samples_per_second: float
    epochs: tuple[int, ...]


def summarize(epochs: list[Epoch]) -> Summary | None:
    """Median of the epochs after the first when there are several; the first when alone.

    The first epoch pays one-time costs (autotuning, allocator growth), so it
    only stands for the run when it is all there is.
    """
    if not epochs:
        return None
    chosen = epochs[1:] if len(epochs) > 1 else epochs[:1]
    return Summary(
        basis=BASIS_MEDIAN if len(epochs) > 1 else BASIS_FIRST,
        epoch_seconds=statistics.median(e.duration_seconds for e in chosen),
        samples_per_second=statistics.median(e.samples_per_second for e in chosen),
        epochs=tuple(e.index for e in chosen),
    )


Pick = Callable[[list[float]], float]
# How each per-epoch figure becomes the run's: like the epoch time (median), or the extreme over them.
ENERGY_PICKS: dict[str, Pick] = {
    "energy_joules": statistics.median,
    "average_power_watts": statistics.median,
    "peak_power_watts": max,
    "max_temperature_celsius": max,
}
SLOWDOWN_PICKS: dict[str, Pick] = {
    "mean_sm_clock_hertz": statistics.median,
    "min_sm_clock_hertz": min,
    "mean_memory_clock_hertz": statistics.median,
    "min_memory_clock_hertz": min,
    "power_limit_watts": lambda values: values[-1],
}


def _picked(chosen: list[dict[str, Any]], picks: dict[str, Pick]) -> dict[str, float]:
    result: dict[str, float] = {}
    for key, pick in picks.items():
        values = [figures[key]["value"] for figures in chosen if key in figures]
        if values:
            result[key] = pick(values)
    return result


@dataclass
class Run:
    id: int
    workload: str
    preset: str
    config: dict[str, Any]
    fraction: float
    requested_device: str
    state: str
    outcome: str | None
    message: str | None
    stderr_tail: str | None
    log_path: str | None
    device: str | None
    device_type: str | None
    device_name: str | None
    precision: str | None
    torch_version: str | None
    benchd_version: str
    driver_version: str | None
    data_kind: str | None
    data_samples: int | None
    parameters: int | None
    samples_per_epoch: int | None
    sample_unit: str | None
    peak_host_rss_bytes: int | None
    queued_at: float
    started_at: float | None
    finished_at: float | None
    timeout_seconds: float | None
    origin: str
    baseline: dict[str, Any] | None = None
    timing: str | None = None  # None: stored before timings existed (steps on in-memory data)
    workers: int | None = None  # DataLoader workers in the timed region, as the child resolved them
    data_scale: float | None = None  # a synthetic set's size relative to the real one
    config_id: str | None = None  # catalog.identity: None until the child reported its data
    system: dict[str, Any] | None = None  # where it ran: host, OS, CPU, memory, accelerators, versions
    compute: dict[str, Any] | None = None  # FLOPs, compile time, peak FLOP/s (training/compute.py)
    determinism: dict[str, Any] | None = (
        None  # deterministic runs: stack, fingerprint (health/fingerprints.py)
    )
    epochs: list[Epoch] = field(default_factory=list)

    @property
    def summary(self) -> Summary | None:
        return summarize(self.epochs)

    def phase_summary(self) -> dict[str, float]:
        """Median seconds per phase over the representative epochs; phases never run are absent."""
        summary = self.summary
        if summary is None:
            return {}
        chosen = [e.phases for e in self.epochs if e.index in summary.epochs and e.phases]
        names = dict.fromkeys(name for phases in chosen for name in phases)
        return {name: statistics.median(p.get(name, 0.0) for p in chosen) for name in names}

    def _device_figures(self) -> list[dict[str, Any]]:
        """The sensor figures of the representative epochs, on the run's own device."""
        summary = self.summary
        if summary is None or self.device is None:
            return []
        return [e.domain(self.device) for e in self.epochs if e.index in summary.epochs]

    def energy_summary(self) -> dict[str, float]:
        """The run's device-domain sensor figures over its representative epochs.

        Energy and average power: medians, like the epoch time; temperature:
        the maximum. Only figures that were measured appear.
        """
        return _picked(self._device_figures(), ENERGY_PICKS)

    def slowdown_summary(self) -> dict[str, Any]:
        """What explains the representative epochs' speed on the run's device (telemetry/aggregate.py):
        median seconds throttled per reason, clocks (median of the means, lowest of the minima), the
        power limit and PCIe link last seen. Only what the device reported appears."""
        chosen = self._device_figures()
        result: dict[str, Any] = _picked(chosen, SLOWDOWN_PICKS)
        throttles = [f["throttle_seconds"] for f in chosen if "throttle_seconds" in f]
        if throttles:
            reasons = sorted({reason for seconds in throttles for reason in seconds})
            result["throttle_seconds"] = {
                r: statistics.median(t.get(r, 0.0) for t in throttles) for r in reasons
            }
        links = [f["pcie_link"] for f in chosen if "pcie_link" in f]
        if links:
            result["pcie_link"] = links[-1]
        return result

    def flops_per_second(self, epoch_seconds: float) -> float | None:
        """Achieved FLOP/s of an epoch this long: the training steps' FLOPs over the whole epoch (which
        in reference timing includes loading and side work; device timing isolates the steps)."""
        flops = (self.compute or {}).get("flops_per_epoch")
        if not flops or epoch_seconds <= 0:
            return None
        return float(flops) / epoch_seconds

    def mfu(self, epoch_seconds: float) -> float | None:
        """Model FLOP/s utilization: achieved FLOP/s over the peak (published, or a CPU's measured one)."""
        achieved, peak = self.flops_per_second(epoch_seconds), (self.compute or {}).get("peak_flops")
        return achieved / float(peak) if achieved is not None and peak else None

    def compute_summary(self) -> dict[str, Any]:
        """The child's compute facts, with achieved FLOP/s and MFU of the representative epoch time.
        Absent figures stay absent: no peak, no MFU."""
        result = dict(self.compute or {})
        summary = self.summary
        if summary is not None:
            achieved, mfu = self.flops_per_second(summary.epoch_seconds), self.mfu(summary.epoch_seconds)
            if achieved is not None:
                result["flops_per_second"] = achieved
            if mfu is not None:
                result["mfu_ratio"] = mfu
        return result

    def _foreign_loads(self) -> list[dict[str, Any]]:
        """The foreign-load figures of the representative epochs (lifecycle/contention.py)."""
        summary = self.summary
        chosen = [e for e in self.epochs if summary is not None and e.index in summary.epochs]
        return [((e.telemetry or {}).get("foreign") or {}) for e in chosen]

    @property
    def contended(self) -> bool:
        """Whether foreign load shared the machine during a representative epoch (lifecycle/contention.py)."""
        return any(load.get("contended") for load in self._foreign_loads())

    @property
    def contention_reason(self) -> str | None:
        """What shared the machine, at its worst over the representative epochs ("foreign CPU 49%",
        "2 foreign GPU processes"); None for an uncontended run."""
        loads = [load for load in self._foreign_loads() if load.get("contended")]
        if not loads:
            return None
        parts = []
        cpu = max((load.get("foreign_cpu_ratio") or 0.0) for load in loads)
        if cpu > 0:
            parts.append(f"foreign CPU {cpu:.0%}")
        gpu = max((load.get("foreign_gpu_processes") or 0) for load in loads)
        if gpu:
            parts.append(f"{gpu} foreign GPU process{'es' if gpu > 1 else ''}")
        return ", ".join(parts) or "foreign load"

    @property
    def peak_device_bytes(self) -> int | None:
        values = [e.peak_reserved_bytes for e in self.epochs if e.peak_reserved_bytes is not None]
        return max(values) if values else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        """The inverse of to_json, for clients that read runs from the API."""
        names = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in names and k != "epochs"}
        values["data_kind"] = data.get("data")
        epoch_names = set(Epoch.__dataclass_fields__)
        epochs = [Epoch(**{k: v for k, v in e.items() if k in epoch_names}) for e in data.get("epochs", [])]
        return cls(**values, epochs=epochs)

    def to_json(self) -> dict[str, Any]:
        summary = self.summary
        data = {k: v for k, v in asdict(self).items() if k != "epochs"}
        data["data"] = data.pop("data_kind")
        data["epochs"] = [e.to_json() for e in self.epochs]
        data["summary"] = (
            {
                **asdict(summary),
                **self.energy_summary(),
                "phases": self.phase_summary(),
                "slowdown": self.slowdown_summary(),
                "compute": self.compute_summary(),
            }
            if summary
            else None
        )
        data["peak_device_bytes"] = self.peak_device_bytes
        data["setup"] = self.setup()
        data["suite"] = self.suite()
        data["contended"] = self.contended
        data["contention"] = self.contention_reason
        return data

    def config_labels(self) -> dict[str, str]:
        """What the config is, as text: `benchd_config_info`'s labels, and the fields compare names."""
        config = self.config
        return {
            "workload": self.workload,
            "preset": self.preset,
            "batch_size": str(config.get("batch_size", "")),
            "options": ",".join(f"{k}={v}" for k, v in sorted((config.get("options") or {}).items())),
            "epochs": str(config.get("epochs", "")),
            "fraction": f"{self.fraction:g}",
            "workers": "published" if config.get("workers") is None else str(config["workers"]),
            "timing": self.timing or "",
            "precision": self.precision or "",
            "compile": "true" if config.get("compile") else "false",
            "channels_last": "true" if config.get("channels_last") else "false",
            "deterministic": "true" if config.get("deterministic") else "false",
            "data": self.data_kind or "",
            "data_scale": "" if self.data_scale is None else f"{self.data_scale:g}",
            "suite": self.suite() or "",
        }

    def suite(self) -> str | None:
        """The suite this run's config belongs to (catalog.suites), if any."""
        try:
            return suites.suite_of(self.config)
        except (catalog.CatalogError, KeyError, TypeError):
            return None

    def setup(self) -> dict[str, Any] | None:
        """The config in the published table's columns (catalog.setup); None if it cannot be read."""
        try:
            return catalog.setup(self.config)
        except (catalog.CatalogError, KeyError, TypeError):
            return None
