"""What the daemon knows about finished runs, held in memory for scrapes and status calls.

A scrape must never wait on the disk: every run that ends is added here once,
and at start the scoreboard is rebuilt from the store, so counters and
last-run figures survive restarts.
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchd.health.book import HealthBook
from benchd.results.baseline import BASELINE_RUNS, Repeats, baseline_of, repeats_of
from benchd.results.model import Origin, Outcome, Run

# Epoch durations span milliseconds (a VAE on a GPU, a small fraction) to hours (DCGAN on a CPU).
EPOCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


@dataclass
class Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(EPOCH_BUCKETS))
    count: int = 0
    total: float = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(EPOCH_BUCKETS, value)
        if index < len(self.buckets):
            self.buckets[index] += 1
        self.count += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        running, pairs = 0, []
        for bound, hits in zip(EPOCH_BUCKETS, self.buckets, strict=True):
            running += hits
            pairs.append((f"{bound:g}", float(running)))
        pairs.append(("+Inf", float(self.count)))
        return pairs


CONFIGS_PER_SERIES = 4
"""Configs exported per workload, preset and device, unless the daemon's config says otherwise."""
UNKNOWN_CONFIG = "unknown"  # runs stored before config identity existed, or that never started

SeriesKey = tuple[str, str, str]  # workload, preset, device
ResultKey = tuple[str, str, str, str]  # workload, preset, device, config


@dataclass
class SeriesState:
    """How the last run of one workload, preset and device ended, whatever its config."""

    last_outcome: str | None = None
    last_finished_at: float | None = None
    last_success_at: float | None = None
    last_config: str | None = None  # of the last clean (uncontended) ok run
    last_contended: bool = False  # the last run ended ok, beside foreign load
    last_contended_config: str | None = None  # of the last contended ok run


@dataclass
class ConfigResult:
    """The figures of one config's last ok run on one device, and its recent history."""

    info: dict[str, str] = field(default_factory=dict)  # what the config is: benchd_config_info's labels
    scheduled: bool = False  # its last run came from the schedule
    last_seen: float = 0.0
    epoch_seconds: float | None = None
    samples_per_second: float | None = None
    sample_unit: str | None = None
    fraction: float | None = None
    peak_device_bytes: int | None = None
    peak_host_bytes: int | None = None
    sensors: dict[str, float] = field(default_factory=dict)  # Run.energy_summary() of the last ok run
    slowdown: dict[str, Any] = field(default_factory=dict)  # Run.slowdown_summary() of the last ok run
    phases: dict[str, float] = field(default_factory=dict)  # Run.phase_summary() of the last ok run
    compute: dict[str, Any] = field(default_factory=dict)  # Run.compute_summary() of the last ok run
    epochs: Histogram = field(default_factory=Histogram)
    history: list[float] = field(default_factory=list)  # representative epochs of ok runs, oldest first
    # Ok runs measured beside foreign load: shown with their reason, never a clean figure or a baseline.
    contended_runs: int = 0
    contended_epoch_seconds: float | None = None  # the last contended ok run's representative epoch
    contention: str | None = None  # what shared the machine then ("foreign CPU 49%")

    def baseline(self) -> tuple[float, float, int] | None:
        """(median, relative spread, runs) of the ok runs before the latest (results/baseline.py); None
        before there is one."""
        found = baseline_of(self.history[:-1])
        return None if found is None else (found.median, found.spread, found.runs)

    def repeats(self) -> Repeats | None:
        """How far apart the recent ok runs are (all of `history`, the latest included); None under two."""
        found = repeats_of(self.history)
        return found if found is not None and found.runs >= 2 else None


