"""Does benchd's reference timing time what the published examples timed? Target: ratio within 1 +- 0.05.

The published comparison ran the PyTorch examples as of May 2022 and timed
their epochs. This script runs those very scripts, from a local checkout you
pass (nothing is fetched, nothing of theirs is stored here), on the same
files as benchd (MNIST, WikiText-2, LSUN classroom), on the CPU with one
thread each, and times each of their epochs (example_drivers.py says what
each one covers) against benchd's reference-timed epochs of the same size,
alternating the two for several rounds so drift in the machine's speed hits
both alike. Each side's figure is the median over rounds of the median of
its epochs after the first.

    python benchmarks/reference_parity.py --examples PATH [--data-dir DIR] [--workloads vae,siamese,...]
        [--epochs 3] [--rounds 3] [--siamese-fraction 0.05] [--wikitext-scale 0.05] [--lsun-scale 0.003]
        [--op-counts]

PATH is a checkout of github.com/pytorch/examples at a commit from May 2022
(e.g. `git checkout $(git rev-list -1 --before=2022-06-01 HEAD)`). Datasets
missing from the data directory are generated: MNIST at full size, the text
and image sets at the scales given, so that whole epochs take seconds to
minutes on one thread. A fractional Siamese epoch takes the first samples in
order on both sides, as the script's CPU loader (no shuffle) does; the other
workloads run whole epochs. Prints one line per workload and exits non-zero
if a ratio misses the target.

With --op-counts it times nothing: it counts the aten operations and host
reads of each side's first epoch (op_counts.py) and prints every operation
whose count differs, exiting non-zero if any does. Counts do not depend on a
quiet machine, so tests/test_parity.py runs this on small data whenever
BENCHD_EXAMPLES names a checkout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from example_drivers import CASES, Case, stage

TOLERANCE = 0.05
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Synthetic sets small enough for whole epochs on one thread (generated only where the data directory has
# none): WikiText-2 at 5% is 149 training steps at batch 20, LSUN classroom at 0.3% is 8 steps at 64.
DEFAULT_SCALES = {"mnist": 1.0, "wikitext": 0.05, "lsun": 0.003}


def _case(workload: str) -> Case:
    (case,) = [c for c in CASES if c.workload == workload]
    return case


def run_reference(
    workload: str, script: Path, arguments: list[str], epochs: int, samples: int | None
) -> list[float]:
    """Each epoch's seconds, as the example's epoch function ran it (example_drivers.py)."""
    from example_drivers import drive

    durations: list[float] = []

    def timed(epoch_function):
        def timed_epoch(*args, **kwargs):
            started = time.perf_counter()
            result = epoch_function(*args, **kwargs)
            durations.append(time.perf_counter() - started)
            return result

        return timed_epoch

    drive(_case(workload), script, arguments, epochs, samples, timed)
    return durations


def count_reference(
    workload: str, script: Path, arguments: list[str], epochs: int, samples: int | None
) -> dict[str, Any]:
    """The first epoch's operations (op_counts.py)."""
    from example_drivers import drive
    from op_counts import counted_first_call

    counts: Counter[str] = Counter()
    drive(_case(workload), script, arguments, 1, samples, lambda epoch: counted_first_call(epoch, counts))
    return {"counts": dict(counts)}


def in_example_process(
    function: str,
    examples: Path,
    case: Case,
    dataset: Path,
    epochs: int,
    samples: int | None,
    workers: int | None = None,
) -> Any:
    """`function` (run_reference or count_reference) in a fresh process, in a scratch folder laid out as
    the example expects, with one thread; its JSON answer."""
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch) / "work"
        workdir.mkdir()
        (workdir / "results").mkdir()
        arguments = stage(case, dataset, workdir, workers)
        request = json.dumps([case.workload, str(case.script(examples)), arguments, epochs, samples])
        code = (
            "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
            f"from reference_parity import {function};"
            "workload, script, arguments, epochs, samples = json.loads(sys.argv[2]);"
            f"answer = {function}(workload, Path(script), arguments, epochs, samples);"
            "print('BENCHD-PARITY ' + json.dumps(answer))"
        )
        completed = subprocess.run(
            [sys.executable, "-c", code, str(Path(__file__).parent), request],
            cwd=workdir, capture_output=True, text=True, env={**os.environ, **ONE_THREAD}, check=False,
        )  # fmt: skip
    if completed.returncode != 0:
        raise RuntimeError(f"the {case.workload} example failed: {completed.stderr.strip()[-2000:]}")
    return _answer(completed.stdout)


