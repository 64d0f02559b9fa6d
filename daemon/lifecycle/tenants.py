"""Yielding to tenants: while a run is in progress, its device is watched at 2 Hz, and the run is called off
(`preempted`) as soon as a tenant arrives.

A tenant is a compute process on the run's CUDA device outside the run's own
process group (NVML; a MIG instance's own processes), or, on a CPU device,
foreign CPU use above FOREIGN_CPU_LIMIT for TENANT_CPU_SECONDS in a row. The
run's own DataLoader and compile workers share its process group and never
count. A preempted run is kept and shown, but never counted as a failure, a
baseline or a verdict on the device.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from benchd.lifecycle.contention import FOREIGN_CPU_LIMIT, ForeignLoad, foreign_gpu_processes

WATCH_SECONDS = 0.5  # 2 Hz
TENANT_CPU_SECONDS = 2.0  # foreign CPU use above the limit this long, in a row, is a tenant


class TenantWatch(threading.Thread):
    """Watches one run's device from when its child says which process group is the run's; calls
    `on_tenant(reason)` once when a tenant arrives, then stops."""

    def __init__(self, device: str, group: int, on_tenant: Callable[[str], None]) -> None:
        super().__init__(name=f"benchd-tenants-{device}", daemon=True)
        self.device = device
        self.group = group
        self.on_tenant = on_tenant
        self._stopping = threading.Event()
        self._load = ForeignLoad(group, device)

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        busy_windows = 0
        needed = round(TENANT_CPU_SECONDS / WATCH_SECONDS)
        self._load.mark()
        while not self._stopping.wait(WATCH_SECONDS):
            reason = self._gpu_tenant()
            if reason is None and self.device == "cpu":
                measured = self._load.measure() or {}
                self._load.mark()
                over = (measured.get("foreign_cpu_ratio") or 0.0) > FOREIGN_CPU_LIMIT
                busy_windows = busy_windows + 1 if over else 0
                if busy_windows >= needed:
                    share = measured.get("foreign_cpu_ratio") or 0.0
                    reason = f"a tenant used {share:.0%} of the CPUs for {TENANT_CPU_SECONDS:.0f} s"
            if reason is not None:
                self.on_tenant(reason)
                return

    def _gpu_tenant(self) -> str | None:
        if not self.device.startswith("cuda"):
            return None
        found = foreign_gpu_processes(self.device, self.group)
        if not found:
            return None
        return f"a tenant started {found} compute process{'es' if found > 1 else ''} on {self.device}"
