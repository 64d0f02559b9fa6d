"""Per-epoch figures from the readings of the epoch's window [epoch_start.t, epoch_end.t].

Energy comes from a hardware counter's delta where a domain has one
(`counter`), else from power samples integrated over time (`integrated`).
Average power is energy over duration, with energy's source. Peaks, maxima
and means are taken over the samples in the window (`sampled`). A figure
nobody measured is absent; a window shorter than a second, or with fewer
than two samples, is marked low-confidence.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from itertools import pairwise
from typing import Any

from benchd.telemetry.base import Reading

COUNTER = "counter"
INTEGRATED = "integrated"
SAMPLED = "sampled"
MIN_CONFIDENT_SECONDS = 1.0


def _figure(value: float | None, source: str) -> dict[str, Any] | None:
    return None if value is None else {"value": value, "source": source}


def _counter_energy(readings: list[Reading], start: float, end: float) -> float | None:
    counters = [r for r in readings if r.energy_joules is not None]
    first = [r for r in counters if r.t <= start] or [r for r in counters if r.t >= start]
    last = [r for r in counters if r.t >= end] or [r for r in counters if r.t <= end]
    if not first or not last:
        return None
    opening = first[-1] if first[-1].t <= start else first[0]
    closing = last[0] if last[0].t >= end else last[-1]
    if closing.t <= opening.t:
        return None
    delta = (closing.energy_joules or 0.0) - (opening.energy_joules or 0.0)
    # Scale to the window when the bracketing readings span slightly more or less than it.
    return delta * (end - start) / (closing.t - opening.t)


def _integrated_energy(readings: list[Reading], start: float, end: float) -> float | None:
    """Trapezoids over power samples, clipped to the window (values interpolated at its edges)."""
    points = sorted((r.t, r.power_watts) for r in readings if r.power_watts is not None)
    if len(points) < 2 or points[0][0] > end or points[-1][0] < start:
        return None
    energy = 0.0
    for (t0, p0), (t1, p1) in pairwise(points):
        lo, hi = max(t0, start), min(t1, end)
        if hi <= lo or t1 == t0:
            continue
        slope = (p1 - p0) / (t1 - t0)
        p_lo, p_hi = p0 + slope * (lo - t0), p0 + slope * (hi - t0)
        energy += (p_lo + p_hi) / 2 * (hi - lo)
    covered = min(points[-1][0], end) - max(points[0][0], start)
    return energy if covered > 0 else None


def domain_figures(readings: list[Reading], start: float, end: float) -> dict[str, Any]:
    duration = end - start
    inside = [r for r in readings if start <= r.t <= end]
    figures: dict[str, Any] = {}
    energy, source = _counter_energy(readings, start, end), COUNTER
    if energy is None:
        energy, source = _integrated_energy(readings, start, end), INTEGRATED
    figures["energy_joules"] = _figure(energy, source)
    average = energy / duration if energy is not None and duration > 0 else None
    figures["average_power_watts"] = _figure(average, source)
    powers = [r.power_watts for r in inside if r.power_watts is not None]
    temperatures = [r.temperature_celsius for r in inside if r.temperature_celsius is not None]
    memory = [r.memory_used_bytes for r in inside if r.memory_used_bytes is not None]
    utilization = [r.utilization_ratio for r in inside if r.utilization_ratio is not None]
    processes = [r.processes for r in inside if r.processes is not None]
    figures["peak_power_watts"] = _figure(max(powers) if powers else None, SAMPLED)
    figures["max_temperature_celsius"] = _figure(max(temperatures) if temperatures else None, SAMPLED)
    mean_temperature = statistics.fmean(temperatures) if temperatures else None
    figures["mean_temperature_celsius"] = _figure(mean_temperature, SAMPLED)
    figures["peak_memory_used_bytes"] = _figure(max(memory) if memory else None, SAMPLED)
    figures["mean_utilization_ratio"] = _figure(
        statistics.fmean(utilization) if utilization else None, SAMPLED
    )
    reasons = sorted({reason for r in inside for reason in r.throttle_reasons})
    figures["throttle_reasons"] = (
        reasons if any(r.throttle_reasons or r.sm_clock_hertz for r in inside) else None
    )
    figures.update(slowdown_figures(inside))
    # The run's own process is one; more means something else shared the device.
    figures["other_processes"] = (max(processes) > 1) if processes else None
    kinds = {r.power_kind for r in inside if r.power_kind}
    figures["power_kind"] = kinds.pop() if len(kinds) == 1 else None
    figures["samples"] = len(inside)
    shared = {r.sensor_uuid for r in inside if r.sensor_uuid}
    figures["sensors_of"] = shared.pop() if len(shared) == 1 else None  # a MIG instance: its GPU's figures
    return {k: v for k, v in figures.items() if v is not None}


def _clock_figures(name: str, values: list[float]) -> dict[str, Any]:
    if not values:
        return {}
    return {
        f"mean_{name}": _figure(statistics.fmean(values), SAMPLED),
        f"min_{name}": _figure(min(values), SAMPLED),
    }


def throttled_seconds(inside: list[Reading]) -> dict[str, float] | None:
    """Seconds each clock event reason was active: each interval between two samples counts for the
    reasons the first one saw. None where the device reports no clocks; {} where it never slowed."""
    clocked = sorted((r for r in inside if r.sm_clock_hertz is not None), key=lambda r: r.t)
    if len(clocked) < 2:
        return None
    totals: dict[str, float] = defaultdict(float)
    for earlier, later in pairwise(clocked):
        for reason in earlier.throttle_reasons:
            totals[reason] += later.t - earlier.t
    return dict(sorted(totals.items()))


def slowdown_figures(inside: list[Reading]) -> dict[str, Any]:
    """What explains a slow epoch: time throttled by reason, SM and memory clocks (mean and minimum),
    the power limit in force and the PCIe link, where the device reports them."""
    figures: dict[str, Any] = {}
    throttled = throttled_seconds(inside)
    if throttled is not None:
        figures["throttle_seconds"] = throttled
    figures.update(_clock_figures("sm_clock_hertz", [r.sm_clock_hertz for r in inside if r.sm_clock_hertz]))
    figures.update(
        _clock_figures("memory_clock_hertz", [r.memory_clock_hertz for r in inside if r.memory_clock_hertz])
    )
    limits = [r.power_limit_watts for r in inside if r.power_limit_watts is not None]
    if limits:
        figures["power_limit_watts"] = _figure(limits[-1], SAMPLED)
    links = [(r.pcie_generation, r.pcie_width) for r in inside if r.pcie_generation and r.pcie_width]
    if links:
        figures["pcie_link"] = {"generation": links[-1][0], "width": links[-1][1]}
    return figures


def epoch_telemetry(readings: list[Reading], start: float, end: float) -> dict[str, Any]:
    """Figures per domain, and whether the window was too short to trust."""
    by_domain: dict[str, list[Reading]] = defaultdict(list)
    for reading in readings:
        by_domain[reading.domain].append(reading)
    domains = {d: domain_figures(rs, start, end) for d, rs in sorted(by_domain.items())}
    samples = max((f.get("samples", 0) for f in domains.values()), default=0)
    return {
        "domains": {d: f for d, f in domains.items() if set(f) - {"samples"}},
        "low_confidence": end - start < MIN_CONFIDENT_SECONDS or samples < 2,
    }


def baseline(readings: list[Reading]) -> dict[str, Any]:
    """Idle power and temperature per domain, from the readings taken before a run."""
    result: dict[str, Any] = {}
    by_domain: dict[str, list[Reading]] = defaultdict(list)
    for reading in readings:
        by_domain[reading.domain].append(reading)
    for domain, rs in sorted(by_domain.items()):
        figures: dict[str, Any] = {}
        if len(rs) >= 2:
            energy = _counter_energy(rs, rs[0].t, rs[-1].t)
            source = COUNTER
            if energy is None:
                energy, source = _integrated_energy(rs, rs[0].t, rs[-1].t), INTEGRATED
            if energy is not None and rs[-1].t > rs[0].t:
                figures["power_watts"] = _figure(energy / (rs[-1].t - rs[0].t), source)
        temperatures = [r.temperature_celsius for r in rs if r.temperature_celsius is not None]
        if temperatures:
            figures["temperature_celsius"] = _figure(statistics.fmean(temperatures), SAMPLED)
        if figures:
            result[domain] = figures
    return result
