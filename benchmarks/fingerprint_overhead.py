"""What fingerprinting a deterministic run costs an epoch. Target: under 1%.

In one process, the same trainer's epochs run through the harness's timed
epoch with and without the fingerprint (each step's loss kept on the device,
read once after the clock stops), alternating epoch by epoch so drift in the
machine's speed hits both alike. Deterministic mode is on for both: what is
measured is the fingerprint alone. Device timing, so the epoch is the steps
and nothing hides the cost. Prints the median epoch of each side and their
ratio per workload; exits non-zero if a ratio is over the target.

    python benchmarks/fingerprint_overhead.py --data-dir DIR [--pairs 8]

Run it on a quiet machine (OMP_NUM_THREADS=1 is the steadiest basis here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from daemon_footprint import print_checks

TARGET = 1.01
CASES = (
    # workload, preset, fraction: about a second an epoch on a 2-core CPU, hundreds of steps
    ("vae", "bs128", 0.25),
    ("transformer", "b20-e200-l2-h200", 0.02),
)


class _Events:
    """The harness's event sink, kept in memory."""

    def __init__(self) -> None:
        self.ended: list[dict] = []

    def emit(self, event: dict) -> None:
        if event["event"] == "epoch_end":
            self.ended.append(event)


def measure(data_dir: Path, workload: str, preset: str, fraction: float, pairs: int) -> tuple[float, float]:
    import torch

    from benchd.catalog import get_workload, request
    from benchd.datasets import layout
    from benchd.datasets.formats import get_format
    from benchd.workloads import device as devices
    from benchd.workloads.harness import _Fingerprint, _timed_epoch
    from benchd.workloads.training import TrainerSpec, build_trainer, determinism

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
        fingerprint = _Fingerprint(trainer, None) if fingerprinted else None
        _timed_epoch(epoch, trainer, torch.device("cpu"), peaks, events, fingerprint)  # type: ignore[arg-type]
        if epoch > 0:  # the first is the warm-up
            sides[fingerprinted].append(events.ended[-1]["duration"])
        trainer.end_epoch()
    return statistics.median(sides[False]), statistics.median(sides[True])


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=8, help="epochs of each side, alternating")
    chosen = parser.parse_args(arguments)
    checks = []
    for workload, preset, fraction in CASES:
        plain, fingerprinted = measure(chosen.data_dir, workload, preset, fraction, chosen.pairs)
        ratio = fingerprinted / plain
        print(f"{workload} {preset} fraction {fraction}: {plain:.3f} s plain, {fingerprinted:.3f} s "
              f"fingerprinted (medians of {chosen.pairs}): ratio {ratio:.4f}")  # fmt: skip
        checks.append(
            (f"{workload}: fingerprinted / plain epoch {ratio:.4f}", ratio <= TARGET, f"<= {TARGET}")
        )
    return print_checks(checks)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
