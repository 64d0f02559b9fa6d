"""Foreign load: CPU used outside a run's process group makes its epochs contended, and a contended
run never becomes a headline figure or part of a baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchd.lifecycle.contention import FOREIGN_CPU_LIMIT, ForeignLoad
from benchd.results.model import Epoch
from benchd.server.scoreboard import Scoreboard

from .conftest import require_quiet_machine
from .test_collector import _finished_run

# Spins until the test kills it: a fixed lifetime can end before a slow machine reaches the last epoch.
BUSY = "while True: pass\n"


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_the_run_groups_own_work_is_not_foreign() -> None:
    require_quiet_machine()  # another process's load would rightly count as foreign
    load = ForeignLoad(os.getpgid(0), "cpu")  # this process's group stands for the run's
    load.mark()
    _spin(0.6)
    measured = load.measure()
    assert measured is not None and measured["foreign_cpu_ratio"] < FOREIGN_CPU_LIMIT
    assert measured["contended"] is False and measured["foreign_gpu_processes"] is None


def test_work_outside_the_group_is_foreign() -> None:
    require_quiet_machine()  # on a loaded machine the spinning process gets less than a CPU
    other = subprocess.Popen([sys.executable, "-c", BUSY], start_new_session=True)  # its own group
    try:
        time.sleep(0.3)  # let it start spinning
        load = ForeignLoad(os.getpgid(0), "cpu")
        load.mark()
        time.sleep(1.0)  # a window to measure over, while the other process spins
        measured = load.measure()
    finally:
        other.kill()
        other.wait()
    assert measured is not None
    # One spinning process is one of this machine's CPUs.
    assert measured["foreign_cpu_ratio"] > 0.8 / (os.cpu_count() or 1)
    assert measured["contended"] is (measured["foreign_cpu_ratio"] > FOREIGN_CPU_LIMIT)


def test_a_contended_run_is_counted_but_never_a_headline_or_a_baseline() -> None:
    board = Scoreboard()
    board.record(_finished_run("same", 10.0, 1.0))
    contended = _finished_run("same", 20.0, 2.0)
    shared = {"foreign": {"foreign_cpu_ratio": 0.5, "foreign_gpu_processes": None, "contended": True}}
    contended.epochs = [
        Epoch(e.index, e.duration_seconds, e.samples, e.steps, e.data_wait_seconds, None, None, 1.0, shared)
        for e in contended.epochs
    ]
    assert contended.contended and contended.to_json()["contended"] is True
    board.record(contended)
    assert board.outcomes[("vae", "bs128", "cpu", "ok")] == 2
    result = board.results[("vae", "bs128", "cpu", "same")]
    assert result.epoch_seconds == 10.0 and result.history == [10.0]


@pytest.mark.slow
def test_benchd_run_beside_a_busy_process_is_flagged(small_data_dir: Path) -> None:
    busy = [
        subprocess.Popen([sys.executable, "-c", BUSY], start_new_session=True)
        for _ in range(os.cpu_count() or 1)
    ]
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "benchd", "run", "siamese", "-p", "bs64", "--fraction", "0.25", "--epochs",
             "2", "--device", "cpu", "--no-telemetry", "--json", "--data-dir", str(small_data_dir)],
            capture_output=True, text=True, check=True, timeout=300,
        )  # fmt: skip
    finally:
        for process in busy:
            process.kill()
            process.wait()
    (run,) = json.loads(completed.stdout)
    assert all(e["duration_seconds"] >= 0.5 for e in run["epochs"])  # long enough to be judged
    foreign = [e["telemetry"]["foreign"] for e in run["epochs"]]
    assert all(f["foreign_cpu_ratio"] > FOREIGN_CPU_LIMIT for f in foreign), foreign
    assert run["contended"] is True
