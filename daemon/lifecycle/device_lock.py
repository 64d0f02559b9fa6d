"""One benchmark per device per host: a lock file each run holds while its child runs.

Two benchmarks on one device distort each other, and neither would say so. A
foreground `benchd run` and the daemon (or two `benchd run`s) therefore take
the device's lock around every run: whoever comes second waits, and says who
it waits for. The lock lives in the host's temporary directory (or
BENCHD_LOCK_DIR), not the data directory, so processes with different data
directories still meet there; the kernel releases it if its holder dies.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

ENV_LOCK_DIR = "BENCHD_LOCK_DIR"
WAIT_POLL_SECONDS = 0.25  # how often a waiting run tries the lock again, and looks whether it was called off


class Cancellation(Protocol):
    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True once the run is called off."""


class LockWaitCancelledError(Exception):
    """The run was called off (cancelled, or the daemon is stopping) while it waited for the device."""


class _NeverCancelled:
    def wait(self, timeout: float) -> bool:
        time.sleep(timeout)
        return False


def lock_path(device: str) -> Path:
    folder = Path(os.environ.get(ENV_LOCK_DIR) or Path(tempfile.gettempdir()) / "benchd-devices")
    return folder / f"{device.replace(':', '-')}.lock"


def holder(device: str) -> str | None:
    """Who holds the device now ("pid 123: benchd run vae bs128"), or None when it is free."""
    path = lock_path(device)
    if not path.exists():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _try_lock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def device_lock(
    device: str,
    what: str,
    on_wait: Callable[[str], None] = lambda _who: None,
    cancel: Cancellation | None = None,
) -> Iterator[None]:
    """Hold `device` for the body; if another benchmark holds it, tell on_wait who, and wait, until the
    lock is free or `cancel` calls the run off (LockWaitCancelledError): a blocking flock would keep a
    stopping daemon waiting for however long the other benchmark runs."""
    path = lock_path(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    waiting = cancel or _NeverCancelled()
    with open(path, "a+") as handle:
        if not _try_lock(handle):
            handle.seek(0)
            on_wait(handle.read().strip() or "another process")
            while not _try_lock(handle):
                if waiting.wait(WAIT_POLL_SECONDS):
                    raise LockWaitCancelledError(f"called off while waiting for {device}")
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}: {what}")
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
