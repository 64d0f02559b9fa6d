"""The `benchd` command line as a user meets it: real subprocesses, real exit codes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from benchd import __version__
from benchd.paths import store_path
from benchd.results.store import ResultsStore


def benchd(*args: str, data_dir: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BENCHD_DATA_DIR"}
    if data_dir is not None:
        env["BENCHD_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "benchd", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def test_the_daemon_side_never_imports_torch() -> None:
    """The CLI, the daemon's modules and a sampler pass leave torch and the dataset libraries unloaded."""
    code = (
        "import sys; import benchd, benchd.cli, benchd.lifecycle.child, benchd.results.store, benchd.catalog;"
        "import benchd.server.daemon, benchd.server.api, benchd.server.metrics, benchd.lifecycle.scheduler;"
        "import benchd.telemetry.sampler;"
        "sampler = benchd.telemetry.sampler.Sampler().open(); sampler.sample_now(); sampler.stop();"
        "from typer.testing import CliRunner;"
        "result = CliRunner().invoke(benchd.cli.app, ['--help']);"
        "assert result.exit_code == 0, result.output;"
        "result = CliRunner().invoke(benchd.cli.app, ['workloads', '--json']);"
        "assert result.exit_code == 0, result.output;"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'numpy', 'PIL', 'lmdb') if m in sys.modules);"
        "print(heavy)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_version() -> None:
    result = benchd("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"benchd {__version__}"


def test_workloads_json() -> None:
    result = benchd("workloads", "--json")
    assert result.returncode == 0
    rows = json.loads(result.stdout)
    assert len(rows) == 13
    vae = next(r for r in rows if r["workload"] == "vae" and r["preset"] == "bs5120")
    assert {k: vae[k] for k in ("workload", "preset", "parameters", "batch_size")} == {
        "workload": "vae",
        "preset": "bs5120",
        "parameters": 652_824,
        "batch_size": 5120,
    }


def assert_bad_input(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "resnet"], ["unknown workload 'resnet'", "dcgan, gpt, siamese, transformer, vae"]),
        (["run", "vae", "--preset", "bs64"], ["unknown preset 'bs64'", "bs128, bs5120"]),
        (["run", "vae", "--batch-size", "0"], ["batch_size: input should be greater than or equal to 1"]),
        (["run", "vae", "--fraction", "0"], ["fraction: input should be greater than 0"]),
        (
            ["run", "vae", "--suite", "standard-v1", "--fraction", "0.5"],
            ["fraction: is set by suite 'standard-v1'; drop one of them"],
        ),
        (
            ["run", "vae", "--suite", "standard-v9"],
            ["unknown suite 'standard-v9'; suites: standard-v1, standard-v2"],
        ),
        (["run", "gpt", "--suite", "standard-v1"], ["suite standard-v1 does not run gpt"]),
        (["run", "vae", "--fraction", "1.5"], ["fraction: input should be less than or equal to 1"]),
        (["run", "vae", "--fraction", "nan"], ["fraction: input should be a finite number"]),
        (["run", "vae", "--epochs", "0"], ["epochs: input should be greater than or equal to 1"]),
        (["run", "vae", "--timeout", "1e9"], ["timeout: input should be less than or equal to 2592000"]),
        (["run", "vae", "--option", "nhid=8"], ["options.nhid: vae has no option 'nhid'"]),
        (["run", "transformer", "-o", "nhid=x"], ["--option: 'nhid=x' is not NAME=INTEGER"]),
        (["trigger", "transformer", "-o", "nhid"], ["--option: 'nhid' is not NAME=INTEGER"]),
        (["run", "transformer", "-o", "emsize=33"], ["options.emsize: must be a multiple of 2, got 33"]),
        (["run", "vae", "--timing", "wall"], ["timing: input should be 'reference' or 'device', got 'wall'"]),
        (["data", "prepare", "imagenet"], ["unknown dataset 'imagenet'"]),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    assert_bad_input(benchd(*args, data_dir=tmp_path), *fragments)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = benchd("run", "vae", "--data-dir", str(blocker / "data"))
    assert_bad_input(result, "is not writable", str(blocker / "data"))


