"""The runner maps every way a child can end to exactly one outcome, and survives them all."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from benchd.lifecycle import child as runner
from benchd.lifecycle.child import CancelToken, run_child

FAULT_CHILD = (sys.executable, str(Path(__file__).with_name("fault_child.py")))


def run_fault(tmp_path: Path, fault: str, **kwargs):
    events: list[dict] = []
    result = run_child(
        json.dumps({"fault": fault}),
        log_path=tmp_path / f"{fault}.log",
        on_event=events.append,
        command=FAULT_CHILD,
        **kwargs,
    )
    return result, events


def test_clean_run_is_ok_and_records_peak_memory(tmp_path: Path) -> None:
    result, events = run_fault(tmp_path, "none")
    assert result.outcome == "ok"
    assert result.exit_code == 0
    assert [e["event"] for e in events] == ["started", "epoch_start", "epoch_end", "finished"]
    assert result.peak_rss_bytes is not None and result.peak_rss_bytes > 1_000_000


@pytest.mark.parametrize(
    ("fault", "outcome", "text"),
    [
        ("cuda_oom", "oom", "CUDA out of memory"),
        ("mps_oom", "oom", "MPS backend out of memory"),
        ("cpu_oom", "oom", "DefaultCPUAllocator: can't allocate memory"),
        ("torch_broken", "error", "ModuleNotFoundError: import of torch halted"),
        ("error", "error", "not currently implemented for the MPS device"),
        ("segfault", "error", "SIGSEGV"),
        ("sigkill", "error", "SIGKILL"),
        ("exit_silently", "error", "code 3"),
        ("garbage", "error", "event protocol"),
    ],
)
@pytest.mark.slow
def test_failures_are_classified_and_parent_carries_on(
    tmp_path: Path, fault: str, outcome: str, text: str
) -> None:
    result, _events = run_fault(tmp_path, fault, timeout=60)
    assert result.outcome == outcome
    assert text in (result.message or "")
    # The parent is unharmed: the next child runs normally.
    assert run_fault(tmp_path, "none")[0].outcome == "ok"


def test_the_daemons_token_never_reaches_a_training_child(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BENCHD_TOKEN", "s3cret-token-0123456789")
    monkeypatch.setenv("BENCHD_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("HOME", str(tmp_path))
    _result, events = run_fault(tmp_path, "report_env")
    assert events[0]["secrets"] == [] and events[0]["home"] == str(tmp_path)  # the rest passes through


@pytest.mark.parametrize(
    ("membership", "counters", "text"),
    [
        ("0::/system.slice/benchd.service\n", "system.slice/benchd.service/memory.events",
         "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n"),  # v2
        ("12:cpu,cpuacct:/docker/abc\n7:memory:/docker/abc\n", "memory/docker/abc/memory.oom_control",
         "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),  # v1
    ],
)  # fmt: skip
def test_oom_kills_are_read_from_cgroup_v1_and_v2(
    tmp_path: Path, membership: str, counters: str, text: str
) -> None:
    (tmp_path / "cgroup").write_text(membership)
    (tmp_path / "fs" / counters).parent.mkdir(parents=True)
    (tmp_path / "fs" / counters).write_text(text)
    assert runner.cgroup_oom_kills(tmp_path / "cgroup", tmp_path / "fs") == 2
    (tmp_path / "fs" / counters).unlink()
    assert runner.cgroup_oom_kills(tmp_path / "cgroup", tmp_path / "fs") is None  # unreadable: unknown, not 0


def test_failure_keeps_stderr_tail(tmp_path: Path) -> None:
    result, _ = run_fault(tmp_path, "error")
    assert "NotImplementedError" in (result.stderr_tail or "")
    result, _ = run_fault(tmp_path, "segfault")
    assert "Fatal Python error" in (result.stderr_tail or "")


@pytest.mark.slow
def test_hang_past_timeout_is_stopped(tmp_path: Path) -> None:
    result, events = run_fault(tmp_path, "hang", timeout=3, grace=2)
    assert result.outcome == "timeout"
    assert events[0]["event"] == "started"


def test_cancel_from_another_thread(tmp_path: Path) -> None:
    token = CancelToken()
    started = threading.Event()

    def on_event(event: dict) -> None:
        if event["event"] == "epoch_start":
            started.set()
            token.cancel()

    result = run_child(
        json.dumps({"fault": "hang"}),
        log_path=tmp_path / "c.log",
        on_event=on_event,
        command=FAULT_CHILD,
        cancel=token,
    )
    assert started.is_set()
    assert result.outcome == "cancelled"


def test_sigkill_counts_as_oom_when_the_cgroup_saw_an_oom_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = iter([4, 5])
    monkeypatch.setattr(runner, "cgroup_oom_kills", lambda: next(counts))
    result, _ = run_fault(tmp_path, "sigkill")
    assert result.outcome == "oom"
    assert "out-of-memory killer" in (result.message or "")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_exit_does_not_wait_for_grandchildren_holding_the_pipe(tmp_path: Path) -> None:
    started = time.monotonic()
    result, events = run_fault(tmp_path, "orphan", timeout=30)
    assert result.outcome == "ok"
    assert time.monotonic() - started < 30  # the grandchild sleeps 60 s holding the pipe open
    grandchild = events[0]["grandchild_pid"]
    # It was in the child's process group and was killed with it; SIGKILL lands asynchronously.
    deadline = time.monotonic() + 10
    while not _gone(grandchild) and time.monotonic() < deadline:
        threading.Event().wait(0.05)
    assert _gone(grandchild)
