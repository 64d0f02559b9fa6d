"""Named, versioned suites: which presets, fraction and epochs each workload runs.

A suite is what a fleet schedules everywhere, so that every machine's figures
are the same work: the embedded default, the example config and the
Kubernetes ConfigMap all run `standard-v1`. Each workload declares its own
entry in the suites that run it (`Workload.suites`). A suite never changes
once published; a different choice is a new version: `standard-v1` is the
four workloads of the published comparison, `standard-v2` adds `gpt`. Sized so that a 2-core CPU
finishes it in minutes and an accelerator in well under one
(docs/performance.md has the measured costs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchd.catalog import WORKLOADS, get_workload
from benchd.catalog.spec import PRECISION_DEFAULT, TIMING_REFERENCE, CatalogError, SuiteEntry

DEFAULT_SUITE = "standard-v1"
SUITE_FIELDS = ("presets", "fraction", "epochs")


def suites() -> dict[str, dict[str, SuiteEntry]]:
    """Every suite some registered workload declares, and its entry for each workload that runs it."""
    found: dict[str, dict[str, SuiteEntry]] = {}
    for workload in WORKLOADS.values():
        for suite, chosen in workload.suites.items():
            found.setdefault(suite, {})[workload.name] = chosen
    return found


def members(suite: str) -> dict[str, SuiteEntry]:
    """What each workload of `suite` runs; CatalogError lists the suites when there is no such one."""
    known = suites()
    if suite not in known:
        raise CatalogError(f"unknown suite {suite!r}; suites: {', '.join(known)}", "suite")
    return known[suite]


def entry(suite: str, workload: str) -> SuiteEntry:
    chosen = members(suite)
    if workload not in chosen:
        raise CatalogError(f"suite {suite} does not run {workload}", "suite")
    return chosen[workload]


def includes(suite: str, labelled: str, workload: str) -> bool:
    """Whether a run of `workload` labelled with suite `labelled` (suite_of: the first suite that runs its
    config) is also a run of `suite`: a later suite version runs the workloads it kept unchanged the same
    way, so their runs count in both."""
    if labelled == suite:
        return True
    known = suites()
    chosen, other = known.get(suite, {}).get(workload), known.get(labelled, {}).get(workload)
    return chosen is not None and chosen == other


def suite_of(config: Mapping[str, Any]) -> str | None:
    """The first suite (in the order workloads declare them) whose run this config is, if any: its preset
    unchanged, at the suite's fraction and epochs, with the default workers, seed, timing, precision, eager
    and memory format."""
    workload = str(config.get("workload"))
    for name, entries in suites().items():
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
