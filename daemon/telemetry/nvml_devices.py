"""Which NVML handles stand for each torch CUDA device, MIG instances included.

One mapping, shared by the telemetry backend, the busy check before a
scheduled run and the contention watch during one, so all three mean the
same GPU by `cuda:N`. A GPU without MIG is one device. A GPU in MIG mode is
seen by CUDA as its MIG instances, each a device of its own with a `MIG-`
UUID; NVML gives each instance a handle for its own processes and memory,
but sensors (temperature, power, energy, clocks, throttling) exist only for
the whole GPU, so an instance's readings are its parent's and say so.

Order: CUDA's enumeration, taken to be NVML's GPU order with each MIG-mode
GPU's instances in place of it; CUDA_VISIBLE_DEVICES (indices into that
order, or GPU-/MIG- UUIDs and unique prefixes of them) picks and reorders.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NvmlDevice:
    uuid: str
    handle: Any  # the device's own: its processes and memory
    parent: Any | None = None  # a MIG instance's GPU, whose sensors stand for it
    parent_uuid: str | None = None

    @property
    def sensor_handle(self) -> Any:
        return self.handle if self.parent is None else self.parent


def visible_devices(environ: Mapping[str, str] = os.environ) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES as a list of entries (indices or UUID prefixes), None when unset."""
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def cuda_devices(nvml: Any, environ: Mapping[str, str] = os.environ) -> list[tuple[str, NvmlDevice]]:
    """Every torch CUDA device id with its NVML device, for an initialised pynvml."""
    found: list[NvmlDevice] = []
    for index in range(nvml.nvmlDeviceGetCount()):
        gpu = nvml.nvmlDeviceGetHandleByIndex(index)
        uuid = _text(nvml.nvmlDeviceGetUUID(gpu))
        instances = _mig_instances(nvml, gpu)
        found += [NvmlDevice(_text(nvml.nvmlDeviceGetUUID(m)), m, gpu, uuid) for m in instances] or [
            NvmlDevice(uuid, gpu)
        ]
    visible = visible_devices(environ)
    uuids = [device.uuid for device in found]
    order = range(len(found)) if visible is None else [_match(entry, uuids) for entry in visible]
    return [(f"cuda:{torch_index}", found[i]) for torch_index, i in enumerate(order) if i is not None]


def device_for(nvml: Any, device: str, environ: Mapping[str, str] = os.environ) -> NvmlDevice | None:
    """The NVML device behind one torch device id (`cuda` is `cuda:0`), or None if NVML has none."""
    wanted = device if ":" in device else f"{device}:0"
    return dict(cuda_devices(nvml, environ)).get(wanted)


def identities() -> dict[str, dict[str, str]]:
    """Each CUDA device's identity as dcgm-exporter labels it: `uuid`, the GPU's UUID (a MIG instance's
    GPU's), and `mig_uuid`, the instance's own ("" for a whole GPU). Empty where NVML cannot tell: read
    once at start, so benchd_device_info joins with DCGM's series before the first run."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # pynvml raises its own NVMLError subclasses, or ImportError
        return {}
    try:
        return {
            device: {
                "uuid": found.parent_uuid or found.uuid,
                "mig_uuid": found.uuid if found.parent_uuid else "",
            }
            for device, found in cuda_devices(pynvml)
        }
    except Exception:
        return {}
    finally:
        pynvml.nvmlShutdown()


def compute_process_pids(device: str) -> list[int] | None:
    """PIDs of the compute processes on a torch CUDA device (a MIG instance's own, not its GPU's); None
    where NVML cannot tell (no library, no driver, no such device)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # pynvml raises its own NVMLError subclasses, or ImportError
        return None
    try:
        found = device_for(pynvml, device)
        if found is None:
            return None
        return [process.pid for process in pynvml.nvmlDeviceGetComputeRunningProcesses(found.handle)]
    except Exception:
        return None
    finally:
        pynvml.nvmlShutdown()


def _mig_instances(nvml: Any, gpu: Any) -> list[Any]:
    """The MIG instances of a GPU in MIG mode, in slot order; none for a GPU without MIG."""
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(gpu)
    except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound):
        return []
    if current != nvml.NVML_DEVICE_MIG_ENABLE:
        return []
    instances = []
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(gpu)):
        try:
            instances.append(nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, slot))
        except nvml.NVMLError_NotFound:  # an empty slot
            continue
    return instances


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _match(entry: str, uuids: list[str]) -> int | None:
    if entry.isdigit():
        index = int(entry)
        return index if index < len(uuids) else None
    matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
    return matches[0] if len(matches) == 1 else None
