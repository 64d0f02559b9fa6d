"""Runs workloads on their schedules: an interval or a cron expression, plus jitter.

Before a scheduled run the host must be quiet (see busy.py); otherwise the run
is recorded `skipped` with the reason, so a dashboard shows a gap for what it
is rather than as missing data.

Due times are kept on the monotonic clock, so a wall clock stepped back an hour
(NTP, a VM resumed) stalls nothing: an interval counts real seconds. A cron
names wall-clock minutes, so when the wall clock jumps either way (its offset
from the monotonic clock moves) every cron's next time is worked out again
from the new wall time; the loop looks at the clocks at least every
CLOCK_CHECK_SECONDS so a jump is noticed within a cron's minute.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from queue import SimpleQueue

from benchd.catalog.spec import RunConfig
from benchd.hostinfo import hostname as host_name
from benchd.lifecycle.busy import busy_reason
from benchd.lifecycle.ledger import RunLedger
from benchd.lifecycle.queue import QueueFullError, RunQueue, ShuttingDownError
from benchd.lifecycle.recording import RunRequest, queue_run
from benchd.results.model import Origin, Outcome, Run
from benchd.settings import Schedule, Settings

log = logging.getLogger("benchd.lifecycle.scheduler")

DEVICE_RETRY_SECONDS = 10.0
CHAIN_POLL_SECONDS = 2.0  # how often a schedule running its devices one after another checks the last one
CLOCK_CHECK_SECONDS = 30.0  # the longest the loop sleeps without looking for a wall-clock jump
CLOCK_JUMP_SECONDS = 5.0  # a change in (wall - monotonic) beyond this is a step of the wall clock, not drift


@dataclass
class _Comeback:
    """A preempted scheduled run, and since when its device has been quiet (monotonic; None while busy)."""

    request: RunRequest
    quiet_since: float | None


class Clock:
    """The two clocks the scheduler reads; tests inject their own."""

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


DeviceResolver = Callable[[str], list[str] | None]
"""Maps a configured device (`auto`, `cuda`, `all`) to device ids, or None while devices are unknown."""


class Scheduler(threading.Thread):
    def __init__(
        self,
        settings: Settings,
        ledger: RunLedger,
        queue: RunQueue,
        resolve_device: DeviceResolver,
        clock: Clock | None = None,
        hostname: str | None = None,
    ) -> None:
        super().__init__(name="benchd-scheduler", daemon=True)
        self._settings = settings
        self._ledger = ledger
        self._queue = queue
        self._resolve = resolve_device
        self._clock = clock or Clock()
        self._hostname = hostname if hostname is not None else host_name()
        self._stop = threading.Event()
        self._random = random.Random()
        # Schedules going through their devices one at a time: (schedule, device now, devices still to go).
        self._chains: list[tuple[Schedule, str, tuple[str, ...]]] = []
        self._due: dict[str, float] = {}  # workload -> monotonic time of its next firing
        self._preempted: SimpleQueue[Run] = SimpleQueue()  # handed over by the queue's workers
        self._comebacks: list[_Comeback] = []  # preempted runs waiting for their device to be quiet
        self._preemptions: dict[str, list[float]] = defaultdict(list)  # workload -> wall times, last 24 h
        self._slots: dict[str, float] = {}  # interval schedules: the unjittered time of their last slot
        self._wall_offset = 0.0  # wall - monotonic when the due times were last worked out

    def stop(self) -> None:
        self._stop.set()

    def _jitter(self) -> float:
        return self._random.uniform(0, self._settings.schedule.jitter)

    def spread_offset(self, schedule: Schedule) -> float:
        """This host's place in the schedule's spread window: a stable hash of its name (and the schedule's),
        the same after every restart and different from host to host, as Jenkins' `H` does."""
        if schedule.spread_seconds <= 0:
            return 0.0
        digest = hashlib.sha256(f"{self._hostname}/{schedule.workload}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % int(schedule.spread_seconds)

    def _cron_due(self, schedule: Schedule, after_wall: float, now: float) -> float:
        """A cron's next minute after `after_wall`, plus this host's spread, as a monotonic time."""
        assert schedule.cron is not None
        offset = self.spread_offset(schedule)
        following = schedule.cron.next_after(datetime.fromtimestamp(after_wall - offset)).timestamp() + offset
        return now + (following - self._clock.wall()) + self._jitter()

    def _first_due(self, schedule: Schedule, now: float) -> float:
        delay = self._settings.schedule.start_delay
        if schedule.cron is not None:
            return self._cron_due(schedule, self._clock.wall() + delay, now)
        assert schedule.interval_seconds is not None
        slot = now + delay
        if schedule.spread_seconds > 0:  # wall-clock multiples of the interval, plus the offset
            interval, earliest = schedule.interval_seconds, self._clock.wall() + delay
            aligned = math.ceil((earliest - self.spread_offset(schedule)) / interval) * interval
            slot = now + (aligned + self.spread_offset(schedule) - self._clock.wall())
        self._slots[schedule.workload] = slot
        return slot + self._jitter()

    def _next_due(self, schedule: Schedule, now: float) -> float:
        """The next firing: a cron's next minute, or the interval's next slot counted from the last slot
        (not from the jittered firing, so jitter never accumulates and a daily run keeps its time)."""
        if schedule.cron is not None:
            return self._cron_due(schedule, self._clock.wall(), now)
        assert schedule.interval_seconds is not None
        following = self._slots[schedule.workload] + schedule.interval_seconds
        while following <= now:  # the host slept or we fell behind: skip the missed slots
            following += schedule.interval_seconds
        self._slots[schedule.workload] = following
        return following + self._jitter()

    def start_schedules(self) -> None:
        """Each schedule's first firing, counted from now."""
        now = self._clock.monotonic()
        self._wall_offset = self._clock.wall() - now
        self._due = {s.workload: self._first_due(s, now) for s in self._settings.schedules}

    def next_due(self) -> dict[str, float]:
        """Each schedule's next firing, as a wall-clock time."""
        offset = self._clock.wall() - self._clock.monotonic()
        return {workload: due + offset for workload, due in self._due.items()}

    def preempted(self, run: Run) -> None:
        """A scheduled run yielded to a tenant: it comes back once its device has been quiet for
        `runs.quiet_for` (called from a queue worker; handled in the scheduler's own thread)."""
        if run.origin == Origin.SCHEDULE:
            self._preempted.put(run)

    def _take_preempted(self) -> None:
        schedules = {s.workload: s for s in self._settings.schedules}
        while not self._preempted.empty():
            run = self._preempted.get()
            if run.workload not in schedules:
                continue
            wall = self._clock.wall()
            recent = [t for t in self._preemptions[run.workload] if t > wall - 24 * 3600] + [wall]
            self._preemptions[run.workload] = recent
            config = RunConfig(**{k: v for k, v in run.config.items() if k in RunConfig.__dataclass_fields__})
            device = run.device or run.requested_device
            request = RunRequest(config, device, self._settings.data_dir, run.timeout_seconds)
            if len(recent) > self._settings.runs.max_preemptions:
                limit = self._settings.runs.max_preemptions
                why = f"preempted {len(recent)} times in 24 hours (limit {limit}): not run now"
                self._record_skipped(request, why)
                continue
            self._comebacks.append(_Comeback(request, None))

    def _advance_comebacks(self, now: float) -> None:
        """Each preempted run waits for its device to be quiet for `quiet_for` in a row, then is queued."""
        for comeback in list(self._comebacks):
            device = comeback.request.device
            if self._queue.device_busy(device) or busy_reason(self._settings, device) is not None:
                comeback.quiet_since = None
                continue
            comeback.quiet_since = now if comeback.quiet_since is None else comeback.quiet_since
            if now - comeback.quiet_since >= self._settings.runs.quiet_for:
                self._comebacks.remove(comeback)
                with contextlib.suppress(QueueFullError, ShuttingDownError):
                    self._queue.submit(comeback.request, origin=Origin.SCHEDULE)

    def tick(self) -> float:
        """Fire what is due; return how long to sleep before the next look."""
        self._advance_chains()
        now = self._clock.monotonic()
        self._take_preempted()
        self._advance_comebacks(now)
        self._follow_wall_clock(now)
        for schedule in self._settings.schedules:
            if self._due[schedule.workload] <= now:
                if self._fire(schedule):
                    self._due[schedule.workload] = self._next_due(schedule, now)
                else:
                    self._due[schedule.workload] = now + DEVICE_RETRY_SECONDS
        pause = min(min(self._due.values()) - now, CLOCK_CHECK_SECONDS)
        return min(pause, CHAIN_POLL_SECONDS) if self._chains or self._comebacks else pause

    def _follow_wall_clock(self, now: float) -> None:
        offset = self._clock.wall() - now
        step = offset - self._wall_offset
        if abs(step) <= CLOCK_JUMP_SECONDS:
            return
        self._wall_offset = offset
        log.warning("the wall clock stepped by %+.0f s: cron schedules worked out again", step)
        for schedule in self._settings.schedules:
            if schedule.cron is not None:
                self._due[schedule.workload] = self._cron_due(schedule, self._clock.wall(), now)

    def run(self) -> None:
        self.start_schedules()
        while not self._stop.is_set() and self._due:
            pause = self.tick()
            if pause > 0:
                self._stop.wait(pause)

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

    def _over_budget(self, schedule: Schedule, device: str) -> str | None:
        """Why the firing would take the device past `runs.max_seconds_per_day`: the benchmark time it
        spent in the last 24 hours plus what the schedule's runs took last time."""
        budget = self._settings.runs.max_seconds_per_day
        if budget is None:
            return None
        store = self._ledger.store
        spent = store.benchmark_seconds(device, self._clock.wall() - 24 * 3600)
        expected = sum(
            (store.last_run_seconds(schedule.workload, preset, device) or 0.0) * schedule.repeat
            for preset in schedule.presets
        )
        if spent + expected <= budget:
            return None
        return (f"daily budget: {device} spent {spent:.0f} s benchmarking in the last 24 h, and this firing "
                f"would add about {expected:.0f} s (runs.max_seconds_per_day {budget:.0f} s)")  # fmt: skip

    def _fire_on(self, schedule: Schedule, device: str) -> None:
        # Runs of our own already on the device just mean the new ones wait their turn.
        reason = None if self._queue.device_busy(device) else busy_reason(self._settings, device)
        reason = reason or self._over_budget(schedule, device)
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
