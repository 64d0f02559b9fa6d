"""Yielding to tenants: a run stops (`preempted`) when a foreign process takes its device, and its own
processes never count as one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchd.lifecycle import tenants
from benchd.lifecycle.tenants import TENANT_CPU_SECONDS, WATCH_SECONDS, TenantWatch
from benchd.paths import store_path
from benchd.results.model import FAILED_OUTCOMES, Outcome
from benchd.results.store import ResultsStore

from .conftest import require_quiet_machine

BUSY = "while True: pass\n"


def test_a_foreign_gpu_process_is_a_tenant_within_a_watch_period(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU path (NVML's compute processes outside the run's group, MIG instances' own), faked."""
    appeared = threading.Event()
    monkeypatch.setattr(tenants, "foreign_gpu_processes", lambda device, group: 1 if appeared.is_set() else 0)
    heard: list[tuple[float, str]] = []
    done = threading.Event()

    def on_tenant(reason: str) -> None:
        heard.append((time.monotonic(), reason))
        done.set()

    watch = TenantWatch("cuda:0", os.getpgid(0), on_tenant)
    watch.start()
    time.sleep(3 * WATCH_SECONDS)
    assert not heard  # nothing foreign yet
    arrived = time.monotonic()
    appeared.set()
    assert done.wait(5)
    watch.join(5)
    ((when, reason),) = heard
    assert when - arrived <= 2 * WATCH_SECONDS + 0.5 and "1 compute process on cuda:0" in reason


def test_the_runs_own_processes_are_never_a_tenant() -> None:
    require_quiet_machine()
    heard: list[str] = []
    watch = TenantWatch("cpu", os.getpgid(0), heard.append)  # this test's group stands for the run's
    watch.start()
    end = time.monotonic() + TENANT_CPU_SECONDS + 1.5
    while time.monotonic() < end:  # the run's own work: spinning in its group
        pass
    watch.stop()
    watch.join(5)
    assert heard == []


def test_preempted_is_an_outcome_but_never_a_failure() -> None:
    assert Outcome("preempted") == Outcome.PREEMPTED and Outcome.PREEMPTED not in FAILED_OUTCOMES


@pytest.mark.slow
def test_a_foreground_run_yields_to_a_real_foreign_process(small_data_dir: Path, tmp_path: Path) -> None:
    """The CPU path, end to end: spinning processes outside the run's group stop it within about the
    two seconds of foreign load it waits for, and the run is stored `preempted` with the reason."""
    (tmp_path / "datasets").symlink_to(small_data_dir / "datasets")
    env = {**os.environ, "BENCHD_DATA_DIR": str(tmp_path)}
    run = subprocess.Popen(
        [sys.executable, "-m", "benchd", "run", "siamese", "-p", "bs64", "--epochs", "50", "--device", "cpu",
         "--no-telemetry", "--yield-to-tenants", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    store = ResultsStore(store_path(tmp_path), read_only=False)
    busy: list[subprocess.Popen] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
            r.state == "running" and r.epochs for r in store.list_runs()
        ):
            threading.Event().wait(0.2)
        started = time.monotonic()
        busy = [subprocess.Popen([sys.executable, "-c", BUSY], start_new_session=True)
                for _ in range(os.cpu_count() or 1)]  # fmt: skip
        output, _ = run.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        for process in [*busy, run]:
            process.kill()
            process.wait()
    (result,) = json.loads(output)
    assert result["outcome"] == "preempted", result
    assert "yielded its device: a tenant used" in result["message"]
    assert took < TENANT_CPU_SECONDS + 8  # two seconds of load to judge, a grace to stop, a loaded machine
    assert run.returncode == 1  # a run that did not end ok
    store.close()


def test_compare_names_a_machine_whose_runs_all_yielded_preempted(tmp_path: Path) -> None:
    from benchd.comparison import results, table
    from benchd.results.bundle import read_bundle

    published = Path(__file__).parent / "fixtures" / "published" / "m1-ultra.json"
    data = json.loads(published.read_text())
    for run in data["runs"]:
        if run["workload"] == "vae":
            run.update(
                outcome="preempted", message="yielded its device: a tenant used 93% of the CPUs for 2 s"
            )
    path = tmp_path / "m1-ultra.json"
    path.write_text(json.dumps(data))
    bundle = read_bundle(path)
    comparison = table.build(results.from_bundle(bundle), [bundle.hostname])
    cells = [comparison.cell(row, column) for row in comparison.rows if row[0] == "vae"
             for column in comparison.columns]  # fmt: skip
    assert {cell.text for cell in cells if cell is not None} == {"preempted"}
