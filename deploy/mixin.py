"""benchd's Prometheus rules, written once and rendered for plain Prometheus and for Kubernetes.

Run `python deploy/mixin.py` after changing this file; a test fails when the
rendered files are stale. CONFIG holds what a site may want to change, as
monitoring mixins do: the selector that finds benchd's series, the
regression factor and durations, and the opt-in device-hot threshold.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from benchd.results.model import FAILED_OUTCOMES as FAILURES

ROOT = Path(__file__).resolve().parent
RUNBOOK = "https://github.com/benchd/benchd/blob/main/docs/runbook.md"

CONFIG: dict[str, Any] = {
    "selector": 'job="benchd"',
    "regression_factor": 1.2,
    "regression_noise_factor": 3,  # and beyond 3 times the config's usual run-to-run spread
    "regression_min_runs": 3,  # no baseline of fewer previous ok runs
    "regression_for": "1h",
    "stale_factor": 2.5,
    "failure_window": "6h",
    "hot_celsius": 85,
}

FAILED_OUTCOMES = "|".join(FAILURES)
SAME_CONFIG = "job, instance, workload, preset, device, config"


def _alert(
    name: str, expr: str, duration: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{RUNBOOK}#{name.lower()}",
        },
    }


def rule_groups(config: dict[str, Any]) -> list[dict[str, Any]]:
    s = config["selector"]
    return [
        {
            "name": "benchd.alerts",
            "rules": [
                _alert(
                    "BenchdDown",
                    f"up{{{s}}} == 0",
                    "5m",
                    "critical",
                    "benchd on {{ $labels.instance }} is not answering scrapes.",
                    "Prometheus cannot scrape benchd on {{ $labels.instance }}. Check that the service runs "
                    "(`systemctl status benchd`, or the pod) and that its port is reachable.",
                ),
                _alert(
                    "BenchdRunFailed",
                    f'increase(benchd_runs_total{{{s},outcome=~"{FAILED_OUTCOMES}"}}[{config["failure_window"]}]) > 0',
                    "0m",
                    "warning",
                    "A {{ $labels.workload }} {{ $labels.preset }} run on {{ $labels.instance }} ended "
                    "{{ $labels.outcome }}.",
                    "Look at the run with `benchd runs --outcome {{ $labels.outcome }}` and `benchd show ID`: "
                    "`oom` means the device ran out of memory, `error` keeps the message and the end of the "
                    "child's log, `timeout` a run slower than its limit, `interrupted` a daemon restart.",
                ),
                _alert(
                    "BenchdNoRecentSuccess",
                    f"(time() - benchd_last_success_timestamp_seconds{{{s}}}) > on(instance, workload, preset) "
                    f"group_left {config['stale_factor']} * benchd_schedule_interval_seconds{{{s}}}",
                    "15m",
                    "warning",
                    "No successful {{ $labels.workload }} {{ $labels.preset }} run on {{ $labels.instance }} "
                    f"for {config['stale_factor']} schedule intervals.",
                    "Scheduled runs are failing or being skipped. `benchd status` and `benchd runs` show why; "
                    "skipped runs carry the busy-check reason.",
                ),
                _alert(
                    "BenchdPerformanceRegression",
                    f"benchd_last_epoch_duration_seconds{{{s}}} > on({SAME_CONFIG}) "
                    f"(benchd_baseline_epoch_duration_seconds{{{s}}} * on({SAME_CONFIG}) "
                    f"({config['regression_factor']} + {config['regression_noise_factor']} * "
                    f"benchd_baseline_epoch_spread_ratio{{{s}}})) "
                    f"and on({SAME_CONFIG}) benchd_baseline_runs{{{s}}} >= {config['regression_min_runs']}",
                    config["regression_for"],
                    "warning",
                    "{{ $labels.workload }} {{ $labels.preset }} on {{ $labels.instance }} ({{ $labels.device }}, "
                    "config {{ $labels.config }}) is more than "
                    f"{config['regression_factor']}x slower than the median of its previous runs.",
                    "Compare with the host-detail dashboard: look for throttling, a hot device, other processes "
                    "on the device, a driver or torch upgrade (benchd_device_info, benchd_build_info).",
                ),
                _alert(
                    "BenchdAcceleratorMissing",
                    f'count by (instance) (max_over_time(benchd_device_info{{{s},type!="cpu"}}[1d])) '
                    f'unless count by (instance) (benchd_device_info{{{s},type!="cpu"}})',
                    "10m",
                    "critical",
                    "benchd on {{ $labels.instance }} no longer sees the accelerator it had.",
                    "The GPU fell off the bus, the driver is gone, or the container lost its device: check "
                    "`nvidia-smi` and `benchd doctor` on the host. Runs now fall back to the CPU.",
                ),
                _alert(
                    "BenchdSensorFailing",
                    f"increase(benchd_sensor_errors_total{{{s}}}[15m]) > 0 or benchd_collector_up{{{s}}} == 0",
                    "15m",
                    "warning",
                    "A benchd sensor or collector on {{ $labels.instance }} is failing.",
                    "Energy, power or temperature figures may be missing. `benchd doctor` shows each sensor's "
                    "state; the daemon's log has the errors.",
                ),
            ],
        },
    ]


def optional_groups(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Opt-in alerts: not loaded by the shipped prometheus.yml."""
    s = config["selector"]
    return [
        {
            "name": "benchd.optional",
            "rules": [
                _alert(
                    "BenchdDeviceHot",
                    f"benchd_sensor_temperature_celsius{{{s}}} > {config['hot_celsius']}",
                    "10m",
                    "warning",
                    "{{ $labels.domain }} on {{ $labels.instance }} is above "
                    f"{config['hot_celsius']} C.",
                    "Check cooling and fan curves; a hot device throttles and slows every benchmark.",
                )
            ],
        }
    ]


def render(groups: list[dict[str, Any]]) -> str:
    header = "# Generated by deploy/mixin.py: edit that file and run it, not this one.\n"
    return header + yaml.safe_dump({"groups": groups}, sort_keys=False, width=110)


def render_prometheus_rule(groups: list[dict[str, Any]]) -> str:
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "benchd", "labels": {"app.kubernetes.io/name": "benchd"}},
        "spec": {"groups": groups},
    }
    header = "# Generated by deploy/mixin.py: edit that file and run it, not this one.\n"
    return header + yaml.safe_dump(resource, sort_keys=False, width=110)


def outputs() -> dict[Path, str]:
    groups = rule_groups(CONFIG)
    return {
        ROOT / "prometheus" / "rules" / "benchd.rules.yml": render(groups),
        ROOT / "prometheus" / "rules" / "benchd-optional.rules.yml": render(optional_groups(CONFIG)),
        ROOT / "kubernetes" / "prometheusrule.yaml": render_prometheus_rule(groups),
    }


if __name__ == "__main__":
    for path, text in outputs().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT.parent)}", file=sys.stderr)
