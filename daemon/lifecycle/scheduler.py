"""Runs workloads on their schedules: an interval or a cron expression, plus jitter.

Before a scheduled run the host must be quiet (see busy.py); otherwise the run
is recorded `skipped` with the reason, so a dashboard shows a gap for what it
is rather than as missing data.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime

from benchd import catalog
from benchd.busy import busy_reason
from benchd.config import Schedule, Settings
from benchd.execution import RunRequest, queue_run
from benchd.service import QueueFullError, RunService, ShuttingDownError
from benchd.store import ResultsStore, Run

log = logging.getLogger("benchd.scheduler")

SKIPPED = "skipped"
DEVICE_RETRY_SECONDS = 10.0

DeviceResolver = Callable[[str], str | None]
"""Maps a configured device (`auto`, `cuda`) to a device id, or None while devices are unknown."""


class Scheduler(threading.Thread):
    def __init__(
        self,
        settings: Settings,
        store: ResultsStore,
        service: RunService,
        resolve_device: DeviceResolver,
        on_finished: Callable[[Run], None],
    ) -> None:
        super().__init__(name="benchd-scheduler", daemon=True)
        self._settings = settings
        self._store = store
        self._service = service
        self._resolve = resolve_device
        self._on_finished = on_finished
        self._stop = threading.Event()
        self._random = random.Random()

    def stop(self) -> None:
        self._stop.set()

    def _jitter(self) -> float:
        return self._random.uniform(0, self._settings.jitter_seconds)

    def _first_due(self, schedule: Schedule, started: float) -> float:
        earliest = started + self._settings.start_delay_seconds
        if schedule.cron is not None:
            return schedule.cron.next_after(datetime.fromtimestamp(earliest)).timestamp() + self._jitter()
        return earliest + self._jitter()

    def _next_due(self, schedule: Schedule, due: float, now: float) -> float:
        if schedule.cron is not None:
            return schedule.cron.next_after(datetime.fromtimestamp(now)).timestamp() + self._jitter()
        assert schedule.interval_seconds is not None
        following = due + schedule.interval_seconds
        while following <= now:  # the host slept or we fell behind: skip the missed slots
            following += schedule.interval_seconds
        return following + self._jitter()

    def run(self) -> None:
        started = time.time()
        due = {s.workload: self._first_due(s, started) for s in self._settings.schedules}
        while not self._stop.is_set() and due:
            now = time.time()
            upcoming = min(due.values())
            if upcoming > now:
                self._stop.wait(upcoming - now)
                continue
            for schedule in self._settings.schedules:
                if due[schedule.workload] <= now:
                    if self._fire(schedule):
                        due[schedule.workload] = self._next_due(schedule, due[schedule.workload], now)
                    else:
                        due[schedule.workload] = now + DEVICE_RETRY_SECONDS

    def _fire(self, schedule: Schedule) -> bool:
        """Queue (or skip) every preset of the schedule; False if devices are not known yet."""
        device = self._resolve(schedule.device)
        if device is None:
            return False
        # Runs of our own already on the device just mean the new ones wait their turn.
        reason = None if self._service.device_busy(device) else busy_reason(self._settings, device)
        workload = catalog.get_workload(schedule.workload)
        for preset in schedule.presets:
            config = catalog.build_config(
                workload,
                workload.preset(preset),
                epochs=schedule.epochs,
                fraction=schedule.fraction,
                timing=schedule.timing,
            )
            request = RunRequest(config, device, self._settings.data_dir, schedule.timeout_seconds)
            if reason is None:
                try:
                    self._service.submit(request, origin="schedule")
                    continue
                except QueueFullError as exc:
                    reason = str(exc)
                except ShuttingDownError:
                    return True
            self._record_skipped(request, reason)
        return True

    def _record_skipped(self, request: RunRequest, reason: str) -> None:
        log.info("skipped %s %s: %s", request.config.workload, request.config.preset, reason)
        run_id = queue_run(self._store, request, origin="schedule")
        self._store.finish(run_id, SKIPPED, message=reason)
        run = self._store.get_run(run_id)
        if run is not None:
            self._on_finished(run)
