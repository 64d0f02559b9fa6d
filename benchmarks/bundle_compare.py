"""Comparing the largest bundle benchd reads: its time and peak memory.

A bundle is capped at 64 MiB (results/bundle.py). This builds one just under
the cap from the published M1 Ultra runs (each repeated with a new id), runs
`benchd compare` on it in a child, and prints the child's wall time and peak
resident memory. Target: under 1 GiB and under a minute on a 2-core machine.

    python benchmarks/bundle_compare.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from daemon_footprint import print_checks

from benchd.results.bundle import MAX_BUNDLE_BYTES

PUBLISHED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "published" / "m1-ultra.json"
TARGET_PEAK_BYTES = 1 << 30
TARGET_SECONDS = 60.0


def largest_bundle(path: Path) -> tuple[int, int]:
    """Write a bundle of repeated published runs just under the cap; its size and run count."""
    bundle = json.loads(PUBLISHED.read_text())
    template = bundle["runs"]
    per_run = len(json.dumps(template)) / len(template)
    count = int(MAX_BUNDLE_BYTES * 0.95 / per_run)
    bundle["runs"] = [{**template[i % len(template)], "id": i + 1} for i in range(count)]
    text = json.dumps(bundle)
    path.write_text(text)
    return len(text), count


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "largest.json"
        size, count = largest_bundle(path)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "benchd", "compare", str(path), "--format", "json"],
                                capture_output=True, text=True, check=False)  # fmt: skip
        seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(f"bundle of {size / 2**20:.1f} MiB, {count:,} runs; compare exited {result.returncode}")
    return print_checks([
        (f"compare took {seconds:.1f} s", seconds < TARGET_SECONDS, f"under {TARGET_SECONDS:.0f} s"),
        (f"peak resident memory {peak / 2**20:.0f} MiB", peak < TARGET_PEAK_BYTES, "under 1 GiB"),
        ("compare succeeded", result.returncode == 0, "exit 0"),
    ])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
