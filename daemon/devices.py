"""Which devices this host's torch can use, learned from a probe child (the parent never imports torch)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from benchd.interpreter import module_command

PROBE_COMMAND = module_command("benchd.workloads.probe")
AUTO = "auto"


class DeviceError(ValueError):
    """A requested device that this host does not have."""


class ProbeError(RuntimeError):
    """The probe child failed: torch is missing or broken."""


@dataclass(frozen=True)
class Probe:
    torch_version: str
    cuda_version: str | None
    devices: list[dict[str, Any]]
    default: str

    @property
    def ids(self) -> list[str]:
        return [d["id"] for d in self.devices]

    def resolve(self, requested: str) -> str:
        """Map `auto`, `cuda` or `cuda:1` to a device id the host has, or say which exist."""
        if requested == AUTO:
            return self.default
        wanted = f"{requested}:0" if requested in ("cuda", "xpu") else requested
        if wanted not in self.ids:
            raise DeviceError(
                f"device {requested!r} is not available on this host; available: {', '.join(self.ids)}"
            )
        return wanted


def probe(timeout: float = 300.0) -> Probe:
    try:
        completed = subprocess.run(
            PROBE_COMMAND, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise ProbeError(f"the device probe did not answer within {timeout:.0f} s") from None
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProbeError(f"the device probe failed (is torch installed?): {last}")
    data = json.loads(completed.stdout)
    return Probe(data["torch_version"], data["cuda_version"], data["devices"], data["default"])
