"""The body limit under a flood: the daemon's memory while a client streams 400 MiB of chunked body.

Target: the daemon answers 413 and its resident memory stays under 100 MB
throughout (it reads at most the 64 KiB limit, then refuses), and it still
answers /healthz afterwards. Prints each figure and exits non-zero if one misses.

    python benchmarks/body_limit.py [--mebibytes 400]
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psutil
from daemon_footprint import free_port, get, print_checks, wait_ready

TARGET_RSS_MB = 100
CHUNK = b" " * (1 << 20)


def stream(port: int, mebibytes: int) -> tuple[int | None, int]:
    """POST a chunked body of `mebibytes`; the status the daemon answered and how many MiB it took."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.putrequest("POST", "/api/v1/runs")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    sent = 0
    try:
        for _ in range(mebibytes):
            connection.send(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
            sent += 1
        connection.send(b"0\r\n\r\n")
    except OSError:
        pass  # the daemon answered and closed the connection before the body ended: what we want
    try:
        status: int | None = connection.getresponse().status
    except (OSError, http.client.HTTPException):
        status = None
    connection.close()
    return status, sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mebibytes", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "benchd.toml").write_text("[workloads]\n")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "benchd", "serve", "--config", str(Path(scratch) / "benchd.toml"),
             "--port", str(port), "--data-dir", scratch],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{port}", daemon)
            process = psutil.Process(daemon.pid)
            before_mb = process.memory_info().rss / 1e6
            peak = [before_mb]
            done = threading.Event()

            def watch() -> None:
                while not done.wait(0.02):
                    peak.append(process.memory_info().rss / 1e6)

            watcher = threading.Thread(target=watch)
            watcher.start()
            status, sent = stream(port, args.mebibytes)
            done.set()
            watcher.join()
            healthy = get(f"http://127.0.0.1:{port}/healthz") == b'{"status":"ok"}'
        finally:
            daemon.terminate()
            daemon.wait(60)
    checks = [
        (f"answer to a {args.mebibytes} MiB chunked body: {status} after {sent} MiB sent",
         status == 413, "413"),
        (f"daemon resident memory: {before_mb:.1f} MB before, peak {max(peak):.1f} MB",
         max(peak) < TARGET_RSS_MB, f"< {TARGET_RSS_MB} MB"),
        (f"/healthz afterwards: {'ok' if healthy else 'no answer'}", healthy, "ok"),
    ]  # fmt: skip
    return print_checks(checks)


if __name__ == "__main__":
    sys.exit(main())
