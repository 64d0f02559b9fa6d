"""The daemon as operators meet it: real `benchd serve` processes on free loopback ports."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from .daemon_process import DaemonProcess, wait_for

pytestmark = pytest.mark.slow  # every test starts a real `benchd serve`

NO_SCHEDULE = "[workloads]\n"
QUICK_VAE = {"workload": "vae", "presets": ["bs128"], "fraction": 0.02, "device": "cpu"}
# Long enough to be caught mid-run: the siamese tower on a CPU, a full epoch of a small data set.
SLOW_RUN = {"workload": "siamese", "presets": ["bs64"], "epochs": 50, "device": "cpu"}


@pytest.fixture
def daemon(data_dir: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(data_dir, NO_SCHEDULE).start()
    yield process
    process.close()


def benchd_cli(*args: str, url: str, data_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}
    if data_dir is not None:  # where runs and show look when no daemon answers
        env["BENCHD_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "benchd", *args, "--url", url],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one series in an exposition, None if absent."""
    for line in metrics.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(match.group(2))
    return None


def promtool_check(metrics: str) -> subprocess.CompletedProcess:
    if shutil.which("promtool") is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: the test command installs Debian's prometheus package")
        pytest.skip("promtool not installed (make test installs it)")
    command = ["promtool", "check", "metrics"]
    return subprocess.run(command, input=metrics, capture_output=True, text=True, check=False)


