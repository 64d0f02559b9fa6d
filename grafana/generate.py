"""Grafana dashboards for benchd, generated so that panels stay consistent with each other.

Run `python grafana/generate.py` after editing; a test fails when the JSON in
grafana/dashboards/ is stale. Dashboards use a datasource template variable
(never `__inputs`) and are provisioned from files (grafana/provisioning/).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from benchd.catalog.suites import DEFAULT_SUITE
from benchd.results.model import Outcome

ROOT = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SERIES = 'instance=~"$instance",workload=~"$workload",preset=~"$preset",device=~"$device"'
HOST_SERIES = 'instance="$instance",workload=~"$workload",preset=~"$preset",device=~"$device"'
# Results carry their config: the selected configs (default: the standard suite's), like for like.
RESULTS = SERIES + ',config=~"$config"'
# Devices of the chosen type and model (a results series joins it on instance and device).
CHOSEN_DEVICES = 'benchd_device_info{type=~"$device_type",name=~"$model"}'


def on_chosen_devices(expr: str) -> str:
    return f"({expr} and on(instance, device) {CHOSEN_DEVICES})"


def variable(name: str, query: str, *, multi: bool = True, label: str | None = None) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label or name.capitalize(),
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {},
        "sort": 1,
    }


def suite_variable() -> dict[str, Any]:
    """Which suite's configs to show; the standard suite by default, so machines compare like for like."""
    suite = variable("suite", "label_values(benchd_config_info, suite)")
    suite["current"] = {"text": DEFAULT_SUITE, "value": DEFAULT_SUITE}
    return suite


def datasource_variable() -> dict[str, Any]:
    return {
        "type": "datasource",
        "name": "datasource",
        "label": "Data source",
        "query": "prometheus",
        "current": {},
    }


