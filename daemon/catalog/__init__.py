"""The four workloads and their presets, as the parent knows them (no torch).

Parameter counts are computed from closed-form formulas so that `benchd
workloads` can list them, and overridden configurations can be described,
without importing torch. Tests check every formula against the real modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from types import MappingProxyType
from typing import Any

from benchd.workloads.datasets import facts


class CatalogError(ValueError):
    """A workload, preset or override that does not exist or is out of range."""


TIMING_REFERENCE = "reference"
"""Time what the published comparison timed: its data pipeline, host reads and side work."""
TIMING_DEVICE = "device"
"""Time only the training steps, on data already in memory: the accelerator in isolation."""
TIMINGS = (TIMING_REFERENCE, TIMING_DEVICE)


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


@dataclass(frozen=True)
class Workload:
    """A model, its dataset and what one of its training samples is."""

    name: str
    title: str
    dataset: str
    sample_unit: str
    presets: tuple[Preset, ...]
    option_names: tuple[str, ...] = ()
    loader: LoaderPolicy = field(default_factory=LoaderPolicy)
    image_size: int | None = None  # a column of the published table (DCGAN's generated images)

    def preset(self, name: str) -> Preset:
        for preset in self.presets:
            if preset.name == name:
                return preset
        valid = ", ".join(p.name for p in self.presets)
        raise CatalogError(f"unknown preset {name!r} for {self.name}; valid presets: {valid}")

    def parameters(self, options: Mapping[str, int], vocab: int = facts.WIKITEXT2_VOCAB) -> int:
        return _PARAMETER_FORMULAS[self.name](options, vocab)


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

    def to_json(self) -> dict[str, object]:
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
        }


def _conv(c_in: int, c_out: int, kernel: int, bias: bool = False) -> int:
    return c_in * c_out * kernel * kernel + (c_out if bias else 0)


def _affine_norm(channels: int) -> int:
    """BatchNorm2d or LayerNorm: one weight and one bias per channel."""
    return 2 * channels


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def dcgan_generator_parameters(nz: int = 100, ngf: int = 64, nc: int = 3) -> int:
    widths = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
    hidden = sum(_conv(a, b, 4) + _affine_norm(b) for a, b in pairwise(widths))
    return hidden + _conv(ngf, nc, 4)


def dcgan_discriminator_parameters(ndf: int = 64, nc: int = 3) -> int:
    widths = [ndf, ndf * 2, ndf * 4, ndf * 8]
    hidden = sum(_conv(a, b, 4) + _affine_norm(b) for a, b in pairwise(widths))
    return _conv(nc, ndf, 4) + hidden + _conv(ndf * 8, 1, 4)


def resnet18_feature_parameters(in_channels: int) -> int:
    """ResNet-18 up to and including average pooling (no fully connected layer)."""
    total = _conv(in_channels, 64, 7) + _affine_norm(64)
    c_in = 64
    for c_out in (64, 128, 256, 512):
        for block in range(2):
            first = _conv(c_in, c_out, 3) + _affine_norm(c_out)
            second = _conv(c_out, c_out, 3) + _affine_norm(c_out)
            downsample = 0
            if block == 0 and c_in != c_out:
                downsample = _conv(c_in, c_out, 1) + _affine_norm(c_out)
            total += first + second + downsample
            c_in = c_out
    return total


def siamese_parameters() -> int:
    return resnet18_feature_parameters(1) + _linear(1024, 256) + _linear(256, 1)


def transformer_parameters(vocab: int, emsize: int, nlayers: int, nhid: int) -> int:
    attention = _linear(emsize, 3 * emsize) + _linear(emsize, emsize)
    feed_forward = _linear(emsize, nhid) + _linear(nhid, emsize)
    layer = attention + feed_forward + 2 * _affine_norm(emsize)
    # No LayerNorm after the stack: the May-2022 model the comparison ran had none.
    return vocab * emsize + nlayers * layer + _linear(emsize, vocab)


def vae_parameters() -> int:
    return _linear(784, 400) + 2 * _linear(400, 20) + _linear(20, 400) + _linear(400, 784)


_PARAMETER_FORMULAS = {
    "dcgan": lambda _o, _v: dcgan_generator_parameters() + dcgan_discriminator_parameters(),
    "siamese": lambda _o, _v: siamese_parameters(),
    "transformer": lambda o, v: transformer_parameters(v, o["emsize"], o["nlayers"], o["nhid"]),
    "vae": lambda _o, _v: vae_parameters(),
}


def _transformer_preset(batch: int, emsize: int, nlayers: int, nhid: int) -> Preset:
    options = MappingProxyType({"emsize": emsize, "nlayers": nlayers, "nhid": nhid})
    return Preset(f"b{batch}-e{emsize}-l{nlayers}-h{nhid}", batch, options)


WORKLOADS: Mapping[str, Workload] = MappingProxyType(
    {
        "dcgan": Workload(
            name="dcgan",
            title="DCGAN on LSUN classroom",
            dataset="lsun-classroom",
            sample_unit="images",
            presets=(Preset("bs64", 64), Preset("bs1024", 1024)),
            loader=LoaderPolicy(workers=2, macos_workers=0),
            image_size=64,
        ),
        "siamese": Workload(
            name="siamese",
            title="Siamese ResNet-18 on MNIST pairs",
            dataset="mnist",
            sample_unit="pairs",
            presets=(Preset("bs64", 64), Preset("bs1024", 1024)),
            loader=LoaderPolicy(cuda_workers=1, pin_memory_on_cuda=True),
        ),
        "transformer": Workload(
            name="transformer",
            title="Transformer language model on WikiText-2",
            dataset="wikitext-2",
            sample_unit="tokens",
            presets=(
                _transformer_preset(20, 200, 2, 200),
                _transformer_preset(20, 500, 2, 500),
                _transformer_preset(200, 500, 4, 500),
                _transformer_preset(200, 500, 6, 1024),
                _transformer_preset(200, 500, 10, 1024),
            ),
            option_names=("emsize", "nlayers", "nhid"),
        ),
        "vae": Workload(
            name="vae",
            title="Variational auto-encoder on MNIST",
            dataset="mnist",
            sample_unit="images",
            presets=(Preset("bs128", 128), Preset("bs5120", 5120)),
            loader=LoaderPolicy(cuda_workers=1, pin_memory_on_cuda=True),
        ),
    }
)

MAX_EPOCHS = 1000


def setup(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored run config in the published table's columns, and whether it departs from its preset.

    Columns: batch size, image size (DCGAN), embedding size, layers and
    hidden units (transformer). `overridden` is true when the batch size or
    a model option is not the preset's, so such a run is never shown as the
    plain preset.
    """
    workload = get_workload(str(config["workload"]))
    columns: dict[str, Any] = {"batch_size": config["batch_size"]}
    if workload.image_size is not None:
        columns["image_size"] = workload.image_size
    options = dict(config.get("options") or {})
    columns.update(options)
    try:
        preset = workload.preset(str(config["preset"]))
    except CatalogError:
        overridden = True
    else:
        overridden = config["batch_size"] != preset.batch_size or options != dict(preset.options)
    return {**columns, "overridden": overridden}


