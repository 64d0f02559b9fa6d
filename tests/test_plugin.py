"""A workload from a separately installed distribution (examples/plugin-workload) is a workload like any.

The example is installed with pip into a folder of its own and put on the
path of every benchd process the test starts (the CLI, the daemon and, by
inheritance, the training children): nothing in benchd is told about it but
its entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .daemon_process import DaemonProcess

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plugin-workload"
NO_SCHEDULE = "[workloads]\n"
MLP_PARAMETERS = 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10  # bs128-h512: three Linear layers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, installed by pip as a user would: a wheel built from its pyproject.toml in an isolated
    build environment (setuptools from the package index), benchd itself already there."""
    target = tmp_path_factory.mktemp("plugin-site")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-cache-dir", "--target",
         str(target), str(EXAMPLE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    return target


def _env(plugin_path: Path, data_dir: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}
    return {**inherited, "PYTHONPATH": str(plugin_path), "BENCHD_DATA_DIR": str(data_dir)}


def _benchd(plugin_path: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchd", *args], env=_env(plugin_path, data_dir),
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip


def test_an_installed_plug_in_is_listed_run_and_compared_like_a_built_in(
    plugin_path: Path, data_dir: Path
) -> None:
    listed = json.loads(_benchd(plugin_path, data_dir, "workloads", "--json").stdout)
    mlp = [row for row in listed if row["workload"] == "mlp"]
    assert next((r["preset"], r["dataset"], r["parameters"]) for r in mlp) == (
        "bs128-h512",
        "mnist",
        MLP_PARAMETERS,
    )
    assert mlp[0]["option_bounds"] == {"hidden": {"minimum": 8, "maximum": 16384, "multiple_of": 1}}

    result = _benchd(plugin_path, data_dir, "run", "mlp", "-p", "bs128-h512", "--fraction", "0.05",
                     "--device", "cpu", "--no-telemetry", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (run,) = json.loads(result.stdout)
    assert (
        run["outcome"] == "ok" and run["parameters"] == MLP_PARAMETERS
    )  # the real model, as its formula says
    assert run["config_id"] and run["setup"] == {"batch_size": 128, "hidden": 512, "overridden": False}
    assert run["summary"]["compute"]["flops_per_step"] > 0

    changed = _benchd(plugin_path, data_dir, "run", "mlp", "-p", "bs128-h512", "-o", "hidden=64",
                      "--fraction", "0.05", "--device", "cpu", "--no-telemetry", "--json")  # fmt: skip
    (small,) = json.loads(changed.stdout)
    assert small["config_id"] != run["config_id"] and small["setup"]["overridden"] is True
    refused = _benchd(plugin_path, data_dir, "run", "mlp", "-o", "hidden=4")
    assert refused.returncode == 2 and "options.hidden: must be between 8 and 16384, got 4" in refused.stderr

    suite = _benchd(plugin_path, data_dir, "run", "--suite", "mlp-example-v1", "--device", "cpu",
                    "--no-telemetry", "--json")  # fmt: skip
    assert suite.returncode == 0, suite.stderr
    assert [r["suite"] for r in json.loads(suite.stdout)] == ["mlp-example-v1"]

    bundle = data_dir / "bundle.json"
    assert _benchd(plugin_path, data_dir, "export", "--output", str(bundle)).returncode == 0
    compared = _benchd(plugin_path, data_dir, "compare", str(bundle), "--format", "json")
    assert compared.returncode == 0, compared.stderr
    cells = [
        c
        for c in json.loads(compared.stdout)["cells"]
        if (c["workload"], c["preset"]) == ("mlp", "bs128-h512")
    ]
    assert cells and {c["setup"] for c in cells} == {"bs 128 h512"}  # in the published table's short form
    assert all(c["epoch_seconds"] > 0 and c["mfu_ratio"] > 0 for c in cells)


@pytest.fixture
def daemon(plugin_path: Path, data_dir: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(data_dir, NO_SCHEDULE, env={"PYTHONPATH": str(plugin_path)}).start()
    try:
        yield process
    finally:
        process.close()


def test_the_daemon_runs_a_plug_in_and_exports_it_like_a_built_in(daemon: DaemonProcess) -> None:
    listed = daemon.http.get("/api/v1/workloads").json()
    assert any(row["workload"] == "mlp" for row in listed["workloads"])
    answer = daemon.http.post("/api/v1/runs", json={"workload": "mlp", "presets": "bs128-h512",
                                                    "fraction": 0.05, "device": "cpu"})  # fmt: skip
    assert answer.status_code == 202, answer.text
    (queued,) = answer.json()["runs"]
    run = daemon.wait_finished(queued["id"])
    assert run["outcome"] == "ok", run
    exposition = daemon.metrics()
    for family in ("benchd_last_epoch_duration_seconds", "benchd_runs_total", "benchd_config_info",
                   "benchd_throughput_samples_per_second"):  # fmt: skip
        assert any(
            line.startswith(family) and 'workload="mlp"' in line for line in exposition.splitlines()
        ), family