def target(expr: str, ref: str = "A", legend: str | None = None, *, instant: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {"refId": ref, "expr": expr, "datasource": DATASOURCE}
    if instant:
        result.update(instant=True, range=False, format="table")
    if legend:
        result["legendFormat"] = legend
    return result


def panel(kind: str, title: str, targets: list[dict[str, Any]], pos: tuple[int, int, int, int],
          unit: str | None = None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    x, y, w, h = pos
    result = {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []},
        "options": {},
    }
    result.update(extra)
    return result


OUTCOME_COLORS = {
    Outcome.OK: "green",
    Outcome.OOM: "red",
    Outcome.ERROR: "red",
    Outcome.TIMEOUT: "orange",
    Outcome.CANCELLED: "gray",
    Outcome.SKIPPED: "gray",
    Outcome.INTERRUPTED: "orange",
}
OUTCOME_MAPPINGS = [
    {
        "type": "value",
        "options": {
            outcome.value: {"text": outcome.label, "color": OUTCOME_COLORS[outcome]} for outcome in Outcome
        },
    }
]

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


def compare_machines() -> dict[str, Any]:
    table_targets = [
        target(expr, chr(ord("A") + i), instant=True) for i, (_t, expr, _u) in enumerate(TABLE_COLUMNS)
    ]
    overrides = [
        {"matcher": {"id": "byName", "options": f"Value #{chr(ord('A') + i)}"},
         "properties": [{"id": "displayName", "value": title}] + ([{"id": "unit", "value": unit}] if unit else [])}
        for i, (title, _e, unit) in enumerate(TABLE_COLUMNS)
    ]  # fmt: skip
    overrides.append({"matcher": {"id": "byName", "options": "outcome"},
                      "properties": [{"id": "mappings", "value": OUTCOME_MAPPINGS},
                                     {"id": "custom.cellOptions", "value": {"type": "color-text"}}]})  # fmt: skip
    table = panel("table", "Machines and workloads (last ok run; last outcome shown even when it failed)",
                  table_targets, (0, 0, 24, 12))  # fmt: skip
    table["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True, "job": True,
                                                          "Value #I": True, "Value #J": True}}},
    ]  # fmt: skip
    table["fieldConfig"]["overrides"] = overrides
    bars = panel(
        "barchart", "Epoch time by machine, scaled to a full epoch (lower is faster)",
        [target(on_chosen_devices(f"benchd_last_epoch_duration_seconds{{{RESULTS}}} / "
                                  f"benchd_epoch_fraction_ratio{{{RESULTS}}}"),
                legend="{{instance}} {{workload}} {{preset}} {{config}}", instant=True)],
        (0, 12, 12, 10), "s",
        transformations=[{"id": "reduce", "options": {"reducers": ["lastNotNull"], "labelsToFields": True}}],
    )  # fmt: skip
    relative = panel(
        "bargauge", "Speed relative to the baseline machine, same config and device type (above 1: faster)",
        [target("max by (workload, preset, config) " + on_chosen_devices(
                    'benchd_last_epoch_duration_seconds{instance="$baseline",workload=~"$workload",'
                    'preset=~"$preset",config=~"$config"}')
                + " / on(workload, preset, config) group_right() "
                + on_chosen_devices(f"benchd_last_epoch_duration_seconds{{{RESULTS}}}"),
                legend="{{instance}} {{workload}} {{preset}} {{config}}", instant=True)],
        (12, 12, 12, 10), "x",
    )  # fmt: skip
    failures = panel(
        "timeseries", "Failed runs (DNF: out of memory; runtime error)",
        [target(f'sum by (instance, workload, preset, outcome) (increase(benchd_runs_total{{{SERIES},'
                f'outcome=~"oom|error|timeout"}}[$__rate_interval]))', legend="{{instance}} {{workload}} "
                "{{preset}} {{outcome}}")],
        (0, 22, 24, 8), "short",
    )  # fmt: skip
    return dashboard(
        "benchd-compare", "benchd: compare machines",
        [datasource_variable(), variable("instance", "label_values(benchd_build_info, instance)"),
         variable("workload", "label_values(benchd_runs_total, workload)"),
         variable("preset", 'label_values(benchd_runs_total{workload=~"$workload"}, preset)'),
         variable("device", "label_values(benchd_runs_total, device)"),
         variable("device_type", "label_values(benchd_device_info, type)", label="Device type"),
         variable("model", 'label_values(benchd_device_info{type=~"$device_type"}, name)', label="Device model"),
         suite_variable(),
         variable("config", 'label_values(benchd_config_info{suite=~"$suite",workload=~"$workload"}, config)'),
         variable("baseline", "label_values(benchd_build_info, instance)", multi=False, label="Baseline machine")],
        [table, bars, relative, failures], [],
    )  # fmt: skip


