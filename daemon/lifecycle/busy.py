"""Is the host quiet enough for a scheduled benchmark? Another job on the device distorts both."""

from __future__ import annotations

import psutil

from benchd.lifecycle import device_lock
from benchd.settings import Settings
from benchd.telemetry.nvml_devices import compute_process_pids

CPU_SAMPLE_SECONDS = 1.0


def busy_reason(settings: Settings, device: str) -> str | None:
    """Why a scheduled run on `device` should be skipped now, or None to go ahead.

    CPU use is sampled over one second rather than read from the load
    average, which would still carry benchd's own previous run for minutes.
    Called only when benchd itself has nothing running or queued there.
    """
    if not settings.busy_check.enabled:
        return None
    other = device_lock.holder(device)
    if other is not None:
        return f"device busy: another benchmark holds {device} ({other})"
    used = psutil.cpu_percent(interval=CPU_SAMPLE_SECONDS) / 100
    if used >= settings.busy_check.max_cpu_load:
        limit = settings.busy_check.max_cpu_load
        return f"host busy: CPU {used:.0%} used, at or above the limit of {limit:.0%}"
    if settings.busy_check.gpu_processes and device.startswith("cuda"):
        pids = compute_process_pids(device)
        if pids:
            return f"device busy: {len(pids)} other process(es) are using {device}"
    return None
