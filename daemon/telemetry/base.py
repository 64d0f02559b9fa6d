"""What every sensor backend provides, and what one reading holds."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Reading:
    """One sensor's figures for one domain at one moment (`time.monotonic()`).

    A domain is what the figures describe: a torch device id (`cuda:0`,
    `mps`), the CPU as a whole (`cpu`), or a RAPL zone (`package-0`, `dram-0`).
    `energy_joules` is a cumulative counter, already corrected for wraparound.
    """

    t: float
    domain: str
    power_watts: float | None = None
    power_kind: str | None = None  # "instant" or "average" (NVML's 1 s average)
    energy_joules: float | None = None
    temperature_celsius: float | None = None
    memory_used_bytes: int | None = None
    utilization_ratio: float | None = None
    sm_clock_hertz: float | None = None
    memory_clock_hertz: float | None = None
    throttle_reasons: tuple[str, ...] = ()  # clock event reasons active now (nvidia.CLOCK_EVENT_REASONS)
    power_limit_watts: float | None = None  # the limit in force (NVML's enforced limit)
    pcie_generation: int | None = None  # the PCIe link as it runs now (it may train down)
    pcie_width: int | None = None
    processes: int | None = None
    sensor_uuid: str | None = None  # set when the figures are a larger device's: a MIG instance's GPU


@dataclass(frozen=True)
class Availability:
    sensor: str
    available: bool
    reason: str | None = None
    hint: str | None = None
    domains: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "domains": list(self.domains)}


class SensorUnavailableError(Exception):
    """Raised by `open()`: the message is the reason shown to the user."""

    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


class Sensor(ABC):
    name: str

    @abstractmethod
    def open(self) -> tuple[str, ...]:
        """Initialise; return the domains this sensor reports, or raise SensorUnavailableError."""

    @abstractmethod
    def read(self, t: float) -> list[Reading]:
        """One reading per domain; may raise (the sampler counts the error and goes on)."""

    def close(self) -> None:  # noqa: B027 - most sensors hold nothing to release
        """Release what open() acquired."""


def probe(sensor: Sensor) -> Availability:
    try:
        domains = sensor.open()
    except SensorUnavailableError as exc:
        return Availability(sensor.name, False, f"unavailable: {exc.reason}", exc.hint)
    return Availability(sensor.name, True, None, None, domains)
