"""One benchmark per device per host: a second run waits for the first, and says for whom."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from benchd.lifecycle import device_lock

from .daemon_process import wait_for


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "locks"
    monkeypatch.setenv(device_lock.ENV_LOCK_DIR, str(folder))
    return folder


def test_the_holder_is_named_while_it_holds_and_the_device_is_free_after() -> None:
    assert device_lock.holder("cuda:0") is None
    with device_lock.device_lock("cuda:0", "benchd run 7: vae bs128 on cuda:0"):
        assert device_lock.holder("cuda:0") == f"pid {os.getpid()}: benchd run 7: vae bs128 on cuda:0"
        assert device_lock.holder("cuda:1") is None  # another device is another lock
    assert device_lock.holder("cuda:0") is None


def test_a_second_holder_waits_and_hears_who_holds_it() -> None:
    heard: list[str] = []
    order: list[str] = []
    first_holds, second_waiting = threading.Event(), threading.Event()

    def second() -> None:
        first_holds.wait()
        with device_lock.device_lock(
            "cpu", "second", on_wait=lambda who: (heard.append(who), second_waiting.set())
        ):
            order.append("second")

    # flock locks belong to open files, so two opens in one process exclude each other like two processes
    thread = threading.Thread(target=second)
    thread.start()
    with device_lock.device_lock("cpu", "first"):
        first_holds.set()
        assert second_waiting.wait(10)
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]
    assert heard == [f"pid {os.getpid()}: first"]


@pytest.mark.slow
def test_benchd_run_waits_for_a_device_another_benchmark_holds(small_data_dir: Path, lock_dir: Path) -> None:
    env = {**os.environ, device_lock.ENV_LOCK_DIR: str(lock_dir)}
    command = [sys.executable, "-m", "benchd", "run", "vae", "-p", "bs128", "--fraction", "0.02",
               "--device", "cpu", "--no-telemetry", "--data-dir", str(small_data_dir)]  # fmt: skip
    with device_lock.device_lock("cpu", "the daemon's run 3: transformer b20-e200-l2-h200 on cpu"):
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: device_lock.holder("cpu") and _has_waiter(child), 30, "benchd run to wait for cpu")
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert "waiting for cpu: in use by pid" in err and "the daemon's run 3" in err
    assert "ok" in out


def _has_waiter(child: subprocess.Popen) -> bool:
    """The child blocks in flock on the lock file once it has said it is waiting."""
    return child.poll() is None and any(
        Path(f"/proc/{child.pid}/fd/{fd}").resolve().name == "cpu.lock"
        for fd in os.listdir(f"/proc/{child.pid}/fd")
        if Path(f"/proc/{child.pid}/fd/{fd}").exists()
    )
