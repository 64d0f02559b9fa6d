"""Is the host quiet enough for a scheduled benchmark? Another job on the device distorts both."""

from __future__ import annotations

import os

import psutil

from benchd.lifecycle import device_lock
from benchd.server.config import Settings

CPU_SAMPLE_SECONDS = 1.0


def cuda_index(device: str) -> int:
    """The NVML index behind a torch device id, following CUDA_VISIBLE_DEVICES when it holds indices."""
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible and index < len(visible) and visible[index].isdigit():
        return int(visible[index])
    return index


def gpu_process_count(device: str) -> int | None:
    """Compute processes on the GPU, or None when NVML cannot tell (no driver, no library)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # pynvml raises its own NVMLError subclasses, or ImportError
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(cuda_index(device))
        return len(pynvml.nvmlDeviceGetComputeRunningProcesses(handle))
    except Exception:
        return None
    finally:
        pynvml.nvmlShutdown()


def busy_reason(settings: Settings, device: str) -> str | None:
    """Why a scheduled run on `device` should be skipped now, or None to go ahead.

    CPU use is sampled over one second rather than read from the load
    average, which would still carry benchd's own previous run for minutes.
    Called only when benchd itself has nothing running or queued there.
    """
    if not settings.busy_check:
        return None
    other = device_lock.holder(device)
    if other is not None:
        return f"device busy: another benchmark holds {device} ({other})"
    used = psutil.cpu_percent(interval=CPU_SAMPLE_SECONDS) / 100
    if used >= settings.max_cpu_load:
        return f"host busy: CPU {used:.0%} used, at or above the limit of {settings.max_cpu_load:.0%}"
    if settings.skip_when_gpu_busy and device.startswith("cuda"):
        count = gpu_process_count(device)
        if count:
            return f"device busy: {count} other process(es) are using {device}"
    return None
