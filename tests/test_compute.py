"""FLOP counts against closed forms, probes that leave training untouched, peaks, MFU, --compile."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch

from benchd.catalog import get_workload
from benchd.datasets import layout
from benchd.datasets.formats import get_format
from benchd.results.model import Run
from benchd.workloads.gpt import training_flops_per_token
from benchd.workloads.peaks import published_peak
from benchd.workloads.training import TrainerSpec, build_trainer
from benchd.workloads.training.compute import count_flops, measured_matmul_peak
from benchd.workloads.transformer.trainer import BPTT

from .test_cli import assert_bad_input, benchd

CPU = torch.device("cpu")
CLOSED_FORM_TOLERANCE = 0.02


def _trainer(data_dir: Path, workload: str, preset: str, **overrides):
    chosen, dataset = get_workload(workload).preset(preset), get_format(get_workload(workload).dataset)
    values = dict(workload=workload, batch_size=chosen.batch_size, options=chosen.options, fraction=0.05,
                  workers=0, seed=1, data_path=layout.dataset_path(data_dir, dataset),
                  device=CPU, timing="device", log=io.StringIO())  # fmt: skip
    return build_trainer(TrainerSpec(**(values | overrides)))


def _linear_step_flops(layers: list[tuple[int, int]]) -> int:
    """Matmul FLOPs per sample of a training step through these (in, out) layers in sequence: 2·in·out
    forward, the same for each weight gradient, and for each input gradient but the first layer's (the
    data needs none)."""
    forward = sum(2 * a * b for a, b in layers)
    return forward + forward + (forward - 2 * layers[0][0] * layers[0][1])


def test_vae_flops_match_the_closed_form(small_data_dir: Path) -> None:
    trainer = _trainer(small_data_dir, "vae", "bs128")
    per_step, per_epoch = count_flops(trainer, CPU)
    # 784 -> 400, two heads 400 -> 20 (mu, logvar), 20 -> 400 -> 784 (WORKLOADS.md).
    per_sample = _linear_step_flops([(784, 400), (400, 20), (400, 20), (20, 400), (400, 784)])
    assert abs(per_step - 128 * per_sample) <= CLOSED_FORM_TOLERANCE * 128 * per_sample
    assert abs(per_epoch - trainer.samples_per_epoch * per_sample) <= CLOSED_FORM_TOLERANCE * per_epoch


def _transformer_step_flops(tokens: int, seq: int, emsize: int, nhid: int, nlayers: int, vocab: int) -> float:
    """Per step: each layer's projections (q, k, v, out: 4·E²) and feed-forward (2·E·H) as multiply-adds
    per token, attention scores and weighted values (2·S·E per token), the decoder (E·V); forward at 2
    FLOPs a multiply-add, backward twice the forward (every input needs its gradient: the embedding's
    output does)."""
    per_token = (
        nlayers * (2 * (4 * emsize**2 + 2 * emsize * nhid) + 2 * 2 * seq * emsize) + 2 * emsize * vocab
    )
    return 3 * per_token * tokens


@pytest.mark.parametrize("preset", ["b20-e200-l2-h200", "b200-e500-l4-h500"])
def test_transformer_flops_match_the_closed_form(small_data_dir: Path, preset: str) -> None:
    trainer = _trainer(small_data_dir, "transformer", preset)
    per_step, per_epoch = count_flops(trainer, CPU)
    options, batch = get_workload("transformer").preset(preset).options, trainer.data.size(1)
    expected = _transformer_step_flops(BPTT * batch, BPTT, options["emsize"], options["nhid"],
                                       options["nlayers"], trainer.vocab)  # fmt: skip
    assert abs(per_step - expected) <= CLOSED_FORM_TOLERANCE * expected, (per_step, expected)
    assert per_epoch >= per_step * (trainer.steps_per_epoch - 1)


@pytest.mark.parametrize(
    "options",
    [
        {"width": 64, "layers": 2, "heads": 4, "context": 32},
        {"width": 32, "layers": 3, "heads": 2, "context": 128},  # attention outweighs the blocks' matmuls
    ],
)
def test_gpt_flops_match_six_times_its_matmul_weights_plus_attention(small_data_dir: Path, options) -> None:
    """Counted on the CPU, whose fused attention kernel torch's counter does not know by itself."""
    trainer = _trainer(small_data_dir, "gpt", "b16-d384-l6-s256", batch_size=4, options=options)
    per_step, per_epoch = count_flops(trainer, CPU)
    expected = training_flops_per_token(options, trainer.vocab) * 4 * options["context"]
    assert abs(per_step - expected) <= CLOSED_FORM_TOLERANCE * expected, (per_step, expected)
    assert per_epoch == per_step * trainer.steps_per_epoch


