"""Does benchd's reference timing time what the published examples timed? Target: ratio within 1 +- 0.05.

The published comparison ran the PyTorch examples as of May 2022 and timed
their `train()` calls. This script runs those very scripts, from a local
checkout you pass (nothing is fetched, nothing of theirs is stored here), on
the same MNIST files as benchd, on the CPU with one thread each, and times
each `train()` call of theirs against benchd's reference-timed epochs of the
same size, alternating the two for several rounds so drift in the machine's
speed hits both alike. Each side's figure is the median over rounds of the
median of its epochs after the first.

    python benchmarks/reference_parity.py --examples PATH [--data-dir DIR] [--epochs 3]
        [--rounds 3] [--siamese-fraction 0.05] [--op-counts]

PATH is a checkout of github.com/pytorch/examples at a commit from May 2022
(e.g. `git checkout $(git rev-list -1 --before=2022-06-01 HEAD)`). A
fractional Siamese epoch takes the first samples in order on both sides, as
the script's CPU loader (no shuffle) does; the VAE runs whole epochs.
Prints one line per workload and exits non-zero if a ratio misses the target.

With --op-counts it times nothing: it counts the aten operations and host
reads of each side's first epoch (op_counts.py) and prints every operation
whose count differs, exiting non-zero if any does. Counts do not depend on a
quiet machine, so tests/test_parity.py runs this on small data whenever
BENCHD_EXAMPLES names a checkout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOLERANCE = 0.05
# workload, preset, batch size, the example's folder
Case = tuple[str, str, int, str]
CASES: tuple[Case, ...] = (("vae", "bs128", 128, "vae"), ("siamese", "bs64", 64, "siamese_network"))
MNIST_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)  # fmt: skip
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def stage_mnist(benchd_mnist: Path, workdir: Path) -> None:
    """The files where the examples look for them (`../data/MNIST/raw`), uncompressed, so none downloads."""
    raw = workdir.parent / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        plain, packed = benchd_mnist / name, benchd_mnist / f"{name}.gz"
        if plain.is_file():
            shutil.copyfile(plain, raw / name)
        else:
            with gzip.open(packed, "rb") as source, open(raw / name, "wb") as target:
                shutil.copyfileobj(source, target)


def _drive_example(
    script: Path, workload: str, epochs: int, samples: int | None, wrap: Callable[[Any], Any]
) -> None:
    """In this (fresh) process: load the example without running its main block, its train() wrapped,
    and run its epochs."""
    import torch

    torch.set_num_threads(1)
    sys.argv = [str(script), "--epochs", str(epochs)]
    namespace = {"__name__": "reference_example", "__file__": str(script)}
    exec(compile(script.read_text(), str(script), "exec"), namespace)
    namespace["train"] = train = wrap(namespace["train"])
    if workload == "vae":  # its loaders are module-level; its main block is train and test per epoch
        for epoch in range(1, epochs + 1):
            train(epoch)
    else:  # main() builds everything, then trains and tests each epoch
        if samples is not None:
            namespace["APP_MATCHER"].__len__ = lambda self: samples if self.dataset.train else len(self.data)
        namespace["test"] = lambda *args, **kwargs: None  # outside the published timer; skipped for time
        namespace["main"]()


def run_reference(script: Path, workload: str, epochs: int, samples: int | None) -> list[float]:
    """Each train() call's seconds."""
    durations: list[float] = []

    def timed(train):
        def timed_train(*args, **kwargs):
            started = time.perf_counter()
            train(*args, **kwargs)
            durations.append(time.perf_counter() - started)

        return timed_train

    _drive_example(script, workload, epochs, samples, timed)
    return durations


def count_reference(script: Path, workload: str, epochs: int, samples: int | None) -> dict[str, Any]:
    """The first train() call's operations (op_counts.py)."""
    from op_counts import counted_first_call

    counts: Counter[str] = Counter()
    _drive_example(script, workload, 1, samples, lambda train: counted_first_call(train, counts))
    return {"counts": dict(counts)}


def in_example_process(
    function: str, examples: Path, workload: str, folder: str, mnist: Path, epochs: int, samples: int | None
) -> Any:
    """`function` (run_reference or count_reference) in a fresh process, in a scratch folder laid out as
    the example expects, with one thread; its JSON answer."""
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch) / "work"
        workdir.mkdir()
        (workdir / "results").mkdir()
        stage_mnist(mnist, workdir)
        code = (
            "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
            f"from reference_parity import {function};"
            f"print('BENCHD-PARITY ' + json.dumps({function}(Path(sys.argv[2]), sys.argv[3],"
            " int(sys.argv[4]), None if sys.argv[5] == 'all' else int(sys.argv[5]))))"
        )
        completed = subprocess.run(
            [sys.executable, "-c", code, str(Path(__file__).parent), str(examples / folder / "main.py"),
             workload, str(epochs), "all" if samples is None else str(samples)],
            cwd=workdir, capture_output=True, text=True, check=True, env={**os.environ, **ONE_THREAD},
        )  # fmt: skip
    line = next(x for x in completed.stdout.splitlines() if x.startswith("BENCHD-PARITY "))
    return json.loads(line.split(" ", 1)[1])


