"""Results bundles: one host's runs in one JSON file, for comparing machines without a shared server.

A bundle is what `benchd export` writes and `benchd compare` and `benchd
report` read. Its layout is versioned (BUNDLE_VERSION) and described by the
JSON Schema in docs/bundle.schema.json; a reader refuses a version it does not
know rather than guessing at its fields. Reading is torch-free and checks
enough that a bad file is one line naming the file and the problem.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchd import __version__, userfiles
from benchd.results.model import OUTCOMES, Run, State
from benchd.userfiles import MIB

STATES = tuple(State)

BUNDLE_FORMAT = "benchd-results"
BUNDLE_VERSION = 1
MAX_EPOCH_SECONDS = 365 * 24 * 3600.0  # an epoch longer than a year is not a measurement
# A year of a busy fleet node's runs is a few MB; 64 MiB is over ten years of it. The largest bundle under
# the cap compares in 11 s and 373 MiB on the 2-core VM (benchmarks/bundle_compare.py).
MAX_BUNDLE_BYTES = 64 * MIB


class BundleError(Exception):
    """A bundle that cannot be read: names the file and what is wrong with it."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass(frozen=True)
class Bundle:
    """One host's description and runs, with where they were read from."""

    source: str
    host: dict[str, Any]
    runs: list[Run]
    exported_at: float

    @property
    def hostname(self) -> str:
        return str(self.host.get("hostname") or "unknown host")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "benchd_version": __version__,
            "exported_at": self.exported_at,
            "host": self.host,
            "runs": [run.to_json() for run in self.runs],
        }


def host_of(runs: list[Run], fallback: dict[str, Any]) -> dict[str, Any]:
    """The host the runs describe: the newest run's `system` without its per-run software, else fallback."""
    for run in sorted(runs, key=lambda r: r.id, reverse=True):
        if run.system and run.system.get("hostname"):
            return dict(run.system)
    return fallback


def make_bundle(runs: list[Run], fallback_host: dict[str, Any], source: str) -> Bundle:
    return Bundle(source, host_of(runs, fallback_host), runs, time.time())


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_bundle(text: str, source: str) -> Bundle:
    """A bundle from its JSON text; BundleError names what is wrong."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BundleError(source, "nested too deeply to be a bundle") from None
    except ValueError as exc:
        raise BundleError(source, f"not valid JSON (truncated?): {exc}") from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise BundleError(source, f'not a benchd results bundle (no "format": "{BUNDLE_FORMAT}")')
    version = data.get("version")
    if version != BUNDLE_VERSION:
        raise BundleError(
            source, f"bundle version {version!r}; this benchd reads version {BUNDLE_VERSION} (benchd export)"
        )
    host, runs = data.get("host"), data.get("runs")
    if not isinstance(host, dict) or not isinstance(host.get("hostname"), str) or not host["hostname"]:
        raise BundleError(source, "host.hostname is missing")
    if not isinstance(runs, list):
        raise BundleError(source, "runs is not a list")
    exported_at = data.get("exported_at")
    if not isinstance(exported_at, int | float) or not math.isfinite(exported_at):
        raise BundleError(source, "exported_at is not a time")
    return Bundle(source, host, [_run(item, index, source) for index, item in enumerate(runs)], exported_at)


_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "None": (type(None),),
    "dict": (dict,),
    "list": (list,),
}


def _check_types(record: Any) -> None:
    """Every field of a Run or Epoch holds what its annotation says (no bool for a number, finite floats)."""
    for spec in dataclasses.fields(record):
        value = getattr(record, spec.name)
        allowed = [part.strip().split("[", 1)[0] for part in str(spec.type).split("|")]
        kinds = tuple(kind for name in allowed for kind in _TYPES.get(name, (object,)))
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise TypeError(f"{spec.name} is {type(value).__name__}, not {' or '.join(allowed)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{spec.name} is not a finite number")


def _run(item: Any, index: int, source: str) -> Run:
    """A bundle's run, checked field by field and then used the way compare and report use it, so that
    a bad record is refused here, naming it, rather than failing somewhere in the table."""
    try:
        if not isinstance(item, dict):
            raise TypeError("not an object")
        run = Run.from_json(item)
        _check_types(run)
        for epoch in run.epochs:
            _check_types(epoch)
            if not 0 <= epoch.duration_seconds <= MAX_EPOCH_SECONDS:
                raise ValueError(f"epoch {epoch.index}: duration_seconds is not seconds between 0 and a year")
        if run.outcome is not None and run.outcome not in OUTCOMES:
            raise ValueError(f"outcome {run.outcome[:20]!r} is not one of {', '.join(OUTCOMES)}")
        if run.state not in STATES:
            raise ValueError(f"state {run.state[:20]!r} is not one of {', '.join(STATES)}")
        if not 0 < run.fraction <= 1:
            raise ValueError(f"fraction {str(run.fraction)[:20]} is not in (0, 1]")
        run.to_json()  # every derived figure: summary, sensors, slowdown, setup, config labels
        run.config_labels()
        return run
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise BundleError(source, f"runs[{index}] is not a run: {exc}") from None


def read_bundle(path: Path) -> Bundle:
    try:
        text = userfiles.read_text(path, MAX_BUNDLE_BYTES, "bundle")
    except userfiles.UserFileError as exc:
        raise BundleError(str(path), str(exc).split(": ", 1)[-1]) from None
    return parse_bundle(text, str(path))
