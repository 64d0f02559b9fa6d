"""A device that is really slower turns degraded, and healthy again, through the daemon and the hooks.

The daemon and every run it starts live in a CPU cgroup; the config never changes, only the quota the
kernel gives the cgroup: three runs make the own band, two under a quota of half a core are slow runs the
verdict confirms, two without it are the recovery. node-problem-detector's plugin command, as the
component's config names it, reads each verdict.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from benchd.datasets import layout
from benchd.datasets.formats import get_format

from .conftest import require_quiet_machine
from .daemon_process import DaemonProcess, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
MONITOR = (
    ROOT / "deploy" / "kubernetes" / "components" / "node-problem-detector" / "benchd-health-monitor.yaml"
)
# A tenth of MNIST at its real size: about half a second an epoch on a 2-core VM, 4x that under the quota.
RUN = {"workload": "vae", "presets": ["bs128"], "fraction": 0.1, "epochs": 2, "device": "cpu"}
CONFIG = "[workloads]\n[runs]\nyield_to_tenants = false\n[health]\nmin_slowdown = 0.25\n"
PERIOD_US = 100_000


class CpuQuota:
    """A cgroup (v1 `cpu` controller, or v2 where `cpu` is enabled at the root) whose quota a test sets."""

    def __init__(self, name: str) -> None:
        v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
        if (v1 / "cpu.cfs_quota_us").exists():
            self.path, self.version = v1 / name, 1
        elif "cpu" in (v2 / "cgroup.subtree_control").read_text(errors="replace").split():
            self.path, self.version = v2 / name, 2
        else:
            pytest.skip("no writable CPU cgroup controller here")
        try:
            self.path.mkdir()
        except OSError as exc:
            pytest.skip(f"cannot make a CPU cgroup: {exc}")

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def limit(self, cores: float | None) -> None:
        """At most `cores` CPUs' time (None: no limit), for every process in the cgroup from now on."""
        if self.version == 1:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(
                "-1" if cores is None else str(int(cores * PERIOD_US))
            )
        else:
            (self.path / "cpu.max").write_text(
                f"{'max' if cores is None else int(cores * PERIOD_US)} {PERIOD_US}"
            )

    def remove(self) -> None:
        parent = self.path.parent / "cgroup.procs"
        for pid in (self.path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                parent.write_text(pid)
        self.path.rmdir()


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("benchd-mnist")
    layout.ensure(data_dir, get_format("mnist"), scale=1.0, seed=0)
    return data_dir


@pytest.fixture
def throttled_daemon(mnist_dir: Path, tmp_path: Path) -> Iterator[tuple[DaemonProcess, CpuQuota]]:
    quota = CpuQuota(f"benchd-test-{os.getpid()}")
    (tmp_path / "datasets").symlink_to(mnist_dir / "datasets")
    daemon = DaemonProcess(tmp_path, CONFIG)
    try:
        daemon.start()
        assert daemon.process is not None
        quota.add(daemon.process.pid)  # its children are forked later: they start in the cgroup
        yield daemon, quota
    finally:
        daemon.close()
        quota.remove()


def _plugin_command(url: str) -> list[str]:
    """The component's custom-plugin rule, with this venv's benchd and this daemon's URL."""
    (rule,) = json.loads(yaml.safe_load(MONITOR.read_text())["data"]["benchd-health.json"])["rules"]
    args = [url if arg.startswith("http://127.0.0.1:") else arg for arg in rule["args"]]
    return [str(Path(sys.executable).with_name("benchd")), *args]


def _run(daemon: DaemonProcess) -> dict:
    (queued,) = daemon.http.post("/api/v1/runs", json=RUN).json()["runs"]
    run = daemon.wait_finished(queued["id"], timeout=240)
    assert run["outcome"] == "ok", run
    return run


def _verdict(daemon: DaemonProcess) -> tuple[int, str]:
    result = subprocess.run(
        _plugin_command(daemon.url), capture_output=True, text=True, timeout=60, check=False
    )
    assert len(result.stdout.rstrip("\n")) <= 80 and result.stdout.count("\n") == 1, result.stdout
    return result.returncode, result.stdout.strip()


def _exported(daemon: DaemonProcess, state: str) -> None:
    """/metrics shows the verdict once its cached exposition (at most a second old) is rendered again."""
    line = f'benchd_device_health{{device="cpu",state="{state}"}} 1.0'
    wait_for(lambda: line in daemon.metrics(), 10, f"/metrics to show {line}")


def test_a_cpu_under_a_quota_turns_degraded_and_back(
    throttled_daemon: tuple[DaemonProcess, CpuQuota],
) -> None:
    require_quiet_machine()  # other load would be foreign: its runs contended, left out of the verdict
    daemon, quota = throttled_daemon
    clean = [_run(daemon)["summary"]["epoch_seconds"] for _ in range(3)]
    code, line = _verdict(daemon)
    assert code == 0 and line.startswith("cpu healthy: vae bs128 ") and line.endswith(" own"), line

    quota.limit(0.5)
    slow = [_run(daemon)["summary"]["epoch_seconds"]]
    code, line = _verdict(daemon)
    assert code == 0, (clean, slow, line)  # one slow run is not yet a verdict
    slow.append(_run(daemon)["summary"]["epoch_seconds"])
    code, line = _verdict(daemon)
    assert code == 1 and line.startswith("cpu degraded: vae bs128 ") and line.endswith(" own 2/3"), (
        clean,
        slow,
    )
    assert min(slow) > 1.25 * max(clean)  # the device really was slower: same config, less CPU
    _exported(daemon, "degraded")
    status = subprocess.run([sys.executable, "-m", "benchd", "status", "--url", daemon.url],
                            capture_output=True, text=True, timeout=60, check=True).stdout  # fmt: skip
    assert "health of cpu: degraded: vae bs128" in status

    quota.limit(None)
    recovered = [_run(daemon)["summary"]["epoch_seconds"]]
    assert _verdict(daemon)[0] == 1  # one run within the band is not yet a recovery
    recovered.append(_run(daemon)["summary"]["epoch_seconds"])
    code, line = _verdict(daemon)
    if min(recovered) > 1.25 * max(clean):  # without a quota, yet as slow as under one: the VM itself
        assert code == 1, line  # slowed down (a neighbour, not a tenant benchd can see), and it says so
        pytest.skip(f"the machine slowed down by itself: full-speed epochs {clean}, then {recovered}")
    assert code == 0 and line.startswith("cpu healthy: vae bs128"), (clean, recovered, line)
    _exported(daemon, "healthy")
