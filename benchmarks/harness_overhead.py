"""How much does measuring through benchd cost? Target: harness epoch / bare epoch <= 1.03.

For each workload, the same model, data, seed and number of steps are timed
as a bare training loop in a fresh process of its own (no events, no
bookkeeping) and through `benchd run --timing device` (child process, event
pipe, phase timing, progress events), alternating for several rounds so drift in the
machine's speed hits both alike. Each side's figure is the median over rounds
of the median epoch after the first. Prints one line per workload and exits
non-zero if a ratio misses the target.

    python benchmarks/harness_overhead.py [--data-dir DIR] [--epochs 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.03
CASES = (
    # workload, preset, batch size, fraction: a few seconds to a few tens of seconds per epoch on a CPU
    ("vae", "bs128", 128, 1.0),
    ("siamese", "bs64", 64, 0.03),
)


def bare_epochs(data_path: Path, workload: str, batch: int, fraction: float, epochs: int) -> list[float]:
    import torch

    from benchd.workloads.training import TrainerSpec, build_trainer

    torch.manual_seed(1)
    trainer = build_trainer(
        TrainerSpec(workload, batch, {}, fraction, 0, 1, data_path, torch.device("cpu"), timing="device")
    )
    durations = []
    for _ in range(epochs):
        started = time.monotonic()
        for index, batch_data in enumerate(trainer.batches()):
            trainer.step(batch_data, index)
        durations.append(time.monotonic() - started)
        trainer.end_epoch()
    return durations


def bare_epochs_in_fresh_process(
    data_path: Path, workload: str, batch: int, fraction: float, epochs: int
) -> list[float]:
    call = f"bare_epochs(Path({str(data_path)!r}), {workload!r}, {batch}, {fraction}, {epochs})"
    imports = "import json; from pathlib import Path; from harness_overhead import bare_epochs"
    code = f"{imports}; print(json.dumps({call}))"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
    )
    return json.loads(completed.stdout)


def harness_epochs(data_dir: Path, workload: str, preset: str, fraction: float, epochs: int) -> list[float]:
    completed = subprocess.run(
        [sys.executable, "-m", "benchd", "run", workload, "-p", preset, "--fraction", str(fraction),
         "--epochs", str(epochs), "--device", "cpu", "--timing", "device", "--data-dir", str(data_dir),
         "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    (run,) = json.loads(completed.stdout)
    return [e["duration_seconds"] for e in run["epochs"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="benchd data directory (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or Path(scratch)
        from benchd.datasets import layout, mnist

        data_path = Path(layout.ensure(data_dir, mnist).path)
        worst = 0.0
        print(f"{'workload':<10} {'preset':<7} {'steps':>5} {'bare s':>8} {'benchd s':>9} {'ratio':>6}")
        for workload, preset, batch, fraction in CASES:
            bare_rounds, measured_rounds = [], []
            for _ in range(args.rounds):
                epochs = bare_epochs_in_fresh_process(data_path, workload, batch, fraction, args.epochs)
                bare_rounds.append(statistics.median(epochs[1:]))
                epochs = harness_epochs(data_dir, workload, preset, fraction, args.epochs)
                measured_rounds.append(statistics.median(epochs[1:]))
            bare = statistics.median(bare_rounds)
            measured = statistics.median(measured_rounds)
            ratio = measured / bare
            worst = max(worst, ratio)
            steps = -(-round(60_000 * fraction) // batch)
            print(f"{workload:<10} {preset:<7} {steps:>5} {bare:>8.3f} {measured:>9.3f} {ratio:>6.3f}")
    print(f"worst ratio {worst:.3f} (target <= {TARGET})")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