@pytest.mark.parametrize(("workload", "preset"), [("dcgan", "bs64"), ("siamese", "bs64")])
def test_convolutional_steps_count_every_network(small_data_dir: Path, workload: str, preset: str) -> None:
    trainer = _trainer(small_data_dir, workload, preset)
    per_step, per_epoch = count_flops(trainer, CPU)
    # Each parameter takes part in at least one multiply-add per sample forward, and backward doubles that.
    assert per_step > 2 * 3 * trainer.parameters * 64 * 0.5
    assert per_epoch >= per_step * (trainer.steps_per_epoch - 1)


def test_probe_steps_leave_training_untouched(small_data_dir: Path) -> None:
    """After the FLOP count, weights, optimizer state, random streams and the run log are as before."""
    log = io.StringIO()
    trainer = _trainer(small_data_dir, "transformer", "b20-e200-l2-h200", timing="reference", log=log)
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    rng = torch.get_rng_state()
    count_flops(trainer, CPU)
    assert all(torch.equal(weights[k], v) for k, v in trainer.model.state_dict().items())
    assert all(p.grad is None for p in trainer.model.parameters())
    assert torch.equal(rng, torch.get_rng_state())
    assert log.getvalue() == "" and trainer.log.enabled


def test_published_peaks_by_model_and_precision() -> None:
    def flops(name: str, precision: str, device_type: str = "cuda") -> float | str:
        found = published_peak(device_type, name, precision)
        return found if isinstance(found, str) else found.flops

    assert flops("NVIDIA H100 80GB HBM3", "fp32") == 67e12
    assert flops("NVIDIA H100 PCIe", "amp-bf16") == 756.5e12
    assert flops("NVIDIA H200", "tf32") == 494.5e12
    assert flops("NVIDIA A100-SXM4-80GB", "amp-fp16") == 312e12
    assert flops("Apple M1 Ultra GPU (MPS)", "fp32", "mps") == 21e12
    # No guesses: a cut-down variant, a precision the chip lacks, an unknown device, a CPU.
    assert flops("NVIDIA A10G", "fp32") == "no published peak for 'NVIDIA A10G'"
    assert (
        flops("NVIDIA GeForce RTX 2070 SUPER", "amp-bf16")
        == "no published bf16 peak for GeForce RTX 2070 Super"
    )
    assert flops("NVIDIA GeForce RTX 3090 Ti", "fp32") == "no published peak for 'NVIDIA GeForce RTX 3090 Ti'"
    assert isinstance(flops("Intel Xeon", "fp32", "cpu"), str)
    assert flops("NVIDIA A100-SXM4-40GB MIG 1g.5gb", "fp32") == (
        "'NVIDIA A100-SXM4-40GB MIG 1g.5gb' is a MIG instance: no published peak for its share of the GPU"
    )


def test_a_cpu_peak_is_measured_and_says_so() -> None:
    peak = measured_matmul_peak("fp32")
    assert not isinstance(peak, str)
    assert peak.flops > 1e8 and peak.source.startswith("measured: torch.float32 matmul")
    assert measured_matmul_peak("tf32") == "no matmul to measure for precision 'tf32' on a CPU"


def _run(compute: dict | None, seconds: list[float]) -> Run:
    epochs = [{"index": i, "duration_seconds": s, "samples": 10, "steps": 1, "data_wait_seconds": 0.0,
               "peak_allocated_bytes": None, "peak_reserved_bytes": None, "loss": 1.0}
              for i, s in enumerate(seconds)]  # fmt: skip
    return Run.from_json({"id": 1, "workload": "vae", "preset": "bs128", "config": {}, "fraction": 0.1,
                          "requested_device": "cpu", "state": "finished", "outcome": "ok", "queued_at": 0.0,
                          "benchd_version": "0", "origin": "cli", "compute": compute, "epochs": epochs}
                         | dict.fromkeys(("message", "stderr_tail", "log_path", "device", "device_type",
                                          "device_name", "precision", "torch_version", "driver_version",
                                          "data", "data_samples", "parameters", "samples_per_epoch",
                                          "sample_unit", "peak_host_rss_bytes", "started_at", "finished_at",
                                          "timeout_seconds")))  # fmt: skip


