"""What fingerprinting a deterministic run costs an epoch. Target: under 1%.

In one process, the same trainer's epochs run through the harness's timed
epoch with and without the fingerprint (each step's loss kept on the device,
read once after the clock stops), alternating epoch by epoch so drift in the
machine's speed hits both alike. Deterministic mode is on for both: what is
measured is the fingerprint alone, twice: the time spent in the fingerprint's
own calls (recording each loss, reading the epoch's bits), clocked around
them, over the epoch; and the two sides' median epochs, whose ratio also
carries the machine's noise. Device timing, so the epoch is the steps and
nothing hides the cost. Exits non-zero if the fingerprint's own share is over
the target.

    python benchmarks/fingerprint_overhead.py --data-dir DIR [--pairs 8]

Run it on a quiet machine (OMP_NUM_THREADS=1 is the steadiest basis here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from daemon_footprint import print_checks

TARGET = 1.01
CASES = (
    # workload, preset, fraction: seconds an epoch on a 2-core CPU, tens to hundreds of steps
    ("vae", "bs128", 0.25),
    ("transformer", "b20-e200-l2-h200", 0.005),
)


class _Events:
    """The harness's event sink, kept in memory."""

    def __init__(self) -> None:
        self.ended: list[dict] = []

    def emit(self, event: dict) -> None:
        if event["event"] == "epoch_end":
            self.ended.append(event)


def measure(data_dir: Path, workload: str, preset: str, fraction: float, pairs: int) -> dict[str, float]:
    import torch

    from benchd.catalog import get_workload, request
    from benchd.datasets import layout
    from benchd.datasets.formats import get_format
    from benchd.workloads import device as devices
    from benchd.workloads.harness import _Fingerprint, _timed_epoch
    from benchd.workloads.training import TrainerSpec, build_trainer, determinism

    class Clocked(_Fingerprint):
        """The harness's fingerprint, with the time its own calls take."""

        seconds = 0.0

        def after_step(self, loss) -> None:
            started = time.perf_counter()
            super().after_step(loss)
            Clocked.seconds += time.perf_counter() - started

        def read(self) -> str:
            started = time.perf_counter()
            bits = self.losses.hex()
            Clocked.seconds += time.perf_counter() - started
            return bits

    (config,) = request.parse({"workload": workload, "presets": preset, "fraction": fraction}).configs()
    data = layout.ensure(data_dir, get_format(get_workload(workload).dataset))
    determinism.enable(config.precision)
    torch.manual_seed(1)
    trainer = build_trainer(TrainerSpec(workload, config.batch_size, config.options, fraction, 0, 1,
                                        Path(data.path), torch.device("cpu"), timing="device",
                                        deterministic=True))  # fmt: skip
    peaks = devices.AllocatorPeaks(torch.device("cpu"))
    sides: dict[bool, list[float]] = {False: [], True: []}
    events = _Events()
    for epoch in range(2 * pairs + 1):
        fingerprinted = epoch % 2 == 1
        fingerprint = Clocked(trainer, None) if fingerprinted else None
        _timed_epoch(epoch, trainer, torch.device("cpu"), peaks, events, fingerprint)  # type: ignore[arg-type]
        if epoch > 0:  # the first is the warm-up
            sides[fingerprinted].append(events.ended[-1]["duration"])
        trainer.end_epoch()
    fingerprinted_total = sum(sides[True])
    return {
        "plain": statistics.median(sides[False]),
        "fingerprinted": statistics.median(sides[True]),
        "share": Clocked.seconds / fingerprinted_total,
        "steps": trainer.steps_per_epoch,
    }


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=8, help="epochs of each side, alternating")
    chosen = parser.parse_args(arguments)
    checks = []
    for workload, preset, fraction in CASES:
        found = measure(chosen.data_dir, workload, preset, fraction, chosen.pairs)
        print(f"{workload} {preset} fraction {fraction} ({found['steps']:.0f} steps): the fingerprint's own "
              f"calls {found['share']:.3%} of its epochs; median epochs {found['plain']:.3f} s plain, "
              f"{found['fingerprinted']:.3f} s fingerprinted ({chosen.pairs} each): "
              f"ratio {found['fingerprinted'] / found['plain']:.4f}")  # fmt: skip
        checks.append((f"{workload}: the fingerprint's share of an epoch {found['share']:.3%}",
                       found["share"] <= TARGET - 1, f"<= {TARGET - 1:.0%}"))  # fmt: skip
    return print_checks(checks)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
