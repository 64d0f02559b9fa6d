"""Bands other than a device's own: reference bands (shipped, and added from bundles) and fleet bands.

A reference band says how long a config's representative epoch took on a
known device model, with the machine, software stack and date it was
measured, so an operator can judge how far to trust it. benchd ships some
(reference_bands.json); `benchd bands add BUNDLE` adds the bundle's own, kept in the
data directory's bands.json. A fleet band is the median and spread across
hosts of the same device model and config, read from bundles or Prometheus
as `benchd compare` reads them.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from benchd import userfiles
from benchd.comparison.results import Result
from benchd.health.verdict import Band, BandSource
from benchd.results.baseline import relative_spread
from benchd.results.model import Outcome
from benchd.userfiles import MIB

BANDS_FILE = "bands.json"  # in the data directory: the bands `benchd bands add` kept
SHIPPED_FILE = "reference_bands.json"  # in this package
MAX_BANDS_BYTES = 4 * MIB
MIN_FLEET_HOSTS = 3  # fewer hosts are peers to compare with, not a fleet's median

BandKey = tuple[str, str]  # device model (name), config id


class BandsError(Exception):
    """A bands file or bundle that cannot give bands: names the file and what is wrong."""


@dataclass(frozen=True)
class ReferenceBand:
    """One config's measured figure on one device model, and where it was measured."""

    device_type: str
    device_name: str
    config: str  # config id
    workload: str
    preset: str
    timing: str  # reference or device: what the figure covers (docs/workloads.md)
    median_seconds: float
    spread: float  # median absolute deviation over the median; 0 for one run
    runs: int
    machine: str
    software: str
    measured: str  # the date of its last run, YYYY-MM-DD
    origin: str  # "shipped", or the bundle it was added from

    @property
    def key(self) -> BandKey:
        return (self.device_name, self.config)

    def band(self) -> Band:
        detail = f"{self.device_name}, {self.machine}, {self.software}, {self.measured}"
        return Band(BandSource.REFERENCE, self.median_seconds, self.spread, self.runs, detail)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shipped() -> list[ReferenceBand]:
    """The bands benchd ships (reference_bands.json: one run each, so no spread), each with its config id
    as this benchd's catalog computes it from the request that ran it and the workload revision it was
    measured at: a figure of an older revision keeps that revision's id, so no run of today's work is
    judged against it until it is measured again."""
    from benchd.catalog.identity import config_id
    from benchd.catalog.request import parse

    found = []
    for entry in json.loads(resources.files(__package__).joinpath(SHIPPED_FILE).read_text())["bands"]:
        configs = {c.preset: c for c in parse(dict(entry["request"])).configs()}
        config = configs[entry["preset"]]
        data = {"kind": "synthetic", "fingerprint": entry["data"]}
        identity = config_id(config.to_json(), data, entry["revision"])
        found.append(ReferenceBand(
            entry["device_type"], entry["device_name"], identity, config.workload, config.preset,
            config.timing, entry["median_seconds"], 0.0, 1, entry["machine"], entry["software"],
            entry["measured"], "shipped",
        ))  # fmt: skip
    return found


def added(data_dir: Path) -> list[ReferenceBand]:
    """The bands `benchd bands add` kept in this data directory."""
    path = data_dir / BANDS_FILE
    if not path.exists():
        return []
    try:
        entries = json.loads(userfiles.read_text(path, MAX_BANDS_BYTES, "bands file"))["bands"]
        return [ReferenceBand(**entry) for entry in entries]
    except userfiles.UserFileError as exc:
        raise BandsError(str(exc)) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise BandsError(f"{path}: not a benchd bands file ({exc})") from None


def references(data_dir: Path) -> dict[BandKey, Band]:
    """Every reference band by device model and config; one added from a bundle wins over a shipped one."""
    return {entry.key: entry.band() for entry in [*shipped(), *added(data_dir)]}


def from_results(found: Iterable[Result], origin: str) -> list[ReferenceBand]:
    """A band per device model and config from measured results (one bundle's runs): the median and spread
    of their ok, uncontended representative epochs."""
    groups: dict[BandKey, list[Result]] = defaultdict(list)
    for result in found:
        if _clean(result):
            assert result.config_id is not None
            groups[(result.column.device_name, result.config_id)].append(result)
    bands = []
    for (device_name, config), results in sorted(groups.items()):
        seconds = [r.epoch_seconds for r in results if r.epoch_seconds is not None]
        latest = max(results, key=lambda r: r.finished_at)
        software = ", ".join(f"{name} {version}" for name, version in sorted(latest.software.items()))
        measured = datetime.fromtimestamp(latest.finished_at, timezone.utc).strftime("%Y-%m-%d")
        bands.append(ReferenceBand(
            latest.column.device_type, device_name, config, latest.workload, latest.preset,
            latest.labels.get("timing", ""), statistics.median(seconds), relative_spread(seconds),
            len(seconds), latest.machine or latest.column.host, software, measured, origin,
        ))  # fmt: skip
    return bands


def add(data_dir: Path, new: list[ReferenceBand]) -> None:
    """Keep `new` in the data directory's bands file, replacing any earlier band of the same key."""
    keys = {band.key for band in new}
    kept = [band for band in added(data_dir) if band.key not in keys] + new
    text = json.dumps({"bands": [band.to_json() for band in kept]}, indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(dir=data_dir, prefix=".bands-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, data_dir / BANDS_FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def fleet(found: Iterable[Result]) -> dict[BandKey, Band]:
    """The fleet's band per device model and config: the median of each host's median, and their spread,
    where at least MIN_FLEET_HOSTS hosts measured it."""
    per_host: dict[BandKey, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for result in found:
        if _clean(result) and result.epoch_seconds is not None and result.config_id is not None:
            per_host[(result.column.device_name, result.config_id)][result.column.host].append(
                result.epoch_seconds
            )
    bands = {}
    for key, hosts in per_host.items():
        if len(hosts) < MIN_FLEET_HOSTS:
            continue
        medians = [statistics.median(seconds) for seconds in hosts.values()]
        detail = f"{key[0]} on {len(medians)} hosts"
        bands[key] = Band(
            BandSource.FLEET, statistics.median(medians), relative_spread(medians), len(medians), detail
        )
    return bands


def _clean(result: Result) -> bool:
    return result.outcome == Outcome.OK and not result.contended and result.config_id is not None


def for_device(
    device_name: str, config: str, tables: Mapping[BandSource, Mapping[BandKey, Band]]
) -> dict[BandSource, Band]:
    """The external bands that apply to a config on a device model."""
    return {
        source: table[(device_name, config)]
        for source, table in tables.items()
        if (device_name, config) in table
    }
