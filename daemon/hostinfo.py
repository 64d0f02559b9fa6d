"""Facts about the host that both the parent and the child report, without torch."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import psutil

from benchd import __version__
from benchd.text import from_outside


def cpu_name() -> str:
    """The CPU's marketing name: what a person compares machines by, not `x86_64`."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    if platform.system() == "Darwin":
        try:
            result = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            )
            return result.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


ENV_HOSTNAME = "BENCHD_HOSTNAME"
ENV_NODE_NAME = "NODE_NAME"  # Kubernetes' downward API, in the DaemonSet
ENV_IMAGE = "BENCHD_IMAGE"  # set by the Dockerfile's build


def hostname() -> str:
    """The name results carry: BENCHD_HOSTNAME, else NODE_NAME (a pod's node), else the host's own."""
    return from_outside(os.environ.get(ENV_HOSTNAME) or os.environ.get(ENV_NODE_NAME) or socket.gethostname())


def describe_host() -> dict[str, Any]:
    """The host half of a run's `system` object (docs/cli.md); the child adds torch and devices."""
    described: dict[str, Any] = {
        "hostname": hostname(),
        "os": platform.system(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "python": platform.python_version(),
        "benchd": __version__,
        "image": os.environ.get(ENV_IMAGE),
    }
    # What the OS hands over may hold bytes that are not UTF-8: replaced here, where they enter.
    return {key: from_outside(value) if isinstance(value, str) else value for key, value in described.items()}
