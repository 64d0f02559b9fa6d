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

from benchd.metric_contract import checked
from benchd.results.model import FAILED_OUTCOMES as FAILURES

ROOT = Path(__file__).resolve().parent

CONFIG: dict[str, Any] = {
    "selector": 'job="benchd"',
    "regression_factor": 1.2,
    "regression_noise_factor": 3,  # and beyond 3 times the config's usual run-to-run spread
    "regression_min_runs": 3,  # no baseline of fewer previous ok runs
    "regression_for": "1h",
    "stale_factor": 2.5,
    "failure_window": "6h",
    "hot_celsius": 85,
    "outlier_factor": 1.25,  # slower than the fleet median of the same config on the same GPU model by this
    "outlier_min_devices": 3,  # and only where at least this many such devices report the config
    "outlier_for": "2h",
    "unstable_for": "1d",  # a config's recent ok runs vary by more than 5% (benchd_unstable) this long
    # Where the alerts' links point: settings, as a site renders its own rules with
    # `python deploy/mixin.py --grafana-url URL --runbook-url URL`. The defaults are the compose stack's
    # Grafana as a person on that host opens it, and the runbook as this repository holds it.
    "grafana_url": "http://localhost:3000",
    "runbook_url": "docs/runbook.md",
    # What the Prometheus Operator of a default kube-prometheus-stack selects rules and monitors by.
    "operator_labels": {"release": "kube-prometheus-stack"},
}

FAILED_OUTCOMES = "|".join(FAILURES)
SAME_CONFIG = "job, instance, workload, preset, device, config"


# The config and band a verdict comes from, as `benchd health` words them.
_VERDICT_REASON = (
    "`benchd health --configs` on the host prints the config, the band and the runs it rests on."
)


def _verdict(s: str, state: str) -> str:
    """Devices in that verdict, with the config and band it comes from as labels."""
    return (f'(benchd_device_health{{{s},state="{state}"}} == 1) * on(instance, device) '
            f"group_left(workload, preset, config, band) benchd_device_health_info{{{s}}}")  # fmt: skip


def _alert(
    name: str, expr: str, duration: str, severity: str, summary: str, description: str, dashboard: str = ""
) -> dict[str, Any]:
    annotations = {"summary": summary, "description": description}
    if dashboard:
        annotations["dashboard_url"] = dashboard
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": annotations,
    }


def _why_slow(config: dict[str, Any]) -> str:
    """The host-detail dashboard at the alerting device, where its "Why slow?" row is."""
    return (f"{config['grafana_url']}/d/benchd-host/?var-instance={{{{ $labels.instance }}}}"
            "&var-device={{ $labels.device }}")  # fmt: skip


def _with_model(series: str, s: str) -> str:
    """A results series with its device's model (benchd_device_info's `name`) as a label."""
    return f"({series} * on(instance, device) group_left(name) benchd_device_info{{{s}}})"


def with_runbooks(groups: list[dict[str, Any]], config: dict[str, Any]) -> list[dict[str, Any]]:
    """Each alert's runbook link: its section of the runbook (docs/runbook.md has one per alert)."""
    for group in groups:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["annotations"]["runbook_url"] = f"{config['runbook_url']}#{rule['alert'].lower()}"
    return groups


def rule_groups(config: dict[str, Any]) -> list[dict[str, Any]]:
    return with_runbooks(_rule_groups(config), config)


def _rule_groups(config: dict[str, Any]) -> list[dict[str, Any]]:
    s = config["selector"]
    modelled = _with_model(f"benchd_last_epoch_duration_seconds{{{s}}}", s)
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
                    "Open the host-detail dashboard's Why slow? row: time throttled by reason, clocks, the "
                    "power limit and the PCIe link of this run against the earlier ones; then look for a hot "
                    "device, other processes on it, a driver or torch upgrade (benchd_device_info, "
                    "benchd_build_info).",
                    _why_slow(config),
                ),
                _alert(
                    "BenchdDeviceDegraded",
                    _verdict(s, "degraded"),
                    "0m",
                    "warning",
                    "{{ $labels.device }} on {{ $labels.instance }} is degraded: {{ $labels.workload }} "
                    "{{ $labels.preset }} (config {{ $labels.config }}) is slower than its {{ $labels.band }} "
                    "band in several of its recent runs.",
                    f"The verdict is already confirmed over runs (docs/health.md). {_VERDICT_REASON} Open the "
                    "Why slow? row; drain the node if it holds (node-problem-detector's BenchdPerformanceDegraded "
                    "condition, or the Slurm health check, does so where deployed).",
                    _why_slow(config),
                ),
                _alert(
                    "BenchdDeviceFailing",
                    _verdict(s, "failing"),
                    "0m",
                    "critical",
                    "{{ $labels.device }} on {{ $labels.instance }} is failing: {{ $labels.workload }} "
                    "{{ $labels.preset }} (config {{ $labels.config }}) runs that used to succeed end oom, "
                    "error or timeout.",
                    f"{_VERDICT_REASON} `benchd runs --outcome error` (or oom, timeout) and `benchd show ID` "
                    "give each failure's message and the end of its log.",
                    _why_slow(config),
                ),
                _alert(
                    "BenchdDeviceCorrupt",
                    _verdict(s, "corrupt"),
                    "0m",
                    "critical",
                    "{{ $labels.device }} on {{ $labels.instance }} computes wrong answers: a deterministic "
                    "{{ $labels.workload }} {{ $labels.preset }} run (config {{ $labels.config }}) disagrees bit "
                    "for bit with what the same config on the same software stack gave before or elsewhere.",
                    f"{_VERDICT_REASON} Take the device out of service and run the vendor's diagnostics (DCGM "
                    "level 3, memory and ECC tests): silent data corruption passes every speed check. `benchd "
                    "selftest` shows the detector working; `benchd compare` lists the fleet's disagreements.",
                    _why_slow(config),
                ),
                _alert(
                    "BenchdDeviceOutlier",
                    f"({modelled} / on(config, name) group_left() quantile by (config, name) (0.5, {modelled})) "
                    f"> {config['outlier_factor']} "
                    f"and on(config, name) (count by (config, name) ({modelled}) >= {config['outlier_min_devices']})",
                    config["outlier_for"],
                    "warning",
                    "{{ $labels.device }} on {{ $labels.instance }} ({{ $labels.name }}) is more than "
                    f"{config['outlier_factor']}x slower than the fleet's median for config "
                    "{{ $labels.config }} on that model.",
                    "Same work, same GPU model, and this device is an outlier: open its Why slow? row (power "
                    "cap or thermal throttling, a lower power limit, a PCIe link trained down), and compare "
                    "its driver and cooling with its peers.",
                    _why_slow(config),
                ),
                _alert(
                    "BenchdConfigUnstable",
                    f"benchd_unstable{{{s}}} == 1",
                    config["unstable_for"],
                    "warning",
                    "{{ $labels.workload }} {{ $labels.preset }} on {{ $labels.instance }} ({{ $labels.device }}, "
                    "config {{ $labels.config }}) varies by more than 5% from run to run.",
                    "Its figures move more than a comparison can trust, and the regression alert's allowance "
                    "grows with the noise. Look for other load during its runs (the busy check, contended "
                    "runs), throttling in its Why slow? row, or a fraction too short to time well; "
                    "`repeat` in its schedule measures the spread.",
                    _why_slow(config),
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
                    "{{ $labels.device }} on {{ $labels.instance }} is above "
                    f"{config['hot_celsius']} C.",
                    "Check cooling and fan curves; a hot device throttles and slows every benchmark.",
                )
            ],
        }
    ]


def render(groups: list[dict[str, Any]]) -> str:
    for group in groups:
        for rule in group["rules"]:
            checked(rule["expr"])
    header = "# Generated by deploy/mixin.py: edit that file and run it, not this one.\n"
    return header + yaml.safe_dump({"groups": groups}, sort_keys=False, width=110)


def render_prometheus_rule(groups: list[dict[str, Any]]) -> str:
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "benchd",
            "namespace": "benchd",
            "labels": {"app.kubernetes.io/name": "benchd", **CONFIG["operator_labels"]},
        },
        "spec": {"groups": groups},
    }
    header = "# Generated by deploy/mixin.py: edit that file and run it, not this one.\n"
    return header + yaml.safe_dump(resource, sort_keys=False, width=110)


def outputs() -> dict[Path, str]:
    groups = rule_groups(CONFIG)
    return {
        ROOT / "prometheus" / "rules" / "benchd.rules.yml": render(groups),
        ROOT / "prometheus" / "rules" / "benchd-optional.rules.yml": render(
            with_runbooks(optional_groups(CONFIG), CONFIG)
        ),
        ROOT / "kubernetes" / "base" / "prometheusrule.yaml": render_prometheus_rule(groups),
    }


def main(arguments: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Render benchd's Prometheus rules.")
    parser.add_argument("--grafana-url", default=CONFIG["grafana_url"], help="the Grafana alerts link to")
    parser.add_argument(
        "--runbook-url", default=CONFIG["runbook_url"], help="where docs/runbook.md is served"
    )
    chosen = parser.parse_args(arguments)
    CONFIG.update(grafana_url=chosen.grafana_url.rstrip("/"), runbook_url=chosen.runbook_url)
    for path, text in outputs().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
