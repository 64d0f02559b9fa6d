"""The run queue in-process: whatever fails inside benchd ends that run, and the worker goes on."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchd.catalog import request as request_model
from benchd.lifecycle import device_lock
from benchd.lifecycle import queue as queue_module
from benchd.lifecycle.ledger import RunLedger
from benchd.lifecycle.queue import RunQueue
from benchd.lifecycle.recording import RunRequest
from benchd.results.model import Origin
from benchd.results.store import ResultsStore
from benchd.server.scoreboard import Scoreboard

from .daemon_process import wait_for
from .test_runner import FAULT_CHILD


def _request(data_dir: Path, fraction: float) -> RunRequest:
    (config,) = request_model.parse({"workload": "vae", "presets": "bs128", "fraction": fraction}).configs()
    return RunRequest(config, "cpu", data_dir, timeout=60)


@pytest.mark.slow
def test_a_run_benchd_cannot_start_ends_error_and_the_next_one_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(device_lock.ENV_LOCK_DIR, str(tmp_path / "locks"))
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    board = Scoreboard()
    queue = RunQueue(RunLedger(store, board.record), queue_size=4, grace=1.0, command=FAULT_CHILD)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "logs").write_text("a file where the logs directory belongs")  # the log cannot be opened
    healthy = tmp_path / "healthy"
    healthy.mkdir()
    try:
        ((bad, _),) = queue.submit_many([_request(broken, 0.5)], Origin.API)
        ((good, _),) = queue.submit_many([_request(healthy, 0.25)], Origin.API)
        wait_for(
            lambda: all(store.get_run(i).state == "finished" for i in (bad, good)), 60, "both runs to end"
        )
    finally:
        queue.shutdown(10)
    failed, passed = store.get_run(bad), store.get_run(good)
    assert failed.outcome == "error" and "benchd failed to start or follow the run" in failed.message
    assert passed.outcome == "ok"
    assert board.outcomes[("vae", "bs128", "cpu", "error")] == 1  # both reached the scoreboard
    assert board.outcomes[("vae", "bs128", "cpu", "ok")] == 1


def _refuse_writes(action: int, *_args: object) -> int:
    """A store whose writes fail, as on a full or read-only disk (SQLite refuses at prepare time)."""
    refused = (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE)
    return sqlite3.SQLITE_DENY if action in refused else sqlite3.SQLITE_OK


@pytest.mark.slow
def test_an_outcome_the_store_refused_is_recorded_as_error_once_it_takes_writes(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv(device_lock.ENV_LOCK_DIR, str(tmp_path / "locks"))
    monkeypatch.setattr(queue_module, "RECORD_RETRY_SECONDS", 0.2)
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    board = Scoreboard()
    queue = RunQueue(RunLedger(store, board.record), queue_size=4, grace=1.0, command=FAULT_CHILD)
    try:
        with queue._lock:  # the worker waits for this lock: the store refuses writes before it starts
            ((lost, _),) = queue.submit_many([_request(tmp_path, 0.5)], Origin.API)
            store._db.set_authorizer(_refuse_writes)
        wait_for(lambda: not store.writable and queue.active_runs() == [], 60, "the run to end unrecorded")
        assert store.get_run(lost).state != "finished" and board.outcomes == {}
        store._db.set_authorizer(None)  # space returns
        wait_for(lambda: store.get_run(lost).state == "finished", 30, "the outcome to be recorded")
        ((next_run, _),) = queue.submit_many([_request(tmp_path, 0.25)], Origin.API)
        wait_for(lambda: store.get_run(next_run).state == "finished", 60, "the next run to end")
    finally:
        queue.shutdown(10)
    recorded = store.get_run(lost)
    assert (recorded.outcome, recorded.message) == ("error", queue_module.UNRECORDED_MESSAGE)
    assert store.get_run(next_run).outcome == "ok" and store.writable
    assert board.outcomes[("vae", "bs128", "cpu", "error")] == 1  # counted once, when it was recorded


@pytest.mark.slow
def test_a_worker_that_fails_outside_a_run_is_restarted_and_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(device_lock.ENV_LOCK_DIR, str(tmp_path / "locks"))
    original = RunQueue._run
    failures = ["injected into the worker"]

    def flaky(self: RunQueue, *args: object) -> None:
        if failures:
            raise RuntimeError(failures.pop())
        original(self, *args)

    monkeypatch.setattr(RunQueue, "_run", flaky)
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    queue = RunQueue(RunLedger(store, Scoreboard().record), queue_size=4, grace=1.0, command=FAULT_CHILD)
    try:
        ((held, _),) = queue.submit_many([_request(tmp_path, 0.5)], Origin.API)
        wait_for(lambda: store.get_run(held).state == "finished", 30, "the held run to be ended")
        assert "injected into the worker" in (queue.worker_failure() or "")
        ((after, _),) = queue.submit_many([_request(tmp_path, 0.25)], Origin.API)
        wait_for(lambda: store.get_run(after).state == "finished", 60, "the next run to end")
    finally:
        queue.shutdown(10)
    assert store.get_run(held).outcome == "error" and store.get_run(after).outcome == "ok"
    assert queue.worker_failure(within=0) is None  # said for a while, then no longer


def test_only_the_same_repeat_of_a_queued_config_is_its_twin(tmp_path: Path) -> None:
    """A schedule firing again while its runs wait adds nothing; its repeats are runs of their own."""
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    queue = RunQueue(RunLedger(store, Scoreboard().record), queue_size=4, grace=1.0, command=FAULT_CHILD)
    first = _request(tmp_path, 0.5)
    lane = queue._lanes.setdefault("cpu", queue_module._DeviceLane())
    lane.queue.append(queue_module._Queued(7, first))  # waiting, as behind a running run
    assert queue._queued_twin(_request(tmp_path, 0.5)) == 7
    assert queue._queued_twin(dataclasses.replace(first, repeat=1)) is None
    assert queue._queued_twin(_request(tmp_path, 0.25)) is None


def _hold_device_elsewhere(lock_dir: Path) -> subprocess.Popen:
    """Another process holding the CPU's device lock (a foreground `benchd run`, say), until killed."""
    code = (
        "import sys, threading\n"
        "from benchd.lifecycle.device_lock import device_lock\n"
        "with device_lock('cpu', 'benchd run 99: vae bs128 on cpu'):\n"
        "    print('held', flush=True)\n"
        "    threading.Event().wait()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, device_lock.ENV_LOCK_DIR: str(lock_dir)})  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


@pytest.mark.parametrize("ending", ["shutdown", "cancel"])
def test_a_run_waiting_for_a_device_lock_stops_at_once(tmp_path: Path, monkeypatch, ending: str) -> None:
    """SIGTERM used to leave the daemon waiting for as long as the other benchmark ran: now a stop leaves
    the waiting run queued for the next start, and a cancel ends it `cancelled`, both within a second."""
    monkeypatch.setenv(device_lock.ENV_LOCK_DIR, str(tmp_path / "locks"))
    holder = _hold_device_elsewhere(tmp_path / "locks")
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    queue = RunQueue(RunLedger(store, Scoreboard().record), queue_size=4, grace=1.0, command=FAULT_CHILD)
    try:
        ((waiting, _),) = queue.submit_many([_request(tmp_path, 0.5)], Origin.API)
        wait_for(lambda: [a.run_id for a in queue.active_runs()] == [waiting], 10, "the run to wait")
        started = time.monotonic()
        if ending == "shutdown":
            queue.shutdown(30)
        else:
            queue.cancel(waiting)
            wait_for(lambda: store.get_run(waiting).state == "finished", 10, "the cancelled run to end")
        assert time.monotonic() - started < 2
    finally:
        queue.shutdown(30)
        holder.kill()
        holder.communicate()  # reaps it and closes its pipe
    run = store.get_run(waiting)
    if ending == "shutdown":
        assert run.state == "queued" and run.outcome is None  # the next start queues it again
    else:
        assert run.outcome == "cancelled" and "waiting for the device" in (run.message or "")
