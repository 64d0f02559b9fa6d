"""The daemon's footprint: memory and CPU when idle, and /metrics latency under load.

Targets: idle resident memory <= 60 MB; idle CPU <= 1% of a core over 60 s;
/metrics p99 <= 10 ms with 20 concurrent scrapers for 30 s while a workload
runs, and no errors. Prints each figure and exits non-zero if one misses.

    python benchmarks/daemon_footprint.py [--idle-seconds 60] [--load-seconds 30] [--scrapers 20]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

TARGET_RSS_MB = 60
TARGET_IDLE_CPU_PERCENT = 1.0
TARGET_P99_MS = 10.0


def print_checks(checks: list[tuple[str, bool, str]]) -> int:
    """Each figure against its target, one line each; the exit status says whether all were met."""
    for text, ok, target in checks:
        print(f"{'ok  ' if ok else 'MISS'} {text} (target {target})")
    return 0 if all(ok for _, ok, _ in checks) else 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, data: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def wait_ready(url: str, process: subprocess.Popen) -> None:
    pause = threading.Event()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"daemon exited with {process.returncode}")
        try:
            get(f"{url}/readyz")
            return
        except OSError:
            pause.wait(0.2)
    raise SystemExit("daemon not ready after 120 s")


def scrape_under_load(url: str, scrapers: int, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def scrape() -> None:
        """One scraper: a kept-alive connection, as Prometheus holds one to each target."""
        nonlocal errors
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                connection.request("GET", "/metrics")
                response = connection.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status == 200:
                        latencies.append(elapsed)
                    else:
                        errors += 1
            except (OSError, http.client.HTTPException):
                connection.close()
                with lock:
                    errors += 1
        connection.close()

    threads = [threading.Thread(target=scrape) for _ in range(scrapers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--load-seconds", type=float, default=30)
    parser.add_argument("--scrapers", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch)
        subprocess.run(
            [sys.executable, "-m", "benchd", "data", "prepare", "mnist", "--scale", "0.05",
             "--data-dir", scratch],
            check=True, capture_output=True,
        )  # fmt: skip
        (data_dir / "benchd.toml").write_text("[workloads]\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "benchd", "serve", "--config", str(data_dir / "benchd.toml"),
             "--port", str(port), "--data-dir", scratch],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_ready(url, daemon)
            process = psutil.Process(daemon.pid)
            threading.Event().wait(2)  # let start-up work (the device probe) finish before measuring idle
            rss_mb = process.memory_info().rss / 1e6
            before = process.cpu_times()
            idle_started = time.monotonic()
            threading.Event().wait(args.idle_seconds)
            after = process.cpu_times()
            idle_cpu = (after.user + after.system - before.user - before.system) / (
                time.monotonic() - idle_started
            )
            body = b'{"workload": "siamese", "presets": ["bs64"], "epochs": 1000, "device": "cpu"}'
            get(f"{url}/api/v1/runs", body)
            latencies, errors = scrape_under_load(url, args.scrapers, args.load_seconds)
        finally:
            daemon.terminate()
            daemon.wait(60)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
    checks = [
        (f"idle resident memory {rss_mb:.1f} MB", rss_mb <= TARGET_RSS_MB, f"<= {TARGET_RSS_MB} MB"),
        (f"idle CPU {idle_cpu * 100:.2f}% of a core over {args.idle_seconds:.0f} s",
         idle_cpu * 100 <= TARGET_IDLE_CPU_PERCENT, f"<= {TARGET_IDLE_CPU_PERCENT}%"),
        (f"/metrics with {args.scrapers} scrapers for {args.load_seconds:.0f} s during a run: "
         f"{len(latencies)} scrapes, p50 {p50:.1f} ms, p99 {p99:.1f} ms", p99 <= TARGET_P99_MS,
         f"p99 <= {TARGET_P99_MS} ms"),
        (f"scrape errors {errors}", errors == 0, "0"),
    ]  # fmt: skip
    return print_checks(checks)


if __name__ == "__main__":
    sys.exit(main())
