"""A real `benchd serve` process on a free loopback port, for tests."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll a condition until it holds (returns its value) or fail naming what never happened."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        pause.wait(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class DaemonProcess:
    def __init__(
        self,
        data_dir: Path,
        config: str,
        env: dict[str, str] | None = None,
        descriptor_limit: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = data_dir / f"benchd-{self.port}.toml"
        self.config_path.write_text(config)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}
        self.env = {**inherited, "BENCHD_DATA_DIR": str(data_dir), **(env or {})}
        self.log = data_dir / f"daemon-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self.descriptor_limit = descriptor_limit

    def _limit_descriptors(self) -> None:
        """In the child before exec: the daemon's own RLIMIT_NOFILE, for starvation tests."""
        assert self.descriptor_limit is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.descriptor_limit, self.descriptor_limit))

    def start(self, wait_ready: bool = True) -> DaemonProcess:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "benchd", "serve", "--config", str(self.config_path), "--port",
                 str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
                # setrlimit alone runs between fork and exec: nothing there takes a lock a thread holds.
                preexec_fn=self._limit_descriptors if self.descriptor_limit else None,  # noqa: PLW1509
            )  # fmt: skip
        if wait_ready:
            try:
                wait_for(self._ready, START_TIMEOUT, f"the daemon to be ready (log: {self.log})")
            except BaseException:
                self.close()  # a daemon that never became ready is not left running after the test
                raise
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited with {self.process.returncode}: {self.log.read_text()}")
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.http.close()

    def run(self, run_id: int) -> dict[str, Any]:
        return self.http.get(f"/api/v1/runs/{run_id}").json()

    def wait_finished(self, run_id: int, timeout: float = 120) -> dict[str, Any]:
        return wait_for(
            lambda: (r := self.run(run_id))["state"] == "finished" and r, timeout, f"run {run_id} to finish"
        )

    def wait_running(self, run_id: int, timeout: float = 120) -> dict[str, Any]:
        """Until the child has started its first epoch (so it is past start-up)."""
        return wait_for(
            lambda: (r := self.run(run_id))["progress"] and r["progress"]["epoch"] is not None and r,
            timeout,
            f"run {run_id} to start training",
        )

    def metrics(self) -> str:
        return self.http.get("/metrics").text
