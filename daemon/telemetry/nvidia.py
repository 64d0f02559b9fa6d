"""NVIDIA GPUs through NVML (`nvidia-ml-py`, imported as `pynvml`).

Power: the instant field value where the driver has it, else
nvmlDeviceGetPowerUsage, which recent GPUs average over one second (the
reading records which). Energy: the total-energy counter (Volta and newer),
in millijoules since the driver loaded. Devices are torch's (nvml_devices.py):
a MIG instance's processes and memory are its own, its other readings its
GPU's, marked with the GPU's UUID (`Reading.sensor_uuid`).
"""

from __future__ import annotations

from typing import Any

from benchd.telemetry.base import Reading, Sensor, SensorUnavailableError
from benchd.telemetry.nvml_devices import NvmlDevice, cuda_devices

# nvmlClocksEventReason* bits (formerly "throttle reasons"), as the NVML headers define them.
CLOCK_EVENT_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}


def decode_reasons(mask: int) -> tuple[str, ...]:
    return tuple(name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit and bit != 0x1)


class NvmlSensor(Sensor):
    name = "nvml"

    def __init__(self) -> None:
        self._nvml: Any = None
        self._devices: list[tuple[str, NvmlDevice]] = []  # (torch device id, its NVML device)
        self._has_energy: dict[str, bool] = {}
        self._instant_power: dict[str, bool] = {}

    def open(self) -> tuple[str, ...]:
        try:
            import pynvml
        except ImportError:
            raise SensorUnavailableError(
                "nvidia-ml-py is not installed", "pip install nvidia-ml-py"
            ) from None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise SensorUnavailableError(
                f"NVML could not start ({exc})",
                "no NVIDIA driver here, or the container lacks the GPU runtime",
            ) from None
        self._nvml = pynvml
        self._devices = cuda_devices(pynvml)
        if not self._devices:
            pynvml.nvmlShutdown()
            raise SensorUnavailableError("NVML sees no GPU that CUDA_VISIBLE_DEVICES leaves visible")
        return tuple(device for device, _ in self._devices)

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None

    def read(self, t: float) -> list[Reading]:
        return [self._read_device(t, device, found) for device, found in self._devices]

    def _optional(self, call, *args) -> Any:
        """NotSupported and FunctionNotFound mean 'this GPU or driver lacks it': absent, not an error."""
        nvml = self._nvml
        try:
            return call(*args)
        except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound):
            return None

    def _temperature(self, handle: Any) -> float | None:
        nvml = self._nvml
        getter = getattr(nvml, "nvmlDeviceGetTemperatureV", None)
        if getter is not None:
            value = self._optional(getter, handle, nvml.NVML_TEMPERATURE_GPU)
            if value is not None:
                return float(value)
        value = self._optional(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        return None if value is None else float(value)

    def _power(self, device: str, handle: Any) -> tuple[float | None, str | None]:
        nvml = self._nvml
        if self._instant_power.get(device, True):
            field = getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", None)
            values = self._optional(nvml.nvmlDeviceGetFieldValues, handle, [field]) if field else None
            if values and values[0].nvmlReturn == nvml.NVML_SUCCESS:
                return values[0].value.uiVal / 1000.0, "instant"
            self._instant_power[device] = False  # not on this GPU: stop asking
        milliwatts = self._optional(nvml.nvmlDeviceGetPowerUsage, handle)
        return (None, None) if milliwatts is None else (milliwatts / 1000.0, "average")

    def _energy(self, device: str, handle: Any) -> float | None:
        if not self._has_energy.get(device, True):
            return None
        millijoules = self._optional(self._nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
        if millijoules is None:
            self._has_energy[device] = False  # pre-Volta: power is integrated instead
            return None
        return millijoules / 1000.0

    def _reasons(self, handle: Any) -> tuple[str, ...]:
        nvml = self._nvml
        getter = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None
        )
        mask = self._optional(getter, handle) if getter else None
        return decode_reasons(mask) if mask else ()

    def _read_device(self, t: float, device: str, found: NvmlDevice) -> Reading:
        nvml = self._nvml
        handle = found.sensor_handle  # the whole GPU's, for a MIG instance
        power, kind = self._power(device, handle)
        memory = self._optional(nvml.nvmlDeviceGetMemoryInfo, found.handle)
        utilization = self._optional(nvml.nvmlDeviceGetUtilizationRates, handle)
        clock = self._optional(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)
        memory_clock = self._optional(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM)
        limit = self._optional(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        processes = self._optional(nvml.nvmlDeviceGetComputeRunningProcesses, found.handle)
        return Reading(
            t=t,
            domain=device,
            power_watts=power,
            power_kind=kind,
            energy_joules=self._energy(device, handle),
            temperature_celsius=self._temperature(handle),
            memory_used_bytes=None if memory is None else int(memory.used),
            utilization_ratio=None if utilization is None else utilization.gpu / 100.0,
            sm_clock_hertz=None if clock is None else clock * 1e6,  # MHz
            memory_clock_hertz=None if memory_clock is None else memory_clock * 1e6,
            throttle_reasons=self._reasons(handle),
            power_limit_watts=None if limit is None else limit / 1000.0,  # mW
            pcie_generation=self._optional(nvml.nvmlDeviceGetCurrPcieLinkGeneration, handle),
            pcie_width=self._optional(nvml.nvmlDeviceGetCurrPcieLinkWidth, handle),
            processes=None if processes is None else len(processes),
            sensor_uuid=found.parent_uuid,
        )
