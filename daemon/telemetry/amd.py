"""AMD GPUs through `amdsmi`, where installed (optional extra).

The library's units changed across versions: temperatures arrive in degrees
or millidegrees (range-checked here), and the energy counter is trusted only
once its rate agrees with the reported power.
"""

from __future__ import annotations

from typing import Any

from benchd.telemetry.base import Reading, Sensor, SensorUnavailableError

PLAUSIBLE_CELSIUS = (5.0, 150.0)  # a running accelerator is neither frozen nor molten
ENERGY_POWER_TOLERANCE = 0.5  # counter-derived power within +-50% of reported power


def normalise_celsius(value: Any) -> float | None:
    """Degrees from either unit; None for values that are neither (sentinels, garbage)."""
    if not isinstance(value, (int, float)):
        return None
    for candidate in (float(value), float(value) / 1000.0):
        if PLAUSIBLE_CELSIUS[0] <= candidate <= PLAUSIBLE_CELSIUS[1]:
            return candidate
    return None


def _watts(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value >= 0 else None


class AmdSensor(Sensor):
    name = "amdsmi"

    def __init__(self) -> None:
        self._smi: Any = None
        self._handles: list[Any] = []
        self._energy_trusted: dict[int, bool | None] = {}
        self._last: dict[int, tuple[float, float]] = {}

    def open(self) -> tuple[str, ...]:
        try:
            import amdsmi
        except ImportError:
            raise SensorUnavailableError("amdsmi is not installed", "install ROCm's amdsmi package") from None
        try:
            amdsmi.amdsmi_init()
            self._handles = list(amdsmi.amdsmi_get_processor_handles())
        except Exception as exc:  # amdsmi raises AmdSmiException and friends
            raise SensorUnavailableError(f"amdsmi could not start ({exc})") from None
        if not self._handles:
            raise SensorUnavailableError("amdsmi sees no AMD GPU")
        self._smi = amdsmi
        return tuple(f"cuda:{i}" for i in range(len(self._handles)))  # ROCm torch calls them cuda

    def close(self) -> None:
        if self._smi is not None:
            self._smi.amdsmi_shut_down()
            self._smi = None

    def _energy_joules(self, index: int, handle: Any) -> float | None:
        counter = self._smi.amdsmi_get_energy_count(handle)
        accumulator = counter.get("energy_accumulator", counter.get("power"))
        resolution = counter.get("counter_resolution")
        if not isinstance(accumulator, (int, float)) or not isinstance(resolution, (int, float)):
            return None
        return accumulator * resolution / 1e6  # resolution is in microjoules per count

    def _check_energy(self, index: int, t: float, joules: float | None, power: float | None) -> float | None:
        """Validate the counter against reported power once, then trust (or ignore) it."""
        if joules is None or self._energy_trusted.get(index) is False:
            return None
        if self._energy_trusted.get(index):
            return joules
        previous = self._last.get(index)
        self._last[index] = (t, joules)
        if previous is None or power is None or power <= 0 or t <= previous[0]:
            return None
        rate = (joules - previous[1]) / (t - previous[0])
        self._energy_trusted[index] = abs(rate - power) <= ENERGY_POWER_TOLERANCE * power
        return joules if self._energy_trusted[index] else None

    def read(self, t: float) -> list[Reading]:
        smi = self._smi
        readings = []
        for index, handle in enumerate(self._handles):
            info = smi.amdsmi_get_power_info(handle)
            power = _watts(info.get("current_socket_power")) or _watts(info.get("average_socket_power"))
            temperature = normalise_celsius(
                smi.amdsmi_get_temp_metric(
                    handle, smi.AmdSmiTemperatureType.HOTSPOT, smi.AmdSmiTemperatureMetric.CURRENT
                )
            )
            energy = self._check_energy(index, t, self._energy_joules(index, handle), power)
            readings.append(
                Reading(t=t, domain=f"cuda:{index}", power_watts=power, power_kind="instant",
                        energy_joules=energy, temperature_celsius=temperature)
            )  # fmt: skip
        return readings
