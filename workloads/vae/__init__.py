"""Variational auto-encoder on MNIST, batch 128 and 5120."""

from __future__ import annotations

from collections.abc import Mapping

from benchd.catalog import LoaderPolicy, Preset, SuiteEntry, Workload
from benchd.catalog.counting import linear
from benchd.datasets import facts


def parameters(_options: Mapping[str, int], _vocab: int) -> int:
    return linear(784, 400) + 2 * linear(400, 20) + linear(20, 400) + linear(400, 784)


# Sized so that a 2-core CPU runs it in minutes (docs/performance.md); the same in every standard suite.
STANDARD = SuiteEntry(("bs128", "bs5120"), 1.0, 2)

WORKLOAD = Workload(
    name="vae",
    title="Variational auto-encoder on MNIST",
    data=facts.MNIST,
    sample_unit="images",
    presets=(Preset("bs128", 128), Preset("bs5120", 5120)),
    parameter_formula=parameters,
    trainer="benchd.workloads.vae.trainer:VaeTrainer",
    loader=LoaderPolicy(cuda_workers=1, pin_memory_on_cuda=True),
    suites={"standard-v1": STANDARD, "standard-v2": STANDARD},
    # 1: reference epochs read the loss each step and again at each log line, as the example (2026-11).
    revision=1,
    schedule="6h",
)
