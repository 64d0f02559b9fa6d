"""Named, versioned suites: which presets, fraction and epochs each workload runs.

A suite is what a fleet schedules everywhere, so that every machine's figures
are the same work: the embedded default, the example config and the
Kubernetes ConfigMap all run `standard-v1`. A suite never changes once
published; a different choice is a new version. Sized so that a 2-core CPU
finishes it in minutes and an accelerator in well under one
(docs/performance.md has the measured costs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from benchd.catalog import get_workload
from benchd.catalog.spec import PRECISION_DEFAULT, TIMING_REFERENCE, CatalogError


@dataclass(frozen=True)
class SuiteEntry:
    presets: tuple[str, ...]
    fraction: float
    epochs: int


DEFAULT_SUITE = "standard-v1"
SUITES: Mapping[str, Mapping[str, SuiteEntry]] = MappingProxyType(
    {
        "standard-v1": MappingProxyType(
            {
                "vae": SuiteEntry(("bs128", "bs5120"), 1.0, 2),
                "siamese": SuiteEntry(("bs64", "bs1024"), 0.05, 2),
                "transformer": SuiteEntry(("b20-e200-l2-h200", "b200-e500-l4-h500"), 0.05, 2),
                "dcgan": SuiteEntry(("bs64",), 0.02, 2),
            }
        ),
    }
)
SUITE_FIELDS = ("presets", "fraction", "epochs")


def entry(suite: str, workload: str) -> SuiteEntry:
    if suite not in SUITES:
        raise CatalogError(f"unknown suite {suite!r}; suites: {', '.join(SUITES)}", "suite")
    if workload not in SUITES[suite]:
        raise CatalogError(f"suite {suite} does not run {workload}", "suite")
    return SUITES[suite][workload]


def suite_of(config: Mapping[str, Any]) -> str | None:
    """The suite whose run this config is, if any: its preset unchanged, at the suite's fraction and
    epochs, with the default workers, seed, timing, precision, eager and memory format."""
    workload = str(config.get("workload"))
    for name, entries in SUITES.items():
        chosen = entries.get(workload)
        if chosen is None or config.get("preset") not in chosen.presets:
            continue
        preset = get_workload(workload).preset(str(config["preset"]))
        if (
            config.get("batch_size") == preset.batch_size
            and dict(config.get("options") or {}) == dict(preset.options)
            and config.get("fraction") == chosen.fraction
            and config.get("epochs") == chosen.epochs
            and config.get("workers") is None
            and config.get("seed", 1) == 1
            and config.get("timing") == TIMING_REFERENCE
            and config.get("precision", PRECISION_DEFAULT) == PRECISION_DEFAULT
            and not config.get("compile")
            and not config.get("channels_last")
        ):
            return name
    return None
