"""A run's config identity: a short, stable hash of everything that decides what it computes.

Two runs with the same config_id did the same work, whatever machine ran
them; that is what "like for like" means in comparisons, baselines and
alerts. Nothing about the machine goes in (device, host, driver, versions):
those are what a comparison compares. The inputs are listed in docs/cli.md;
changing them changes CONFIG_ID_VERSION, which is hashed too, so ids of
different definitions never meet. A workload whose code changes the work it
does raises its own `revision`, hashed from 1 on: its ids change, no other
workload's do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from benchd.catalog import WORKLOADS

CONFIG_ID_VERSION = 1
PRECISION = "float32"  # what an fp32 run reports, and every run before precision modes (workloads/training)

# Switches that change how the work runs, hashed only when on: every id from before they existed stays.
_SWITCHES = ("compile", "channels_last", "deterministic")

# The run config's fields that decide the work (the preset's name does not: its batch size and
# options do, so an overridden preset equal to another is the same work).
_CONFIG_FIELDS = ("workload", "batch_size", "options", "epochs", "fraction", "workers", "seed", "timing")


def identity(
    config: Mapping[str, Any], data: Mapping[str, Any], revision: int | None = None
) -> dict[str, Any]:
    """What the id is a hash of: the config's deciding fields, precision and switches, the workload's
    revision (once raised; the installed code's unless a figure measured on another is named), and the
    data's identity."""
    revision = workload_revision(config.get("workload")) if revision is None else revision
    return {
        "version": CONFIG_ID_VERSION,
        **({"revision": revision} if revision else {}),
        **{name: config.get(name) for name in _CONFIG_FIELDS},
        "precision": config.get("precision", PRECISION),
        **{name: True for name in _SWITCHES if config.get(name)},
        "data": data.get("kind"),
        "dataset": data.get("fingerprint"),
    }


def workload_revision(name: Any) -> int:
    """The revision of the workload's code that this benchd runs; 0 for a workload it does not know."""
    workload = WORKLOADS.get(name) if isinstance(name, str) else None
    return workload.revision if workload is not None else 0


def config_id(config: Mapping[str, Any], data: Mapping[str, Any], revision: int | None = None) -> str:
    """12 hex characters of the SHA-256 of the identity as canonical JSON."""
    canonical = json.dumps(identity(config, data, revision), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
