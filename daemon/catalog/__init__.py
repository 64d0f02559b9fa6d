"""The workloads and their presets, as the parent knows them (no torch).

Each workload is one folder (the built-ins are `benchd.workloads.<name>`, a
plug-in is its own distribution) whose package declares a `Workload`: its
presets and options, its closed-form parameter count, its dataset, how the
published run fed its loader, and the import path of its trainer, which only
the child imports. They are found through the `benchd.workloads` entry-point
group (catalog.registry). Parameter counts are formulas so that `benchd
workloads` can list them, and overridden configurations can be described,
without torch; tests check every formula against the real modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from benchd.catalog.registry import LazyMapping, discover
from benchd.catalog.spec import (
    MAX_EPOCHS,
    PRECISION_DEFAULT,
    PRECISIONS,
    TIMING_DEVICE,
    TIMING_REFERENCE,
    TIMINGS,
    CatalogError,
    LoaderPolicy,
    Option,
    Preset,
    RunConfig,
    SuiteEntry,
    Workload,
)
from benchd.datasets.facts import Dataset

WORKLOADS: Mapping[str, Workload] = LazyMapping()


def names_text() -> str:
    """The workload names for help texts: 'dcgan, gpt, siamese, transformer, vae'."""
    return ", ".join(WORKLOADS)


def datasets() -> Mapping[str, Dataset]:
    """Every dataset a registered workload trains on, by name."""
    return discover().datasets


def get_dataset(name: str) -> Dataset:
    try:
        return datasets()[name]
    except KeyError:
        valid = ", ".join(datasets())
        raise CatalogError(f"unknown dataset {name!r}; valid datasets: {valid}", "dataset") from None


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


def options_text(workload_name: str, options: Mapping[str, Any]) -> str:
    """Model options as the published table wrote them: `e200 l2 h200`, each option's short form in the
    workload's order; one without a short form, or of a workload not registered here, as `name value`."""
    rest = dict(options)
    workload = WORKLOADS.get(workload_name)
    declared = [o for o in workload.options if o.short and o.name in rest] if workload else []
    parts = [f"{o.short}{rest.pop(o.name)}" for o in declared]
    return " ".join(parts + [f"{name} {value}" for name, value in sorted(rest.items())])


def listing() -> list[dict[str, Any]]:
    """Every preset of every workload, as `benchd workloads --json` and the API list them."""
    rows = []
    for workload in WORKLOADS.values():
        for preset in workload.presets:
            rows.append(
                {
                    "workload": workload.name,
                    "preset": preset.name,
                    "parameters": workload.parameters(preset.options),
                    "batch_size": preset.batch_size,
                    "options": dict(preset.options),
                    "option_bounds": {
                        o.name: {"minimum": o.minimum, "maximum": o.maximum, "multiple_of": o.multiple_of}
                        for o in workload.options
                    },
                    "dataset": workload.dataset,
                    "sample_unit": workload.sample_unit,
                }
            )
    return rows


def get_workload(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        valid = ", ".join(WORKLOADS)
        raise CatalogError(f"unknown workload {name!r}; valid workloads: {valid}", "workload") from None


def checked_config(values: Mapping[str, Any]) -> RunConfig:
    """A config from JSON (a run spec, a stored run) that its workload, registered here, accepts: each
    option known and in bounds, and their combination buildable. CatalogError names what is not."""
    config = RunConfig.from_json(values)
    get_workload(config.workload).validate_options(config.options)
    return config


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
    precision: str = PRECISION_DEFAULT,
    compile: bool = False,
    channels_last: bool = False,
    deterministic: bool = False,
) -> RunConfig:
    """Apply overrides to a preset, checking what depends on the workload.

    Ranges (epochs, fraction, batch size, ...) are the request model's to check
    (catalog.request), before a config is built.
    """
    merged = {**preset.options, **{key: value for key, value in (options or {}).items() if value is not None}}
    workload.validate_options(merged)
    if channels_last and not workload.convolutional:
        convolutional = ", ".join(w.name for w in WORKLOADS.values() if w.convolutional)
        raise CatalogError(
            f"applies only to image convolution workloads ({convolutional}); {workload.name} has none",
            "channels_last",
        )
    batch_size = batch_size if batch_size is not None else preset.batch_size
    floor = workload.min_fraction(batch_size, merged)
    if fraction < floor:
        raise CatalogError(
            f"must cover at least one batch: at least {floor:.3g} for "
            f"{workload.name} {preset.name} (batch {batch_size}), got {fraction!r}",
            "fraction",
        )
    return RunConfig(
        workload=workload.name,
        preset=preset.name,
        batch_size=batch_size,
        options=MappingProxyType(merged),
        epochs=epochs,
        fraction=fraction,
        workers=workers,
        seed=seed,
        timing=timing,
        precision=precision,
        compile=compile,
        channels_last=channels_last,
        deterministic=deterministic,
    )


__all__ = [
    "MAX_EPOCHS",
    "PRECISIONS",
    "PRECISION_DEFAULT",
    "TIMINGS",
    "TIMING_DEVICE",
    "TIMING_REFERENCE",
    "WORKLOADS",
    "CatalogError",
    "Dataset",
    "LoaderPolicy",
    "Option",
    "Preset",
    "RunConfig",
    "SuiteEntry",
    "Workload",
    "build_config",
    "checked_config",
    "datasets",
    "get_dataset",
    "get_workload",
    "listing",
    "names_text",
    "options_text",
    "resolve_presets",
    "setup",
]
