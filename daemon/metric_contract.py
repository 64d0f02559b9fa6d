"""Every metric family benchd exports, declared once: the contract docs/metrics.md publishes.

The collector builds its families from this table (name, type, labels,
help), docs/metrics.md's reference tables are written from it
(deploy/contract_files.py), and the dashboard generator, the rule mixin and
`compare`'s Prometheus reader check every name they use against it, so a
renamed or undeclared metric fails a test rather than a dashboard. Names
carry their base unit (DESIGN.md), so the unit is read from the name.
Changing a name, a type or a label here is a contract change: CHANGELOG.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from benchd.results.baseline import BASELINE_RUNS, UNSTABLE_CV

GAUGE: Final = "gauge"
COUNTER: Final = "counter"  # exposed with _total
HISTOGRAM: Final = "histogram"  # exposed as _bucket, _sum and _count
INFO: Final = "info"  # exposed as a gauge with _info, always 1: its labels are the information
STATESET: Final = "stateset"  # a gauge that is 1 for the one state that holds and 0 for the others

BUILD_AND_DEVICES: Final = "Build and devices"
RUNS: Final = "Runs"
RESULTS: Final = "Results, by config"
VERDICTS: Final = "Device verdicts"
HEALTH: Final = "Health"
SENSORS: Final = "Sensors"
SECTIONS = (BUILD_AND_DEVICES, RUNS, RESULTS, VERDICTS, HEALTH, SENSORS)

SERIES_LABELS = ("workload", "preset", "device")  # how runs of a preset on a device end, whatever the config
RESULT_LABELS = (*SERIES_LABELS, "config")  # what one config measured on one device: like for like

# Base units, as names end with them (a count has none); the longest match wins (samples_per_second).
UNITS = (
    "samples_per_second",
    "per_second",
    "seconds",
    "bytes",
    "celsius",
    "watts",
    "joules",
    "hertz",
    "ratio",
)
_SUFFIXES = {COUNTER: ("_total",), INFO: ("_info",), HISTOGRAM: ("_bucket", "_sum", "_count")}


@dataclass(frozen=True)
class Metric:
    """One family: `name` as the exposition shows it (counters with _total, info metrics with _info)."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str  # the HELP line
    section: str  # where docs/metrics.md lists it
    meaning: str  # its row in docs/metrics.md (markdown)
    example: str = ""  # a query that uses it (markdown)
    labels_doc: str = ""  # the docs' labels cell where it says more than their names (markdown)

    @property
    def family(self) -> str:
        """The name prometheus_client's metric families take (without the suffix they add)."""
        for suffix in _SUFFIXES.get(self.kind, ()):
            if self.name.endswith(suffix) and self.kind != HISTOGRAM:
                return self.name[: -len(suffix)]
        return self.name

    @property
    def unit(self) -> str:
        base = self.name.removesuffix("_total").removesuffix("_info")
        return next((unit for unit in UNITS if base.endswith(f"_{unit}")), "")

    def series_names(self) -> tuple[str, ...]:
        """Every sample name this family puts in the exposition."""
        if self.kind == HISTOGRAM:
            return tuple(self.name + suffix for suffix in _SUFFIXES[HISTOGRAM])
        return (self.name,)


