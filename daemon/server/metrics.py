"""The Prometheus metrics contract (docs/metrics.md), computed from what the daemon holds.

A custom collector, so a scrape reads in-memory state and nothing else: no
store query, no sensor, no benchmark. Labels stay low-cardinality (workload,
preset, device, outcome); names, versions and drivers live on info metrics.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from benchd import __version__
from benchd import metric_contract as contract
from benchd.health.book import HealthBook
from benchd.health.verdict import HEALTH_STATES, DeviceVerdict
from benchd.lifecycle.queue import RunQueue
from benchd.results.model import OUTCOMES, Outcome
from benchd.results.store import ResultsStore
from benchd.server.scoreboard import Scoreboard, Snapshot
from benchd.telemetry.nvidia import CLOCK_EVENT_REASONS
from benchd.telemetry.sampler import Sampler

CLOCK_EVENTS = tuple(name for name in CLOCK_EVENT_REASONS.values() if name != "gpu_idle")

# Run.energy_summary() keys of the last ok run, on the run's own device domain, and their families.
EPOCH_SENSOR_METRICS = {
    "energy_joules": "benchd_epoch_energy_joules",
    "average_power_watts": "benchd_epoch_average_power_watts",
    "peak_power_watts": "benchd_epoch_peak_power_watts",
    "max_temperature_celsius": "benchd_epoch_max_temperature_celsius",
}
# Run.slowdown_summary() keys of the last ok run: what explains its speed (docs/metrics.md, "Why slow").
SLOWDOWN = {
    "mean_sm_clock_hertz": "benchd_epoch_mean_sm_clock_hertz",
    "min_sm_clock_hertz": "benchd_epoch_min_sm_clock_hertz",
    "mean_memory_clock_hertz": "benchd_epoch_mean_memory_clock_hertz",
    "min_memory_clock_hertz": "benchd_epoch_min_memory_clock_hertz",
    "power_limit_watts": "benchd_epoch_power_limit_watts",
}
PCIE_LINK = {"generation": "benchd_epoch_pcie_link_generation", "width": "benchd_epoch_pcie_link_width"}
# Reading fields exported live, per domain.
LIVE_SENSOR_METRICS = {
    "temperature_celsius": "benchd_sensor_temperature_celsius",
    "power_watts": "benchd_sensor_power_watts",
    "memory_used_bytes": "benchd_sensor_memory_used_bytes",
    "utilization_ratio": "benchd_sensor_utilization_ratio",
    "sm_clock_hertz": "benchd_sensor_sm_clock_hertz",
    "memory_clock_hertz": "benchd_sensor_memory_clock_hertz",
    "power_limit_watts": "benchd_sensor_power_limit_watts",
}


def _declared(name: str, *kinds: str) -> contract.Metric:
    """The contract's entry for `name`, which must be of one of these kinds (the family type used for it)."""
    declared = contract.metric(name)
    if declared.kind not in kinds:
        raise TypeError(f"{name} is declared a {declared.kind}, not a {' or '.join(kinds)}")
    return declared


# Families as the contract declares them (benchd.metric_contract): type, help and label names.
def gauge_family(name: str) -> GaugeMetricFamily:
    declared = _declared(name, contract.GAUGE, contract.STATESET)
    return GaugeMetricFamily(declared.family, declared.help, labels=list(declared.labels))


def counter_family(name: str) -> CounterMetricFamily:
    declared = _declared(name, contract.COUNTER)
    return CounterMetricFamily(declared.family, declared.help, labels=list(declared.labels))


def histogram_family(name: str) -> HistogramMetricFamily:
    declared = _declared(name, contract.HISTOGRAM)
    return HistogramMetricFamily(declared.family, declared.help, labels=list(declared.labels))


def info_family(name: str) -> InfoMetricFamily:
    """No fixed labels: each sample's labels come as its info dict, in the declared order."""
    declared = _declared(name, contract.INFO)
    return InfoMetricFamily(declared.family, declared.help)


@dataclass
class DaemonFacts:
    """Slow-changing facts filled in by the daemon as it learns them."""

    torch_version: str | None = None
    devices: list[dict] | None = None
    probe_error: str | None = None
    schedule_periods: dict[tuple[str, str], float] | None = None
    host: dict[str, Any] | None = None  # hostinfo.describe_host(), read once at start
    identities: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)  # NVML, read at start
    next_fire: Callable[[], dict[str, float]] | None = None  # the scheduler's next firing per schedule


