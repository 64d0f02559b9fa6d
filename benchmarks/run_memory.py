"""The memory a pod must hold for a run: peak resident memory of `benchd run` and all its processes.

Runs each workload's standard suite in the foreground (`benchd run W --suite
standard-v1`) and samples, every 0.2 s, the summed RSS of the command, its
child and the child's DataLoader workers: what a container's memory limit
counts (page cache aside). Prints the peak per workload and the largest, the
figure the Kubernetes limits in deploy/kubernetes are sized from
(docs/deploy.md). Shared pages (the workers' copy-on-write torch) count once
per process here, so the sum errs high.

    python benchmarks/run_memory.py [--device cpu] [--data-dir DIR] [--workload W]...
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading

import psutil

WORKLOADS = ("vae", "siamese", "transformer", "dcgan")
INTERVAL_SECONDS = 0.2


def tree_rss(root: psutil.Process) -> int:
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue  # ended between the listing and the reading
    return total


def peak_while_running(command: list[str]) -> tuple[int, int]:
    """(exit status, peak summed RSS in bytes) of a command and its descendants."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(process.pid), 0
    done = threading.Event()
    while process.poll() is None:
        try:
            peak = max(peak, tree_rss(root))
        except psutil.Error:
            break
        done.wait(INTERVAL_SECONDS)  # a sampling period, not a synchronization
    _out, err = process.communicate()
    if process.returncode:
        print(err.strip().splitlines()[-1:], file=sys.stderr)
    return process.returncode, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir")
    parser.add_argument("--workload", action="append", choices=WORKLOADS)
    args = parser.parse_args()
    largest, failed = 0, False
    for workload in args.workload or WORKLOADS:
        command = [sys.executable, "-m", "benchd", "run", workload, "--suite", "standard-v1",
                   "--no-telemetry", "--device", args.device]  # fmt: skip
        command += ["--data-dir", args.data_dir] if args.data_dir else []
        status, peak = peak_while_running(command)
        failed |= status != 0
        largest = max(largest, peak)
        print(f"{workload}: peak {peak / 2**20:,.0f} MiB (exit {status})", flush=True)
    print(f"largest: {largest / 2**20:,.0f} MiB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
