"""The daemon's run queue: one run at a time per device, runs queued durably in the store.

Every queued run already has its row in the store, so a restart finds it and
queues it again; a run that was running when the daemon died is marked
`interrupted`. One worker thread per device takes runs in order.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchd import protocol
from benchd.catalog import RunConfig
from benchd.lifecycle.child import HARNESS_COMMAND, CancelToken
from benchd.lifecycle.device_lock import LockWaitCancelledError
from benchd.lifecycle.ledger import RunLedger
from benchd.lifecycle.recording import RunRequest, execute, queue_run
from benchd.results.model import Origin, Outcome, State
from benchd.results.store import owner_alive
from benchd.telemetry.sampler import Sampler

log = logging.getLogger("benchd.queue")


class QueueFullError(Exception):
    """The queue holds as many runs as it may."""


class ShuttingDownError(Exception):
    """The daemon is stopping and takes no new runs."""


class RunNotFoundError(KeyError):
    """No run with that id."""


class RunFinishedError(Exception):
    """The run has already ended; there is nothing to cancel."""


@dataclass
class ActiveRun:
    """What a scrape or a status call may know about the run in progress."""

    run_id: int
    config: RunConfig
    device: str
    cancel: CancelToken
    epoch: int | None = None
    step: int = 0
    steps: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.run_id,
            "workload": self.config.workload,
            "preset": self.config.preset,
            "device": self.device,
            "epoch": self.epoch,
            "epochs": self.config.epochs,
            "step": self.step,
            "steps": self.steps,
        }


@dataclass
class _Queued:
    run_id: int
    request: RunRequest


@dataclass
class _DeviceLane:
    queue: collections.deque[_Queued] = field(default_factory=collections.deque)
    active: ActiveRun | None = None
    worker: threading.Thread | None = None
    unrecorded: set[int] = field(default_factory=set)  # ended, but the store refused the outcome


RECORD_RETRY_SECONDS = 5.0  # how often a worker retries outcomes the store refused
WORKER_FAILURE_MEMORY_SECONDS = 60.0  # how long a restarted worker keeps readiness and health at "failing"
UNRECORDED_MESSAGE = (
    "benchd could not record this run's outcome when it ended: the results store refused writes"
)


@dataclass(frozen=True)
class _View:
    queued: tuple[dict[str, Any], ...]
    active: tuple[ActiveRun, ...]


class RunQueue:
    def __init__(
        self,
        ledger: RunLedger,
        *,
        queue_size: int,
        grace: float,
        command: Sequence[str] = HARNESS_COMMAND,
        sampler: Sampler | None = None,
        yield_to_tenants: bool = False,
    ) -> None:
        self._sampler = sampler
        self._yield_to_tenants = yield_to_tenants  # every run this queue starts stops for a tenant
        self._ledger = ledger
        self._store = ledger.store
        self._queue_size = queue_size
        self._grace = grace
        self._command = command
        self._lock = threading.Condition()
        self._lanes: dict[str, _DeviceLane] = {}
        self._accepting = True
        self._view = _View((), ())
        self._worker_failed: tuple[float, str] | None = None  # (monotonic time, what happened)

    # -- intake -------------------------------------------------------------

    def submit(self, request: RunRequest, origin: Origin) -> tuple[int, bool]:
        return self.submit_many([request], origin)[0]

    def submit_many(self, requests: list[RunRequest], origin: Origin) -> list[tuple[int, bool]]:
        """Queue all the runs or none; an identical run already queued is returned as (its id, True)."""
        with self._lock:
            if not self._accepting:
                raise ShuttingDownError("the daemon is shutting down")
            twins = [self._queued_twin(r) for r in requests]
            new = sum(1 for twin in twins if twin is None)
            if new and self._waiting() + new > self._queue_size:
                raise QueueFullError(
                    f"the queue cannot take {new} more run(s) ({self._queue_size} at most); try again later"
                )
            results = []
            for request, twin in zip(requests, twins, strict=True):
                if twin is not None:
                    results.append((twin, True))
                    continue
                run_id = queue_run(self._store, request, origin)
                self._enqueue(self._lanes.setdefault(request.device, _DeviceLane()), _Queued(run_id, request))
                results.append((run_id, False))
            return results

    def _queued_twin(self, request: RunRequest) -> int | None:
        lane = self._lanes.get(request.device)
        if lane is None:
            return None
        wanted = (request.config, request.repeat)
        return next((q.run_id for q in lane.queue if (q.request.config, q.request.repeat) == wanted), None)

    def resume(self, run_id: int, request: RunRequest) -> None:
        """Queue a run found `queued` in the store at start."""
        with self._lock:
            self._enqueue(self._lanes.setdefault(request.device, _DeviceLane()), _Queued(run_id, request))

    def _enqueue(self, lane: _DeviceLane, item: _Queued) -> None:
        lane.queue.append(item)
        if lane.worker is None:
            lane.worker = threading.Thread(
                target=self._supervise,
                args=(item.request.device,),
                name=f"benchd-worker-{item.request.device}",
            )
            lane.worker.start()
        self._publish()
        self._lock.notify_all()

    def _waiting(self) -> int:
        return sum(len(lane.queue) for lane in self._lanes.values())

    def _publish(self) -> None:
        """Make the views below match the lanes; called with the lock held, after every change."""
        queued = tuple(
            {"id": q.run_id, "workload": q.request.config.workload, "preset": q.request.config.preset,
             "device": device}
            for device, lane in self._lanes.items()
            for q in lane.queue
        )  # fmt: skip
        self._view = _View(
            queued, tuple(lane.active for lane in self._lanes.values() if lane.active is not None)
        )

    # -- views ----------------------------------------------------------------
    # Read without the lock, which is held while runs are written to the store: a scrape or a status
    # call never waits on SQLite (a locked or full store), only reads the last published view.

    def queue_length(self) -> int:
        return len(self._view.queued)

    def active_runs(self) -> list[ActiveRun]:
        return list(self._view.active)

    def queued_runs(self) -> list[dict[str, Any]]:
        return [dict(q) for q in self._view.queued]

    def device_busy(self, device: str) -> bool:
        """Whether benchd itself has a run in progress or waiting on `device`."""
        with self._lock:
            lane = self._lanes.get(device)
            return lane is not None and (lane.active is not None or bool(lane.queue))

    def progress(self, run_id: int) -> ActiveRun | None:
        with self._lock:
            return next((a for a in self.active_runs() if a.run_id == run_id), None)

    # -- cancellation and shutdown --------------------------------------------

    def cancel(self, run_id: int) -> str:
        """Cancel a queued run at once, or ask a running one to stop; returns the run's new state."""
        with self._lock:
            for lane in self._lanes.values():
                for queued in lane.queue:
                    if queued.run_id == run_id:
                        lane.queue.remove(queued)
                        self._publish()
                        self._ledger.finish(run_id, Outcome.CANCELLED, message="cancelled before it started")
                        return Outcome.CANCELLED
                if lane.active is not None and lane.active.run_id == run_id:
                    lane.active.cancel.cancel()
                    return "cancelling"
        run = self._store.get_run(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        raise RunFinishedError(f"run {run_id} already ended with outcome {run.outcome}")

    def shutdown(self, timeout: float) -> None:
        """Stop intake, stop the running children, and wait for their outcomes to be recorded.

        Runs still waiting stay `queued` in the store and are resumed by the next start.
        """
        with self._lock:
            self._accepting = False
            for lane in self._lanes.values():
                lane.queue.clear()
                if lane.active is not None:
                    lane.active.cancel.cancel()
            self._publish()
            workers = [lane.worker for lane in self._lanes.values() if lane.worker is not None]
            self._lock.notify_all()
        for worker in workers:
            worker.join(timeout)

    # -- the worker -------------------------------------------------------------

    def worker_failure(self, within: float = WORKER_FAILURE_MEMORY_SECONDS) -> str | None:
        """What last broke a device's worker, if that was less than `within` seconds ago."""
        failed = self._worker_failed
        if failed is None or time.monotonic() - failed[0] > within:
            return None
        return failed[1]

    def _supervise(self, device: str) -> None:
        """Keep the device's worker going: a failure outside any run's own handling is logged, said
        (worker_failure: readiness and the queue's health metric), and the worker starts over. A run
        it held ends `error` through the unrecorded-run path."""
        lane = self._lanes[device]
        while True:
            try:
                self._work(device)
                return
            except Exception as exc:
                log.exception("the worker for %s failed; restarting it", device)
                self._worker_failed = (
                    time.monotonic(),
                    f"the worker for {device} failed and was restarted: {exc}",
                )
                with self._lock:
                    if lane.active is not None:
                        lane.unrecorded.add(lane.active.run_id)
                        lane.active = None
                        self._publish()

    def _work(self, device: str) -> None:
        lane = self._lanes[device]
        while True:
            self._record_unrecorded(lane)
            with self._lock:
                while self._accepting and not lane.queue:
                    if lane.unrecorded:  # try the store again from time to time, runs or not
                        if not self._lock.wait(RECORD_RETRY_SECONDS):
                            break
                    else:
                        self._lock.wait()
                if not self._accepting:
                    lane.worker = None
                    return
                if not lane.queue:
                    continue
                item = lane.queue.popleft()
                lane.active = ActiveRun(item.run_id, item.request.config, device, CancelToken())
                active = lane.active
                self._publish()
            self._run(lane, item, active)

    def _run(self, lane: _DeviceLane, item: _Queued, active: ActiveRun) -> None:
        try:
            self._execute(item, active)
        except LockWaitCancelledError:
            if not self._accepting:  # stopping: the run never started, and waits for the next start
                log.info("run %s stays queued: the daemon stopped while it waited for %s", item.run_id,
                         active.device)  # fmt: skip
                return
            try:  # announced below, with every other ending
                self._store.finish(item.run_id, Outcome.CANCELLED, message="cancelled waiting for the device")
            except sqlite3.Error:  # the store refuses writes: the run is left to the unrecorded path
                log.exception("run %s: its cancellation could not be recorded", item.run_id)
        finally:
            with self._lock:
                lane.active = None
                self._publish()
        try:
            run = self._store.get_run(item.run_id)
            recorded = run is not None and run.state == State.FINISHED
            if recorded:
                self._ledger.announce(item.run_id)
        except Exception:  # a store that cannot be read now
            log.exception("run %s ended but could not be read back", item.run_id)
            recorded = False
        if not recorded:
            lane.unrecorded.add(item.run_id)

    def _execute(self, item: _Queued, active: ActiveRun) -> None:
        try:
            execute(
                self._store,
                item.run_id,
                dataclasses.replace(item.request, yield_to_tenants=self._yield_to_tenants),
                cancel=active.cancel,
                on_event=functools.partial(self._follow, active),
                command=self._command,
                grace=self._grace,
                sampler=self._sampler,
                on_wait=functools.partial(_log_waiting, item.run_id, active.device),
            )
        except LockWaitCancelledError:
            raise
        except Exception:  # recorded as `error` by execute where the store allows; the worker goes on
            log.exception("run %s on %s failed in benchd itself", item.run_id, active.device)

    def _record_unrecorded(self, lane: _DeviceLane) -> None:
        """Runs whose outcome the store refused (full, read-only, locked) end `error` once it takes writes."""
        for run_id in sorted(lane.unrecorded):
            try:
                run = self._store.get_run(run_id)
                if run is not None and run.state != State.FINISHED:
                    self._ledger.finish(run_id, Outcome.ERROR, message=UNRECORDED_MESSAGE)
                elif run is not None:
                    self._ledger.announce(run_id)
            except Exception as exc:  # still refused: kept for the next try
                log.warning("run %s: the store still refuses its outcome (%s)", run_id, exc)
                return
            lane.unrecorded.discard(run_id)

    def _follow(self, active: ActiveRun, event: protocol.Event) -> None:
        with self._lock:
            if event["event"] == protocol.STARTED:
                active.steps = event.get("steps_per_epoch")
            elif event["event"] == protocol.EPOCH_START:
                active.epoch, active.step = event["epoch"], 0
            elif event["event"] == protocol.PROGRESS:
                active.step = event["step"]
            elif event["event"] == protocol.EPOCH_END:
                active.step = event["steps"]


def recover(ledger: RunLedger, queue: RunQueue, data_dir: Path) -> list[int]:
    """After a start: runs left `running` become `interrupted` (their ids are returned);
    runs left `queued` are queued again."""
    store = ledger.store
    interrupted = interrupt_abandoned(ledger)
    for run in store.runs_in_state(State.RUNNING):
        if run.origin == Origin.CLI:  # a foreground `benchd run` owns its own runs
            continue
        ledger.finish(
            run.id, Outcome.INTERRUPTED, message="the daemon stopped while this run was in progress"
        )
        interrupted.append(run.id)
    for run in store.runs_in_state(State.QUEUED):
        if run.origin == Origin.CLI:
            continue
        config = RunConfig(**{k: v for k, v in run.config.items() if k in RunConfig.__dataclass_fields__})
        queue.resume(run.id, RunRequest(config, run.requested_device, data_dir, run.timeout_seconds))
    return interrupted


def interrupt_abandoned(ledger: RunLedger) -> list[int]:
    """Foreground runs whose `benchd run` is gone (killed with SIGKILL, or the host rebooted) are
    interrupted: their owner's pid and start time say so, so a live `benchd run` is never touched.
    Runs stored before owners were recorded say nothing, and are left alone."""
    abandoned = []
    for run_id, pid, started in ledger.store.unfinished_owners(Origin.CLI):
        if not owner_alive(pid, started):
            message = f"the benchd run that ran it (pid {pid}) ended without recording an outcome"
            ledger.finish(run_id, Outcome.INTERRUPTED, message=message)
            abandoned.append(run_id)
    return abandoned


def _log_waiting(run_id: int, device: str, holder: str) -> None:
    log.info("run %s waits for %s: in use by %s", run_id, device, holder)
