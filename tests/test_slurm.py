"""deploy/slurm/benchd-healthcheck against a real one-node Slurm cluster (Debian's slurmctld and slurmd).

The script drains the node while `benchd health` says a device is degraded or failing, with the verdict as
the reason, resumes it once every device is healthy, and never touches a node someone else drained.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchd.results.store import ResultsStore

from .daemon_process import free_port
from .stored_runs import add_run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "slurm" / "benchd-healthcheck"
BENCHD = Path(sys.executable).with_name("benchd")


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.node = socket.gethostname().split(".")[0]
        self.conf = directory / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        (directory / "state").mkdir()
        (directory / "spool").mkdir()
        self.conf.write_text(
            f"ClusterName=benchdtest\nSlurmctldHost={self.node}(127.0.0.1)\n"
            f"SlurmctldPort={free_port()}\nSlurmdPort={free_port()}\n"
            "AuthType=auth/none\nCredType=cred/none\nSlurmUser=root\nSlurmdUser=root\n"
            f"StateSaveLocation={directory}/state\nSlurmdSpoolDir={directory}/spool\n"
            f"SlurmctldPidFile={directory}/slurmctld.pid\nSlurmdPidFile={directory}/slurmd.pid\n"
            f"SlurmctldLogFile={directory}/slurmctld.log\nSlurmdLogFile={directory}/slurmd.log\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSchedulerType=sched/builtin\n"
            "SelectType=select/linear\nReturnToService=2\nMpiDefault=none\n"
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs=1 State=UNKNOWN\n"
            f"PartitionName=test Nodes={self.node} Default=YES State=UP\n"
        )

    def state(self) -> tuple[str, str]:
        """The node's state and reason, as sinfo prints them, less the `*` sinfo adds while slurmd is late
        to answer its ping (on a busy machine): responsiveness is not what these tests check."""
        out = subprocess.run(["sinfo", "--noheader", "--Node", f"--nodes={self.node}", "--format=%T|%E"],
                             env=self.env, capture_output=True, text=True, check=True).stdout  # fmt: skip
        state, _, reason = out.strip().partition("|")
        return state.rstrip("*"), reason

    def wait_for(self, wanted: str, timeout: float = 30.0) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                current = self.state()
            except subprocess.CalledProcessError:
                current = ("unreachable", "")
            if current[0].rstrip("*") == wanted or time.monotonic() > deadline:
                return current
            time.sleep(0.2)  # polling sinfo: slurmd registers with slurmctld on its own time

    def scontrol(self, *arguments: str) -> None:
        subprocess.run(["scontrol", *arguments], env=self.env, check=True, capture_output=True)

    def health_check(self, data_dir: Path, *extra: str) -> None:
        env = {**self.env, "BENCHD": str(BENCHD), "BENCHD_DATA_DIR": str(data_dir),
               "SLURMD_NODENAME": self.node, "BENCHD_HEALTH_ARGS": " ".join(extra)}  # fmt: skip
        result = subprocess.run(
            [str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    for daemon in ("slurmctld", "slurmd", "sinfo", "scontrol"):
        if shutil.which(daemon) is None:
            pytest.fail(f"{daemon} is missing: the test command installs Debian's slurmctld and slurmd")
    if os.geteuid() != 0:
        pytest.skip("slurmd runs as root")
    (tmp_path / "slurm").mkdir()
    made = Cluster(tmp_path / "slurm")
    started = [subprocess.Popen([daemon, "-D", "-f", str(made.conf)], env=made.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for daemon in ("slurmctld", "slurmd")]  # fmt: skip
    try:
        assert made.wait_for("idle")[0].rstrip("*") == "idle", (
            tmp_path / "slurm" / "slurmctld.log"
        ).read_text()
        yield made
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_drains_a_degraded_node_with_the_verdict_and_resumes_only_its_own_drain(
    cluster: Cluster, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = ResultsStore(data / "benchd.sqlite3")
    for seconds in (1.0, 1.01, 0.99, 1.0):
        add_run(store, seconds)
    cluster.health_check(data)
    assert cluster.state()[0].rstrip("*") == "idle"  # healthy: nothing to do

    add_run(store, 1.5)
    add_run(store, 1.5)  # 2 of the last 3 runs 1.5x the band: degraded
    cluster.health_check(data)
    state, reason = cluster.state()
    assert state.startswith("drain"), (state, reason)
    assert reason == "benchd: cpu degraded: vae bs128 1.50x own 2/3"

    cluster.health_check(data, "--url", "http://127.0.0.1:1")  # no daemon answers: unknown, nothing changes
    assert cluster.state() == (state, reason)

    add_run(store, 1.0)
    cluster.health_check(data)
    assert cluster.state()[0].startswith("drain")  # one run within the band is not yet a recovery
    add_run(store, 1.0)
    cluster.health_check(data)
    assert cluster.wait_for("idle")[0].rstrip("*") == "idle"

    cluster.scontrol("update", f"NodeName={cluster.node}", "State=DRAIN", "Reason=maintenance")
    add_run(store, 1.5)
    add_run(store, 1.5)
    cluster.health_check(data)
    assert cluster.state()[1] == "maintenance"  # someone else's drain keeps its reason
    add_run(store, 1.0)
    add_run(store, 1.0)
    cluster.health_check(data)
    assert cluster.state() == ("drained", "maintenance")  # and is not resumed by benchd
