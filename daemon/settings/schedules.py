"""The `[workloads.NAME]` tables: when each workload runs on its own, and the run request it makes.

A table holds when (interval or cron, how many repeats, a spread) and what
(the run request model's fields: suite or presets, device, timeout, ...),
checked by the same model the API and the CLI use. Without a [workloads]
table the embedded default applies: every registered workload in the
default suite at the interval it declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from benchd import catalog
from benchd.catalog import WORKLOADS, suites
from benchd.catalog.spec import MIN_TIMEOUT_SECONDS
from benchd.settings.cron import CronError, CronExpression
from benchd.settings.values import ConfigError, boolean, number, parse_duration

if TYPE_CHECKING:
    from benchd.catalog.request import RunRequestFields

MIN_INTERVAL_SECONDS = 60.0
SCHEDULE_TIMING_KEYS = {"interval", "cron", "parallel_devices", "repeat", "spread"}
MAX_REPEAT = 100
ALL_DEVICES = "all"


@dataclass(frozen=True)
class Schedule:
    """When one workload's presets run on their own (interval or cron), and the request they make."""

    workload: str
    request: RunRequestFields
    presets: tuple[str, ...]
    interval_seconds: float | None
    cron: CronExpression | None
    devices: tuple[str, ...] = ("auto",)  # as configured: a device, several, or "all" (every accelerator)
    parallel_devices: bool = False  # several devices: all at once, or one after another
    repeat: int = 1  # runs of each config per firing, each in a fresh child: their spread is the noise
    spread_seconds: float = 0.0  # fire times offset by a stable hash of the host's name within this window

    def period_seconds(self, now: datetime) -> float:
        if self.cron is not None:
            return self.cron.typical_interval(now)
        assert self.interval_seconds is not None
        return self.interval_seconds


def default_workloads() -> dict[str, dict[str, Any]]:
    """The embedded default: every workload in the default suite (catalog/suites.py) at the interval it
    declares (`Workload.schedule`), so every host that runs benchd unconfigured measures the same work."""
    return {
        workload.name: {"interval": workload.schedule, "suite": suites.DEFAULT_SUITE}
        for workload in WORKLOADS.values()
        if workload.schedule is not None and suites.DEFAULT_SUITE in workload.suites
    }


def run_timeout(key: str, value: Any) -> float:
    seconds = parse_duration(key, value)
    if seconds < MIN_TIMEOUT_SECONDS:
        raise ConfigError(key, f"must be at least {MIN_TIMEOUT_SECONDS:g}s: a run cannot even start in less")
    return seconds


def schedules(tables: Any, default_timeout: float) -> tuple[Schedule, ...]:
    if not isinstance(tables, Mapping):
        raise ConfigError("workloads", "must be a table")
    found = []
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"workloads.{name}", "must be a table")
        found.append(_schedule(name, table, default_timeout))
    return tuple(found)


def _schedule(name: str, table: Mapping[str, Any], default_timeout: float) -> Schedule:
    """A [workloads.NAME] table: when (interval or cron), and what to run, by the request model's rules."""
    from benchd.catalog import request as request_model  # pydantic: only when there is a config to read

    key = f"workloads.{name}"
    known = SCHEDULE_TIMING_KEYS | set(request_model.RunRequestFields.model_fields) - {"workload"}
    for field in table:
        if field not in known:
            raise ConfigError(f"{key}.{field}", f"unknown key; known keys: {', '.join(sorted(known))}")
    if ("interval" in table) == ("cron" in table):
        raise ConfigError(key, "needs exactly one of interval or cron")
    interval = cron = None
    if "interval" in table:
        interval = parse_duration(f"{key}.interval", table["interval"])
        if interval < MIN_INTERVAL_SECONDS:
            raise ConfigError(f"{key}.interval", "must be at least a minute (60s), as often as cron can fire")
    else:
        try:
            cron = CronExpression.parse(str(table["cron"]))
        except CronError as exc:
            raise ConfigError(f"{key}.cron", str(exc)) from None
    values = {k: v for k, v in table.items() if k not in SCHEDULE_TIMING_KEYS}
    values["timeout"] = run_timeout(f"{key}.timeout", table.get("timeout", default_timeout))
    devices = _devices(key, values.pop("device", "auto"))
    try:
        request = request_model.parse({"workload": name, **values})
        configs = request.configs()
        for device in devices:  # each checked as the request model checks one
            if device != ALL_DEVICES:
                request_model.parse({"workload": name, "device": device})
    except catalog.CatalogError as exc:
        where = key if exc.field in ("", "workload") else f"{key}.{exc.field}"
        raise ConfigError(where, exc.reason) from None
    parallel = boolean(f"{key}.parallel_devices", table.get("parallel_devices", False))
    repeat = number(f"{key}.repeat", table.get("repeat", 1), int, 1, MAX_REPEAT)
    spread = parse_duration(f"{key}.spread", table.get("spread", 0))
    period = interval if interval is not None else 24 * 3600.0
    if spread > period:
        raise ConfigError(f"{key}.spread", "must not be longer than the schedule's interval (a day for cron)")
    presets = tuple(c.preset for c in configs)
    return Schedule(name, request, presets, interval, cron, devices, parallel, repeat, spread)


def _devices(key: str, value: Any) -> tuple[str, ...]:
    """`device`: one device, a list of them, or "all" (every accelerator the host has, else the CPU)."""
    chosen = value if isinstance(value, list) else [value]
    if not chosen or not all(isinstance(device, str) for device in chosen) or len(chosen) > 64:
        raise ConfigError(f"{key}.device", 'must be a device, a list of 1 to 64 devices, or "all"')
    if ALL_DEVICES in chosen and len(chosen) > 1:
        raise ConfigError(f"{key}.device", '"all" already means every device; list devices or say "all"')
    return tuple(dict.fromkeys(chosen))
