"""Apple Silicon energy through IOReport, via the optional `zeus-apple-silicon` package.

No sudo: IOReport is readable by the user. Energy is cumulative per domain
(CPU, GPU, ANE, DRAM), in millijoules.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

from benchd.telemetry.base import Reading, Sensor, SensorUnavailableError

# AppleEnergyMetrics attribute -> our domain. The GPU is what torch calls `mps`.
DOMAINS = {"cpu_total_mj": "cpu", "gpu_mj": "mps", "ane_mj": "ane", "dram_mj": "dram"}


class AppleSensor(Sensor):
    name = "apple"

    def __init__(self) -> None:
        self._monitor: Any = None

    def open(self) -> tuple[str, ...]:
        if sys.platform != "darwin" or platform.machine() != "arm64":
            raise SensorUnavailableError("not an Apple Silicon Mac")
        try:
            from zeus_apple_silicon import AppleEnergyMonitor
        except ImportError:
            raise SensorUnavailableError(
                "zeus-apple-silicon is not installed", "pip install 'benchd[apple]'"
            ) from None
        self._monitor = AppleEnergyMonitor()
        metrics = self._monitor.get_cumulative_energy()
        return tuple(d for attr, d in DOMAINS.items() if getattr(metrics, attr, None) is not None)

    def read(self, t: float) -> list[Reading]:
        metrics = self._monitor.get_cumulative_energy()
        readings = []
        for attr, domain in DOMAINS.items():
            millijoules = getattr(metrics, attr, None)
            if millijoules is not None:
                readings.append(Reading(t=t, domain=domain, energy_joules=millijoules / 1000.0))
        return readings
