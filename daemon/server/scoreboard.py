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

from benchd.results.model import Outcome, Run

# Epoch durations span milliseconds (a VAE on a GPU, a small fraction) to hours (DCGAN on a CPU).
EPOCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

SeriesKey = tuple[str, str, str]  # workload, preset, device


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


@dataclass
class SeriesState:
    """The latest figures for one workload, preset and device."""

    last_outcome: str | None = None
    last_finished_at: float | None = None
    last_success_at: float | None = None
    epoch_seconds: float | None = None
    samples_per_second: float | None = None
    sample_unit: str | None = None
    fraction: float | None = None
    peak_device_bytes: int | None = None
    peak_host_bytes: int | None = None
    sensors: dict[str, float] = field(default_factory=dict)  # Run.energy_summary() of the last ok run
    phases: dict[str, float] = field(default_factory=dict)  # Run.phase_summary() of the last ok run
    epochs: Histogram = field(default_factory=Histogram)


class Scoreboard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self.series: dict[SeriesKey, SeriesState] = defaultdict(SeriesState)
        self.devices: dict[str, dict[str, str]] = {}

    def record(self, run: Run) -> None:
        """Add one finished run (once)."""
        if run.outcome is None:
            return
        device = run.device or run.requested_device
        with self._lock:
            self.outcomes[(run.workload, run.preset, device, run.outcome)] += 1
            state = self.series[(run.workload, run.preset, device)]
            state.last_outcome = run.outcome
            state.last_finished_at = run.finished_at
            for epoch in run.epochs:
                state.epochs.observe(epoch.duration_seconds)
            summary = run.summary
            if run.outcome == Outcome.OK and summary is not None:
                state.last_success_at = run.finished_at
                state.epoch_seconds = summary.epoch_seconds
                state.samples_per_second = summary.samples_per_second
                state.sample_unit = run.sample_unit
                state.fraction = run.fraction
                state.peak_device_bytes = run.peak_device_bytes
                state.peak_host_bytes = run.peak_host_rss_bytes
                state.sensors = run.energy_summary()
                state.phases = run.phase_summary()
            if run.device and run.device_name:
                self.devices[run.device] = {
                    "device": run.device,
                    "type": run.device_type or "",
                    "name": run.device_name,
                    "driver_version": run.driver_version or "",
                    "torch_version": run.torch_version or "",
                }

    def ensure_series(self, workload: str, preset: str, device: str, outcomes: tuple[str, ...]) -> None:
        """Make configured series exist at zero, so `increase()` and absence alerts work from the start."""
        with self._lock:
            for outcome in outcomes:
                self.outcomes.setdefault((workload, preset, device, outcome), 0)
            self.series.setdefault((workload, preset, device), SeriesState())

    def snapshot(self) -> tuple[dict, dict, dict]:
        """Copies taken under the lock, for a collector to read at leisure."""
        with self._lock:
            return dict(self.outcomes), copy.deepcopy(dict(self.series)), dict(self.devices)