METRICS: tuple[Metric, ...] = (
    Metric(
        "benchd_build_info",
        INFO,
        ("version", "python_version", "torch_version"),
        "benchd, Python and torch versions.",
        BUILD_AND_DEVICES,
        meaning="always 1",
        example="`count by (version) (benchd_build_info)`",
    ),
    Metric(
        "benchd_host_info",
        INFO,
        ("hostname", "os", "kernel", "machine", "cpu", "image"),
        "Where benchd runs: the name results carry, OS, CPU, image.",
        BUILD_AND_DEVICES,
        meaning="always 1: what the host is",
        example="`benchd_last_epoch_duration_seconds * on(instance) group_left(cpu) benchd_host_info`",
        labels_doc=(
            "`hostname` (`BENCHD_HOSTNAME`, else `NODE_NAME`, else the host's), `os`, `kernel`, "
            "`machine`, `cpu`, `image`"
        ),
    ),
    Metric(
        "benchd_host_memory_bytes",
        GAUGE,
        (),
        "The host's physical memory.",
        BUILD_AND_DEVICES,
        meaning="the host's physical memory",
        example="`benchd_peak_host_memory_bytes / on(instance) group_left benchd_host_memory_bytes`",
    ),
    Metric(
        "benchd_host_logical_cpus",
        GAUGE,
        (),
        "The host's logical CPUs.",
        BUILD_AND_DEVICES,
        meaning="the host's logical CPUs",
        example="`count by (cpu) (benchd_host_info)`",
    ),
    Metric(
        "benchd_device_power_limit_watts",
        GAUGE,
        ("device",),
        "Power limit in force on the device during its last run (NVML's enforced limit).",
        BUILD_AND_DEVICES,
        meaning="power limit in force during the device's last run (NVML); absent where NVML gives none",
        example=(
            "`benchd_epoch_peak_power_watts / on(instance, device) group_left "
            "benchd_device_power_limit_watts`"
        ),
    ),
    Metric(
        "benchd_device_info",
        INFO,
        ("device", "type", "name", "uuid", "mig_uuid", "driver_version", "torch_version"),
        "Devices benchd can run on, and those it ran on.",
        BUILD_AND_DEVICES,
        meaning=(
            "1 for each device the daemon can use or has run on. `uuid` is the GPU's UUID, as "
            "dcgm-exporter's `UUID` label has it (for a MIG instance, its GPU's), read from NVML when the "
            "daemon starts, so it is there before the first run; `mig_uuid` is a MIG instance's own UUID, "
            "empty for a whole GPU; both empty off NVIDIA"
        ),
        example='`benchd_device_info{type="cuda"}`',
    ),
    Metric(
        "benchd_runs_total",
        COUNTER,
        (*SERIES_LABELS, "outcome"),
        "Runs that ended, by outcome.",
        RUNS,
        meaning=(
            "runs that ended, by outcome; every scheduled workload and preset starts at 0 for every outcome"
        ),
        example='`increase(benchd_runs_total{outcome=~"oom|error"}[1d])`',
    ),
    Metric(
        "benchd_last_run_outcome",
        STATESET,
        (*SERIES_LABELS, "outcome"),
        "1 for the outcome the last run ended with, 0 for the others (a state set).",
        RUNS,
        meaning="1 for the outcome the last run ended with, 0 for every other outcome",
        example='`benchd_last_run_outcome{outcome="oom"} == 1` (the comparison\'s "DNF")',
    ),
    Metric(
        "benchd_last_run_success",
        GAUGE,
        SERIES_LABELS,
        "1 if the last run ended ok, else 0.",
        RUNS,
        meaning="1 if the last run ended `ok`, else 0",
        example="`benchd_last_run_success == 0`",
    ),
    Metric(
        "benchd_last_run_timestamp_seconds",
        GAUGE,
        SERIES_LABELS,
        "When the last run ended (Unix time).",
        RUNS,
        meaning="Unix time the last run ended",
        example="`time() - benchd_last_run_timestamp_seconds`",
    ),
    Metric(
        "benchd_last_success_timestamp_seconds",
        GAUGE,
        SERIES_LABELS,
        "When the last ok run ended (Unix time).",
        RUNS,
        meaning="Unix time the last `ok` run ended",
        example=(
            "`time() - benchd_last_success_timestamp_seconds > 2.5 * on(workload, preset) group_left "
            "benchd_schedule_interval_seconds`"
        ),
    ),
    Metric(
        "benchd_run_in_progress",
        GAUGE,
        SERIES_LABELS,
        "1 while a run of this series is in progress.",
        RUNS,
        meaning="1 while a run of this series is in progress",
        example="`sum by (instance) (benchd_run_in_progress)`",
    ),
    Metric(
        "benchd_benchmark_seconds_total",
        COUNTER,
        ("device",),
        "Time the device spent running benchmarks, start to end of every run: what benchd costs it.",
        RUNS,
        meaning=(
            "time the device spent running benchmarks, start to end of every run (all outcomes): what "
            "benchd costs it; rebuilt from the store at start"
        ),
        example="`increase(benchd_benchmark_seconds_total[1d]) / 86400` (the share of a day)",
    ),
    Metric(
        "benchd_contended_runs_total",
        COUNTER,
        SERIES_LABELS,
        "Ok runs measured beside foreign load (counted in benchd_runs_total too; never a baseline).",
        RUNS,
        meaning=(
            "`ok` runs measured beside foreign load (docs/cli.md, `contended`); they count in "
            '`benchd_runs_total{outcome="ok"}` too, but never in a clean figure, a baseline or an alert; '
            "every scheduled series starts at 0"
        ),
        example=(
            "`increase(benchd_contended_runs_total[1d]) > 0 unless on(instance, workload, preset, device) "
            "benchd_last_epoch_duration_seconds` (series that only contended runs measured)"
        ),
    ),
    Metric(
        "benchd_queue_length",
        GAUGE,
        (),
        "Runs waiting to start.",
        RUNS,
        meaning="runs waiting to start",
        example="`max_over_time(benchd_queue_length[1h])`",
    ),
    Metric(
        "benchd_schedule_next_timestamp_seconds",
        GAUGE,
        ("schedule",),
        "When the schedule fires next (Unix time; its spread and jitter included).",
        RUNS,
        meaning="Unix time the schedule fires next, its spread and jitter included",
        example="`benchd_schedule_next_timestamp_seconds - time()` (seconds until it runs)",
        labels_doc="`schedule` (the workload it schedules)",
    ),
    Metric(
        "benchd_schedule_interval_seconds",
        GAUGE,
        ("workload", "preset"),
        "Seconds between scheduled runs (for cron, between the next two).",
        RUNS,
        meaning="seconds between scheduled runs (for cron, between the next two firings)",
        example="see staleness example above",
    ),
    Metric(
        "benchd_config_info",
        INFO,
        (
            "config",
            "workload",
            "preset",
            "batch_size",
            "options",
            "epochs",
            "fraction",
            "workers",
            "timing",
            "precision",
            "compile",
            "channels_last",
            "deterministic",
            "data",
            "data_scale",
            "suite",
        ),
        "What each config id is (docs/cli.md).",
        RESULTS,
        meaning="always 1: what a config id stands for",
        example=(
            "`benchd_last_epoch_duration_seconds * on(config) group_left(fraction, timing) "
            "benchd_config_info`"
        ),
        labels_doc=(
            "`config`, `workload`, `preset`, `batch_size`, `options`, `epochs`, `fraction`, `workers`, "
            "`timing`, `precision`, `compile`, `channels_last`, `deterministic` (`true` or `false`), `data`, "
            "`data_scale`, "
            "`suite` (empty when the config is in none)"
        ),
    ),
    Metric(
        "benchd_last_contended_epoch_duration_seconds",
        GAUGE,
        RESULT_LABELS,
        (
            "Representative epoch of the config's last ok run measured beside foreign load: shown, never "
            "a baseline (benchd_last_epoch_duration_seconds holds only clean figures)."
        ),
        RESULTS,
        meaning=(
            "representative epoch duration of the config's last `ok` run measured beside foreign load: on "
            "a busy host the figure it did measure, shown apart; never a baseline "
            "(`benchd_last_epoch_duration_seconds` holds clean figures only)"
        ),
        example=(
            "`benchd_last_contended_epoch_duration_seconds / benchd_last_epoch_duration_seconds` (what "
            "the load cost a config measured both ways)"
        ),
    ),
    Metric(
        "benchd_epoch_duration_seconds",
        HISTOGRAM,
        RESULT_LABELS,
        "Duration of every recorded epoch, by config.",
        RESULTS,
        meaning="every recorded epoch's duration (all outcomes)",
        example=(
            "`histogram_quantile(0.5, sum by (le, workload, preset, config) "
            "(rate(benchd_epoch_duration_seconds_bucket[7d])))`"
        ),
    ),
    Metric(
        "benchd_last_epoch_duration_seconds",
        GAUGE,
        RESULT_LABELS,
        "Representative epoch duration of the config's last ok run (median after the first epoch).",
        RESULTS,
        meaning=(
            "representative epoch duration of the config's last ok run: the median of the epochs after "
            "the first, or the first when alone"
        ),
        example='`benchd_last_epoch_duration_seconds{workload="transformer"}`',
    ),
    Metric(
        "benchd_last_epoch_phase_seconds",
        GAUGE,
        (
            *RESULT_LABELS,
            "phase",
        ),
        "Where that representative epoch went: data_wait, steps, validation, side_work.",
        RESULTS,
        meaning=(
            "where that representative epoch's time went (median per phase over the same epochs); a phase "
            "the timing does not have is absent, and the phases add up to the epoch"
        ),
        example=(
            '`benchd_last_epoch_phase_seconds{phase="data_wait"} / ignoring(phase) '
            "benchd_last_epoch_duration_seconds` (the share spent waiting for data)"
        ),
    ),
    Metric(
        "benchd_epoch_fraction_ratio",
        GAUGE,
        RESULT_LABELS,
        "Fraction of a full epoch the config's epochs cover.",
        RESULTS,
        meaning="fraction of a full epoch those epochs covered",
        example=(
            "`benchd_last_epoch_duration_seconds / benchd_epoch_fraction_ratio` (an estimate of a full epoch)"
        ),
    ),
    Metric(
        "benchd_throughput_samples_per_second",
        GAUGE,
        (
            *RESULT_LABELS,
            "unit",
        ),
        "Training samples per second of the config's last ok run (images, pairs or tokens).",
        RESULTS,
        meaning="training samples per second (median over the same epochs)",
        example='`topk(5, benchd_throughput_samples_per_second{workload="siamese"})`',
    ),
    Metric(
        "benchd_peak_device_memory_bytes",
        GAUGE,
        RESULT_LABELS,
        "Peak allocator memory reserved on the device by the config's last ok run.",
        RESULTS,
        meaning="peak allocator memory reserved on the device; absent on the CPU",
        example="`max by (instance) (benchd_peak_device_memory_bytes)`",
    ),
    Metric(
        "benchd_peak_host_memory_bytes",
        GAUGE,
        RESULT_LABELS,
        "Peak resident memory of the config's last ok run's child process.",
        RESULTS,
        meaning="peak resident memory of the run's child process (or its largest DataLoader worker)",
        example="`benchd_peak_host_memory_bytes / 1e9`",
    ),
    Metric(
        "benchd_baseline_epoch_duration_seconds",
        GAUGE,
        RESULT_LABELS,
        f"Median representative epoch of the config's previous ok runs (up to {BASELINE_RUNS}).",
        RESULTS,
        meaning=(
            "median representative epoch of the config's ok runs before the last one (up to 10 of them), "
            "computed by benchd from the store; absent before a second ok run"
        ),
        example="`benchd_last_epoch_duration_seconds / benchd_baseline_epoch_duration_seconds`",
    ),
    Metric(
        "benchd_baseline_epoch_spread_ratio",
        GAUGE,
        RESULT_LABELS,
        "Median absolute deviation of those runs over their median: the config's run-to-run noise.",
        RESULTS,
        meaning=(
            "median absolute deviation of those runs over their median: the config's usual run-to-run noise"
        ),
        example="`benchd_baseline_epoch_spread_ratio > 0.05`",
    ),
    Metric(
        "benchd_baseline_runs",
        GAUGE,
        RESULT_LABELS,
        "Ok runs the baseline is the median of.",
        RESULTS,
        meaning="how many ok runs the baseline is the median of",
        example="`benchd_baseline_runs < 3`",
    ),
    Metric(
        "benchd_runs_variation_ratio",
        GAUGE,
        RESULT_LABELS,
        f"Coefficient of variation of the config's recent ok runs (up to {BASELINE_RUNS + 1}).",
        RESULTS,
        meaning=(
            "coefficient of variation (standard deviation over mean) of the representative epochs of the "
            "config's recent ok runs, the last included (up to 11); absent before a second"
        ),
        example="`benchd_runs_variation_ratio > 0.05`",
    ),
    Metric(
        "benchd_unstable",
        GAUGE,
        RESULT_LABELS,
        (
            f"1 when the config's recent ok runs vary by more than {UNSTABLE_CV:.0%} (coefficient of "
            "variation): its figures move more than a comparison can trust."
        ),
        RESULTS,
        meaning=(
            "1 when that variation is over 5% (`benchd run --repeat`'s threshold), else 0: figures that "
            "move more than a comparison can trust (`BenchdConfigUnstable` after a day)"
        ),
        example="`benchd_last_epoch_duration_seconds unless on(config, device) benchd_unstable == 1`",
    ),
    Metric(
        "benchd_flops_per_second",
        GAUGE,
        RESULT_LABELS,
        (
            "Achieved FLOP/s of the config's last ok run: its epoch's training-step FLOPs (forward and "
            "backward) over the representative epoch."
        ),
        RESULTS,
        meaning=(
            "achieved FLOP/s of the last ok run: its epoch's training-step FLOPs (forward and backward, "
            "`torch.utils.flop_counter`) over the representative epoch; in reference timing loading and "
            "side work count against it"
        ),
        example="`benchd_flops_per_second / 1e12` (TFLOP/s)",
    ),
    Metric(
        "benchd_mfu_ratio",
        GAUGE,
        RESULT_LABELS,
        (
            "Model FLOP/s utilization of the config's last ok run: achieved FLOP/s over the device's peak "
            "for the precision (published; a CPU's measured matmul peak). Absent without a peak."
        ),
        RESULTS,
        meaning=(
            "model FLOP/s utilization: that over the device's peak for the run's precision (published "
            "dense figures, docs/performance.md; a CPU's measured matmul peak); absent where no peak is "
            "known, never a guess"
        ),
        example='`benchd_mfu_ratio{workload="transformer"} < 0.3`',
    ),
    Metric(
        "benchd_compile_seconds",
        GAUGE,
        RESULT_LABELS,
        "torch.compile warm-up of the config's last ok run, before (never inside) its epochs.",
        RESULTS,
        meaning=(
            "`--compile` runs: seconds spent compiling (one warm-up step per batch shape and the side "
            "passes) before the first epoch, never inside it"
        ),
        example="`benchd_compile_seconds > 600`",
    ),
    Metric(
        "benchd_device_health",
        STATESET,
        ("device", "state"),
        "1 for the device's verdict, 0 for the others (healthy, degraded, failing, corrupt, unknown).",
        VERDICTS,
        meaning=(
            "1 for the device's verdict and 0 for the other states: `degraded` (slower than its band beyond "
            "its noise in 2 of its last 3 runs), `failing` (2 of its last 3 runs failed where the config "
            "used to succeed), `corrupt` (a deterministic run's fingerprint disagrees with its own first "
            "run's or with the majority of the host's devices), `healthy`, `unknown` (no band yet, or no "
            "run for two schedule periods); the worst of its configs' verdicts (docs/health.md)"
        ),
        example='`benchd_device_health{state="degraded"} == 1`',
        labels_doc="`device`, `state` (`healthy`, `degraded`, `failing`, `corrupt`, `unknown`)",
    ),
    Metric(
        "benchd_determinism_info",
        INFO,
        ("workload", "preset", "device", "config", "stack", "fingerprint"),
        "The fingerprint of each device's latest deterministic run of a config on a software stack.",
        VERDICTS,
        meaning=(
            "always 1: the fingerprint (16 hex characters: every step's loss bits and the final weights) of "
            "the device's latest deterministic run of the config on the software stack `stack` (12 hex "
            "characters: device model, driver, CUDA, cuDNN, torch and benchd versions, precision, threads); "
            "every device of a config and stack must show the same (docs/workloads.md)"
        ),
        example=(
            "`count by (config, stack) (count by (config, stack, fingerprint) (benchd_determinism_info)) > 1`"
        ),
    ),
    Metric(
        "benchd_device_health_info",
        INFO,
        ("device", "state", "band", "workload", "preset", "config"),
        "The config a device's verdict comes from and the band it was judged against.",
        VERDICTS,
        meaning=(
            "always 1: the config the device's verdict comes from (its worst; for a healthy device, the "
            "slowest against its band) and the band it was judged against (`own`, `fleet`, `reference`; "
            "empty with no band)"
        ),
        example=(
            '`benchd_device_health{state="degraded"} == 1 and on(instance, device) benchd_device_health_info`'
        ),
    ),
    Metric(
        "benchd_device_health_ratio",
        GAUGE,
        ("device",),
        "The deciding config's last counted ok run over its band's median.",
        VERDICTS,
        meaning=(
            "the representative epoch of the deciding config's last counted ok run over its band's median "
            "(1.12: 12% slower); absent with no band"
        ),
        example="`benchd_device_health_ratio > 1.1`",
    ),
    Metric(
        "benchd_device_health_since_timestamp_seconds",
        GAUGE,
        ("device",),
        "When a degraded, failing or corrupt verdict began: the first run that confirmed it.",
        VERDICTS,
        meaning="when the device's degraded, failing or corrupt verdict began (the first run that "
        "confirmed it); absent while it is healthy or unknown",
        example="`time() - benchd_device_health_since_timestamp_seconds > 86400`",
    ),
    Metric(
        "benchd_collector_up",
        GAUGE,
        ("collector",),
        "1 if the collector works, 0 if it is failing.",
        HEALTH,
        meaning=(
            "1 if that part of the daemon works, 0 if it is failing (`store`: its last write failed; "
            "`queue`: a device's worker failed and was restarted in the last minute)"
        ),
        example="`benchd_collector_up == 0`",
        labels_doc="`collector` (`store`, `device_probe`, `queue`)",
    ),
    Metric(
        "benchd_epoch_energy_joules",
        GAUGE,
        RESULT_LABELS,
        "Energy per epoch of the last ok run (median).",
        SENSORS,
        meaning="energy per epoch of the last `ok` run (median over the representative epochs)",
        example="`benchd_epoch_energy_joules / benchd_epoch_fraction_ratio`",
    ),
    Metric(
        "benchd_epoch_average_power_watts",
        GAUGE,
        RESULT_LABELS,
        "Average power over an epoch of the last ok run (median).",
        SENSORS,
        meaning="average power over an epoch (energy / duration, median)",
        example='`benchd_epoch_average_power_watts{device=~"cuda.*"}`',
    ),
    Metric(
        "benchd_epoch_peak_power_watts",
        GAUGE,
        RESULT_LABELS,
        "Highest power sampled during the last ok run.",
        SENSORS,
        meaning="highest power sampled during those epochs",
        example="`max by (instance) (benchd_epoch_peak_power_watts)`",
    ),
    Metric(
        "benchd_epoch_max_temperature_celsius",
        GAUGE,
        RESULT_LABELS,
        "Highest temperature sampled during the last ok run.",
        SENSORS,
        meaning="highest temperature sampled during those epochs",
        example="`benchd_epoch_max_temperature_celsius > 85`",
    ),
    Metric(
        "benchd_epoch_throttle_seconds",
        GAUGE,
        (
            *RESULT_LABELS,
            "reason",
        ),
        "Seconds per epoch the device's clocks were held down, by reason (NVML clock events; median).",
        SENSORS,
        meaning=(
            "seconds per epoch the GPU's clocks were held down, by NVML clock event reason "
            "(`sw_power_cap`, `hw_slowdown`, `sync_boost`, `sw_thermal_slowdown`, `hw_thermal_slowdown`, "
            "`hw_power_brake_slowdown`, `applications_clocks_setting`, `display_clock_setting`), median "
            "over the representative epochs; a reason never active is absent"
        ),
        example=(
            "`topk(5, benchd_epoch_throttle_seconds / on(instance, workload, preset, device, config) "
            "benchd_last_epoch_duration_seconds)` (share of the epoch)"
        ),
    ),
    Metric(
        "benchd_epoch_mean_sm_clock_hertz",
        GAUGE,
        RESULT_LABELS,
        "Mean SM clock over an epoch (median).",
        SENSORS,
        meaning="SM clock over those epochs: the median of the epochs' means, and the lowest sample",
        example="`benchd_epoch_min_sm_clock_hertz / benchd_epoch_mean_sm_clock_hertz < 0.8`",
    ),
    Metric(
        "benchd_epoch_min_sm_clock_hertz",
        GAUGE,
        RESULT_LABELS,
        "Lowest SM clock sampled in those epochs.",
        SENSORS,
        meaning="SM clock over those epochs: the median of the epochs' means, and the lowest sample",
        example="`benchd_epoch_min_sm_clock_hertz / benchd_epoch_mean_sm_clock_hertz < 0.8`",
    ),
    Metric(
        "benchd_epoch_mean_memory_clock_hertz",
        GAUGE,
        RESULT_LABELS,
        "Mean memory clock over an epoch (median).",
        SENSORS,
        meaning="the same for the memory clock",
    ),
    Metric(
        "benchd_epoch_min_memory_clock_hertz",
        GAUGE,
        RESULT_LABELS,
        "Lowest memory clock sampled in those epochs.",
        SENSORS,
        meaning="the same for the memory clock",
    ),
    Metric(
        "benchd_epoch_power_limit_watts",
        GAUGE,
        RESULT_LABELS,
        "Power limit in force during the last ok run.",
        SENSORS,
        meaning="the power limit in force during the run (NVML's enforced limit)",
        example="`benchd_epoch_average_power_watts / benchd_epoch_power_limit_watts > 0.95` (power-bound)",
    ),
    Metric(
        "benchd_epoch_pcie_link_generation",
        GAUGE,
        RESULT_LABELS,
        "PCIe link generation in the last ok run.",
        SENSORS,
        meaning="the PCIe link as it ran (a link trained down to x8 or gen 3 shows here)",
        example="`benchd_epoch_pcie_link_width < 16`",
    ),
    Metric(
        "benchd_epoch_pcie_link_width",
        GAUGE,
        RESULT_LABELS,
        "PCIe link width in the last ok run.",
        SENSORS,
        meaning="the PCIe link as it ran (a link trained down to x8 or gen 3 shows here)",
        example="`benchd_epoch_pcie_link_width < 16`",
    ),
    Metric(
        "benchd_sensor_sm_clock_hertz",
        GAUGE,
        ("device",),
        "Latest SM clock of the device.",
        SENSORS,
        meaning="latest SM and memory clocks",
    ),
    Metric(
        "benchd_sensor_memory_clock_hertz",
        GAUGE,
        ("device",),
        "Latest memory clock of the device.",
        SENSORS,
        meaning="latest SM and memory clocks",
    ),
    Metric(
        "benchd_sensor_power_limit_watts",
        GAUGE,
        ("device",),
        "Power limit in force on the device.",
        SENSORS,
        meaning="the power limit in force now",
    ),
    Metric(
        "benchd_sensor_clock_event_active",
        STATESET,
        ("device", "reason"),
        "1 while the reason holds the device's clocks down, else 0 (NVML clock events, idle left out).",
        SENSORS,
        meaning=(
            "1 while that reason holds the GPU's clocks down, 0 otherwise (every reason, for every GPU "
            "that reports clocks; idle left out)"
        ),
        example="`sum by (instance, device) (benchd_sensor_clock_event_active) > 0`",
    ),
    Metric(
        "benchd_sensor_temperature_celsius",
        GAUGE,
        ("device",),
        "Latest temperature of the device.",
        SENSORS,
        meaning="latest temperature (sampled every second when idle, ten times a second during a run)",
        example='`max_over_time(benchd_sensor_temperature_celsius{device="cuda:0"}[10m])`',
    ),
    Metric(
        "benchd_sensor_power_watts",
        GAUGE,
        ("device",),
        "Latest power draw of the device.",
        SENSORS,
        meaning="latest power draw",
        example="`avg_over_time(benchd_sensor_power_watts[5m])`",
    ),
    Metric(
        "benchd_sensor_energy_joules_total",
        COUNTER,
        ("device",),
        "Energy counter of the device since benchd started reading it.",
        SENSORS,
        meaning="energy counter since benchd started reading it (NVML, RAPL, IOReport)",
        example="`rate(benchd_sensor_energy_joules_total[5m])` (watts)",
    ),
    Metric(
        "benchd_sensor_memory_used_bytes",
        GAUGE,
        ("device",),
        "Device memory in use (all processes).",
        SENSORS,
        meaning="device memory in use, by every process",
        example='`benchd_sensor_memory_used_bytes{device="cuda:0"}`',
    ),
    Metric(
        "benchd_sensor_utilization_ratio",
        GAUGE,
        ("device",),
        "Latest utilization of the device, 0 to 1.",
        SENSORS,
        meaning="latest utilization, 0 to 1",
        example="`avg_over_time(benchd_sensor_utilization_ratio[1h])`",
    ),
    Metric(
        "benchd_sensor_up",
        GAUGE,
        ("sensor",),
        "1 if the sensor backend is available, 0 if not (see benchd doctor).",
        SENSORS,
        meaning="1 if the backend is available, 0 if not (`benchd doctor` says why)",
        example="`benchd_sensor_up == 0`",
        labels_doc="`sensor` (`nvml`, `amdsmi`, `apple`, `cpu`, `rapl`)",
    ),
    Metric(
        "benchd_sensor_errors_total",
        COUNTER,
        ("sensor",),
        "Failed reads per sensor backend.",
        SENSORS,
        meaning="failed reads of an available backend",
        example="`increase(benchd_sensor_errors_total[15m]) > 0`",
    ),
)

