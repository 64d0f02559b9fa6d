"""Variational auto-encoder on MNIST, batch 128 and 5120."""

from __future__ import annotations

from collections.abc import Mapping

from benchd.catalog.counting import linear
from benchd.catalog.spec import LoaderPolicy, Preset, Workload


def parameters(_options: Mapping[str, int], _vocab: int) -> int:
    return linear(784, 400) + 2 * linear(400, 20) + linear(20, 400) + linear(400, 784)


WORKLOAD = Workload(
    name="vae",
    title="Variational auto-encoder on MNIST",
    dataset="mnist",
    sample_unit="images",
    presets=(Preset("bs128", 128), Preset("bs5120", 5120)),
    parameter_formula=parameters,
    trainer="benchd.workloads.training.vae:VaeTrainer",
    loader=LoaderPolicy(cuda_workers=1, pin_memory_on_cuda=True),
)
