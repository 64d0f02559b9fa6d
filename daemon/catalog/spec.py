"""What a workload is, as the catalog's modules declare it: presets, loader policy, run config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from benchd.datasets import facts


class CatalogError(ValueError):
    """A workload, preset, option or value that does not exist or is out of range.

    `field` names the request field it concerns (empty when none does), and
    the message names it too wherever the reason alone would not.
    """

    def __init__(self, reason: str, field: str = "") -> None:
        super().__init__(reason if not field or field in reason else f"{field}: {reason}")
        self.reason = reason
        self.field = field


TIMING_REFERENCE: Final = "reference"
"""Time what the published comparison timed: its data pipeline, host reads and side work."""
TIMING_DEVICE: Final = "device"
"""Time only the training steps, on data already in memory: the accelerator in isolation."""
TIMINGS = (TIMING_REFERENCE, TIMING_DEVICE)
PRECISION_DEFAULT: Final = "fp32"  # float32 eager, as the published comparison ran
PRECISIONS = (PRECISION_DEFAULT, "tf32", "amp-fp16", "amp-bf16")
MAX_EPOCHS = 1000
MIN_TIMEOUT_SECONDS = 1.0  # less cannot even start a child


@dataclass(frozen=True)
class LoaderPolicy:
    """How the published runs fed a workload's DataLoader, by device type and host.

    The reference scripts chose workers and pinned memory from the device they
    ran on (and the comparison ran DCGAN with no workers on macOS), so the
    reference timing resolves workers in the child, once the device is known.
    """

    workers: int = 0
    cuda_workers: int | None = None
    macos_workers: int | None = None
    pin_memory_on_cuda: bool = False

    def workers_for(self, device_type: str, platform: str) -> int:
        if device_type == "cuda" and self.cuda_workers is not None:
            return self.cuda_workers
        if platform == "darwin" and self.macos_workers is not None:
            return self.macos_workers
        return self.workers

    def pin_memory(self, device_type: str) -> bool:
        return device_type == "cuda" and self.pin_memory_on_cuda


@dataclass(frozen=True)
class Preset:
    """A configuration the published comparison measured."""

    name: str
    batch_size: int
    options: Mapping[str, int] = field(default_factory=dict)


ParameterFormula = Callable[[Mapping[str, int], int], int]
"""Parameters of the model built with these options, for a vocabulary of this size."""


@dataclass(frozen=True)
class Workload:
    """A model, its dataset, what one of its training samples is, and where its trainer lives."""

    name: str
    title: str
    dataset: str
    sample_unit: str
    presets: tuple[Preset, ...]
    parameter_formula: ParameterFormula
    trainer: str  # "module:Class" of its Trainer, imported by the child only (it needs torch)
    option_names: tuple[str, ...] = ()
    loader: LoaderPolicy = field(default_factory=LoaderPolicy)
    image_size: int | None = None  # a column of the published table (DCGAN's generated images)
    convolutional: bool = False  # image convolutions: channels-last memory format applies
    samples_per_item: int = 1  # samples one batch item holds: the transformer's sequence is bptt tokens

    def min_fraction(self, batch_size: int) -> float:
        """The smallest fraction of an epoch that still holds one whole batch of the real dataset: less
        would time a step and divide it by almost nothing (an infinite scaled epoch)."""
        return min(1.0, batch_size * self.samples_per_item / facts.TRAIN_SAMPLES[self.dataset])

    def preset(self, name: str) -> Preset:
        for preset in self.presets:
            if preset.name == name:
                return preset
        valid = ", ".join(p.name for p in self.presets)
        raise CatalogError(f"unknown preset {name!r} for {self.name}; valid presets: {valid}", "presets")

    def parameters(self, options: Mapping[str, int], vocab: int = facts.WIKITEXT2_VOCAB) -> int:
        return self.parameter_formula(options, vocab)


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides what a run computes: its identity for comparisons."""

    workload: str
    preset: str
    batch_size: int
    options: Mapping[str, int]
    epochs: int
    fraction: float
    workers: int | None  # None: as the published run did on the device it lands on
    seed: int = 1
    timing: str = TIMING_REFERENCE
    precision: str = PRECISION_DEFAULT  # docs/cli.md: fp32 (as published), tf32, amp-fp16, amp-bf16
    compile: bool = False  # torch.compile; its compile time is reported apart from the epochs
    channels_last: bool = False  # convolutional workloads: NHWC memory format

    def to_json(self) -> dict[str, object]:
        """The config as stored; precision only when not fp32, and compile and channels_last only when
        on, so every config from before they existed reads (and hashes) the same."""
        extra: dict[str, object] = {name: value for name, value in self.variant().items() if value}
        if self.precision != PRECISION_DEFAULT:
            extra["precision"] = self.precision
        return {
            "workload": self.workload,
            "preset": self.preset,
            "batch_size": self.batch_size,
            "options": dict(self.options),
            "epochs": self.epochs,
            "fraction": self.fraction,
            "workers": self.workers,
            "seed": self.seed,
            "timing": self.timing,
            **extra,
        }

    def variant(self) -> dict[str, bool]:
        """How the model runs beyond its precision: compiled, channels-last."""
        return {"compile": self.compile, "channels_last": self.channels_last}