BY_NAME: Mapping[str, Metric] = MappingProxyType({metric.name: metric for metric in METRICS})
BY_SERIES: Mapping[str, Metric] = MappingProxyType(
    {series: metric for metric in METRICS for series in metric.series_names()}
)
NAME_PATTERN = re.compile(r"\bbenchd_[a-z0-9_]+")


def metric(name: str) -> Metric:
    """The declared family `name` (as exposed); KeyError names it when it is not declared."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name} is not a declared benchd metric (benchd/metric_contract.py)") from None


def series(name: str) -> str:
    """`name` itself, once checked to be a sample name the exposition has: for readers and generators."""
    if name not in BY_SERIES:
        raise KeyError(f"{name} is not a declared benchd metric (benchd/metric_contract.py)")
    return name


def undeclared(expression: str) -> list[str]:
    """The benchd_ names in a PromQL expression (or any text) that no declared family exposes."""
    return sorted({name for name in NAME_PATTERN.findall(expression) if name not in BY_SERIES})


def checked(expression: str) -> str:
    """`expression` itself, once every benchd_ name in it is declared: for the dashboard generator and the
    rule mixin, which write PromQL and must not write a name the exposition does not have."""
    unknown = undeclared(expression)
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)}: not declared in benchd/metric_contract.py, in {expression!r}"
        )
    return expression
