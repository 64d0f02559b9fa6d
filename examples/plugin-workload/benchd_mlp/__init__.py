"""`mlp`: a three-layer perceptron classifying MNIST digits, as a benchd workload plug-in.

This module is what benchd's daemon reads (it never imports torch): the
presets, the option a request may change, the closed-form parameter count,
the dataset (benchd's own MNIST, shared with its built-in workloads) and
where the trainer lives, which only the child process imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from benchd.catalog import Option, Preset, SuiteEntry, Workload
from benchd.catalog.counting import linear
from benchd.datasets import facts

PIXELS = 28 * 28
CLASSES = 10


def parameters(options: Mapping[str, int], _vocab: int) -> int:
    hidden = options["hidden"]
    return linear(PIXELS, hidden) + linear(hidden, hidden) + linear(hidden, CLASSES)


def _preset(batch: int, hidden: int) -> Preset:
    return Preset(f"bs{batch}-h{hidden}", batch, MappingProxyType({"hidden": hidden}))


SMALL = _preset(128, 512)

WORKLOAD = Workload(
    name="mlp",
    title="Three-layer perceptron on MNIST digits (an example plug-in)",
    data=facts.MNIST,
    sample_unit="images",
    presets=(SMALL, _preset(1024, 2048)),
    parameter_formula=parameters,
    trainer="benchd_mlp.trainer:MlpTrainer",
    options=(Option("hidden", "Width of the two hidden layers.", 8, 1 << 14, short="h"),),
    schedule=None,  # scheduled only where a config file asks for it
    suites={"mlp-example-v1": SuiteEntry((SMALL.name,), 0.1, 2)},
)
