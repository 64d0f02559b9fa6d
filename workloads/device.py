"""Picking the accelerator, waiting for it, and reading its allocator's peaks.

Device work is asynchronous: the harness synchronizes before reading the clock
at both ends of an epoch, or it would time kernel launches, not kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from benchd.hostinfo import cpu_name

AUTO = "auto"


class DeviceUnavailableError(ValueError):
    """The requested device does not exist on this host."""


@dataclass(frozen=True)
class DeviceInfo:
    id: str
    type: str
    name: str
    total_memory_bytes: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "total_memory_bytes": self.total_memory_bytes,
        }


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def _xpu_available() -> bool:
    return hasattr(torch, "xpu") and torch.xpu.is_available()


def available_devices() -> list[DeviceInfo]:
    """In the order auto-detection prefers them: cuda, mps, xpu, then cpu."""
    devices = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            cuda = torch.cuda.get_device_properties(index)
            devices.append(DeviceInfo(f"cuda:{index}", "cuda", cuda.name, cuda.total_memory))
    if _mps_available():
        devices.append(DeviceInfo("mps", "mps", f"{cpu_name()} GPU (MPS)"))
    if _xpu_available():
        for index in range(torch.xpu.device_count()):
            xpu = torch.xpu.get_device_properties(index)
            devices.append(DeviceInfo(f"xpu:{index}", "xpu", xpu.name, xpu.total_memory))
    devices.append(DeviceInfo("cpu", "cpu", cpu_name()))
    return devices


def _canonical(requested: str) -> str:
    return f"{requested}:0" if requested in ("cuda", "xpu") else requested


def resolve(requested: str) -> DeviceInfo:
    devices = available_devices()
    if requested == AUTO:
        return devices[0]
    wanted = _canonical(requested)
    for device in devices:
        if device.id == wanted:
            return device
    names = ", ".join(d.id for d in devices)
    raise DeviceUnavailableError(f"device {requested!r} is not available on this host; available: {names}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
    elif device.type == "xpu":
        torch.xpu.synchronize(device)


class AllocatorPeaks:
    """Peak allocator memory over one epoch.

    CUDA and XPU keep their own peak counters (reset at the epoch's start);
    MPS has none, so its current and driver-allocated figures are sampled
    after each step. The CPU has no device allocator: figures stay absent.
    """

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._allocated: int | None = None
        self._reserved: int | None = None

    def reset(self) -> None:
        self._allocated = self._reserved = None
        if self._device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self._device)
        elif self._device.type == "xpu":
            torch.xpu.reset_peak_memory_stats(self._device)

    def sample(self) -> None:
        if self._device.type == "mps":
            allocated = torch.mps.current_allocated_memory()
            reserved = torch.mps.driver_allocated_memory()
            self._allocated = max(self._allocated or 0, allocated)
            self._reserved = max(self._reserved or 0, reserved)

    @property
    def samples_per_step(self) -> bool:
        return self._device.type == "mps"

    def peaks(self) -> tuple[int | None, int | None]:
        if self._device.type == "cuda":
            return (
                torch.cuda.max_memory_allocated(self._device),
                torch.cuda.max_memory_reserved(self._device),
            )
        if self._device.type == "xpu":
            return (
                torch.xpu.max_memory_allocated(self._device),
                torch.xpu.max_memory_reserved(self._device),
            )
        return self._allocated, self._reserved


def driver_version(device: torch.device) -> str | None:
    """The NVIDIA driver version through NVML, when there is one to ask."""
    if device.type != "cuda":
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML missing or broken: the run still happens, the field stays absent
        return None
    return version.decode() if isinstance(version, bytes) else version


def describe(device: torch.device) -> dict[str, Any]:
    """The child's half of a run's `system` object: the torch build and the accelerator used.

    Fields a backend cannot give are None; `accelerator.unavailable` says
    why NVML's facts are missing where they are.
    """
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "accelerator": _accelerator(device),
    }


def _accelerator(device: torch.device) -> dict[str, Any] | None:
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device)
    uuid = str(getattr(props, "uuid", "")) or None
    facts: dict[str, Any] = {
        "name": props.name,
        "uuid": f"GPU-{uuid}" if uuid and not uuid.startswith(("GPU-", "MIG-")) else uuid,
        "pci_bus_id": _pci_bus_id(props),
        "memory_total_bytes": props.total_memory,
        "compute_capability": f"{props.major}.{props.minor}",
    }
    facts.update(nvml_facts(facts["uuid"]))
    return facts


def _pci_bus_id(props: Any) -> str | None:
    if not hasattr(props, "pci_bus_id"):
        return None
    return f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"


def nvml_facts(uuid: str | None) -> dict[str, Any]:
    """Power limit, MIG and ECC modes and the driver, from NVML by the device's UUID."""
    if uuid is None:
        return {"unavailable": "torch reports no UUID for this device"}
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # no library, no driver: facts absent, with the reason
        return {"unavailable": f"NVML: {exc}"}
    try:
        handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
        return {
            "power_limit_watts": _nvml(lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0),
            "mig_mode": _nvml(lambda: bool(pynvml.nvmlDeviceGetMigMode(handle)[0])),
            "ecc_mode": _nvml(lambda: bool(pynvml.nvmlDeviceGetCurrentEccMode(handle))),
            "driver_version": _nvml(pynvml.nvmlSystemGetDriverVersion),
        }
    except Exception as exc:
        return {"unavailable": f"NVML has no device {uuid}: {exc}"}
    finally:
        pynvml.nvmlShutdown()


def _nvml(read: Any) -> Any:
    """One NVML field; None where this device or driver does not support it."""
    try:
        value = read()
    except Exception:
        return None
    return value.decode() if isinstance(value, bytes) else value