def host_detail() -> dict[str, Any]:
    live = 'instance="$instance"'
    panels = [
        panel("timeseries", "Epoch duration over time, by config, with each config's baseline",
              [target(f"benchd_last_epoch_duration_seconds{{{HOST_SERIES}}}", "A",
                      "{{workload}} {{preset}} {{device}} {{config}}"),
               target(f"benchd_baseline_epoch_duration_seconds{{{HOST_SERIES}}}", "B",
                      "baseline {{workload}} {{preset}} {{config}}")],
              (0, 0, 24, 9), "s"),
        panel("timeseries", "Device temperature", [target(f"benchd_sensor_temperature_celsius{{{live}}}", legend="{{domain}}")],
              (0, 9, 8, 8), "celsius"),
        panel("timeseries", "Power", [target(f"benchd_sensor_power_watts{{{live}}}", legend="{{domain}}")],
              (8, 9, 8, 8), "watt"),
        panel("timeseries", "Device memory in use",
              [target(f"benchd_sensor_memory_used_bytes{{{live}}}", legend="{{domain}}")], (16, 9, 8, 8), "bytes"),
        panel("timeseries", "Runs in progress", [target(f"sum(benchd_run_in_progress{{{live}}})", legend="runs")],
              (0, 17, 8, 6), "short"),
        panel("timeseries", "Outcomes",
              [target(f"sum by (outcome) (increase(benchd_runs_total{{{HOST_SERIES}}}[$__rate_interval]))",
                      legend="{{outcome}}")], (8, 17, 8, 6), "short"),
        panel("stat", "Queue length", [target(f"benchd_queue_length{{{live}}}")], (16, 17, 4, 6), "short"),
        panel("stat", "Time since the last run",
              [target(f"time() - max(benchd_last_run_timestamp_seconds{{{HOST_SERIES}}})")], (20, 17, 4, 6), "s"),
        panel("table", "Sensor and collector health",
              [target(f"benchd_sensor_up{{{live}}}", "A", instant=True),
               target(f"benchd_collector_up{{{live}}}", "B", instant=True),
               target(f"increase(benchd_sensor_errors_total{{{live}}}[1h])", "C", instant=True)],
              (0, 23, 24, 7), None),
        panel("table", "The host: OS, CPU, memory, image, and its devices with their UUIDs, drivers and torch",
              [target(f"benchd_host_info{{{live}}}", "A", instant=True),
               target(f"benchd_host_memory_bytes{{{live}}}", "B", instant=True),
               target(f"benchd_device_info{{{live}}}", "C", instant=True),
               target(f"benchd_device_power_limit_watts{{{live}}}", "D", instant=True)],
              (0, 30, 24, 7), None),
    ]  # fmt: skip
    annotations = [
        {"name": "Runs", "datasource": DATASOURCE, "enable": True, "iconColor": "rgba(0, 120, 255, 0.3)",
         "expr": f"benchd_run_in_progress{{{live}}} == 1", "step": "10s", "titleFormat": "{{workload}} {{preset}}",
         "tagKeys": "workload,preset,device"},
        # An info metric whose labels changed is a new series: present now, absent ten minutes ago.
        {"name": "torch or benchd upgraded", "datasource": DATASOURCE, "enable": True,
         "iconColor": "rgba(255, 160, 0, 0.8)",
         "expr": f"benchd_build_info{{{live}}} unless benchd_build_info{{{live}}} offset 10m", "step": "5m",
         "titleFormat": "benchd {{version}}, torch {{torch_version}}", "tagKeys": "version,torch_version"},
        {"name": "driver changed", "datasource": DATASOURCE, "enable": True, "iconColor": "rgba(255, 80, 0, 0.8)",
         "expr": f'benchd_device_info{{{live},driver_version!=""}} unless benchd_device_info{{{live}}} offset 10m',
         "step": "5m", "titleFormat": "{{device}}: driver {{driver_version}}", "tagKeys": "device,driver_version"},
    ]  # fmt: skip
    return dashboard(
        "benchd-host", "benchd: host detail",
        [datasource_variable(), variable("instance", "label_values(benchd_build_info, instance)", multi=False),
         variable("workload", 'label_values(benchd_runs_total{instance="$instance"}, workload)'),
         variable("preset", 'label_values(benchd_runs_total{instance="$instance",workload=~"$workload"}, preset)'),
         variable("device", 'label_values(benchd_runs_total{instance="$instance"}, device)')],
        panels, annotations,
    )  # fmt: skip


def dashboard(uid: str, title: str, variables: list, panels: list, annotations: list) -> dict[str, Any]:
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    return {
        "uid": uid,
        "title": title,
        "tags": ["benchd"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "1m",
        "templating": {"list": variables},
        "annotations": {"list": annotations},
        "panels": panels,
    }


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
    result[ROOT.parent / "deploy" / "kubernetes" / "grafana-dashboards.yaml"] = sidecar_configmap(files)
    return result


if __name__ == "__main__":
    for path, text in outputs().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT.parent)}", file=sys.stderr)