def get_workload(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        valid = ", ".join(WORKLOADS)
        raise CatalogError(f"unknown workload {name!r}; valid workloads: {valid}") from None


def resolve_presets(workload: Workload, names: list[str]) -> list[Preset]:
    """Expand `all` and check every name; an empty list means every preset."""
    if not names or "all" in names:
        return list(workload.presets)
    return [workload.preset(name) for name in dict.fromkeys(names)]


def build_config(
    workload: Workload,
    preset: Preset,
    *,
    epochs: int = 1,
    fraction: float = 1.0,
    batch_size: int | None = None,
    options: Mapping[str, int | None] | None = None,
    workers: int | None = None,
    seed: int = 1,
    timing: str = TIMING_REFERENCE,
) -> RunConfig:
    """Apply overrides to a preset and check every value, naming the one that is wrong."""
    if batch_size is not None and batch_size < 1:
        raise CatalogError(f"batch size must be at least 1, got {batch_size}")
    if not 0.0 < fraction <= 1.0:
        raise CatalogError(f"fraction must be in (0, 1], got {fraction}")
    if not 1 <= epochs <= MAX_EPOCHS:
        raise CatalogError(f"epochs must be between 1 and {MAX_EPOCHS}, got {epochs}")
    if workers is not None and workers < 0:
        raise CatalogError(f"workers must be 0 or more, got {workers}")
    if timing not in TIMINGS:
        raise CatalogError(f"timing must be one of {', '.join(TIMINGS)}, got {timing!r}")
    merged = dict(preset.options)
    for key, value in (options or {}).items():
        if value is None:
            continue
        if key not in workload.option_names:
            raise CatalogError(f"--{key} applies only to workloads that have it; {workload.name} does not")
        if value < 1:
            raise CatalogError(f"{key} must be at least 1, got {value}")
        merged[key] = value
    if "emsize" in merged and merged["emsize"] % 2:
        raise CatalogError(f"emsize must be even (2 attention heads), got {merged['emsize']}")
    return RunConfig(
        workload=workload.name,
        preset=preset.name,
        batch_size=batch_size if batch_size is not None else preset.batch_size,
        options=MappingProxyType(merged),
        epochs=epochs,
        fraction=fraction,
        workers=workers,
        seed=seed,
        timing=timing,
    )
