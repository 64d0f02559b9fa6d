"""The run queue in-process: whatever fails inside benchd ends that run, and the worker goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchd.catalog import request as request_model
from benchd.lifecycle import device_lock
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
