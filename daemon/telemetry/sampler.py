"""One background thread samples every available sensor into a bounded ring buffer.

About 10 Hz while a run is active, 1 Hz when idle. A sensor that raises is
counted and skipped for that sample; the thread never stops for it.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterable

from benchd.telemetry.base import Availability, Reading, Sensor, probe

ACTIVE_INTERVAL_SECONDS = 0.1
IDLE_INTERVAL_SECONDS = 1.0
CAPACITY = 200_000  # readings: hours of a few domains at 10 Hz, a few MB


def default_sensors() -> list[Sensor]:
    from benchd.telemetry.amd import AmdSensor
    from benchd.telemetry.apple import AppleSensor
    from benchd.telemetry.cpu import CpuSensor, RaplSensor
    from benchd.telemetry.nvidia import NvmlSensor

    return [NvmlSensor(), AmdSensor(), AppleSensor(), CpuSensor(), RaplSensor()]


class Sampler:
    def __init__(self, sensors: Iterable[Sensor] | None = None, capacity: int = CAPACITY) -> None:
        self._candidates = list(default_sensors() if sensors is None else sensors)
        self._sensors: list[Sensor] = []
        self.availability: list[Availability] = []
        self.errors: dict[str, int] = {}
        self.last_error: dict[str, str] = {}
        self._buffer: collections.deque[Reading] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        # Reads are serialised: the thread and a run's window edges both sample, and a counter
        # (RAPL's unwrapping, for one) must not see two reads interleave.
        self._read_lock = threading.Lock()
        self._active = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> Sampler:
        """Open every sensor, keeping those that work; safe to call without starting the thread."""
        for sensor in self._candidates:
            state = probe(sensor)
            self.availability.append(state)
            if state.available:
                self._sensors.append(sensor)
                self.errors[sensor.name] = 0
        return self

    def start(self) -> Sampler:
        if not self.availability:
            self.open()
        self._thread = threading.Thread(target=self._loop, name="benchd-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for sensor in self._sensors:
            with contextlib.suppress(Exception):  # best effort: the process is ending anyway
                sensor.close()

    def set_active(self, active: bool) -> None:
        """Runs in progress raise the rate; nested runs (several devices) are counted."""
        with self._lock:
            self._active += 1 if active else -1
        self._wake.set()

    @property
    def interval(self) -> float:
        return ACTIVE_INTERVAL_SECONDS if self._active > 0 else IDLE_INTERVAL_SECONDS

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample_now()
            self._wake.wait(self.interval)
            self._wake.clear()

    def sample_now(self) -> float:
        """Read every sensor once, now; returns the timestamp used."""
        with self._read_lock:
            t = time.monotonic()
            readings: list[Reading] = []
            for sensor in self._sensors:
                try:
                    readings.extend(sensor.read(t))
                except Exception as exc:  # any backend failure: counted, reported, never fatal
                    with self._lock:
                        self.errors[sensor.name] += 1
                        self.last_error[sensor.name] = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._buffer.extend(readings)
        return t

    def window(self, start: float, end: float) -> list[Reading]:
        """Readings within [start, end] plus, per domain, the last one before and the first after."""
        with self._lock:
            readings = list(self._buffer)
        before: dict[str, Reading] = {}
        after: dict[str, Reading] = {}
        inside = []
        for reading in readings:
            if reading.t < start:
                before[reading.domain] = reading
            elif reading.t > end:
                after.setdefault(reading.domain, reading)
            else:
                inside.append(reading)
        return [*before.values(), *inside, *after.values()]

    def latest(self) -> dict[str, Reading]:
        """The newest reading of each domain, merged field by field across sensors."""
        with self._lock:
            readings = list(self._buffer)[-64:]
        merged: dict[str, dict] = {}
        for reading in readings:
            fields = merged.setdefault(reading.domain, {})
            for key, value in vars(reading).items():
                if value is not None and value != ():
                    fields[key] = value
        return {domain: Reading(**fields) for domain, fields in merged.items()}
