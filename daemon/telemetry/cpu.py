"""The CPU: utilization through psutil, temperatures from hwmon, energy from RAPL.

hwmon and RAPL are read under a configurable sysfs root (`BENCHD_SYSFS_ROOT`,
default `/sys`), which is also how a container reads the host's: mount the
host's /sys/class/powercap (and hwmon) read-only and point the root there.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from benchd.telemetry.base import Reading, Sensor, SensorUnavailableError

ENV_SYSFS_ROOT = "BENCHD_SYSFS_ROOT"
CPU_HWMON_DRIVERS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "soc_thermal", "x86_pkg_temp")
RAPL_ROOT_ONLY = (
    "RAPL energy files are readable only by root on current kernels (since the PLATYPUS side-channel fix)"
)
RAPL_HINT = (
    "run the daemon as root; in a container, mount the host's /sys/class/powercap read-only "
    "and set BENCHD_SYSFS_ROOT to where it is mounted"
)


def sysfs_root() -> Path:
    return Path(os.environ.get(ENV_SYSFS_ROOT, "/sys"))


def hwmon_cpu_temperature_files(root: Path) -> list[Path]:
    """temp*_input files of the CPU's hwmon drivers (millidegrees Celsius)."""
    files: list[Path] = []
    for hwmon in sorted((root / "class" / "hwmon").glob("hwmon*")):
        try:
            name = (hwmon / "name").read_text().strip()
        except OSError:
            continue
        if name in CPU_HWMON_DRIVERS:
            files.extend(sorted(hwmon.glob("temp*_input")))
    return files


class CpuSensor(Sensor):
    name = "cpu"

    def __init__(self, root: Path | None = None) -> None:
        self._root = root
        self._temperatures: list[Path] = []

    def open(self) -> tuple[str, ...]:
        self._temperatures = hwmon_cpu_temperature_files(self._root or sysfs_root())
        psutil.cpu_percent(interval=None)  # starts the utilization interval
        return ("cpu",)

    def read(self, t: float) -> list[Reading]:
        temperature = None
        values = []
        for path in self._temperatures:
            try:
                values.append(int(path.read_text()) / 1000.0)
            except (OSError, ValueError):
                continue
        if values:
            temperature = max(values)
        return [
            Reading(
                t=t,
                domain="cpu",
                utilization_ratio=psutil.cpu_percent(interval=None) / 100.0,
                temperature_celsius=temperature,
            )
        ]


class _RaplZone:
    """One powercap zone's counter, unwrapped at max_energy_range_uj."""

    def __init__(self, path: Path, domain: str) -> None:
        self.path = path
        self.domain = domain
        self.range_uj = int((path / "max_energy_range_uj").read_text())
        self.last_raw = self._raw()
        self.total_uj = 0

    def _raw(self) -> int:
        return int((self.path / "energy_uj").read_text())

    def joules(self) -> float:
        raw = self._raw()
        delta = raw - self.last_raw
        if delta < 0:  # the counter wrapped
            delta += self.range_uj + 1
        self.total_uj += delta
        self.last_raw = raw
        return self.total_uj / 1e6


class RaplSensor(Sensor):
    name = "rapl"

    def __init__(self, root: Path | None = None) -> None:
        self._root = root
        self._zones: list[_RaplZone] = []

    def open(self) -> tuple[str, ...]:
        base = (self._root or sysfs_root()) / "class" / "powercap"
        packages = sorted(p for p in base.glob("intel-rapl:*") if p.name.count(":") == 1)
        if not packages:
            raise SensorUnavailableError(
                f"no RAPL zones under {base}",
                "RAPL needs a bare-metal Intel or AMD host; in a container, mount the host's "
                "/sys/class/powercap read-only and set BENCHD_SYSFS_ROOT",
            )
        zones = []
        try:
            for package in packages:
                index = package.name.split(":")[1]
                zones.append(_RaplZone(package, f"package-{index}"))
                for sub in sorted(package.glob(f"intel-rapl:{index}:*")):
                    if (sub / "name").read_text().strip() == "dram":
                        zones.append(_RaplZone(sub, f"dram-{index}"))
        except PermissionError:
            raise SensorUnavailableError(RAPL_ROOT_ONLY, RAPL_HINT) from None
        except (OSError, ValueError) as exc:
            raise SensorUnavailableError(f"unreadable RAPL zone ({exc})") from None
        self._zones = zones
        return (*(z.domain for z in zones), "cpu")

    def read(self, t: float) -> list[Reading]:
        readings = [Reading(t=t, domain=z.domain, energy_joules=z.joules()) for z in self._zones]
        packages = [r.energy_joules or 0.0 for r in readings if r.domain.startswith("package-")]
        # The CPU as a whole: every package, so a run on the CPU has one energy figure.
        readings.append(Reading(t=t, domain="cpu", energy_joules=sum(packages)))
        return readings
