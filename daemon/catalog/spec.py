"""What a workload is, as the catalog's modules declare it: presets, loader policy, run config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, Final

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


class Timing(str, Enum):
    """What a timed epoch contains (docs/workloads.md, "Timing"). Every place that names a timing (the
    request model and its OpenAPI enum, the CLI, the config file, the child) takes it from here."""

    REFERENCE = "reference"  # what the published comparison timed: its data pipeline, host reads, side work
    DEVICE = "device"  # the training steps alone, on data already on the device: the accelerator in isolation


class Precision(str, Enum):
    """How the model computes (docs/cli.md, "Precision"); defined once, as Timing is."""

    FP32 = "fp32"  # float32 eager, as the published comparison ran
    TF32 = "tf32"  # float32 with TF32 matmuls (NVIDIA Ampere and newer)
    AMP_FP16 = "amp-fp16"  # autocast to float16, with a gradient scaler
    AMP_BF16 = "amp-bf16"  # autocast to bfloat16


# The values, as configs store them and the child receives them (plain strings: configs hash as before).
TIMING_REFERENCE: Final = Timing.REFERENCE.value
TIMING_DEVICE: Final = Timing.DEVICE.value
TIMINGS = tuple(t.value for t in Timing)
PRECISION_DEFAULT: Final = Precision.FP32.value
PRECISIONS = tuple(p.value for p in Precision)
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
OptionsCheck = Callable[[Mapping[str, int]], None]
"""Raises CatalogError naming the option when a combination cannot be built (a width not split by heads)."""


@dataclass(frozen=True)
class Option:
    """A model option of one workload: its presets set it, a request may override it within bounds."""

    name: str
    help: str
    minimum: int
    maximum: int
    multiple_of: int = 1
    short: str = (
        ""  # its prefix in a config's short form (`e200` for emsize 200), as the published table wrote it
    )

    @property
    def field(self) -> str:
        """Where it sits in a run request (and a config file's workload table)."""
        return f"options.{self.name}"

    def check(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CatalogError(f"must be an integer, got {value!r}", self.field)
        if not self.minimum <= value <= self.maximum:
            raise CatalogError(f"must be between {self.minimum} and {self.maximum}, got {value}", self.field)
        if value % self.multiple_of:
            raise CatalogError(f"must be a multiple of {self.multiple_of}, got {value}", self.field)


@dataclass(frozen=True)
class SuiteEntry:
    """What one workload runs in a named suite: which presets, at what fraction, for how many epochs."""

    presets: tuple[str, ...]
    fraction: float
    epochs: int


def _no_constraint(_options: Mapping[str, int]) -> None:
    return None


@dataclass(frozen=True)
class Workload:
    """Everything the parent knows of a workload, without torch: the interface a workload folder declares.

    A workload is a package (the built-ins are `benchd.workloads.<name>`; a
    plug-in is any installed distribution) whose `WORKLOAD` is registered in
    the `benchd.workloads` entry-point group (docs/workloads.md, "Adding a
    workload"). Its trainer is imported by the child only; it builds the
    model from a preset's options and runs both timing modes.
    """

    name: str
    title: str
    data: facts.Dataset
    sample_unit: str
    presets: tuple[Preset, ...]
    parameter_formula: ParameterFormula
    trainer: str  # "module:Class" of its Trainer, imported by the child only (it needs torch)
    options: tuple[Option, ...] = ()
    check_options: OptionsCheck = _no_constraint
    loader: LoaderPolicy = field(default_factory=LoaderPolicy)
    image_size: int | None = None  # a column of the published table (DCGAN's generated images)
    convolutional: bool = False  # image convolutions: channels-last memory format applies
    # Samples one batch item holds: the transformer's sequence is bptt tokens; a name is the option that sets
    # it (gpt's context).
    samples_per_item: int | str = 1
    schedule: str | None = (
        "24h"  # the embedded default config's interval; None: scheduled only when configured
    )
    suites: Mapping[str, SuiteEntry] = field(default_factory=dict)  # its entry in each suite that runs it
    # Raised when a change to the workload's code alters the work its configs describe (what a reference
    # epoch does): hashed into every config id from 1 on, so figures from before and after never meet.
    revision: int = 0

    @property
    def dataset(self) -> str:
        return self.data.name

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(option.name for option in self.options)

    def option(self, name: str) -> Option:
        for option in self.options:
            if option.name == name:
                return option
        known = ", ".join(self.option_names) or "none"
        raise CatalogError(f"{self.name} has no option {name!r}; its options: {known}", f"options.{name}")

    def validate_options(self, options: Mapping[str, int]) -> None:
        """Each option known and within its bounds, and together buildable; CatalogError names the first
        that is not."""
        for name, value in options.items():
            self.option(name).check(value)
        self.check_options(options)

    def min_fraction(self, batch_size: int, options: Mapping[str, int]) -> float:
        """The smallest fraction of an epoch that still holds one whole batch of the real dataset: less
        would time a step and divide it by almost nothing (an infinite scaled epoch)."""
        per_item = self.samples_per_item
        samples = options[per_item] if isinstance(per_item, str) else per_item
        return min(1.0, batch_size * samples / self.data.train_samples)

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
    deterministic: bool = (
        False  # seeded streams, deterministic kernels, a loss fingerprint (docs/workloads.md)
    )

    def to_json(self) -> dict[str, object]:
        """The config as stored; precision only when not fp32, and compile, channels_last and deterministic
        only when on, so every config from before they existed reads (and hashes) the same."""
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

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> RunConfig:
        """A config as `to_json` wrote it (precision, compile and channels_last optional, as there);
        CatalogError names the first field that is missing or of the wrong type. The workload's own
        checks (catalog.checked_config) come on top."""
        options = _typed(values, "options", dict)
        for name, value in options.items():
            if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, int):
                raise CatalogError(f"must map names to integers, got {name!r}: {value!r}", "options")
        workers = values.get("workers")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
            raise CatalogError(f"must be an integer or null, got {workers!r}", "workers")
        timing = _typed(values, "timing", str, TIMING_REFERENCE)
        precision = _typed(values, "precision", str, PRECISION_DEFAULT)
        for name, value, valid in (("timing", timing, TIMINGS), ("precision", precision, PRECISIONS)):
            if value not in valid:
                raise CatalogError(f"must be one of {', '.join(valid)}, got {value!r}", name)
        return cls(
            workload=_typed(values, "workload", str),
            preset=_typed(values, "preset", str),
            batch_size=_typed(values, "batch_size", int),
            options=MappingProxyType(dict(options)),
            epochs=_typed(values, "epochs", int),
            fraction=float(_typed(values, "fraction", (int, float))),
            workers=workers,
            seed=_typed(values, "seed", int, 1),
            timing=timing,
            precision=precision,
            compile=_typed(values, "compile", bool, False),
            channels_last=_typed(values, "channels_last", bool, False),
            deterministic=_typed(values, "deterministic", bool, False),
        )

    def variant(self) -> dict[str, bool]:
        """How the model runs beyond its precision: compiled, channels-last, deterministic."""
        return {
            "compile": self.compile,
            "channels_last": self.channels_last,
            "deterministic": self.deterministic,
        }


_REQUIRED: Any = object()


def _typed(values: Mapping[str, Any], key: str, kind: Any, default: Any = _REQUIRED) -> Any:
    """values[key] if it is of `kind` (a bool is no number here); the default when absent and allowed."""
    if key not in values:
        if default is _REQUIRED:
            raise CatalogError("is required", key)
        return default
    value = values[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise CatalogError(f"must be {names}, got {value!r}", key)
    return value
