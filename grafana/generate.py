"""Grafana dashboards for benchd, built with Grafana's own typed builders (grafana-foundation-sdk).

Why generated: the panels share their selectors, and the typed builders make each
panel, query, variable and override the shape Grafana expects, which matters here
because Grafana itself cannot run in the tests. Run `python grafana/generate.py`
after editing; a test fails when the JSON in grafana/dashboards/ is stale.
Dashboards use a datasource template variable (never `__inputs`) and are
provisioned from files (grafana/provisioning/).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import (
    barchart,
    bargauge,
    common,
    dashboard,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    LegendDisplayMode,
    LegendPlacement,
    VisibilityMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    GridPos,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from benchd.catalog.suites import DEFAULT_SUITE
from benchd.metric_contract import checked
from benchd.results.model import Outcome

ROOT = Path(__file__).resolve().parent
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SERIES = 'instance=~"$instance",workload=~"$workload",preset=~"$preset",device=~"$device"'
HOST_SERIES = 'instance="$instance",workload=~"$workload",preset=~"$preset",device=~"$device"'
# Results carry their config: the selected configs (default: the standard suite's), like for like.
RESULTS = SERIES + ',config=~"$config"'
# Devices of the chosen type and model (a results series joins it on instance and device).
CHOSEN_DEVICES = 'benchd_device_info{type=~"$device_type",name=~"$model"}'
Panel = Any  # a panel builder of any visualisation (the SDK gives each its own class)


def on_chosen_devices(expr: str) -> str:
    return f"({expr} and on(instance, device) {CHOSEN_DEVICES})"


def variable(
    name: str, query: str, *, multi: bool = True, label: str | None = None
) -> dashboard.QueryVariable:
    result = (
        dashboard.QueryVariable(name)
        .label(label or name.capitalize())
        .datasource(DATASOURCE)
        .query(checked(query))
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    return result.all_value(".*") if multi else result


def suite_variable() -> dashboard.QueryVariable:
    """Which suite's configs to show; the standard suite by default, so machines compare like for like."""
    return variable("suite", "label_values(benchd_config_info, suite)").current(
        VariableOption(text=DEFAULT_SUITE, value=DEFAULT_SUITE)
    )


def query(
    expr: str, ref: str = "A", legend: str | None = None, *, instant: bool = False
) -> prometheus.Dataquery:
    result = prometheus.Dataquery().expr(checked(expr)).ref_id(ref).datasource(DATASOURCE)
    if instant:
        result = result.instant().format(PromQueryFormat.TABLE)
    return result.legend_format(legend) if legend else result


def place(builder: Panel, title: str, queries: list[prometheus.Dataquery], pos: tuple[int, int, int, int],
          unit: str | None = None) -> Panel:  # fmt: skip
    x, y, w, h = pos
    builder = (
        builder.title(title).datasource(DATASOURCE).grid_pos(GridPos(h=h, w=w, x=x, y=y)).targets(queries)
    )
    return builder.unit(unit) if unit else builder


