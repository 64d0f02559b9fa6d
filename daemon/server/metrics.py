"""The Prometheus metrics contract (docs/metrics.md), computed from what the daemon holds.

A custom collector, so a scrape reads in-memory state and nothing else: no
store query, no sensor, no benchmark. Labels stay low-cardinality (workload,
preset, device, outcome); names, versions and drivers live on info metrics.
"""

from __future__ import annotations

import dataclasses
import platform
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
from benchd.lifecycle.queue import RunQueue
from benchd.results.baseline import BASELINE_RUNS, UNSTABLE_CV
from benchd.results.model import OUTCOMES, Outcome
from benchd.results.store import ResultsStore
from benchd.server.scoreboard import Scoreboard, Snapshot
from benchd.telemetry.nvidia import CLOCK_EVENT_REASONS
from benchd.telemetry.sampler import Sampler

CLOCK_EVENTS = tuple(name for name in CLOCK_EVENT_REASONS.values() if name != "gpu_idle")

SERIES_LABELS = ["workload", "preset", "device"]

# Run.energy_summary() keys of the last ok run, on the run's own device domain.
EPOCH_SENSOR_METRICS = {
    "energy_joules": ("benchd_epoch_energy_joules", "Energy per epoch of the last ok run (median)."),
    "average_power_watts": (
        "benchd_epoch_average_power_watts",
        "Average power over an epoch of the last ok run (median).",
    ),
    "peak_power_watts": ("benchd_epoch_peak_power_watts", "Highest power sampled during the last ok run."),
    "max_temperature_celsius": (
        "benchd_epoch_max_temperature_celsius",
        "Highest temperature sampled during the last ok run.",
    ),
}
# Run.slowdown_summary() keys of the last ok run: what explains its speed (docs/metrics.md, "Why slow").
SLOWDOWN = {
    "mean_sm_clock_hertz": ("benchd_epoch_mean_sm_clock_hertz", "Mean SM clock over an epoch (median)."),
    "min_sm_clock_hertz": ("benchd_epoch_min_sm_clock_hertz", "Lowest SM clock sampled in those epochs."),
    "mean_memory_clock_hertz": (
        "benchd_epoch_mean_memory_clock_hertz", "Mean memory clock over an epoch (median).",
    ),
    "min_memory_clock_hertz": (
        "benchd_epoch_min_memory_clock_hertz", "Lowest memory clock sampled in those epochs.",
    ),
    "power_limit_watts": ("benchd_epoch_power_limit_watts", "Power limit in force during the last ok run."),
}  # fmt: skip
# Reading fields exported live, per domain.
LIVE_SENSOR_METRICS = {
    "temperature_celsius": ("benchd_sensor_temperature_celsius", "Latest temperature of the device."),
    "power_watts": ("benchd_sensor_power_watts", "Latest power draw of the device."),
    "memory_used_bytes": ("benchd_sensor_memory_used_bytes", "Device memory in use (all processes)."),
    "utilization_ratio": ("benchd_sensor_utilization_ratio", "Latest utilization of the device, 0 to 1."),
    "sm_clock_hertz": ("benchd_sensor_sm_clock_hertz", "Latest SM clock of the device."),
    "memory_clock_hertz": ("benchd_sensor_memory_clock_hertz", "Latest memory clock of the device."),
    "power_limit_watts": ("benchd_sensor_power_limit_watts", "Power limit in force on the device."),
}


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
    ) -> None:
        self._scoreboard = scoreboard
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

        waiting = GaugeMetricFamily("benchd_queue_length", "Runs waiting to start.")
        waiting.add_metric([], self._queue.queue_length())
        yield waiting

        interval = GaugeMetricFamily(
            "benchd_schedule_interval_seconds",
            "Seconds between scheduled runs (for cron, between the next two).",
            labels=["workload", "preset"],
        )
        for (workload, preset), seconds in sorted((facts.schedule_periods or {}).items()):
            interval.add_metric([workload, preset], seconds)
        yield interval
        upcoming = GaugeMetricFamily(
            "benchd_schedule_next_timestamp_seconds",
            "When the schedule fires next (Unix time; its spread and jitter included).",
            labels=["schedule"],
        )
        for schedule, moment in sorted((facts.next_fire() if facts.next_fire else {}).items()):
            upcoming.add_metric([schedule], moment)
        yield upcoming

        health = GaugeMetricFamily(
            "benchd_collector_up", "1 if the collector works, 0 if it is failing.", labels=["collector"]
        )
        health.add_metric(["store"], 1.0 if self._store.writable else 0.0)
        health.add_metric(["device_probe"], 0.0 if facts.probe_error else 1.0)
        health.add_metric(["queue"], 0.0 if self._queue.worker_failure() else 1.0)
        yield health
        if self._sampler is not None:
            yield from self._sensors(self._sampler)

    def _series(self, board: Snapshot) -> Iterator[Metric]:
        """How runs end, per workload, preset and device, whatever their config."""
        runs = CounterMetricFamily(
            "benchd_runs", "Runs that ended, by outcome.", labels=[*SERIES_LABELS, "outcome"]
        )
        for (workload, preset, device, outcome), count in sorted(board.outcomes.items()):
            runs.add_metric([workload, preset, device, outcome], count)
        yield runs
        contended = CounterMetricFamily(
            "benchd_contended_runs",
            "Ok runs measured beside foreign load (counted in benchd_runs_total too; never a baseline).",
            labels=SERIES_LABELS,
        )
        for key, count in sorted(board.contended.items()):
            contended.add_metric(list(key), count)
        yield contended
        spent = CounterMetricFamily(
            "benchd_benchmark_seconds",
            "Time the device spent running benchmarks, start to end of every run: what benchd costs it.",
            labels=["device"],
        )
        for device, seconds in sorted(board.benchmark_seconds.items()):
            spent.add_metric([device], seconds)
        yield spent
        state_set = GaugeMetricFamily(
            "benchd_last_run_outcome",
            "1 for the outcome the last run ended with, 0 for the others (a state set).",
            labels=[*SERIES_LABELS, "outcome"],
        )
        success = GaugeMetricFamily(
            "benchd_last_run_success", "1 if the last run ended ok, else 0.", labels=SERIES_LABELS
        )
        finished = GaugeMetricFamily(
            "benchd_last_run_timestamp_seconds", "When the last run ended (Unix time).", labels=SERIES_LABELS
        )
        succeeded = GaugeMetricFamily(
            "benchd_last_success_timestamp_seconds", "When the last ok run ended (Unix time).",
            labels=SERIES_LABELS,
        )  # fmt: skip
        in_progress = GaugeMetricFamily(
            "benchd_run_in_progress", "1 while a run of this series is in progress.", labels=SERIES_LABELS
        )
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
        labels = [*SERIES_LABELS, "config"]
        families = {
            "epoch": GaugeMetricFamily(
                "benchd_last_epoch_duration_seconds",
                "Representative epoch duration of the config's last ok run (median after the first epoch).",
                labels=labels,
            ),
            "contended_epoch": GaugeMetricFamily(
                "benchd_last_contended_epoch_duration_seconds",
                "Representative epoch of the config's last ok run measured beside foreign load: shown, never "
                "a baseline (benchd_last_epoch_duration_seconds holds only clean figures).",
                labels=labels,
            ),
            "phase": GaugeMetricFamily(
                "benchd_last_epoch_phase_seconds",
                "Where that representative epoch went: data_wait, steps, validation, side_work.",
                labels=[*labels, "phase"],
            ),
            "fraction": GaugeMetricFamily(
                "benchd_epoch_fraction_ratio",
                "Fraction of a full epoch the config's epochs cover.",
                labels=labels,
            ),
            "throughput": GaugeMetricFamily(
                "benchd_throughput_samples_per_second",
                "Training samples per second of the config's last ok run (images, pairs or tokens).",
                labels=[*labels, "unit"],
            ),
            "device_memory": GaugeMetricFamily(
                "benchd_peak_device_memory_bytes",
                "Peak allocator memory reserved on the device by the config's last ok run.",
                labels=labels,
            ),
            "host_memory": GaugeMetricFamily(
                "benchd_peak_host_memory_bytes",
                "Peak resident memory of the config's last ok run's child process.",
                labels=labels,
            ),
            **{
                key: GaugeMetricFamily(name, text, labels=labels)
                for key, (name, text) in EPOCH_SENSOR_METRICS.items()
            },
            "baseline": GaugeMetricFamily(
                "benchd_baseline_epoch_duration_seconds",
                f"Median representative epoch of the config's previous ok runs (up to {BASELINE_RUNS}).",
                labels=labels,
            ),
            "spread": GaugeMetricFamily(
                "benchd_baseline_epoch_spread_ratio",
                "Median absolute deviation of those runs over their median: the config's run-to-run noise.",
                labels=labels,
            ),
            "baseline_runs": GaugeMetricFamily(
                "benchd_baseline_runs", "Ok runs the baseline is the median of.", labels=labels
            ),
            "variation": GaugeMetricFamily(
                "benchd_runs_variation_ratio",
                f"Coefficient of variation of the config's recent ok runs (up to {BASELINE_RUNS + 1}).",
                labels=labels,
            ),
            "unstable": GaugeMetricFamily(
                "benchd_unstable",
                f"1 when the config's recent ok runs vary by more than {UNSTABLE_CV:.0%} (coefficient of "
                "variation): its figures move more than a comparison can trust.",
                labels=labels,
            ),
            "flops": GaugeMetricFamily(
                "benchd_flops_per_second",
                "Achieved FLOP/s of the config's last ok run: its epoch's training-step FLOPs (forward and "
                "backward) over the representative epoch.",
                labels=labels,
            ),
            "mfu": GaugeMetricFamily(
                "benchd_mfu_ratio",
                "Model FLOP/s utilization of the config's last ok run: achieved FLOP/s over the device's "
                "peak for the precision (published; a CPU's measured matmul peak). Absent without a peak.",
                labels=labels,
            ),
            "compile": GaugeMetricFamily(
                "benchd_compile_seconds",
                "torch.compile warm-up of the config's last ok run, before (never inside) its epochs.",
                labels=labels,
            ),
        }
        histogram = HistogramMetricFamily(
            "benchd_epoch_duration_seconds", "Duration of every recorded epoch, by config.", labels=labels
        )
        info = InfoMetricFamily("benchd_config", "What each config id is (docs/cli.md).", labels=["config"])
        described: set[str] = set()
        for key, result in sorted(board.results.items()):
            values = list(key)
            if result.epochs.count:  # a config seen only beside foreign load has no clean epoch to count
                histogram.add_metric(values, result.epochs.cumulative(), result.epochs.total)
            if key[3] not in described:
                described.add(key[3])
                info.add_metric([key[3]], result.info)
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
        labels = [*SERIES_LABELS, "config"]
        throttled = GaugeMetricFamily(
            "benchd_epoch_throttle_seconds",
            "Seconds per epoch the device's clocks were held down, by reason (NVML clock events; median).",
            labels=[*labels, "reason"],
        )
        figures = {
            key: GaugeMetricFamily(name, text, labels=labels) for key, (name, text) in SLOWDOWN.items()
        }
        link = {
            part: GaugeMetricFamily(f"benchd_epoch_pcie_link_{part}", f"PCIe link {part} in the last ok run.",
                                    labels=labels)
            for part in ("generation", "width")
        }  # fmt: skip
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
        up = GaugeMetricFamily(
            "benchd_sensor_up", "1 if the sensor backend is available, 0 if not (see benchd doctor).",
            labels=["sensor"],
        )  # fmt: skip
        errors = CounterMetricFamily(
            "benchd_sensor_errors", "Failed reads per sensor backend.", labels=["sensor"]
        )
        for state in sampler.availability:
            up.add_metric([state.sensor], 1.0 if state.available else 0.0)
            if state.available:
                errors.add_metric([state.sensor], sampler.errors.get(state.sensor, 0))
        yield up
        yield errors
        # `device`, as on every other family: a torch device id (cpu, cuda:0) or a part of the CPU that has
        # a sensor of its own (RAPL's package-0, dram-0).
        live = {
            field: GaugeMetricFamily(name, text, labels=["device"])
            for field, (name, text) in LIVE_SENSOR_METRICS.items()
        }
        energy = CounterMetricFamily(
            "benchd_sensor_energy_joules", "Energy counter of the device since benchd started reading it.",
            labels=["device"],
        )  # fmt: skip
        events = GaugeMetricFamily(
            "benchd_sensor_clock_event_active",
            "1 while the reason holds the device's clocks down, else 0 (NVML clock events, idle left out).",
            labels=["device", "reason"],
        )
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
        build = InfoMetricFamily("benchd_build", "benchd, Python and torch versions.")
        build.add_metric(
            [],
            {
                "version": __version__,
                "python_version": platform.python_version(),
                "torch_version": facts.torch_version or "unknown",
            },
        )
        yield build
        devices = InfoMetricFamily("benchd_device", "Devices benchd can run on, and those it ran on.")
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
        limits = GaugeMetricFamily(
            "benchd_device_power_limit_watts",
            "Power limit in force on the device during its last run (NVML's enforced limit).",
            labels=["device"],
        )
        for device_id, watts in sorted(power_limits.items()):
            limits.add_metric([device_id], watts)
        yield limits

    @staticmethod
    def _host(host: dict[str, Any] | None) -> Iterator[Metric]:
        if not host:
            return
        info = InfoMetricFamily("benchd_host", "Where benchd runs: the name results carry, OS, CPU, image.")
        info.add_metric(
            [],
            {
                name: str(host.get(name) or "")
                for name in ("hostname", "os", "kernel", "machine", "cpu", "image")
            },
        )
        yield info
        memory = GaugeMetricFamily("benchd_host_memory_bytes", "The host's physical memory.")
        memory.add_metric([], float(host.get("memory_bytes") or 0))
        yield memory
        cpus = GaugeMetricFamily("benchd_host_logical_cpus", "The host's logical CPUs.")
        cpus.add_metric([], float(host.get("logical_cpus") or 0))
        yield cpus


def build_registry(collector: Collector) -> CollectorRegistry:
    """Our collector plus the daemon's own process figures (its footprint matters too)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry
