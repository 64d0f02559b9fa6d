"""Dashboards and rules proven against a real Prometheus scraping a real benchd."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from benchd import metric_contract as contract

from .daemon_process import DaemonProcess, free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
# Figures a CPU-only machine without RAPL cannot have (absent, never 0).
CPU_ONLY_ABSENT = ("benchd_epoch_", "benchd_peak_device_memory_bytes")
QUICK_VAE = {"workload": "vae", "presets": ["bs128"], "fraction": 0.02, "device": "cpu", "epochs": 2}


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: the test command installs Debian's prometheus package")
    return path


def load_generator(relative: str):
    spec = importlib.util.spec_from_file_location(Path(relative).stem, ROOT / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("generator", ["grafana/generate.py", "deploy/mixin.py", "deploy/contract_files.py"])
def test_generated_files_are_current(generator: str) -> None:
    module = load_generator(generator)
    for path, text in module.outputs().items():
        assert path.read_text() == text, f"{path} is stale: run python {generator}"


def dashboard_exprs(dashboard: dict) -> list[tuple[str, str]]:
    found = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    found += [(a["name"], a["expr"]) for a in dashboard["annotations"]["list"] if "expr" in a]
    return found


def rule_exprs() -> list[tuple[str, str]]:
    return [
        (rule.get("alert") or rule["record"], rule["expr"])
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def test_every_name_a_dashboard_or_rule_uses_is_declared_and_documented() -> None:
    """The generators check names as they write (metric_contract.checked); this holds the files in git
    to it too, and docs/metrics.md, written from the same table, lists every declared family."""
    exprs = [e for d in DASHBOARDS for _t, e in dashboard_exprs(json.loads(d.read_text()))] + [
        e for _n, e in rule_exprs()
    ]
    assert exprs and [(e, contract.undeclared(e)) for e in exprs if contract.undeclared(e)] == []
    documented = set(re.findall(r"^\| `(benchd_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text(), re.M))
    assert documented == set(contract.BY_NAME)
    with pytest.raises(ValueError, match="benchd_runs_count: not declared"):
        contract.checked("increase(benchd_runs_count[1h])")


def test_dashboards_use_a_datasource_variable_not_inputs() -> None:
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert "__inputs" not in dashboard
        names = [v["name"] for v in dashboard["templating"]["list"]]
        assert names[0] == "datasource" and {"instance", "workload", "preset", "device"} <= set(names)
        for panel in dashboard["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_the_dashboards_lead_to_each_other() -> None:
    """Each carries a menu of the dashboards tagged benchd, keeping time range and variables."""
    uids = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert "benchd" in dashboard["tags"]
        (link,) = dashboard["links"]
        assert (link["type"], link["tags"], link["includeVars"], link["keepTime"]) == (
            "dashboards", ["benchd"], True, True)  # fmt: skip
        uids.add(dashboard["uid"])
    assert uids == {"benchd-compare", "benchd-host"}


@pytest.mark.slow
def test_promtool_checks_config_and_rules_and_runs_rule_tests() -> None:
    promtool = require("promtool")
    deploy = ROOT / "deploy" / "prometheus"
    for command in (
        ["check", "config", str(deploy / "prometheus.yml")],
        ["check", "rules", *map(str, RULE_FILES)],
        ["test", "rules", str(deploy / "tests" / "benchd.test.yml")],
    ):
        result = subprocess.run([promtool, *command], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def stack(small_data_dir: Path, tmp_path: Path) -> Iterator[tuple[DaemonProcess, httpx.Client]]:
    prometheus = require("prometheus")
    data_dir = tmp_path / "benchd"
    data_dir.mkdir()
    (data_dir / "datasets").symlink_to(small_data_dir / "datasets")
    daemon = DaemonProcess(data_dir, "[workloads]\n").start()
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [
            {"job_name": "benchd", "static_configs": [{"targets": [f"127.0.0.1:{daemon.port}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - outlives this block, closed below
    server = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        wait_for(lambda: _ready(client), 60, "Prometheus to be ready")
        yield daemon, client
    finally:
        client.close()
        server.terminate()
        server.wait(30)
        log.close()
        daemon.close()


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/-/ready").status_code == 200
    except httpx.TransportError:
        return False


def query(client: httpx.Client, expr: str) -> list:
    answer = client.get("/api/v1/query", params={"query": expr}).json()
    assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
    return answer["data"]["result"]


def substitute(expr: str, instance: str) -> str:
    values = {
        "$instance": instance, "$baseline": instance, "$workload": ".*", "$preset": ".*", "$device": ".*",
        "$device_type": ".*", "$model": ".*", "$suite": ".*", "$config": ".*",
        "$__rate_interval": "1m", "$__interval": "15s",
    }  # fmt: skip
    for name in sorted(values, key=len, reverse=True):  # $device_type before $device
        expr = expr.replace(name, values[name])
    return expr


@pytest.mark.slow
def test_every_dashboard_and_rule_expression_evaluates_against_real_data(stack) -> None:
    daemon, prometheus = stack
    (run,) = daemon.http.post("/api/v1/runs", json=QUICK_VAE).json()["runs"]
    assert daemon.wait_finished(run["id"])["outcome"] == "ok"
    instance = f"127.0.0.1:{daemon.port}"
    wait_for(
        lambda: query(prometheus, 'benchd_runs_total{outcome="ok",workload="vae"} == 1'),
        60,
        "the run to be scraped",
    )
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for title, expr in dashboard_exprs(dashboard):
            result = query(prometheus, substitute(expr, instance))
            if must_have_data(dashboard["uid"], title, expr):
                assert result, f"{title}: no data for {expr}"
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                match = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"])
                assert match, variable["query"]
                series = substitute(match.group(1), instance)
                values = prometheus.get("/api/v1/series", params={"match[]": series}).json()
                assert values["status"] == "success" and values["data"], series
    for _name, expr in rule_exprs():
        query(prometheus, expr)
    rules = wait_for(lambda: _evaluated_rules(prometheus), 30, "every rule to be evaluated")
    assert all(rule["health"] == "ok" for rule in rules), rules
    assert {r["name"] for r in rules} == {n for n, _e in rule_exprs()}


def must_have_data(uid: str, title: str, expr: str) -> bool:
    """The compare table, the host epoch-duration panel and the compute row must show the run just made.

    Sensor columns need RAPL or NVML and device memory needs an accelerator,
    which this machine lacks; a baseline needs a previous run of the config,
    and a contended figure a run beside foreign load: those may be empty here.
    """
    if uid == "benchd-compare" and title.startswith("Machines and workloads"):
        return not any(m in expr for m in CPU_ONLY_ABSENT)
    if uid == "benchd-host" and title.startswith("Compute:"):
        return True  # a CPU's peak is measured, so even here every run has FLOP/s and MFU
    optional = ("baseline", "contended")
    return (
        uid == "benchd-host"
        and title.startswith("Epoch duration over time")
        and not any(word in expr for word in optional)
    )


def _evaluated_rules(client: httpx.Client) -> list[dict] | None:
    groups = client.get("/api/v1/rules").json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    return rules if rules and all(rule["health"] != "unknown" for rule in rules) else None


@pytest.mark.slow
def test_compare_from_prometheus_gives_the_table_a_bundle_gives(stack, tmp_path: Path) -> None:
    """The fleet path (instant queries) and the bundle path (the daemon's runs) are one table."""
    from .test_cli import benchd

    daemon, prometheus = stack
    (queued,) = daemon.http.post("/api/v1/runs", json=QUICK_VAE).json()["runs"]
    run = daemon.wait_finished(queued["id"])
    assert run["outcome"] == "ok"
    scraped = "benchd_last_epoch_duration_seconds and on(instance) benchd_host_info"
    wait_for(lambda: query(prometheus, scraped), 60, "the run's figures to be scraped")
    from_prometheus = benchd("compare", "--prometheus", str(prometheus.base_url), "--format", "json")
    assert from_prometheus.returncode == 0, from_prometheus.stderr
    bundle = tmp_path / "bundle.json"
    exported = benchd("export", "--url", f"http://127.0.0.1:{daemon.port}", "--output", str(bundle))
    assert exported.returncode == 0, exported.stderr
    from_bundle = benchd("compare", str(bundle), "--format", "json")
    assert from_bundle.returncode == 0, from_bundle.stderr
    table = json.loads(from_prometheus.stdout)
    assert table == json.loads(from_bundle.stdout)
    (cell,) = table["cells"]
    assert (cell["workload"], cell["preset"], cell["config"]) == ("vae", "bs128", run["config_id"])
    assert cell["epoch_seconds"] > 0 and cell["scaled"] is True and cell["baseline"] is True