def test_trigger_wait_then_metrics(daemon: DaemonProcess) -> None:
    result = benchd_cli("trigger", "vae", "--preset", "bs128", "--fraction", "0.02", "--device", "cpu",
                        "--wait", url=daemon.url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "bs128" in result.stdout and "ok" in result.stdout
    metrics = daemon.metrics()
    series = {"workload": "vae", "preset": "bs128", "device": "cpu"}
    assert sample(metrics, "benchd_runs_total", outcome="ok", **series) == 1
    assert sample(metrics, "benchd_last_run_success", **series) == 1
    assert sample(metrics, "benchd_last_epoch_duration_seconds", **series) > 0
    assert sample(metrics, "benchd_last_epoch_phase_seconds", phase="steps", **series) > 0
    assert sample(metrics, "benchd_last_epoch_phase_seconds", phase="data_wait", **series) > 0
    assert sample(metrics, "benchd_last_epoch_phase_seconds", phase="validation", **series) is None
    assert sample(metrics, "benchd_epoch_duration_seconds_count", **series) == 1
    assert sample(metrics, "benchd_throughput_samples_per_second", unit="images", **series) > 0
    assert sample(metrics, "benchd_peak_host_memory_bytes", **series) > 1e6
    assert sample(metrics, "benchd_epoch_fraction_ratio", **series) == 0.02
    assert sample(metrics, "benchd_run_in_progress", **series) == 0
    assert sample(metrics, "benchd_device_info", device="cpu", type="cpu") == 1
    assert "_created" not in metrics
    # On the CPU there is no device allocator: the figure is absent, not 0.
    assert sample(metrics, "benchd_peak_device_memory_bytes", **series) is None
    check = promtool_check(metrics)
    assert check.returncode == 0 and check.stdout == "" and check.stderr == "", check.stdout + check.stderr


def test_every_exposed_metric_is_documented(daemon: DaemonProcess) -> None:
    documented = set(
        re.findall(r"`(benchd_[a-z_]+)`", (Path(__file__).parent.parent / "docs" / "metrics.md").read_text())
    )
    exposed = set(re.findall(r"^# TYPE (benchd_[a-z_]+) ", daemon.metrics(), re.MULTILINE))
    assert exposed <= documented


def test_child_killed_mid_run_is_recorded_and_daemon_carries_on(daemon: DaemonProcess) -> None:
    (queued,) = daemon.http.post("/api/v1/runs", json=SLOW_RUN).json()["runs"]
    daemon.wait_running(queued["id"])
    assert daemon.process is not None
    children = [
        c for c in psutil.Process(daemon.process.pid).children()
        if "benchd.workloads.harness" in " ".join(c.cmdline())
    ]  # fmt: skip
    assert len(children) == 1
    children[0].kill()
    run = daemon.wait_finished(queued["id"])
    assert run["outcome"] == "error" and "SIGKILL" in run["message"]
    assert daemon.http.get("/healthz").status_code == 200
    (second,) = daemon.http.post("/api/v1/runs", json=QUICK_VAE).json()["runs"]
    assert daemon.wait_finished(second["id"])["outcome"] == "ok"


def test_sigterm_mid_run_cancels_and_exits_0(daemon: DaemonProcess) -> None:
    (queued,) = daemon.http.post("/api/v1/runs", json=SLOW_RUN).json()["runs"]
    daemon.wait_running(queued["id"])
    assert daemon.stop(signal.SIGTERM) == 0
    restarted = DaemonProcess(daemon.data_dir, NO_SCHEDULE).start()
    try:
        run = restarted.run(queued["id"])
        assert (run["state"], run["outcome"]) == ("finished", "cancelled")
    finally:
        restarted.close()


def test_kill_9_then_restart_marks_interrupted_and_restores_gauges(daemon: DaemonProcess) -> None:
    (first,) = daemon.http.post("/api/v1/runs", json=QUICK_VAE).json()["runs"]
    assert daemon.wait_finished(first["id"])["outcome"] == "ok"
    (slow,) = daemon.http.post("/api/v1/runs", json=SLOW_RUN).json()["runs"]
    daemon.wait_running(slow["id"])
    daemon.stop(signal.SIGKILL)
    restarted = DaemonProcess(daemon.data_dir, NO_SCHEDULE).start()
    try:
        run = restarted.run(slow["id"])
        assert run["outcome"] == "interrupted"
        metrics = restarted.metrics()
        vae = {"workload": "vae", "preset": "bs128", "device": "cpu"}
        assert sample(metrics, "benchd_runs_total", outcome="ok", **vae) == 1
        assert sample(metrics, "benchd_last_run_success", **vae) == 1
        assert sample(metrics, "benchd_last_epoch_duration_seconds", **vae) > 0
        siamese = {"workload": "siamese", "preset": "bs64", "device": "cpu"}
        assert sample(metrics, "benchd_runs_total", outcome="interrupted", **siamese) == 1
        assert sample(metrics, "benchd_last_run_success", **siamese) == 0
    finally:
        restarted.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"workload": "vae", "epochs": 0}, "epochs: input should be greater than or equal to 1"),
        ({"workload": "vae", "device": "cuda:7"}, "device 'cuda:7' is not available"),
    ],
)  # every rule, in-process: tests/test_api.py
def test_bad_run_requests_get_422_and_queue_nothing(daemon: DaemonProcess, body: dict, message: str) -> None:
    response = daemon.http.post("/api/v1/runs", json=body)
    assert response.status_code == 422
    assert message in response.json()["error"]
    assert daemon.http.get("/api/v1/runs").json()["runs"] == []