def benchd_epochs(data_dir: Path, workload: str, preset: str, fraction: float, epochs: int) -> list[float]:
    completed = subprocess.run(
        [sys.executable, "-m", "benchd", "run", workload, "-p", preset, "--fraction", str(fraction),
         "--epochs", str(epochs), "--device", "cpu", "--timing", "reference", "--no-telemetry",
         "--data-dir", str(data_dir), "--json"],
        capture_output=True, text=True, check=True, env={**os.environ, **ONE_THREAD},
    )  # fmt: skip
    (run,) = json.loads(completed.stdout)
    return [e["duration_seconds"] for e in run["epochs"]]


def benchd_op_counts(
    data_dir: Path, workload: str, preset: str, batch: int, fraction: float
) -> dict[str, Any]:
    """op_counts.benchd_counts in a fresh process with one thread."""
    code = (
        "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from op_counts import benchd_counts;"
        "print('BENCHD-PARITY ' + json.dumps(benchd_counts(sys.argv[2], sys.argv[3], int(sys.argv[4]),"
        " float(sys.argv[5]), Path(sys.argv[6]))))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), workload, preset, str(batch), str(fraction),
         str(data_dir)],
        capture_output=True, text=True, check=True, env={**os.environ, **ONE_THREAD},
    )  # fmt: skip
    line = next(x for x in completed.stdout.splitlines() if x.startswith("BENCHD-PARITY "))
    return json.loads(line.split(" ", 1)[1])


def compare_op_counts(examples: Path, data_dir: Path, mnist_path: Path, cases: list[Case]) -> int:
    """Each workload's first epoch, counted on both sides; the number of workloads whose counts differ."""
    from op_counts import HOST_READ, differences

    differing = 0
    for (workload, preset, batch, folder), fraction, limit in cases:
        theirs = in_example_process("count_reference", examples, workload, folder, mnist_path, 1, limit)[
            "counts"
        ]
        ours = benchd_op_counts(data_dir, workload, preset, batch, fraction)
        steps, gaps = ours["steps"], differences(theirs, ours["counts"])
        differing += bool(gaps)
        print(
            f"{workload} {preset}: {steps} steps; the example {sum(theirs.values())} operations, "
            f"{theirs.get(HOST_READ, 0)} host reads; benchd {sum(ours['counts'].values())}, "
            f"{ours['counts'].get(HOST_READ, 0)}: " + ("identical" if not gaps else f"{len(gaps)} differ")
        )
        for name, example, measured in gaps:
            print(
                f"  {name:<48} example {example:>7}  benchd {measured:>7}  "
                f"({(measured - example) / steps:+.2f} per step)"
            )
    return differing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples", type=Path, required=True, help="checkout of pytorch/examples (May 2022)"
    )
    parser.add_argument("--data-dir", type=Path, help="benchd data directory (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--siamese-fraction", type=float, default=0.05)
    parser.add_argument(
        "--op-counts", action="store_true", help="compare first-epoch operations exactly instead of timing"
    )
    args = parser.parse_args()
    missing = [c[3] for c in CASES if not (args.examples / c[3] / "main.py").is_file()]
    if missing:
        parser.error(f"{args.examples} has no {', '.join(m + '/main.py' for m in missing)}")
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or Path(scratch)
        from benchd.datasets import layout, mnist

        info = layout.ensure(data_dir, mnist)
        cases = []
        for case in CASES:
            fraction = 1.0 if case[0] == "vae" else args.siamese_fraction
            samples = min(info.samples, math.ceil(math.ceil(info.samples / case[2]) * fraction) * case[2])
            cases.append((case, fraction, None if fraction == 1.0 else samples))
        if args.op_counts:
            print(f"MNIST: {info.kind}, {info.samples} training images; the aten operations of each first "
                  "epoch, benchd's own mean-loss bookkeeping subtracted (op_counts.py)")  # fmt: skip
            return 1 if compare_op_counts(args.examples, data_dir, Path(info.path), cases) else 0
        print(f"MNIST: {info.kind}, {info.samples} training images; one thread each; median of epochs 2+")
        print(
            f"{'workload':<9} {'preset':<6} {'samples':>7} {'example s':>10} {'benchd s':>9} {'ratio':>6}"
            f"  per round"
        )
        worst = 0.0
        for (workload, preset, _batch, folder), fraction, limit in cases:
            samples = info.samples if limit is None else limit
            examples, measured = [], []
            for _ in range(args.rounds):
                theirs = in_example_process(
                    "run_reference", args.examples, workload, folder, Path(info.path), args.epochs, limit
                )
                examples.append(statistics.median(theirs[1:]))
                measured.append(
                    statistics.median(benchd_epochs(data_dir, workload, preset, fraction, args.epochs)[1:])
                )
            example, ours = statistics.median(examples), statistics.median(measured)
            ratio = ours / example
            worst = max(worst, abs(ratio - 1))
            rounds = " ".join(f"{m / e:.3f}" for e, m in zip(examples, measured, strict=True))
            print(
                f"{workload:<9} {preset:<6} {samples:>7} {example:>10.3f} {ours:>9.3f} {ratio:>6.3f}"
                f"  {rounds}"
            )
    print(f"largest departure {worst:.3f} (target <= {TOLERANCE})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
