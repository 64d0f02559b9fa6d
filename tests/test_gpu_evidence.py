"""benchmarks/gpu_evidence.py's CPU dry run: every group measured or its failure said, written as JSON
and a markdown table with the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_the_quick_dry_run_writes_every_group(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "gpu_evidence.py", "--device", "cpu", "--quick", "--out", str(tmp_path)],
        cwd=BENCHMARKS, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    evidence = json.loads((tmp_path / "evidence.json").read_text())
    groups = evidence["groups"]
    assert set(groups) == {"precision", "timing", "contended", "preemption", "determinism"}
    outcomes = {entry["label"]: entry["outcome"] for entries in groups.values() for entry in entries}
    assert outcomes["vae bs128 fp32"] == "ok"
    assert outcomes["vae bs128 tf32"] == "error"  # the CPU has no TF32: said, not dropped
    (tf32,) = [e for e in groups["precision"] if e["label"].endswith("tf32")]
    assert "tf32 runs on NVIDIA GPUs" in tf32["message"]
    (contended,) = groups["contended"]
    foreign = [(e["duration_seconds"], (e["telemetry"] or {}).get("foreign")) for e in contended["epochs"]]
    assert contended["contended"] is True, foreign
    (preempted,) = groups["preemption"]
    assert preempted["outcome"] == "preempted" and preempted["label"].startswith("yield latency ")
    first, second = groups["determinism"]
    assert first["determinism"]["fingerprint"] == second["determinism"]["fingerprint"]
    table = (tmp_path / "evidence.md").read_text()
    assert table.startswith("Machine: cpu: ") and "### precision" in table
    assert (
        "| vae bs128 fp32 | ok |" in table
        and "| --- | --- | --- | --- | --- | --- | --- | --- | --- |" in table
    )