def test_malformed_and_oversized_bodies_and_unknown_routes(daemon: DaemonProcess) -> None:
    response = daemon.http.post(
        "/api/v1/runs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "not JSON" in response.json()["error"]
    response = daemon.http.post("/api/v1/runs", content=b" " * 70_000)
    assert response.status_code == 413
    assert daemon.http.get("/api/v1/nothing").json() == {"error": "Not Found"}
    assert daemon.http.get("/api/v1/runs/99").status_code == 404
    assert daemon.http.get("/api/v1/runs?limit=0").status_code == 400
    assert daemon.http.delete("/api/v1/runs/99").status_code == 404


def test_full_queue_duplicates_and_cancel(data_dir: Path) -> None:
    daemon = DaemonProcess(data_dir, "[runs]\nqueue_size = 1\n[workloads]\n").start()
    try:
        (running,) = daemon.http.post("/api/v1/runs", json=SLOW_RUN).json()["runs"]
        daemon.wait_running(running["id"])
        (waiting,) = daemon.http.post("/api/v1/runs", json=QUICK_VAE).json()["runs"]
        twin = daemon.http.post("/api/v1/runs", json=QUICK_VAE)
        assert twin.status_code == 202
        assert twin.json()["runs"][0] == {**waiting, "duplicate": True}
        full = daemon.http.post("/api/v1/runs", json={**QUICK_VAE, "presets": ["bs5120"], "fraction": 0.1})
        assert full.status_code == 429 and "queue" in full.json()["error"]
        assert len(daemon.http.get("/api/v1/runs").json()["runs"]) == 2
        cancelled = daemon.http.delete(f"/api/v1/runs/{waiting['id']}")
        assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
        assert daemon.http.delete(f"/api/v1/runs/{running['id']}").json()["state"] == "cancelling"
        assert daemon.wait_finished(running["id"])["outcome"] == "cancelled"
        assert daemon.http.delete(f"/api/v1/runs/{running['id']}").status_code == 409
    finally:
        daemon.close()


def test_token_guards_mutating_routes(data_dir: Path) -> None:
    token = "s3cret-token-for-tests"
    daemon = DaemonProcess(data_dir, NO_SCHEDULE, env={"BENCHD_TOKEN": token}).start()
    try:
        assert daemon.http.post("/api/v1/runs", json=QUICK_VAE).status_code == 401
        wrong = daemon.http.post("/api/v1/runs", json=QUICK_VAE, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert daemon.http.get("/api/v1/runs").status_code == 200  # reading needs no token
        right = daemon.http.post("/api/v1/runs", json=QUICK_VAE, headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 202
    finally:
        daemon.close()


def test_non_loopback_without_token_refuses_to_start(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}
    result = subprocess.run(
        [sys.executable, "-m", "benchd", "serve", "--host", "0.0.0.0", "--data-dir", str(data_dir)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: config server.token: is required to listen on the non-loopback address 0.0.0.0 "
        "(set BENCHD_TOKEN)"
    )


def test_second_daemon_on_the_same_data_dir_refuses(daemon: DaemonProcess) -> None:
    second = DaemonProcess(daemon.data_dir, NO_SCHEDULE).start(wait_ready=False)
    try:
        assert second.process is not None
        assert second.process.wait(60) == 2
        assert "another benchd daemon" in second.log.read_text()
    finally:
        second.close()


def test_a_busy_port_fails_serve_with_one_line_before_it_serves(data_dir: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}
        result = subprocess.run(
            [sys.executable, "-m", "benchd", "serve", "--port", str(port), "--data-dir", str(data_dir)],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"


@pytest.mark.slow
def test_serve_then_trigger_at_once_works_in_a_script(data_dir: Path) -> None:
    """`benchd serve & benchd trigger vae --wait`: the client waits for the daemon to listen and be ready."""
    daemon = DaemonProcess(data_dir, NO_SCHEDULE).start(wait_ready=False)
    try:
        result = benchd_cli("trigger", "vae", "-p", "bs128", "--fraction", "0.02", "--device", "cpu",
                            "--wait", url=daemon.url)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "ok" in result.stdout
    finally:
        daemon.close()


@pytest.mark.slow
def test_runs_recorded_beside_the_daemon_are_counted_by_it(daemon: DaemonProcess) -> None:
    """A foreground `benchd run` (or a Kubernetes Job) on the daemon's data directory shows in its metrics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}
    result = subprocess.run(
        [sys.executable, "-m", "benchd", "run", "vae", "-p", "bs128", "--fraction", "0.02", "--device", "cpu",
         "--no-telemetry", "--data-dir", str(daemon.data_dir)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    series = {"workload": "vae", "preset": "bs128", "device": "cpu", "outcome": "ok"}
    wait_for(
        lambda: sample(daemon.metrics(), "benchd_runs_total", **series) == 1, 60, "the run to be counted"
    )
    assert sample(daemon.metrics(), "benchd_runs_total", **series) == 1  # once, however often it is seen


def test_client_commands_without_a_daemon_say_where_they_looked(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9"
    for args in (["status"], ["runs"], ["trigger", "vae"], ["cancel", "1"], ["show", "1"]):
        result = benchd_cli(*args, url=url, data_dir=tmp_path)
        assert result.returncode == 1
        assert result.stderr.strip().startswith(f"error: cannot reach the benchd daemon at {url}")
        assert "Traceback" not in result.stderr
    assert "no results store at" in benchd_cli("runs", url=url, data_dir=tmp_path).stderr


def test_status_runs_show_cancel_commands(daemon: DaemonProcess) -> None:
    result = benchd_cli(
        "trigger", "vae", "-p", "bs128", "--fraction", "0.02", "--device", "cpu", url=daemon.url
    )
    assert result.returncode == 0 and "queued run 1" in result.stderr
    daemon.wait_finished(1)
    status = benchd_cli("status", url=daemon.url)
    assert "ready" in status.stdout and "vae bs128 on cpu: last run ok at " in status.stdout
    assert "; last ok " in status.stdout and "s/epoch (2% epoch), config " in status.stdout
    assert ", MFU " in status.stdout  # a CPU's measured peak gives every run one
    assert "vae" in benchd_cli("runs", url=daemon.url).stdout
    shown = benchd_cli("show", "1", url=daemon.url).stdout
    assert "epoch 0:" in shown and "data wait" in shown and "steps" in shown  # where the time went
    assert "reference" in shown  # the timing, beside the figures
    finished = benchd_cli("cancel", "1", url=daemon.url)
    assert finished.returncode == 1 and "already ended" in finished.stderr
    device_timed = benchd_cli("trigger", "vae", "-p", "bs128", "--fraction", "0.02", "--device", "cpu",
                              "--timing", "device", "--wait", "--json", url=daemon.url)  # fmt: skip
    assert device_timed.returncode == 0, device_timed.stderr
    (run,) = json.loads(device_timed.stdout)
    assert (run["timing"], run["config"]["timing"], run["workers"]) == ("device", "device", 0)


def test_scheduled_runs_happen_and_busy_host_skips(data_dir: Path) -> None:
    config = (
        "[schedule]\njitter = 0\nstart_delay = 0\n[busy_check]\nenabled = false\n"
        '[workloads.vae]\npresets = ["bs128"]\ninterval = "1m"\nfraction = 0.01\ndevice = "cpu"\n'
    )  # the first firing at once; the ones after it are the injected-clock tests' (test_scheduler.py)
    daemon = DaemonProcess(data_dir, config).start()
    try:
        wait_for(
            lambda: len(daemon.http.get("/api/v1/runs?outcome=ok").json()["runs"]) >= 1,
            180,
            "a scheduled run",
        )
        runs = daemon.http.get("/api/v1/runs?outcome=ok").json()["runs"]
        assert all(r["origin"] == "schedule" for r in runs)
        assert (
            sample(daemon.metrics(), "benchd_schedule_interval_seconds", workload="vae", preset="bs128") == 60
        )
    finally:
        daemon.close()

    busy = config.replace("enabled = false", "enabled = true\nmax_cpu_load = 0")
    (data_dir / "benchd.sqlite3").unlink()
    daemon = DaemonProcess(data_dir, busy).start()
    try:
        skipped = wait_for(
            lambda: daemon.http.get("/api/v1/runs?outcome=skipped").json()["runs"], 60, "a skipped run"
        )
        assert skipped[0]["message"].startswith("host busy: CPU")
        assert daemon.http.get("/api/v1/runs?outcome=ok").json()["runs"] == []
        series = {"workload": "vae", "preset": "bs128", "device": "cpu"}
        assert sample(daemon.metrics(), "benchd_runs_total", outcome="skipped", **series) >= 1
        assert (
            sample(daemon.metrics(), "benchd_runs_total", outcome="oom", **series) == 0
        )  # initialised at zero
    finally:
        daemon.close()


class _NoMetrics:
    def collect(self) -> list:
        return []


class _OfflineDaemon:
    """Just enough of a daemon to build the app and list its routes."""

    store = service = None
    collector = _NoMetrics()
    token = None
    default_timeout = 1.0

    @property
    def hosts(self) -> object:
        from benchd.server.hosts import HostPolicy

        return HostPolicy.build()


def test_openapi_document_is_valid_and_covers_every_route(daemon: DaemonProcess) -> None:
    from openapi_spec_validator import validate

    from benchd.server.api import create_app

    document = daemon.http.get("/api/v1/openapi.json").json()
    validate(document)
    routes = {route.path for route in create_app(_OfflineDaemon()).routes}  # type: ignore[arg-type]
    assert routes == set(document["paths"])
