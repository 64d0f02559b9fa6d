"""Results from a Prometheus server that scrapes benchd daemons: the fleet's table without bundles.

Instant queries over Prometheus' HTTP API (standard library only) read the
same figures the dashboards show: each config's representative epoch and
fraction (`benchd_last_epoch_duration_seconds`, `benchd_epoch_fraction_ratio`),
what each config is (`benchd_config_info`), each device (`benchd_device_info`)
and host (`benchd_host_info`), the per-epoch sensor figures, and the last
outcome where it was a failure. They become the same records a bundle gives,
so the table is built by the same code.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from benchd.comparison.results import Column, Result
from benchd.metric_contract import series
from benchd.results.model import FAILED_OUTCOMES

TIMEOUT_SECONDS = 30.0
SeriesKey = tuple[str, str, str, str, str]  # instance, workload, preset, device, config
EXTRA_METRICS = {
    "memory": series("benchd_peak_device_memory_bytes"),
    "temperature": series("benchd_epoch_max_temperature_celsius"),
    "power": series("benchd_epoch_average_power_watts"),
    "energy": series("benchd_epoch_energy_joules"),
    "flops": series("benchd_flops_per_second"),
    "mfu": series("benchd_mfu_ratio"),
}


class PrometheusError(Exception):
    """The server could not be reached or refused a query; the message says which."""


def instant(url: str, expr: str) -> list[dict[str, Any]]:
    """The vector an instant query returns, as Prometheus' JSON gives it."""
    address = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(address, timeout=TIMEOUT_SECONDS) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise PrometheusError(f"{url}: query {expr!r} refused: {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise PrometheusError(f"cannot reach Prometheus at {url}: {getattr(exc, 'reason', exc)}") from None
    except ValueError:
        raise PrometheusError(f"{url}: not a Prometheus server (the answer is not JSON)") from None
    if not isinstance(answer, dict) or answer.get("status") != "success":
        raise PrometheusError(
            f"{url}: query {expr!r} failed: {answer.get('error') if isinstance(answer, dict) else answer}"
        )
    data = answer.get("data") or {}
    return list(data.get("result") or []) if data.get("resultType") == "vector" else []


def _value(sample: dict[str, Any]) -> float | None:
    try:
        value = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _key(metric: dict[str, str]) -> SeriesKey:
    return (metric.get("instance", ""), metric.get("workload", ""), metric.get("preset", ""),
            metric.get("device", ""), metric.get("config", ""))  # fmt: skip


def _by_key(url: str, expr: str) -> dict[SeriesKey, float]:
    return {_key(s["metric"]): v for s in instant(url, expr) if (v := _value(s)) is not None}


def _columns(url: str) -> dict[tuple[str, str], Column]:
    hosts = {
        s["metric"].get("instance", ""): s["metric"].get("hostname", "")
        for s in instant(url, series("benchd_host_info"))
    }
    columns = {}
    for sample in instant(url, series("benchd_device_info")):
        labels = sample["metric"]
        instance, device = labels.get("instance", ""), labels.get("device", "")
        device_type = labels.get("type") or device.split(":")[0]
        columns[(instance, device)] = Column(hosts.get(instance) or instance, device_type,
                                             labels.get("name") or device_type)  # fmt: skip
    return columns


def _column(columns: dict[tuple[str, str], Column], instance: str, device: str) -> Column:
    return columns.get((instance, device)) or Column(instance, device.split(":", maxsplit=1)[0], device)


def results(url: str, include_contended: bool = False) -> list[Result]:
    """Every config's last ok figures on every device of every scraped daemon, and failed last runs;
    with `include_contended`, the last contended figures too (marked contended)."""
    durations = _by_key(url, series("benchd_last_epoch_duration_seconds"))
    contended = (
        _by_key(url, series("benchd_last_contended_epoch_duration_seconds")) if include_contended else {}
    )
    fractions = _by_key(url, series("benchd_epoch_fraction_ratio"))
    extras = {name: _by_key(url, metric) for name, metric in EXTRA_METRICS.items()}
    variations = _by_key(url, series("benchd_runs_variation_ratio"))
    configs = {s["metric"].get("config", ""): s["metric"] for s in instant(url, series("benchd_config_info"))}
    columns = _columns(url)
    found = []
    measured = [(key, seconds, False) for key, seconds in durations.items()]
    for key, seconds, beside_load in measured + [(key, seconds, True) for key, seconds in contended.items()]:
        instance, workload, preset, device, config = key
        fraction = fractions.get(key, 1.0)
        if not 0 < fraction <= 1 or seconds < 0:
            continue  # not a figure benchd exports: someone else's series under benchd's name
        labels = {
            k: v
            for k, v in configs.get(config, {}).items()
            if k not in ("__name__", "instance", "job", "config")
        }
        found.append(Result(
            column=_column(columns, instance, device), workload=workload, preset=preset,
            config_id=config or None, labels=labels, fraction=fraction, outcome="ok",
            epoch_seconds=seconds, finished_at=0.0, contended=beside_load,
            extras={} if beside_load else {name: v[key] for name, v in extras.items() if key in v},
            variation=None if beside_load else variations.get(key),
        ))  # fmt: skip
    failed = "|".join(str(outcome) for outcome in FAILED_OUTCOMES)
    ended = _by_key(url, series("benchd_last_run_timestamp_seconds"))
    for sample in instant(url, f'{series("benchd_last_run_outcome")}{{outcome=~"{failed}"}} == 1'):
        labels = sample["metric"]
        instance, workload, preset, device, _ = _key(labels)
        found.append(Result(
            column=_column(columns, instance, device), workload=workload, preset=preset, config_id=None,
            labels={"workload": workload, "preset": preset}, fraction=1.0,
            outcome=labels.get("outcome", "error"), epoch_seconds=None,
            finished_at=ended.get((instance, workload, preset, device, ""), 0.0),
        ))  # fmt: skip
    return found
