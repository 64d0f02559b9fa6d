"""The registry: the one place that finds workloads, in the `benchd.workloads` entry-point group.

The built-ins register themselves in benchd's own pyproject.toml exactly as a
plug-in does in its own, so nothing else in benchd lists workloads or the
datasets they train on. Loading is lazy (the first question asked), since a
plug-in's declaration module is imported to read its `WORKLOAD`. A plug-in
that fails to load, or declares something inconsistent, is left out with
the reason kept for `benchd doctor`, rather than taking every command down.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from benchd.catalog.spec import CatalogError, Workload
from benchd.datasets.facts import Dataset

GROUP = "benchd.workloads"
NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")  # a metric label, a URL segment, a config table key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registry:
    workloads: Mapping[str, Workload]
    datasets: Mapping[str, Dataset]
    problems: tuple[str, ...]  # plug-ins left out, and why


@cache
def discover() -> Registry:
    workloads: dict[str, Workload] = {}
    datasets: dict[str, Dataset] = {}
    problems: list[str] = []
    # benchd's own first: a plug-in cannot take a built-in's name or redefine the dataset it trains on.
    for point in sorted(entry_points(group=GROUP), key=lambda p: (not p.value.startswith("benchd."), p.name)):
        try:
            workload = _load(point)
            if workload.name in workloads:
                raise CatalogError(f"{workload.name!r} is already registered")
            known = datasets.setdefault(workload.data.name, workload.data)
            if known != workload.data:
                raise CatalogError(f"declares dataset {known.name!r} unlike the workload that registered it")
        except Exception as exc:  # a plug-in's import can raise anything; it must not stop benchd
            problem = f"workload plug-in {point.name} ({point.value}) left out: {exc}"
            log.warning("%s", problem)
            problems.append(problem)
            continue
        workloads[workload.name] = workload
    return Registry(workloads, datasets, tuple(problems))


def _load(point: EntryPoint) -> Workload:
    workload = point.load()
    if not isinstance(workload, Workload):
        raise CatalogError(f"is a {type(workload).__name__}, not a benchd.catalog.Workload")
    if workload.name != point.name:
        raise CatalogError(f"is registered as {point.name!r} but names itself {workload.name!r}")
    if not NAME.match(workload.name):
        raise CatalogError(f"name {workload.name!r} must match {NAME.pattern}")
    if not workload.presets:
        raise CatalogError("declares no presets")
    for preset in workload.presets:
        if set(preset.options) != set(workload.option_names):
            raise CatalogError(f"preset {preset.name} sets {sorted(preset.options)}, not its options")
        workload.validate_options(preset.options)
    return workload


class LazyMapping(Mapping[str, Workload]):
    """The registry's workloads, found on first use: importing the catalog must not import plug-ins."""

    def __getitem__(self, name: str) -> Workload:
        return discover().workloads[name]

    def __iter__(self) -> Iterator[str]:
        return iter(discover().workloads)

    def __len__(self) -> int:
        return len(discover().workloads)
