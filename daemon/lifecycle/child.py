"""Parent side of a run: spawn the harness, follow its events, and decide the outcome.

The child runs in its own process group (so DataLoader workers go with it and
a terminal's Ctrl-C reaches only the parent, which then cancels cleanly). A
waiter thread reaps the child with wait4, which also yields its peak resident
memory; events, the child's exit and cancellation all wake one select loop.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchd import protocol
from benchd.interpreter import module_command
from benchd.results.model import Outcome

HARNESS_COMMAND = module_command("benchd.workloads.harness")
STDERR_TAIL_BYTES = 4000
DEFAULT_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ChildResult:
    outcome: Outcome
    message: str | None
    stderr_tail: str | None
    peak_rss_bytes: int | None
    exit_code: int | None


class Waker:
    """A self-pipe: lets another thread wake the select loop without polling."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def fileno(self) -> int:
        return self._read

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, b"\0")

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


class CancelToken:
    """Cancels a run from another thread (the daemon's API, a signal handler)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._wakers: list[Waker] = []
        self._lock = threading.Lock()
        self.outcome = Outcome.CANCELLED  # or PREEMPTED, when a tenant called the run off
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True once cancelled."""
        return self._event.wait(timeout)

    def cancel(self, outcome: Outcome = Outcome.CANCELLED, reason: str | None = None) -> None:
        """Call the run off; the first caller's outcome and reason stand."""
        with self._lock:
            if not self._event.is_set():
                self.outcome, self.reason = outcome, reason
            self._event.set()
            for waker in self._wakers:
                waker.wake()

    def attach(self, waker: Waker) -> None:
        with self._lock:
            self._wakers.append(waker)
            if self._event.is_set():
                waker.wake()

    def detach(self, waker: Waker) -> None:
        with self._lock:
            self._wakers.remove(waker)


class _Reaper(threading.Thread):
    """Waits for the child; records its status and resource usage, then wakes the loop."""

    def __init__(self, pid: int, waker: Waker) -> None:
        super().__init__(name=f"benchd-reaper-{pid}", daemon=True)
        self.pid = pid
        self.waker = waker
        self.status: int | None = None
        self.rusage: Any = None

    def run(self) -> None:
        _pid, self.status, self.rusage = os.wait4(self.pid, 0)
        self.waker.wake()


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_oom_kills(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT) -> int | None:
    """The kernel OOM killer's kill count in our memory cgroup, None where it cannot be read.

    cgroup v2: `oom_kill` in the group's memory.events; v1: `oom_kill` in the
    memory controller's memory.oom_control (kernels 4.13 and later).
    """
    try:
        for line in proc_cgroup.read_text().splitlines():
            hierarchy, controllers, path = line.split(":", 2)
            if hierarchy == "0":
                counters = root / path.lstrip("/") / "memory.events"
            elif "memory" in controllers.split(","):
                counters = root / "memory" / path.lstrip("/") / "memory.oom_control"
            else:
                continue
            for entry in counters.read_text().splitlines():
                key, value = entry.split()
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


def _stderr_tail(log_path: Path) -> str | None:
    try:
        with open(log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - STDERR_TAIL_BYTES))
            tail = handle.read().decode(errors="replace")
    except OSError:
        return None
    return tail or None


def _peak_rss_bytes(rusage: Any) -> int | None:
    if rusage is None:
        return None
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    return rusage.ru_maxrss if sys.platform == "darwin" else rusage.ru_maxrss * 1024


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


# The daemon's secrets: a training child needs none, and its environment is readable by its user.
SECRET_VARIABLES = ("BENCHD_TOKEN", "BENCHD_TOKEN_FILE")


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    kept = {name: value for name, value in environ.items() if name not in SECRET_VARIABLES}
    return {**kept, protocol.PARENT_PID_VARIABLE: str(os.getpid())}