class Scoreboard:
    def __init__(
        self, configs_per_series: int = CONFIGS_PER_SERIES, health: HealthBook | None = None
    ) -> None:
        self._lock = threading.Lock()
        self.health = health  # fed every run recorded here, once
        self.configs_per_series = configs_per_series
        self.outcomes: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self.contended: dict[SeriesKey, int] = defaultdict(int)  # ok runs measured beside foreign load
        # device -> time spent running benchmarks, start to end of every run
        self.benchmark_seconds: dict[str, float] = defaultdict(float)
        self.series: dict[SeriesKey, SeriesState] = defaultdict(SeriesState)
        self.results: dict[ResultKey, ConfigResult] = {}
        self.devices: dict[str, dict[str, str]] = {}
        self.power_limits: dict[str, float] = {}
        self._recorded: set[int] = set()

    def record(self, run: Run) -> None:
        """Add one finished run, once: a run seen again (recorded by the ledger, then found in the store by
        the daemon's follower) changes nothing."""
        if run.outcome is None:
            return
        device = run.device or run.requested_device
        series_key = (run.workload, run.preset, device)
        with self._lock:
            if run.id in self._recorded:
                return
            self._recorded.add(run.id)
            self.outcomes[(run.workload, run.preset, device, run.outcome)] += 1
            if run.started_at is not None and run.finished_at is not None:
                self.benchmark_seconds[device] += max(0.0, run.finished_at - run.started_at)
            if run.origin == Origin.SELFTEST:
                return  # counted, but a diagnostic's figures are no result, baseline or verdict
            if self.health is not None:
                self.health.record(run)
            state = self.series[series_key]
            state.last_outcome = run.outcome
            state.last_finished_at = run.finished_at
            key = (*series_key, run.config_id or UNKNOWN_CONFIG)
            state.last_contended = run.outcome == Outcome.OK and run.contended
            if state.last_contended:
                # Its figures measured the other load too: shown apart, never a headline or baseline.
                self.contended[series_key] += 1
                self._record_contended(run, key, state)
            elif run.epochs or run.outcome == Outcome.OK:
                self._record_result(run, key, state)
            if run.device and run.device_name:
                accelerator = (run.system or {}).get("accelerator") or {}
                if accelerator.get("power_limit_watts") is not None:
                    self.power_limits[run.device] = float(accelerator["power_limit_watts"])
                uuid = accelerator.get("uuid") or ""
                self.devices[run.device] = {
                    "device": run.device,
                    "type": run.device_type or "",
                    "name": run.device_name,
                    # A MIG instance's own UUID is not its GPU's: the GPU's comes from NVML at start.
                    "uuid": "" if uuid.startswith("MIG-") else uuid,
                    "mig_uuid": uuid if uuid.startswith("MIG-") else "",
                    "driver_version": run.driver_version or "",
                    "torch_version": run.torch_version or "",
                }

    def _record_result(self, run: Run, key: ResultKey, state: SeriesState) -> None:
        result = self.results.setdefault(key, ConfigResult(info=run.config_labels()))
        result.scheduled = run.origin == Origin.SCHEDULE
        result.last_seen = run.finished_at or 0.0
        for epoch in run.epochs:
            result.epochs.observe(epoch.duration_seconds)
        summary = run.summary
        if run.outcome == Outcome.OK and summary is not None:
            state.last_success_at = run.finished_at
            state.last_config = key[3]
            result.epoch_seconds = summary.epoch_seconds
            result.samples_per_second = summary.samples_per_second
            result.sample_unit = run.sample_unit
            result.fraction = run.fraction
            result.peak_device_bytes = run.peak_device_bytes
            result.peak_host_bytes = run.peak_host_rss_bytes
            result.sensors = run.energy_summary()
            result.slowdown = run.slowdown_summary()
            result.phases = run.phase_summary()
            result.compute = run.compute_summary()
            result.history = [*result.history, summary.epoch_seconds][-BASELINE_RUNS - 1 :]
        self._bound(key[:3])

    def _record_contended(self, run: Run, key: ResultKey, state: SeriesState) -> None:
        result = self.results.setdefault(key, ConfigResult(info=run.config_labels()))
        result.scheduled = run.origin == Origin.SCHEDULE
        result.last_seen = run.finished_at or 0.0
        result.contended_runs += 1
        result.contended_epoch_seconds = run.summary.epoch_seconds if run.summary is not None else None
        result.contention = run.contention_reason
        state.last_contended_config = key[3]
        self._bound(key[:3])

    def _bound(self, series_key: tuple[str, ...]) -> None:
        """Keep the scheduled configs, then the most recent others, up to configs_per_series."""
        keys = [k for k in self.results if k[:3] == series_key]
        keys.sort(key=lambda k: (self.results[k].scheduled, self.results[k].last_seen), reverse=True)
        for dropped in keys[self.configs_per_series :]:
            del self.results[dropped]

    def ensure_series(self, workload: str, preset: str, device: str, outcomes: tuple[str, ...]) -> None:
        """Make configured series exist at zero, so `increase()` and absence alerts work from the start."""
        with self._lock:
            for outcome in outcomes:
                self.outcomes.setdefault((workload, preset, device, outcome), 0)
            self.contended.setdefault((workload, preset, device), 0)
            self.series.setdefault((workload, preset, device), SeriesState())

    def snapshot(self) -> Snapshot:
        """Copies taken under the lock, for a collector to read at leisure."""
        with self._lock:
            return Snapshot(
                dict(self.outcomes),
                dict(self.contended),
                dict(self.benchmark_seconds),
                copy.deepcopy(dict(self.series)),
                copy.deepcopy(self.results),
                dict(self.devices),
                dict(self.power_limits),
            )


@dataclass(frozen=True)
class Snapshot:
    outcomes: dict[tuple[str, str, str, str], int]
    contended: dict[SeriesKey, int]
    benchmark_seconds: dict[str, float]
    series: dict[SeriesKey, SeriesState]
    results: dict[ResultKey, ConfigResult]
    devices: dict[str, dict[str, str]]
    power_limits: dict[str, float]
