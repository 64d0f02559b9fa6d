"""Precision modes: each runs the VAE on the CPU, is its own config, and keeps the loss where fp32 has it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchd.catalog import request as request_model

from .test_cli import assert_bad_input, benchd

LOSS_TOLERANCE = 0.05  # docs/cli.md: a mode may move the loss after the same steps by at most 5% of fp32's


def test_precision_is_part_of_the_config_and_fp32_stays_as_it_was() -> None:
    def config(precision: str | None) -> dict:
        fields = {"workload": "vae", "presets": "bs128"} | ({"precision": precision} if precision else {})
        (built,) = request_model.parse(fields).configs()
        return built.to_json()

    assert config(None) == config("fp32") and "precision" not in config(
        "fp32"
    )  # earlier configs read the same
    assert config("amp-bf16")["precision"] == "amp-bf16"


@pytest.mark.slow
def test_every_precision_runs_the_vae_on_the_cpu(data_dir: Path) -> None:
    args = ("run", "vae", "-p", "bs128", "--fraction", "0.05", "--device", "cpu", "--no-telemetry",
            "--timing", "device", "--json", "--data-dir", str(data_dir))  # fmt: skip
    runs = {}
    for precision in ("fp32", "amp-bf16", "amp-fp16"):
        result = benchd(*args, "--precision", precision)
        assert result.returncode == 0, result.stderr
        (runs[precision],) = json.loads(result.stdout)
    assert {p: r["precision"] for p, r in runs.items()} == {
        "fp32": "float32", "amp-bf16": "amp-bf16", "amp-fp16": "amp-fp16"
    }  # fmt: skip
    assert len({r["config_id"] for r in runs.values()}) == 3  # three configs, never compared with each other
    reference = runs["fp32"]["epochs"][0]["loss"]
    for precision, run in runs.items():
        loss = run["epochs"][0]["loss"]
        assert math.isfinite(loss) and abs(loss - reference) <= LOSS_TOLERANCE * reference, (precision, loss)
    unsupported = benchd(*args, "--precision", "tf32")
    assert unsupported.returncode == 1
    (failed,) = json.loads(unsupported.stdout)
    assert (
        failed["outcome"] == "error"
        and "tf32 runs on NVIDIA GPUs (Ampere and newer), not on cpu" in failed["message"]
    )
    assert_bad_input(benchd(*args, "--precision", "fp8"), "precision: input should be")


@pytest.mark.slow
def test_gpt_runs_in_every_precision_and_compiled_on_the_cpu(data_dir: Path, monkeypatch) -> None:
    """The small preset's shape scaled down (the CPU here is two cores); every mode the CPU has, eager
    and compiled, from the same seed to nearly the same loss."""
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)  # see the compiled VAE's test
    args = ("run", "gpt", "-p", "b16-d384-l6-s256", "-o", "width=64", "-o", "layers=2", "-o", "heads=4",
            "-o", "context=64", "--fraction", "0.2", "--device", "cpu", "--no-telemetry", "--timing",
            "device", "--json", "--data-dir", str(data_dir))  # fmt: skip
    runs = {}
    for mode, extra in {
        "fp32": (), "amp-bf16": ("--precision", "amp-bf16"), "amp-fp16": ("--precision", "amp-fp16"),
        "fp32-compiled": ("--compile",), "amp-bf16-compiled": ("--precision", "amp-bf16", "--compile"),
    }.items():  # fmt: skip
        result = benchd(*args, *extra)
        assert result.returncode == 0, result.stderr
        (runs[mode],) = json.loads(result.stdout)
    assert len({r["config_id"] for r in runs.values()}) == len(runs)
    reference = runs["fp32"]["epochs"][0]["loss"]
    for mode, run in runs.items():
        assert run["outcome"] == "ok" and run["precision"] == mode.split("-compiled")[0].replace(
            "fp32", "float32"
        )
        loss = run["epochs"][0]["loss"]
        assert math.isfinite(loss) and abs(loss - reference) <= LOSS_TOLERANCE * reference, (mode, loss)
    assert runs["fp32-compiled"]["compute"]["compile_seconds"] > 0