def test_achieved_flops_and_mfu_come_from_the_representative_epoch() -> None:
    run = _run({"flops_per_epoch": 8e9, "peak_flops": 1e11}, [9.0, 2.0, 2.0])
    summary = run.to_json()["summary"]["compute"]
    assert summary["flops_per_second"] == 4e9 and summary["mfu_ratio"] == pytest.approx(0.04)
    unknown = _run({"flops_per_epoch": 8e9, "peak_unavailable": "no published peak"}, [2.0])
    assert (
        "mfu_ratio" not in unknown.compute_summary() and unknown.compute_summary()["flops_per_second"] == 4e9
    )
    assert _run(None, [2.0]).compute_summary() == {}  # runs from before FLOPs were counted


@pytest.mark.slow
def test_compiled_vae_trains_like_eager_with_its_compile_time_apart(data_dir: Path, monkeypatch) -> None:
    # Torch sets this in a process that touched Inductor (earlier in-process tests): the child must choose.
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    args = ("run", "vae", "-p", "bs128", "--fraction", "0.05", "--device", "cpu", "--no-telemetry",
            "--timing", "device", "--epochs", "2", "--json", "--data-dir", str(data_dir))  # fmt: skip
    runs = {}
    for mode, extra in {"eager": (), "compiled": ("--compile",)}.items():
        result = benchd(*args, *extra)
        assert result.returncode == 0, result.stderr
        (runs[mode],) = json.loads(result.stdout)
    eager, compiled = runs["eager"], runs["compiled"]
    assert compiled["config"]["compile"] is True and "compile" not in eager["config"]
    assert compiled["config_id"] != eager["config_id"]
    assert compiled["compute"]["compile_seconds"] > 0 and "compile_seconds" not in eager["compute"]
    assert compiled["compute"]["flops_per_epoch"] == eager["compute"]["flops_per_epoch"]
    assert any((data_dir / "inductor-cache").iterdir())  # kernels kept in the data directory
    for run in runs.values():
        figures = run["summary"]["compute"]
        assert figures["peak_source"].startswith("measured:") and 0 < figures["mfu_ratio"] < 1
    # The same steps from the same seed: compiled kernels move the loss by rounding only.
    for eager_epoch, compiled_epoch in zip(eager["epochs"], compiled["epochs"], strict=True):
        assert math.isclose(eager_epoch["loss"], compiled_epoch["loss"], rel_tol=1e-2)
    assert_bad_input(benchd(*args, "--channels-last"), "channels_last: applies only to image convolution")


@pytest.mark.slow
def test_channels_last_siamese_runs_on_the_cpu(data_dir: Path) -> None:
    result = benchd("run", "siamese", "-p", "bs64", "--fraction", "0.1", "--device", "cpu", "--no-telemetry",
                    "--channels-last", "--json", "--data-dir", str(data_dir))  # fmt: skip
    assert result.returncode == 0, result.stderr
    (run,) = json.loads(result.stdout)
    assert run["config"]["channels_last"] is True and run["summary"]["compute"]["flops_per_second"] > 0


def test_every_published_peak_is_in_the_docs() -> None:
    from benchd.workloads.peaks import PUBLISHED_PEAKS

    text = (Path(__file__).parents[1] / "docs" / "performance.md").read_text()
    for entry in PUBLISHED_PEAKS:
        cells = [entry.tflops.get(column) for column in ("fp32", "tf32", "bf16", "fp16")]
        shown = " | ".join("-" if value is None else f"{value:g}" for value in cells)
        assert f"| {entry.model} | {shown} | {entry.source} |" in text, entry.model


def test_doctor_says_what_mfu_will_divide_by() -> None:
    from benchd.cli.doctor import mfu_peak

    h100 = mfu_peak({"type": "cuda", "name": "NVIDIA H100 80GB HBM3"})
    assert h100.startswith("H100 SXM: fp32 67, tf32 494.5, bf16 989.5, fp16 989.5 TFLOP/s")
    assert mfu_peak({"type": "cuda", "name": "NVIDIA A10G"}).startswith("none published")


@pytest.mark.slow
def test_compiled_reference_dcgan_meets_every_graph_before_its_epochs(data_dir: Path) -> None:
    """The reference epoch's image grid runs G outside autocast: the warm-up compiles that pass too, or
    the fail-on-recompile stance would end the run `error` inside the first epoch."""
    result = benchd("run", "dcgan", "-p", "bs64", "--fraction", "0.1", "--epochs", "2", "--device", "cpu",
                    "--precision", "amp-bf16", "--channels-last", "--compile", "--no-telemetry", "--json",
                    "--data-dir", str(data_dir))  # fmt: skip
    assert result.returncode == 0, result.stderr
    (run,) = json.loads(result.stdout)
    assert run["outcome"] == "ok" and run["compute"]["compile_seconds"] > 0
    assert all("side_work" in epoch["phases"] for epoch in run["epochs"])  # the grids ran, compiled
