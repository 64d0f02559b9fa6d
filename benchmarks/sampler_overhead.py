"""What sampling costs: the sampler's CPU at 10 Hz, and epoch time with and without it.

Targets: under 2% of one core; epoch-time ratio (with / without) at most 1.02.
The second figure alternates `benchd run --telemetry` and `--no-telemetry`
for several rounds and compares the medians of the epochs after the first.

    python benchmarks/sampler_overhead.py [--seconds 20] [--rounds 3] [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from benchd.telemetry.sampler import Sampler

TARGET_CPU_PERCENT = 2.0
TARGET_RATIO = 1.02


def sampler_cpu_percent(seconds: float) -> tuple[float, list[str]]:
    sampler = Sampler().open()
    available = [s.sensor for s in sampler.availability if s.available]
    process = psutil.Process()
    sampler.set_active(True)
    before = process.cpu_times()
    started = time.monotonic()
    sampler.start()
    threading.Event().wait(seconds)  # the measurement window; this thread idles meanwhile
    sampler.stop()
    after = process.cpu_times()
    used = after.user + after.system - before.user - before.system
    return 100 * used / (time.monotonic() - started), available


def epoch_median(data_dir: str, telemetry: bool, epochs: int) -> float:
    flag = "--telemetry" if telemetry else "--no-telemetry"
    completed = subprocess.run(
        [sys.executable, "-m", "benchd", "run", "vae", "-p", "bs128", "--epochs", str(epochs),
         "--device", "cpu", flag, "--data-dir", data_dir, "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    (run,) = json.loads(completed.stdout)
    return statistics.median(e["duration_seconds"] for e in run["epochs"][1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    cpu, available = sampler_cpu_percent(args.seconds)
    with tempfile.TemporaryDirectory() as data_dir:
        with_sampling, without = [], []
        for _ in range(args.rounds):
            without.append(epoch_median(data_dir, False, args.epochs))
            with_sampling.append(epoch_median(data_dir, True, args.epochs))
    ratio = statistics.median(with_sampling) / statistics.median(without)
    print(f"backends sampled: {', '.join(available)}")
    print(f"{'ok  ' if cpu < TARGET_CPU_PERCENT else 'MISS'} sampler at 10 Hz: {cpu:.2f}% of one core "
          f"over {args.seconds:.0f} s (target < {TARGET_CPU_PERCENT}%)")  # fmt: skip
    verdict = "ok  " if ratio <= TARGET_RATIO else "MISS"
    print(f"{verdict} vae bs128 epoch: {statistics.median(without):.3f} s without, "
          f"{statistics.median(with_sampling):.3f} s with sampling, "
          f"ratio {ratio:.3f} (target <= {TARGET_RATIO})")  # fmt: skip
    return 0 if cpu < TARGET_CPU_PERCENT and ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
