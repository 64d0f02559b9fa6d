"""benchd's reference-timed epochs do the published examples' work, operation for operation.

`benchmarks/reference_parity.py --op-counts` counts the aten operations and
host reads of a first epoch on both sides; unlike its timing, the counts do
not depend on a quiet machine. It needs a checkout of pytorch/examples as of
May 2022 (`git checkout $(git rev-list -1 --before=2022-06-01 HEAD)`), named
by BENCHD_EXAMPLES; without one the test is skipped, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
EXAMPLES = os.environ.get("BENCHD_EXAMPLES")


@pytest.mark.slow
@pytest.mark.skipif(not EXAMPLES, reason="BENCHD_EXAMPLES names no checkout of pytorch/examples (May 2022)")
def test_every_workloads_epoch_does_its_examples_operations(small_data_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    mnist = Path("datasets", "mnist")
    shutil.copytree(small_data_dir / mnist, data_dir / mnist)  # 600 images; the store stays the test's own
    result = subprocess.run(
        [sys.executable, "reference_parity.py", "--examples", str(EXAMPLES), "--data-dir", str(data_dir),
         "--op-counts", "--siamese-fraction", "0.5", "--wikitext-scale", "0.01", "--lsun-scale", "0.001"],
        cwd=BENCHMARKS, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == [
        "vae bs128",
        "siamese bs64",
        "transformer b20-e200-l2-h200",
        "dcgan bs64",
    ]
    assert all(line.endswith(": identical") for line in lines[1:]), result.stdout