def _answer(stdout: str) -> Any:
    """The JSON a helper process printed on its `BENCHD-PARITY` line (the examples print lines of theirs)."""
    line = next(x for x in stdout.splitlines() if x.startswith("BENCHD-PARITY "))
    return json.loads(line.split(" ", 1)[1])


def benchd_run(data_dir: Path, case: Case, fraction: float, epochs: int) -> dict[str, Any]:
    """`benchd run --json` of the case, reference-timed on the CPU with one thread."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchd", "run", case.workload, "-p", case.preset, "--fraction", str(fraction),
         "--epochs", str(epochs), "--device", "cpu", "--timing", "reference", "--no-telemetry",
         "--data-dir", str(data_dir), "--json"],
        capture_output=True, text=True, check=True, env={**os.environ, **ONE_THREAD},
    )  # fmt: skip
    (run,) = json.loads(completed.stdout)
    return run


def benchd_op_counts(data_dir: Path, case: Case, fraction: float, workers: int | None) -> dict[str, Any]:
    """op_counts.benchd_counts in a fresh process with one thread."""
    request = json.dumps([case.workload, case.preset, case.batch_size, fraction, str(data_dir), workers])
    code = (
        "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from op_counts import benchd_counts;"
        "workload, preset, batch, fraction, data_dir, workers = json.loads(sys.argv[2]);"
        "print('BENCHD-PARITY ' + json.dumps(benchd_counts(workload, preset, batch, fraction, Path(data_dir),"
        " workers)))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), request],
        capture_output=True, text=True, check=True, env={**os.environ, **ONE_THREAD},
    )  # fmt: skip
    return _answer(completed.stdout)


# Where the two sides are compared: each case with its fraction, the Siamese sample limit, its dataset.
Planned = tuple[Case, float, int | None, Path]


def compare_op_counts(examples: Path, data_dir: Path, planned: list[Planned]) -> int:
    """Each workload's first epoch, counted on both sides; the number of workloads whose counts differ.
    DataLoader workers are other processes, which a count cannot see: both sides load in-process here."""
    from op_counts import HOST_READ, differences

    differing = 0
    for case, fraction, limit, dataset in planned:
        theirs = in_example_process("count_reference", examples, case, dataset, 1, limit, workers=0)["counts"]
        ours = benchd_op_counts(data_dir, case, fraction, workers=0)
        steps, gaps = ours["steps"], differences(theirs, ours["counts"])
        differing += bool(gaps)
        print(
            f"{case.workload} {case.preset}: {steps} steps; the example {sum(theirs.values())} operations, "
            f"{theirs.get(HOST_READ, 0)} host reads; benchd {sum(ours['counts'].values())}, "
            f"{ours['counts'].get(HOST_READ, 0)}: " + ("identical" if not gaps else f"{len(gaps)} differ")
        )
        for name, example, measured in gaps:
            print(
                f"  {name:<48} example {example:>7}  benchd {measured:>7}  "
                f"({(measured - example) / steps:+.2f} per step)"
            )
    return differing


def compare_timing(examples: Path, data_dir: Path, planned: list[Planned], epochs: int, rounds: int) -> float:
    """Both sides' epochs alternated for `rounds`; the largest departure of a ratio from 1."""
    print(f"one thread each; median of epochs 2+ (of {epochs}), median over {rounds} rounds")
    columns = (
        ("workload", 11),
        ("preset", 16),
        ("samples", -8),
        ("example s", -10),
        ("benchd s", -9),
        ("ratio", -6),
    )
    print(
        " ".join(f"{name:<{width}}" if width > 0 else f"{name:>{-width}}" for name, width in columns),
        " per round",
    )
    worst = 0.0
    for case, fraction, limit, dataset in planned:
        examples_s, benchd_s, samples = [], [], 0
        for _ in range(rounds):
            theirs = in_example_process("run_reference", examples, case, dataset, epochs, limit)
            examples_s.append(statistics.median(theirs[1:]))
            run = benchd_run(data_dir, case, fraction, epochs)
            samples = run["samples_per_epoch"]
            benchd_s.append(statistics.median(e["duration_seconds"] for e in run["epochs"][1:]))
        example, ours = statistics.median(examples_s), statistics.median(benchd_s)
        worst = max(worst, abs(ours / example - 1))
        each = " ".join(f"{m / e:.3f}" for e, m in zip(examples_s, benchd_s, strict=True))
        print(f"{case.workload:<11} {case.preset:<16} {samples:>8} {example:>10.3f} {ours:>9.3f} "
              f"{ours / example:>6.3f}  {each}")  # fmt: skip
    return worst


def plan(
    data_dir: Path, scales: dict[str, float], siamese_fraction: float, workloads: list[str]
) -> list[Planned]:
    """Each chosen case's dataset (generated at its scale where the data directory has none) and
    fraction: whole epochs, but for the Siamese, whose example takes the first pairs in order."""
    from benchd.datasets import layout

    planned = []
    for case in (c for c in CASES if c.workload in workloads):
        info = layout.ensure(data_dir, importlib.import_module(f"benchd.datasets.{case.dataset}"),
                             scale=scales[case.dataset])  # fmt: skip
        fraction, limit = 1.0, None
        if case.workload == "siamese":
            fraction = siamese_fraction
            batches = math.ceil(math.ceil(info.samples / case.batch_size) * fraction)
            limit = min(info.samples, batches * case.batch_size)
        planned.append((case, fraction, limit, Path(info.path)))
    return planned


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples", type=Path, required=True, help="checkout of pytorch/examples (May 2022)"
    )
    parser.add_argument("--data-dir", type=Path, help="benchd data directory (default: a temporary one)")
    parser.add_argument("--workloads", default=",".join(c.workload for c in CASES),
                        help="comma-separated; default: all four")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--siamese-fraction", type=float, default=0.05)
    for name, scale in DEFAULT_SCALES.items():
        if scale < 1:
            parser.add_argument(f"--{name}-scale", type=float, default=scale,
                                help=f"size of a generated {name} set (default {scale})")  # fmt: skip
    parser.add_argument(
        "--op-counts", action="store_true", help="compare first-epoch operations exactly instead of timing"
    )
    args = parser.parse_args()
    workloads = args.workloads.split(",")
    unknown = sorted(set(workloads) - {c.workload for c in CASES})
    if unknown:
        parser.error(f"no parity case for {', '.join(unknown)}")
    missing = [c.folder for c in CASES if c.workload in workloads and not c.script(args.examples).is_file()]
    if missing:
        parser.error(f"{args.examples} has no {', '.join(m + '/main.py' for m in missing)}")
    scales = {name: getattr(args, f"{name}_scale", scale) for name, scale in DEFAULT_SCALES.items()}
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or Path(scratch)
        planned = plan(data_dir, scales, args.siamese_fraction, workloads)
        if args.op_counts:
            print("the aten operations of each first epoch, benchd's own mean-loss bookkeeping subtracted "
                  "(op_counts.py)")  # fmt: skip
            return 1 if compare_op_counts(args.examples, data_dir, planned) else 0
        worst = compare_timing(args.examples, data_dir, planned, args.epochs, args.rounds)
    print(f"largest departure {worst:.3f} (target <= {TOLERANCE})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