class BenchdCollector(Collector):
    def __init__(
        self,
        scoreboard: Scoreboard,
        queue: RunQueue,
        store: ResultsStore,
        facts: Callable[[], DaemonFacts],
        sampler: Sampler | None = None,
        health: HealthBook | None = None,
    ) -> None:
        self._scoreboard = scoreboard
        self._health = health
        self._queue = queue
        self._store = store
        self._facts = facts
        self._sampler = sampler

    def collect(self) -> Iterator[Metric]:
        facts = self._facts()
        board = self._scoreboard.snapshot()
        yield from self._info(facts, board.devices, board.power_limits)
        yield from self._series(board)
        yield from self._results(board)
        yield from self._slowdown(board)
        if self._health is not None:
            yield from self._verdicts(self._health.verdicts(time.time(), facts.schedule_periods))
            yield self._fingerprints(self._health)

        waiting = gauge_family("benchd_queue_length")
        waiting.add_metric([], self._queue.queue_length())
        yield waiting

        interval = gauge_family("benchd_schedule_interval_seconds")
        for (workload, preset), seconds in sorted((facts.schedule_periods or {}).items()):
            interval.add_metric([workload, preset], seconds)
        yield interval
        upcoming = gauge_family("benchd_schedule_next_timestamp_seconds")
        for schedule, moment in sorted((facts.next_fire() if facts.next_fire else {}).items()):
            upcoming.add_metric([schedule], moment)
        yield upcoming

        health = gauge_family("benchd_collector_up")
        health.add_metric(["store"], 1.0 if self._store.writable else 0.0)
        health.add_metric(["device_probe"], 0.0 if facts.probe_error else 1.0)
        health.add_metric(["queue"], 0.0 if self._queue.worker_failure() else 1.0)
        yield health
        if self._sampler is not None:
            yield from self._sensors(self._sampler)

    @staticmethod
    def _verdicts(verdicts: list[DeviceVerdict]) -> Iterator[Metric]:
        """Each device's verdict, the config and band it comes from, how far off and since when."""
        states = gauge_family("benchd_device_health")
        info = info_family("benchd_device_health_info")
        ratio = gauge_family("benchd_device_health_ratio")
        since = gauge_family("benchd_device_health_since_timestamp_seconds")
        for verdict in verdicts:
            for state in HEALTH_STATES:
                states.add_metric([verdict.device, state], 1.0 if state == verdict.state else 0.0)
            deciding = verdict.deciding
            if deciding is None:
                continue
            band = deciding.band.source.value if deciding.band is not None else ""
            info.add_metric([], {"device": verdict.device, "state": verdict.state.value, "band": band,
                                 "workload": deciding.workload, "preset": deciding.preset,
                                 "config": deciding.config})  # fmt: skip
            BenchdCollector._add_present(ratio, [verdict.device], deciding.ratio)
            BenchdCollector._add_present(since, [verdict.device], deciding.since)
        yield from (states, info, ratio, since)

    @staticmethod
    def _fingerprints(health: HealthBook) -> Metric:
        """Each device's latest deterministic fingerprint per config and stack: the fleet's votes."""
        info = info_family("benchd_determinism_info")
        for (config, stack), voter in sorted(
            health.fingerprints(), key=lambda pair: (pair[0], pair[1].device)
        ):
            labels = {"workload": voter.workload, "preset": voter.preset, "device": voter.device}
            info.add_metric(
                [], {**labels, "config": config, "stack": stack, "fingerprint": voter.fingerprint}
            )
        return info

    def _series(self, board: Snapshot) -> Iterator[Metric]:
        """How runs end, per workload, preset and device, whatever their config."""
        runs = counter_family("benchd_runs_total")
        for (workload, preset, device, outcome), count in sorted(board.outcomes.items()):
            runs.add_metric([workload, preset, device, outcome], count)
        yield runs
        contended = counter_family("benchd_contended_runs_total")
        for key, count in sorted(board.contended.items()):
            contended.add_metric(list(key), count)
        yield contended
        spent = counter_family("benchd_benchmark_seconds_total")
        for device, seconds in sorted(board.benchmark_seconds.items()):
            spent.add_metric([device], seconds)
        yield spent
        state_set = gauge_family("benchd_last_run_outcome")
        success = gauge_family("benchd_last_run_success")
        finished = gauge_family("benchd_last_run_timestamp_seconds")
        succeeded = gauge_family("benchd_last_success_timestamp_seconds")  # fmt: skip
        in_progress = gauge_family("benchd_run_in_progress")
        active = {(a.config.workload, a.config.preset, a.device) for a in self._queue.active_runs()}
        for key in sorted(set(board.series) | active):
            labels = list(key)
            in_progress.add_metric(labels, 1.0 if key in active else 0.0)
            state = board.series.get(key)
            if state is None or state.last_outcome is None:
                continue
            for outcome in OUTCOMES:
                state_set.add_metric([*labels, outcome], 1.0 if outcome == state.last_outcome else 0.0)
            success.add_metric(labels, 1.0 if state.last_outcome == Outcome.OK else 0.0)
            finished.add_metric(labels, state.last_finished_at or 0.0)
            if state.last_success_at is not None:
                succeeded.add_metric(labels, state.last_success_at)
        yield from (state_set, success, finished, succeeded, in_progress)

    def _results(self, board: Snapshot) -> Iterator[Metric]:
        """What each config measured on each device: only like-for-like figures share a series."""
        families = {
            "epoch": gauge_family("benchd_last_epoch_duration_seconds"),
            "contended_epoch": gauge_family("benchd_last_contended_epoch_duration_seconds"),
            "phase": gauge_family("benchd_last_epoch_phase_seconds"),
            "fraction": gauge_family("benchd_epoch_fraction_ratio"),
            "throughput": gauge_family("benchd_throughput_samples_per_second"),
            "device_memory": gauge_family("benchd_peak_device_memory_bytes"),
            "host_memory": gauge_family("benchd_peak_host_memory_bytes"),
            **{key: gauge_family(name) for key, name in EPOCH_SENSOR_METRICS.items()},
            "baseline": gauge_family("benchd_baseline_epoch_duration_seconds"),
            "spread": gauge_family("benchd_baseline_epoch_spread_ratio"),
            "baseline_runs": gauge_family("benchd_baseline_runs"),
            "variation": gauge_family("benchd_runs_variation_ratio"),
            "unstable": gauge_family("benchd_unstable"),
            "flops": gauge_family("benchd_flops_per_second"),
            "mfu": gauge_family("benchd_mfu_ratio"),
            "compile": gauge_family("benchd_compile_seconds"),
        }
        histogram = histogram_family("benchd_epoch_duration_seconds")
        info = info_family("benchd_config_info")
        described: set[str] = set()
        for key, result in sorted(board.results.items()):
            values = list(key)
            if result.epochs.count:  # a config seen only beside foreign load has no clean epoch to count
                histogram.add_metric(values, result.epochs.cumulative(), result.epochs.total)
            if key[3] not in described:
                described.add(key[3])
                info.add_metric([], {"config": key[3], **result.info})
            self._add_present(families["contended_epoch"], values, result.contended_epoch_seconds)
            if result.epoch_seconds is None:
                continue
            self._add_present(families["epoch"], values, result.epoch_seconds)
            for phase, seconds in sorted(result.phases.items()):
                families["phase"].add_metric([*values, phase], seconds)
            self._add_present(families["fraction"], values, result.fraction)
            self._add_present(
                families["throughput"], [*values, result.sample_unit or ""], result.samples_per_second
            )
            self._add_present(families["device_memory"], values, result.peak_device_bytes)
            self._add_present(families["host_memory"], values, result.peak_host_bytes)
            for figure in EPOCH_SENSOR_METRICS:
                self._add_present(families[figure], values, result.sensors.get(figure))
            baseline = result.baseline()
            if baseline is not None:
                families["baseline"].add_metric(values, baseline[0])
                families["spread"].add_metric(values, baseline[1])
                families["baseline_runs"].add_metric(values, baseline[2])
            repeats = result.repeats()
            if repeats is not None:
                families["variation"].add_metric(values, repeats.cv)
                families["unstable"].add_metric(values, float(repeats.unstable))
            self._add_present(families["flops"], values, result.compute.get("flops_per_second"))
            self._add_present(families["mfu"], values, result.compute.get("mfu_ratio"))
            self._add_present(families["compile"], values, result.compute.get("compile_seconds"))
        yield info
        yield from families.values()
        yield histogram

    def _slowdown(self, board: Snapshot) -> Iterator[Metric]:
        """Why each config's last ok run was as fast as it was: throttling, clocks, limits, the link."""
        throttled = gauge_family("benchd_epoch_throttle_seconds")
        figures = {key: gauge_family(name) for key, name in SLOWDOWN.items()}
        link = {part: gauge_family(name) for part, name in PCIE_LINK.items()}
        for key, result in sorted(board.results.items()):
            if result.epoch_seconds is None:
                continue
            values = list(key)
            for reason, seconds in sorted(result.slowdown.get("throttle_seconds", {}).items()):
                throttled.add_metric([*values, reason], seconds)
            for figure, family in figures.items():
                self._add_present(family, values, result.slowdown.get(figure))
            for part, family in link.items():
                self._add_present(family, values, (result.slowdown.get("pcie_link") or {}).get(part))
        yield throttled
        yield from figures.values()
        yield from link.values()

    @staticmethod
    def _sensors(sampler: Sampler) -> Iterator[Metric]:
        """Live readings (the sampler's latest) and each backend's health."""
        up = gauge_family("benchd_sensor_up")  # fmt: skip
        errors = counter_family("benchd_sensor_errors_total")
        for state in sampler.availability:
            up.add_metric([state.sensor], 1.0 if state.available else 0.0)
            if state.available:
                errors.add_metric([state.sensor], sampler.errors.get(state.sensor, 0))
        yield up
        yield errors
        # `device`, as on every other family: a torch device id (cpu, cuda:0) or a part of the CPU that has
        # a sensor of its own (RAPL's package-0, dram-0).
        live = {field: gauge_family(name) for field, name in LIVE_SENSOR_METRICS.items()}
        energy = counter_family("benchd_sensor_energy_joules_total")  # fmt: skip
        events = gauge_family("benchd_sensor_clock_event_active")
        for domain, reading in sorted(sampler.latest().items()):
            for field, family in live.items():
                value = getattr(reading, field)
                if value is not None:
                    family.add_metric([domain], float(value))
            if reading.energy_joules is not None:
                energy.add_metric([domain], reading.energy_joules)
            if reading.sm_clock_hertz is not None:  # a device that reports clocks reports their events
                for reason in CLOCK_EVENTS:
                    events.add_metric([domain, reason], 1.0 if reason in reading.throttle_reasons else 0.0)
        yield from live.values()
        yield energy
        yield events

    @staticmethod
    def _add_present(family: GaugeMetricFamily, labels: list[str], value: float | None) -> None:
        """A figure nobody measured is absent from the scrape, never 0."""
        if value is not None:
            family.add_metric(labels, float(value))

    def _info(
        self, facts: DaemonFacts, seen_devices: dict[str, dict[str, str]], power_limits: dict[str, float]
    ) -> Iterator[Metric]:
        build = info_family("benchd_build_info")
        build.add_metric(
            [],
            {
                "version": __version__,
                "python_version": platform.python_version(),
                "torch_version": facts.torch_version or "unknown",
            },
        )
        yield build
        devices = info_family("benchd_device_info")
        known: dict[str, dict[str, str]] = dict(seen_devices)
        for device in facts.devices or []:
            known.setdefault(
                device["id"],
                {"device": device["id"], "type": device["type"], "name": device["name"], "uuid": "",
                 "mig_uuid": "", "driver_version": "", "torch_version": facts.torch_version or ""},
            )  # fmt: skip
        for device_id, labels in sorted(known.items()):
            # The GPU's UUID (and MIG instance's) from NVML at start: the key dcgm-exporter's series join on.
            devices.add_metric([], {**labels, **facts.identities.get(device_id, {})})
        yield devices
        yield from self._host(facts.host)
        limits = gauge_family("benchd_device_power_limit_watts")
        for device_id, watts in sorted(power_limits.items()):
            limits.add_metric([device_id], watts)
        yield limits

    @staticmethod
    def _host(host: dict[str, Any] | None) -> Iterator[Metric]:
        if not host:
            return
        info = info_family("benchd_host_info")
        info.add_metric(
            [],
            {
                name: str(host.get(name) or "")
                for name in ("hostname", "os", "kernel", "machine", "cpu", "image")
            },
        )
        yield info
        memory = gauge_family("benchd_host_memory_bytes")
        memory.add_metric([], float(host.get("memory_bytes") or 0))
        yield memory
        cpus = gauge_family("benchd_host_logical_cpus")
        cpus.add_metric([], float(host.get("logical_cpus") or 0))
        yield cpus


def build_registry(collector: Collector) -> CollectorRegistry:
    """Our collector plus the daemon's own process figures (its footprint matters too)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry
