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

from benchd.lifecycle.busy import busy_reason
from benchd.lifecycle.ledger import RunLedger
from benchd.lifecycle.queue import QueueFullError, RunQueue, ShuttingDownError
from benchd.lifecycle.recording import RunRequest, queue_run
from benchd.results.model import Origin, Outcome
from benchd.server.config import Schedule, Settings

log = logging.getLogger("benchd.lifecycle.scheduler")

DEVICE_RETRY_SECONDS = 10.0
CHAIN_POLL_SECONDS = 2.0  # how often a schedule running its devices one after another checks the last one

DeviceResolver = Callable[[str], list[str] | None]
"""Maps a configured device (`auto`, `cuda`, `all`) to device ids, or None while devices are unknown."""


class Scheduler(threading.Thread):
    def __init__(
        self,
        settings: Settings,
        ledger: RunLedger,
        queue: RunQueue,
        resolve_device: DeviceResolver,
    ) -> None:
        super().__init__(name="benchd-scheduler", daemon=True)
        self._settings = settings
        self._ledger = ledger
        self._queue = queue
        self._resolve = resolve_device
        self._stop = threading.Event()
        self._random = random.Random()
        # Schedules going through their devices one at a time: (schedule, device now, devices still to go).
        self._chains: list[tuple[Schedule, str, tuple[str, ...]]] = []

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
            self._advance_chains()
            now = time.time()
            upcoming = min(due.values())
            if upcoming > now:
                self._stop.wait(min(upcoming - now, CHAIN_POLL_SECONDS) if self._chains else upcoming - now)
                continue
            for schedule in self._settings.schedules:
                if due[schedule.workload] <= now:
                    if self._fire(schedule):
                        due[schedule.workload] = self._next_due(schedule, due[schedule.workload], now)
                    else:
                        due[schedule.workload] = now + DEVICE_RETRY_SECONDS

    def _fire(self, schedule: Schedule) -> bool:
        """Queue (or skip) every preset of the schedule on its devices; False if devices are not known yet.

        Several devices run at once with `parallel_devices`, else one after another: the next device's
        runs are queued when the last device has none left (_advance_chains).
        """
        devices = self._devices(schedule)
        if devices is None:
            return False
        if schedule.parallel_devices or len(devices) == 1:
            for device in devices:
                self._fire_on(schedule, device)
        else:
            self._fire_on(schedule, devices[0])
            self._chains.append((schedule, devices[0], tuple(devices[1:])))
        return True

    def _devices(self, schedule: Schedule) -> list[str] | None:
        found: list[str] = []
        for configured in schedule.devices:
            resolved = self._resolve(configured)
            if resolved is None:
                return None
            found += [device for device in resolved if device not in found]
        return found

    def _advance_chains(self) -> None:
        for chain in list(self._chains):
            schedule, current, rest = chain
            if self._queue.device_busy(current):
                continue
            self._chains.remove(chain)
            if rest:
                self._fire_on(schedule, rest[0])
                self._chains.append((schedule, rest[0], rest[1:]))

    def _fire_on(self, schedule: Schedule, device: str) -> None:
        # Runs of our own already on the device just mean the new ones wait their turn.
        reason = None if self._queue.device_busy(device) else busy_reason(self._settings, device)
        for config in schedule.request.configs():
            for repeat in range(schedule.repeat):
                request = RunRequest(
                    config, device, self._settings.data_dir, schedule.request.timeout, repeat
                )
                if reason is None:
                    try:
                        self._queue.submit(request, origin=Origin.SCHEDULE)
                        continue
                    except QueueFullError as exc:
                        reason = str(exc)
                    except ShuttingDownError:
                        return
                self._record_skipped(request, reason)
                break  # one skipped run stands for the config's repeats not run

    def _record_skipped(self, request: RunRequest, reason: str) -> None:
        log.info("skipped %s %s: %s", request.config.workload, request.config.preset, reason)
        run_id = queue_run(self._ledger.store, request, origin=Origin.SCHEDULE)
        self._ledger.finish(run_id, Outcome.SKIPPED, message=reason)
