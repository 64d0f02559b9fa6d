"""Every config's tracker on every device, fed finished runs as they end: the verdicts the daemon exports.

The same book judges the local store for `benchd health` without a daemon,
fed the store's finished runs in order, so both give the same verdict.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from benchd.health import bands as band_tables
from benchd.health.verdict import Band, BandSource, ConfigTracker, DeviceVerdict, Policy, device_verdicts
from benchd.results.model import Run

PeriodKey = tuple[str, str]  # workload, preset: a schedule's period applies to every config it runs


class HealthBook:
    def __init__(
        self,
        policy: Policy | None = None,
        external: Mapping[BandSource, Mapping[band_tables.BandKey, Band]] | None = None,
    ) -> None:
        self.policy = policy or Policy()
        self._external = dict(external or {})
        self._trackers: dict[tuple[str, str], ConfigTracker] = {}
        self._lock = threading.Lock()

    def record(self, run: Run) -> None:
        """Count one finished run (the caller sees each once, in the order runs finish)."""
        if run.outcome is None or run.config_id is None:
            return  # a run that never knew its config says nothing about one
        device = run.device or run.requested_device
        summary = run.summary
        with self._lock:
            tracker = self._trackers.get((device, run.config_id))
            if tracker is None:
                external = band_tables.for_device(run.device_name or "", run.config_id, self._external)
                tracker = ConfigTracker(
                    device, run.config_id, run.workload, run.preset, self.policy, external
                )
                self._trackers[(device, run.config_id)] = tracker
            at = run.finished_at or run.queued_at
            tracker.observe(run.outcome, summary.epoch_seconds if summary else None, at, run.contended)

    def verdicts(
        self, now: float, periods: Mapping[PeriodKey, float | None] | None = None
    ) -> list[DeviceVerdict]:
        """Each device's verdict at `now`; `periods` are the schedules' (absent: unscheduled, never stale)."""
        periods = periods or {}
        with self._lock:
            configs = [t.verdict(now, periods.get((t.workload, t.preset))) for t in self._trackers.values()]
        return device_verdicts(configs)