def run_child(
    spec_json: str,
    *,
    log_path: Path,
    on_event: Callable[[protocol.Event], None],
    timeout: float | None = None,
    cancel: CancelToken | None = None,
    command: Sequence[str] = HARNESS_COMMAND,
    grace: float = DEFAULT_GRACE_SECONDS,
) -> ChildResult:
    """Run one child to its end and map that end to exactly one outcome.

    `spec_json` is its --spec argument: a protocol.RunSpec for the harness.
    `on_event` is called in this thread for every event, in order. If it
    raises, the child is killed and the exception propagates.
    """
    import subprocess

    read_fd, write_fd = os.pipe()
    waker = Waker()
    cancel = cancel or CancelToken()
    oom_kills_before = cgroup_oom_kills()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        try:
            child = subprocess.Popen(
                [*command, "--spec", spec_json, "--events-fd", str(write_fd)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                start_new_session=True,
                env=child_environment(os.environ),
            )
        finally:
            os.close(write_fd)
    reaper = _Reaper(child.pid, waker)
    reaper.start()
    cancel.attach(waker)
    loop = _EventLoop(read_fd, waker, on_event)
    stopped_by: str | None = None
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        stopped_by = loop.follow(reaper, cancel, deadline)
        if stopped_by is not None:
            _stop(child.pid, reaper, grace)
        loop.drain()
    except BaseException:
        _signal_group(child.pid, signal.SIGKILL)
        reaper.join()
        raise
    finally:
        cancel.detach(waker)
        _signal_group(child.pid, signal.SIGKILL)  # orphaned DataLoader workers
        reaper.join()
        child.returncode = reaper.status  # reaped by us; keep Popen from waiting again
        os.close(read_fd)
        waker.close()
    return _outcome(loop, reaper, stopped_by, oom_kills_before, log_path, cancel.reason)


class _EventLoop:
    def __init__(self, read_fd: int, waker: Waker, on_event: Callable[[protocol.Event], None]) -> None:
        self.read_fd = read_fd
        self.waker = waker
        self.on_event = on_event
        self.buffer = b""
        self.eof = False
        self.finished = False
        self.failure: protocol.Failed | None = None
        self.protocol_error: str | None = None
        os.set_blocking(read_fd, False)

    def follow(self, reaper: _Reaper, cancel: CancelToken, deadline: float | None) -> Outcome | None:
        """Read events until the child exits; return TIMEOUT or CANCELLED if we must stop it."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.read_fd, selectors.EVENT_READ)
            selector.register(self.waker, selectors.EVENT_READ)
            while reaper.status is None:
                if cancel.cancelled:
                    return cancel.outcome
                if self.protocol_error is not None:
                    return Outcome.ERROR
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return Outcome.TIMEOUT
                for key, _mask in selector.select(remaining):
                    if key.fileobj is self.waker:
                        os.read(self.waker.fileno(), 4096)
                    elif not self.eof:
                        self._read_available()
                        if self.eof:
                            selector.unregister(self.read_fd)
        return None

    def drain(self) -> None:
        """Events written just before the child exited are still in the pipe."""
        while not self.eof and self._read_available():
            pass

    def _read_available(self) -> bool:
        try:
            chunk = os.read(self.read_fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self._handle(line)
        return True

    def _handle(self, line: bytes) -> None:
        if self.protocol_error is not None or not line.strip():
            return
        try:
            event = protocol.decode(line)
        except protocol.ProtocolError as exc:
            self.protocol_error = str(exc)
            return
        if event["event"] == protocol.FINISHED:
            self.finished = True
        elif event["event"] == protocol.FAILED:
            self.failure = event
        self.on_event(event)


def _stop(pid: int, reaper: _Reaper, grace: float) -> None:
    """SIGTERM the child's group, then SIGKILL if it has not exited within the grace period."""
    _signal_group(pid, signal.SIGTERM)
    reaper.join(grace)
    if reaper.is_alive():
        _signal_group(pid, signal.SIGKILL)


def _outcome(
    loop: _EventLoop,
    reaper: _Reaper,
    stopped_by: str | None,
    oom_kills_before: int | None,
    log_path: Path,
    reason: str | None = None,
) -> ChildResult:
    status = reaper.status
    exit_code = os.waitstatus_to_exitcode(status) if status is not None else None
    peak = _peak_rss_bytes(reaper.rusage)
    tail = _stderr_tail(log_path)

    def result(outcome: Outcome, message: str | None, keep_tail: bool = True) -> ChildResult:
        return ChildResult(outcome, message, tail if keep_tail else None, peak, exit_code)

    if stopped_by == Outcome.CANCELLED:
        return result(Outcome.CANCELLED, "cancelled while running", keep_tail=False)
    if stopped_by == Outcome.PREEMPTED:
        return result(Outcome.PREEMPTED, f"yielded its device: {reason}", keep_tail=False)
    if stopped_by == Outcome.TIMEOUT:
        return result(Outcome.TIMEOUT, "did not finish within its timeout")
    if loop.protocol_error is not None:
        return result(Outcome.ERROR, f"child broke the event protocol: {loop.protocol_error}")
    if loop.failure is not None:
        oom = loop.failure.get("kind") == protocol.FAILURE_OOM
        return result(Outcome.OOM if oom else Outcome.ERROR, loop.failure.get("message"))
    if exit_code is not None and exit_code < 0:
        signum = -exit_code
        name = signal.Signals(signum).name
        if signum == signal.SIGKILL:
            after = cgroup_oom_kills()
            if oom_kills_before is not None and after is not None and after > oom_kills_before:
                return result(Outcome.OOM, "killed by the kernel's out-of-memory killer")
        return result(Outcome.ERROR, f"child died from signal {name}")
    if exit_code == 0 and loop.finished:
        return result(Outcome.OK, None, keep_tail=False)
    if exit_code == 0:
        return result(Outcome.ERROR, "child exited without reporting that it finished")
    return result(Outcome.ERROR, f"child exited with code {exit_code} without reporting why")
