"""Was a run alone on its machine? Foreign load measured over each epoch, from the parent.

A run's child leads its own process group (its DataLoader workers are in it);
benchd itself (the parent that follows the run: the daemon or `benchd run`)
is overhead, not load. Everything else is foreign: CPU time spent outside the
group and the parent, and on CUDA other processes on the device (NVML).
Epochs shorter than MIN_WINDOW_SECONDS are too short to judge and are not. An epoch during which foreign
processes used more than FOREIGN_CPU_LIMIT of the machine's CPUs, or shared
the GPU, is contended: its run is kept but flagged, and stays out of the
headline metrics and the regression baseline (docs/metrics.md).
"""

from __future__ import annotations

import os
import time
from typing import Any

import psutil

from benchd.telemetry.nvml_devices import compute_process_pids

FOREIGN_CPU_LIMIT = 0.25  # of all logical CPUs, averaged over the epoch
MIN_WINDOW_SECONDS = 0.5


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _own_seconds(group: int) -> float:
    """CPU seconds of the run's process group (reaped children included) and of benchd itself."""
    me_pid = os.getpid()
    me = psutil.Process(me_pid).cpu_times()
    total = me.user + me.system
    for process in psutil.process_iter(["pid"]):
        try:
            if process.pid == me_pid or os.getpgid(process.pid) != group:
                continue
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except (psutil.Error, ProcessLookupError):
            continue
    return total


def foreign_gpu_processes(device: str, group: int) -> int | None:
    """Compute processes on the CUDA device outside the run's group; None where NVML cannot tell."""
    pids = compute_process_pids(device) if device.startswith("cuda") else None
    if pids is None:
        return None
    foreign = 0
    for pid in pids:
        try:
            foreign += os.getpgid(pid) != group
        except ProcessLookupError:
            foreign += 1  # a process in another PID namespace (another container): not ours
    return foreign


class ForeignLoad:
    """Foreign CPU use and GPU processes between mark() and measure()."""

    def __init__(self, group: int, device: str) -> None:
        self.group = group
        self.device = device
        self._start: tuple[float, float, float] | None = None

    def mark(self) -> None:
        self._start = (time.monotonic(), _busy_seconds(), _own_seconds(self.group))

    def measure(self) -> dict[str, Any] | None:
        if self._start is None:
            return None
        started, busy, own = self._start
        elapsed = time.monotonic() - started
        if elapsed < MIN_WINDOW_SECONDS:
            return None
        foreign_cpu = max(0.0, (_busy_seconds() - busy) - (_own_seconds(self.group) - own))
        ratio = min(1.0, foreign_cpu / (elapsed * (os.cpu_count() or 1)))
        gpu = foreign_gpu_processes(self.device, self.group)
        return {
            "foreign_cpu_ratio": round(ratio, 4),
            "foreign_gpu_processes": gpu,
            "contended": ratio > FOREIGN_CPU_LIMIT or bool(gpu),
        }