def legend() -> common.VizLegendOptions:
    return (
        common.VizLegendOptions()
        .display_mode(LegendDisplayMode.LIST)
        .placement(LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def last_value() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


# Each visualisation with the options benchd's panels share.
def table_panel() -> table.Panel:
    return table.Panel().show_header(True)


def timeseries_panel() -> timeseries.Panel:
    return timeseries.Panel().legend(legend())


def stat_panel() -> stat.Panel:
    return stat.Panel().reduce_options(last_value())


def bars_panel() -> barchart.Panel:
    return (
        barchart.Panel()
        .orientation(VizOrientation.HORIZONTAL)
        .show_value(VisibilityMode.AUTO)
        .legend(legend())
    )


def gauge_bars_panel() -> bargauge.Panel:
    return bargauge.Panel().orientation(VizOrientation.HORIZONTAL).reduce_options(last_value())


def transformation(kind: str, options: dict[str, Any]) -> DataTransformerConfig:
    return DataTransformerConfig(id_val=kind, options=options)


OUTCOME_COLORS = {
    Outcome.OK: "green",
    Outcome.OOM: "red",
    Outcome.ERROR: "red",
    Outcome.TIMEOUT: "orange",
    Outcome.CANCELLED: "gray",
    Outcome.SKIPPED: "gray",
    Outcome.INTERRUPTED: "orange",
    Outcome.PREEMPTED: "blue",  # it yielded to a tenant: not a failure
}
OUTCOME_MAPPING = ValueMap(
    {
        outcome.value: ValueMappingResult(text=outcome.label, color=OUTCOME_COLORS[outcome])
        for outcome in Outcome
    }
)

# The comparison table: one row per machine x workload x preset x device.
TABLE_COLUMNS = [
    ("epoch time", on_chosen_devices(f"benchd_last_epoch_duration_seconds{{{RESULTS}}}"), "s"),
    ("epoch fraction", f"benchd_epoch_fraction_ratio{{{RESULTS}}}", "percentunit"),
    (
        "full epoch (scaled)",
        f"benchd_last_epoch_duration_seconds{{{RESULTS}}} / benchd_epoch_fraction_ratio{{{RESULTS}}}",
        "s",
    ),
    ("samples/s", f"benchd_throughput_samples_per_second{{{RESULTS}}}", "short"),
    ("peak device memory", f"benchd_peak_device_memory_bytes{{{RESULTS}}}", "bytes"),
    ("average power", f"benchd_epoch_average_power_watts{{{RESULTS}}}", "watt"),
    ("energy per epoch", f"benchd_epoch_energy_joules{{{RESULTS}}}", "joule"),
    ("max temperature", f"benchd_epoch_max_temperature_celsius{{{RESULTS}}}", "celsius"),
    ("last outcome", f"benchd_last_run_outcome{{{SERIES}}} == 1", None),
    ("device", 'benchd_device_info{instance=~"$instance",device=~"$device"}', None),
]


def comparison_table() -> table.Panel:
    refs = [chr(ord("A") + i) for i in range(len(TABLE_COLUMNS))]
    panel = place(
        table_panel(), "Machines and workloads (last ok run; last outcome shown even when it failed)",
        [query(expr, ref, instant=True) for ref, (_t, expr, _u) in zip(refs, TABLE_COLUMNS, strict=True)],
        (0, 0, 24, 12),
    )  # fmt: skip
    for ref, (title, _e, unit) in zip(refs, TABLE_COLUMNS, strict=True):
        properties = [DynamicConfigValue("displayName", title)]
        panel = panel.override_by_name(
            f"Value #{ref}", properties + ([DynamicConfigValue("unit", unit)] if unit else [])
        )
    panel = panel.override_by_name("outcome", [
        DynamicConfigValue("mappings", [OUTCOME_MAPPING]),
        DynamicConfigValue("custom.cellOptions", {"type": "color-text"}),
    ])  # fmt: skip
    hidden = {
        "Time": True,
        "__name__": True,
        "job": True,
        f"Value #{refs[-2]}": True,
        f"Value #{refs[-1]}": True,
    }
    return panel.transformations(
        [transformation("merge", {}), transformation("organize", {"excludeByName": hidden})]
    )


def compare_machines() -> dict[str, Any]:
    scaled = (f"benchd_last_epoch_duration_seconds{{{RESULTS}}} / "
              f"benchd_epoch_fraction_ratio{{{RESULTS}}}")  # fmt: skip
    bars = place(
        bars_panel(), "Epoch time by machine, scaled to a full epoch (lower is faster)",
        [query(on_chosen_devices(scaled), legend="{{instance}} {{workload}} {{preset}} {{config}}", instant=True)],
        (0, 12, 12, 10), "s",
    ).with_transformation(transformation("reduce", {"reducers": ["lastNotNull"], "labelsToFields": True}))  # fmt: skip
    relative = place(
        gauge_bars_panel(), "Speed relative to the baseline machine, same config and device type (above 1: faster)",
        [query("max by (workload, preset, config) " + on_chosen_devices(
                    'benchd_last_epoch_duration_seconds{instance="$baseline",workload=~"$workload",'
                    'preset=~"$preset",config=~"$config"}')
               + " / on(workload, preset, config) group_right() "
               + on_chosen_devices(f"benchd_last_epoch_duration_seconds{{{RESULTS}}}"),
               legend="{{instance}} {{workload}} {{preset}} {{config}}", instant=True)],
        (12, 12, 12, 10), "x",
    )  # fmt: skip
    failures = place(
        timeseries_panel(), "Failed runs (DNF: out of memory; runtime error)",
        [query(f'sum by (instance, workload, preset, outcome) (increase(benchd_runs_total{{{SERIES},'
               f'outcome=~"oom|error|timeout"}}[$__rate_interval]))',
               legend="{{instance}} {{workload}} {{preset}} {{outcome}}")],
        (0, 22, 24, 8), "short",
    )  # fmt: skip
    variables = [
        datasource_variable(), variable("instance", "label_values(benchd_build_info, instance)"),
        variable("workload", "label_values(benchd_runs_total, workload)"),
        variable("preset", 'label_values(benchd_runs_total{workload=~"$workload"}, preset)'),
        variable("device", "label_values(benchd_runs_total, device)"),
        variable("device_type", "label_values(benchd_device_info, type)", label="Device type"),
        variable("model", 'label_values(benchd_device_info{type=~"$device_type"}, name)', label="Device model"),
        suite_variable(),
        variable("config", 'label_values(benchd_config_info{suite=~"$suite",workload=~"$workload"}, config)'),
        variable("baseline", "label_values(benchd_build_info, instance)", multi=False, label="Baseline machine"),
    ]  # fmt: skip
    return board("benchd-compare", "benchd: compare machines", variables,
                 [comparison_table(), bars, relative, failures])  # fmt: skip


def host_detail() -> dict[str, Any]:
    live = 'instance="$instance"'
    panels = [
        place(timeseries_panel(), "Epoch duration over time, by config, with each config's baseline",
              [query(f"benchd_last_epoch_duration_seconds{{{HOST_SERIES}}}", "A",
                     "{{workload}} {{preset}} {{device}} {{config}}"),
               query(f"benchd_baseline_epoch_duration_seconds{{{HOST_SERIES}}}", "B",
                     "baseline {{workload}} {{preset}} {{config}}"),
               query(f"benchd_last_contended_epoch_duration_seconds{{{HOST_SERIES}}}", "C",
                     "contended {{workload}} {{preset}} {{device}} {{config}}")],
              (0, 0, 16, 9), "s"),
        verdict_table(live),
        place(timeseries_panel(), "Device temperature",
              [query(f"benchd_sensor_temperature_celsius{{{live}}}", legend="{{device}}")], (0, 9, 8, 8), "celsius"),
        place(timeseries_panel(), "Power", [query(f"benchd_sensor_power_watts{{{live}}}", legend="{{device}}")],
              (8, 9, 8, 8), "watt"),
        place(timeseries_panel(), "Device memory in use",
              [query(f"benchd_sensor_memory_used_bytes{{{live}}}", legend="{{device}}")], (16, 9, 8, 8), "bytes"),
        place(timeseries_panel(), "Runs in progress",
              [query(f"sum(benchd_run_in_progress{{{live}}})", legend="runs")], (0, 17, 8, 6), "short"),
        place(timeseries_panel(), "Outcomes",
              [query(f"sum by (outcome) (increase(benchd_runs_total{{{HOST_SERIES}}}[$__rate_interval]))",
                     legend="{{outcome}}")], (8, 17, 8, 6), "short"),
        place(stat_panel(), "Queue length", [query(f"benchd_queue_length{{{live}}}")], (16, 17, 4, 6), "short"),
        place(stat_panel(), "Time since the last run",
              [query(f"time() - max(benchd_last_run_timestamp_seconds{{{HOST_SERIES}}})")], (20, 17, 4, 6), "s"),
        place(table_panel(), "Sensor and collector health",
              [query(f"benchd_sensor_up{{{live}}}", "A", instant=True),
               query(f"benchd_collector_up{{{live}}}", "B", instant=True),
               query(f"increase(benchd_sensor_errors_total{{{live}}}[1h])", "C", instant=True)],
              (0, 23, 24, 7)),
        place(table_panel(), "The host: OS, CPU, memory, image, and its devices with their UUIDs, drivers and torch",
              [query(f"benchd_host_info{{{live}}}", "A", instant=True),
               query(f"benchd_host_memory_bytes{{{live}}}", "B", instant=True),
               query(f"benchd_device_info{{{live}}}", "C", instant=True),
               query(f"benchd_device_power_limit_watts{{{live}}}", "D", instant=True)],
              (0, 30, 24, 7)),
        *why_slow(live),
        *compute_row(),
        *contended_row(),
        *dcgm_row(live),
    ]  # fmt: skip
    variables = [
        datasource_variable(), variable("instance", "label_values(benchd_build_info, instance)", multi=False),
        variable("workload", 'label_values(benchd_runs_total{instance="$instance"}, workload)'),
        variable("preset", 'label_values(benchd_runs_total{instance="$instance",workload=~"$workload"}, preset)'),
        variable("device", 'label_values(benchd_runs_total{instance="$instance"}, device)'),
    ]  # fmt: skip
    annotations = [
        annotation("Runs", "rgba(0, 120, 255, 0.3)", f"benchd_run_in_progress{{{live}}} == 1",
                   step="10s", title="{{workload}} {{preset}}", tags="workload,preset,device"),
        # An info metric whose labels changed is a new series: present now, absent ten minutes ago.
        annotation("torch or benchd upgraded", "rgba(255, 160, 0, 0.8)",
                   f"benchd_build_info{{{live}}} unless benchd_build_info{{{live}}} offset 10m",
                   step="5m", title="benchd {{version}}, torch {{torch_version}}", tags="version,torch_version"),
        annotation("driver changed", "rgba(255, 80, 0, 0.8)",
                   f'benchd_device_info{{{live},driver_version!=""}} unless benchd_device_info{{{live}}} offset 10m',
                   step="5m", title="{{device}}: driver {{driver_version}}", tags="device,driver_version"),
    ]  # fmt: skip
    return board("benchd-host", "benchd: host detail", variables, panels, annotations)


def verdict_table(live: str) -> table.Panel:
    """Each device's verdict (docs/health.md), the config and band it comes from, how far off, since when."""
    panel = place(
        table_panel(), "Verdict per device: the config and band it comes from (benchd health)",
        [query(f"benchd_device_health{{{live}}} == 1", "A", instant=True),
         query(f"benchd_device_health_info{{{live}}}", "B", instant=True),
         query(f"benchd_device_health_ratio{{{live}}}", "C", instant=True),
         query(f"benchd_device_health_since_timestamp_seconds{{{live}}} * 1000", "D", instant=True)],
        (16, 0, 8, 9),
    )  # fmt: skip
    panel = panel.override_by_name("Value #C", [DynamicConfigValue("displayName", "ratio to band")])
    panel = panel.override_by_name("Value #D", [DynamicConfigValue("displayName", "since"),
                                                DynamicConfigValue("unit", "dateTimeAsIso")])  # fmt: skip
    hidden = {
        "Time": True,
        "__name__": True,
        "job": True,
        "instance": True,
        "Value #A": True,
        "Value #B": True,
    }
    return panel.transformations(
        [transformation("merge", {}), transformation("organize", {"excludeByName": hidden})]
    )


def row_header(title: str, y: int) -> dashboard.Row:
    """A full-width collapsible row title at height y; the panels below it belong to it."""
    return dashboard.Row(title).datasource(DATASOURCE).grid_pos(GridPos(h=1, w=24, x=0, y=y))


def why_slow(live: str) -> list[Panel]:
    """The row the regression and outlier alerts link to: what held each config's runs back."""
    return [
        row_header("Why slow?", 37),
        place(timeseries_panel(), "Why slow? Seconds per epoch the clocks were held down, by reason",
              [query(f"benchd_epoch_throttle_seconds{{{HOST_SERIES}}}", legend="{{device}} {{reason}} {{config}}")],
              (0, 38, 12, 8), "s"),
        place(timeseries_panel(), "Why slow? SM clock per epoch: mean and lowest",
              [query(f"benchd_epoch_mean_sm_clock_hertz{{{HOST_SERIES}}}", "A", "mean {{device}} {{config}}"),
               query(f"benchd_epoch_min_sm_clock_hertz{{{HOST_SERIES}}}", "B", "lowest {{device}} {{config}}")],
              (12, 38, 12, 8), "hertz"),
        place(timeseries_panel(), "Why slow? Average power per epoch against the power limit",
              [query(f"benchd_epoch_average_power_watts{{{HOST_SERIES}}}", "A", "power {{device}} {{config}}"),
               query(f"benchd_epoch_power_limit_watts{{{HOST_SERIES}}}", "B", "limit {{device}}")],
              (0, 46, 12, 8), "watt"),
        place(table_panel(), "Why slow? PCIe link and clock events now",
              [query(f"benchd_epoch_pcie_link_generation{{{HOST_SERIES}}}", "A", instant=True),
               query(f"benchd_epoch_pcie_link_width{{{HOST_SERIES}}}", "B", instant=True),
               query(f"benchd_sensor_clock_event_active{{{live}}} == 1", "C", instant=True)],
              (12, 46, 12, 8)),
    ]  # fmt: skip


def compute_row() -> list[Panel]:
    """How much of the device's peak each config's training steps reach (docs/metrics.md)."""
    return [
        row_header("Compute", 54),
        place(timeseries_panel(), "Compute: achieved FLOP/s per config",
              [query(f"benchd_flops_per_second{{{HOST_SERIES}}}", legend="{{workload}} {{preset}} {{device}} {{config}}")],
              (0, 55, 12, 8), "flops"),
        place(timeseries_panel(), "Compute: MFU per config (achieved over the device's peak for the precision)",
              [query(f"benchd_mfu_ratio{{{HOST_SERIES}}}", legend="{{workload}} {{preset}} {{device}} {{config}}")],
              (12, 55, 12, 8), "percentunit"),
    ]  # fmt: skip


def contended_row() -> list[Panel]:
    """Results a busy host still measured: figures beside foreign load, shown apart from the clean ones
    (never a baseline), and how many runs met such load, so an empty clean panel says why."""
    return [
        row_header("Contended: runs measured beside foreign load (kept out of baselines and alerts)", 63),
        place(timeseries_panel(), "Contended: representative epoch of each config's last contended run",
              [query(f"benchd_last_contended_epoch_duration_seconds{{{HOST_SERIES}}}",
                     legend="{{workload}} {{preset}} {{device}} {{config}}")],
              (0, 64, 12, 8), "s"),
        place(table_panel(), "Contended: ok runs beside foreign load in the last day, by series",
              [query(f"increase(benchd_contended_runs_total{{{HOST_SERIES}}}[1d])", instant=True)],
              (12, 64, 12, 8)),
    ]  # fmt: skip


def dcgm_series(metric: str, live: str) -> str:
    """A dcgm-exporter series with benchd's device name on it, joined on the GPU's UUID (docs/metrics.md);
    whole GPUs only, as a MIG instance shares its GPU's UUID with its siblings."""
    return (f'{metric} * on(UUID) group_left(device) label_replace(benchd_device_info{{{live},uuid!="",'
            f'mig_uuid=""}}, "UUID", "$1", "uuid", "(.+)")')  # fmt: skip


def dcgm_row(live: str) -> list[Panel]:
    """What dcgm-exporter says of the same GPUs, where Prometheus scrapes it too (empty otherwise)."""
    return [
        row_header("DCGM: dcgm-exporter's series for this host's GPUs (when it is scraped too)", 72),
        place(timeseries_panel(), "DCGM: GPU temperature, by benchd device",
              [query(dcgm_series("DCGM_FI_DEV_GPU_TEMP", live), legend="{{device}} {{UUID}}")],
              (0, 73, 12, 8), "celsius"),
        place(timeseries_panel(), "DCGM: SM clock, by benchd device",
              [query(dcgm_series("DCGM_FI_DEV_SM_CLOCK", live), legend="{{device}} {{UUID}}")],
              (12, 73, 12, 8), "short"),
    ]  # fmt: skip


def datasource_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def annotation(name: str, color: str, expr: str, *, step: str, title: str, tags: str) -> dict[str, Any]:
    """A Prometheus annotation. The SDK's AnnotationQuery has no fields for the Prometheus query's
    step, title and tags, so those are added to what it builds."""
    built = (
        dashboard.AnnotationQuery()
        .name(name)
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color(color)
        .expr(checked(expr))
    )
    return {**encoded(built), "step": step, "titleFormat": title, "tagKeys": tags}


def encoded(builder: Any) -> dict[str, Any]:
    """What a builder built, as plain JSON values."""
    result: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return result


def benchd_dashboards_link() -> dashboard.DashboardLink:
    """Every benchd dashboard (by its tag) in a menu at the top, keeping the time range and the chosen
    variables: compare machines and host detail lead to each other."""
    return (
        dashboard.DashboardLink("benchd dashboards").type(DashboardLinkType.DASHBOARDS).tags(["benchd"])
        .as_dropdown(True).include_vars(True).keep_time(True)
    )  # fmt: skip


def board(uid: str, title: str, variables: list[Any], panels: list[Panel],
          annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    builder = (
        dashboard.Dashboard(title).uid(uid).tags(["benchd"]).editable().time("now-7d", "now").refresh("1m")
        .tooltip(DashboardCursorSync.CROSSHAIR).variables(variables).links([benchd_dashboards_link()])
    )  # fmt: skip
    for number, panel in enumerate(panels, start=1):
        if isinstance(panel, dashboard.Row):
            builder = builder.with_row(panel.id(number))
        else:
            builder = builder.with_panel(panel.id(number))
    result = encoded(builder)
    result["annotations"] = {"list": annotations or []}
    return result


def sidecar_configmap(files: dict[str, str]) -> str:
    """The same dashboards as a ConfigMap that Grafana's dashboard sidecar picks up in Kubernetes."""
    resource = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "benchd-grafana-dashboards",
            "namespace": "benchd",
            "labels": {"app.kubernetes.io/name": "benchd", "grafana_dashboard": "1"},
        },
        "data": files,
    }
    return "# Generated by grafana/generate.py.\n" + yaml.safe_dump(resource, sort_keys=False, width=110)


def outputs() -> dict[Path, str]:
    files = {
        "compare-machines.json": json.dumps(compare_machines(), indent=2) + "\n",
        "host-detail.json": json.dumps(host_detail(), indent=2) + "\n",
    }
    result = {ROOT / "dashboards" / name: text for name, text in files.items()}
    result[ROOT.parent / "deploy" / "kubernetes" / "base" / "grafana-dashboards.yaml"] = sidecar_configmap(
        files
    )
    return result


if __name__ == "__main__":
    for path, text in outputs().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT.parent)}", file=sys.stderr)