@pytest.mark.slow
def test_unknown_device_lists_the_available_ones(tmp_path: Path) -> None:
    result = benchd("run", "vae", "--device", "cuda:1", data_dir=tmp_path)
    assert_bad_input(result, "device 'cuda:1' is not available", "available: ", "cpu")
    assert store_path(tmp_path).exists()
    assert ResultsStore(store_path(tmp_path)).list_runs() == []


@pytest.mark.slow
def test_corrupt_dataset_names_the_file(tmp_path: Path, small_data_dir: Path) -> None:
    shutil.copytree(small_data_dir / "datasets" / "mnist", tmp_path / "datasets" / "mnist")
    images = tmp_path / "datasets" / "mnist" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    result = benchd("run", "vae", "--device", "cpu", data_dir=tmp_path)
    assert_bad_input(result, str(images), "header promises")
    assert ResultsStore(store_path(tmp_path)).list_runs() == []


@pytest.mark.slow
def test_run_vae_end_to_end_json_and_store(tmp_path: Path) -> None:
    result = benchd("run", "vae", "--fraction", "0.1", "--device", "cpu", "--json", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    assert [(r["workload"], r["preset"]) for r in runs] == [("vae", "bs128"), ("vae", "bs5120")]
    for run in runs:
        assert run["outcome"] == "ok"
        assert run["device"] == "cpu" and run["device_name"]
        assert run["parameters"] == 652_824
        assert run["data"] == "synthetic"  # generated on first use, at the real size
        assert run["data_samples"] == 60_000
        assert run["fraction"] == 0.1
        assert (run["timing"], run["workers"], run["config"]["timing"]) == ("reference", 0, "reference")
        assert run["config"]["workers"] is None  # resolved by the child: none on the CPU, as published
        assert run["setup"] == {"batch_size": run["config"]["batch_size"], "overridden": False}
        (epoch,) = run["epochs"]
        assert set(epoch["phases"]) == {"data_wait", "steps"}
        assert sum(epoch["phases"].values()) == pytest.approx(epoch["duration_seconds"])
        assert epoch["index"] == 0 and epoch["duration_seconds"] > 0
        assert epoch["samples"] == run["samples_per_epoch"]
        # What this machine's sensors give (CPU utilization at least), each figure with its source.
        cpu = epoch["telemetry"]["domains"]["cpu"]
        assert cpu["mean_utilization_ratio"]["source"] == "sampled"
        assert 0 < cpu["mean_utilization_ratio"]["value"] <= 1
        assert isinstance(epoch["telemetry"]["low_confidence"], bool)
        assert isinstance(run["baseline"], dict)
    assert runs[0]["epochs"][0]["samples"] == 47 * 128  # ceil(469 * 0.1) batches
    assert not list((tmp_path / "logs").glob("*.scratch"))  # side work leaves nothing behind
    stored = ResultsStore(store_path(tmp_path)).list_runs()
    assert sorted(r.id for r in stored) == sorted(r["id"] for r in runs)
    assert all(r.outcome == "ok" and len(r.epochs) == 1 for r in stored)


@pytest.mark.slow
def test_run_prints_the_results_table(small_data_dir: Path) -> None:
    result = benchd(
        "run", "transformer", "-p", "b20-e200-l2-h200", "--fraction", "0.05", "--epochs", "2",
        "--device", "cpu", "--wide", data_dir=small_data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "b20-e200-l2-h200" in result.stdout
    assert "5% epoch" in result.stdout and "median" in result.stdout  # the fraction beside the time
    assert "tokens" in result.stdout
    assert "synthetic" in result.stdout


@pytest.mark.slow
def test_failed_run_exits_1(small_data_dir: Path) -> None:
    result = benchd(
        "run", "transformer", "-p", "b20-e200-l2-h200", "--timeout", "1", "--device", "cpu", "--json",
        data_dir=small_data_dir,
    )  # fmt: skip
    assert result.returncode == 1
    (run,) = json.loads(result.stdout)
    assert run["outcome"] == "timeout"


@pytest.mark.slow
def test_sigterm_stops_the_child_and_records_the_run_as_cancelled(small_data_dir: Path) -> None:
    env = {**os.environ, "BENCHD_DATA_DIR": str(small_data_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "benchd", "run", "siamese", "-p", "bs64", "--epochs", "50", "--device", "cpu"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = ResultsStore(store_path(small_data_dir))
    try:
        deadline = time.monotonic() + 120
        running = None
        while running is None and time.monotonic() < deadline:
            running = next((r for r in store.list_runs(limit=5) if r.state == "running" and r.epochs), None)
            if running is None:
                threading.Event().wait(0.1)
        assert running is not None, "the run never completed an epoch"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 130
    finally:
        process.kill()
        process.wait()  # reaped whatever happened, or it warns in a later test
    run = store.get_run(running.id)
    assert run is not None
    assert (run.state, run.outcome) == ("finished", "cancelled")
    log = Path(run.log_path or "")
    assert log.exists()


@pytest.mark.slow
def test_a_sigkilled_run_takes_its_child_along_and_is_interrupted_by_the_next(
    small_data_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "datasets").symlink_to(small_data_dir / "datasets")
    env = {**os.environ, "BENCHD_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "benchd", "run", "siamese", "-p", "bs64", "--epochs", "50", "--device", "cpu",
         "--no-telemetry"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    store = ResultsStore(store_path(tmp_path))
    try:
        deadline = time.monotonic() + 120
        running = None
        while running is None and time.monotonic() < deadline:
            running = next((r for r in store.list_runs(limit=5) if r.state == "running"), None)
            threading.Event().wait(0.1)
        assert running is not None, "the run never started"
        (child,) = psutil.Process(process.pid).children()
        process.kill()  # SIGKILL: no handler runs, nothing is recorded
        process.wait(30)
        psutil.Process(child.pid).wait(30)  # the kernel ended the child with its parent
        assert store.get_run(running.id).state == "running"  # until someone notices
        result = benchd("run", "vae", "-p", "bs128", "--fraction", "0.01", "--device", "cpu",
                        "--no-telemetry", data_dir=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        run = store.get_run(running.id)
        assert (run.state, run.outcome) == ("finished", "interrupted")
        assert f"pid {process.pid}" in run.message
    finally:
        process.kill()
        process.wait()  # reaped whatever happened, or it warns in a later test
        store.close()


@pytest.mark.slow
def test_doctor_lists_every_backend_with_a_reason(tmp_path: Path) -> None:
    result = benchd("doctor", "--json", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["can_run"] is True
    assert "cpu" in [d["id"] for d in report["torch"]["devices"]]
    (cpu,) = [d for d in report["torch"]["devices"] if d["id"] == "cpu"]
    assert cpu["mfu_peak"] == "measured in each run (a matmul in the precision's dtype)"
    assert [s["sensor"] for s in report["sensors"]] == ["nvml", "amdsmi", "apple", "cpu", "rapl"]
    for sensor in report["sensors"]:
        assert sensor["available"] or sensor["reason"].startswith("unavailable: ")
    assert {d["name"]: d["status"] for d in report["datasets"]} == {
        "lsun-classroom": "absent", "mnist": "absent", "wikitext-2": "absent"
    }  # fmt: skip
    assert report["disk"]["free_bytes"] > 0
    text = benchd("doctor", data_dir=tmp_path)
    assert text.returncode == 0 and "sensors:" in text.stdout and "cpu: available" in text.stdout


@pytest.mark.slow
def test_commands_work_from_the_folder_that_holds_a_clone(tmp_path: Path) -> None:
    """From the parent of a `benchd/` checkout, the children used to import that folder as the package."""
    clone = tmp_path / "benchd"
    for part in ("daemon", "workloads", "tests"):
        (clone / part).mkdir(parents=True)
    (clone / "README.md").write_text("# benchd\n")
    console_script = Path(sys.executable).parent / "benchd"
    env = {k: v for k, v in os.environ.items() if k != "BENCHD_DATA_DIR"}
    result = subprocess.run(
        [str(console_script), "doctor", "--json", "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["can_run"] and "unknown location" not in result.stdout + result.stderr
