"""Faults injected into a real daemon and a real store: the daemon answers throughout and loses nothing.

tests/test_queue.py injects a store that refuses writes into the queue
in-process; tests/test_runner.py the child's crashes and out-of-memory;
tests/test_cli.py a SIGKILLed `benchd run`. Here: another process holding the
store locked, and a store damaged on disk.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from benchd.paths import store_path
from benchd.results.store import ResultsStore

from .daemon_process import DaemonProcess, wait_for
from .test_cli import assert_bad_input, benchd
from .test_daemon import NO_SCHEDULE, QUICK_VAE


def _timed_get(client: httpx.Client, path: str) -> tuple[int, float]:
    started = time.monotonic()
    status = client.get(path).status_code
    return status, time.monotonic() - started


@pytest.mark.slow
def test_a_store_locked_by_another_process_never_blocks_health_or_metrics(data_dir: Path) -> None:
    daemon = DaemonProcess(data_dir, NO_SCHEDULE).start()
    try:  # the daemon is stopped however the test ends
        _refused_while_locked(daemon, data_dir)
        (queued,) = daemon.http.post("/api/v1/runs", json=QUICK_VAE).json()["runs"]
        assert daemon.wait_finished(queued["id"])["outcome"] == "ok"
        runs = daemon.http.get("/api/v1/runs").json()["runs"]
        assert [r["id"] for r in runs] == [queued["id"]]  # the refused request left nothing behind
        working = 'benchd_collector_up{collector="store"} 1.0'
        wait_for(lambda: working in daemon.http.get("/metrics").text, 5, "the store collector to say 1")
    finally:
        daemon.close()


def _refused_while_locked(daemon: DaemonProcess, data_dir: Path) -> None:
    """Another process holds the store: a request waits and is refused; health and metrics do not wait."""
    holder = sqlite3.connect(store_path(data_dir), isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # every write now waits, then fails
        answers: dict[str, httpx.Response] = {}

        def post() -> None:
            answers["post"] = daemon.http.post("/api/v1/runs", json=QUICK_VAE, timeout=30)

        writer = threading.Thread(target=post)
        writer.start()
        while writer.is_alive():  # while the request waits on the locked store
            for path in ("/healthz", "/metrics"):
                status, seconds = _timed_get(daemon.http, path)
                assert status == 200 and seconds < 1.0, (path, seconds)
            writer.join(0.2)
        refused = answers["post"]
        assert refused.status_code == 503 and "locked" in refused.json()["error"]
        assert refused.headers["retry-after"] == "5"
        failing = 'benchd_collector_up{collector="store"} 0.0'
        wait_for(lambda: failing in daemon.http.get("/metrics").text, 5, "the store collector to say 0")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _damage(path: Path) -> None:
    """Overwrite a page in the middle of the file, as a failing disk or a torn copy would."""
    with sqlite3.connect(path) as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    assert pages >= 3, "the store should span several pages"
    with open(path, "r+b") as handle:
        handle.seek(page * (pages // 2))
        handle.write(b"\xa5" * page)


def test_a_damaged_store_is_one_line_and_exit_2(tmp_path: Path) -> None:
    store = ResultsStore(store_path(tmp_path))
    for _ in range(40):  # enough rows for several pages
        store.create_run({"workload": "vae", "preset": "bs128", "batch_size": 128, "fraction": 0.5,
                          "epochs": 1, "seed": 1, "options": {}, "notes": "x" * 200},
                         requested_device="cpu", benchd_version="test", sample_unit="images")  # fmt: skip
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{store_path(tmp_path)}{suffix}").unlink(missing_ok=True)
    _damage(store_path(tmp_path))
    for args in (
        ["runs", "--url", "http://127.0.0.1:9"],
        ["run", "vae", "-p", "bs128", "--fraction", "0.01"],
        ["export"],
    ):
        assert_bad_input(benchd(*args, "--data-dir", str(tmp_path)), "the results store cannot be used",
                         "move it aside")  # fmt: skip
    served = subprocess.run(
        [sys.executable, "-m", "benchd", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert served.returncode == 2 and "the results store cannot be used" in served.stderr
    assert "Traceback" not in served.stderr
