"""`benchd doctor`: what this host can run and measure, and why not where it cannot."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from benchd.catalog.registry import discover
from benchd.devices import ProbeError, probe
from benchd.telemetry.sampler import Sampler
from benchd.workloads.peaks import peaks_of


def _datasets(data_dir: Path) -> list[dict[str, Any]]:
    from benchd.datasets import layout
    from benchd.datasets.formats import get_format, names

    found = []
    for name in names():
        fmt = get_format(name)
        entry: dict[str, Any] = {"name": name, "path": str(layout.dataset_path(data_dir, fmt))}
        try:
            info = layout.describe(data_dir, fmt)
        except layout.DatasetError as exc:
            entry.update(status="invalid", reason=str(exc))
        else:
            if info is None:
                entry.update(status="absent", reason="a synthetic set is generated on first use")
            else:
                entry.update(status=info.kind, samples=info.samples)
        found.append(entry)
    return found


def mfu_peak(device: dict[str, Any]) -> str:
    """What a run's MFU on this device will divide by (docs/performance.md), in one line."""
    if device["type"] == "cpu":
        return "measured in each run (a matmul in the precision's dtype)"
    entry = peaks_of(device["type"], device["name"])
    if entry is None:
        return "none published: runs here report FLOP/s without MFU"
    columns = ", ".join(f"{column} {tflops:g}" for column, tflops in entry.tflops.items())
    return f"{entry.model}: {columns} TFLOP/s ({entry.source})"


def diagnose(data_dir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"data_dir": str(data_dir)}
    try:
        found = probe()
        report["torch"] = {
            "version": found.torch_version,
            "cuda": found.cuda_version,
            "devices": [{**device, "mfu_peak": mfu_peak(device)} for device in found.devices],
        }
        report["can_run"] = True
    except ProbeError as exc:
        report["torch"] = {"error": str(exc)}
        report["can_run"] = False
    sampler = Sampler().open()
    report["sensors"] = [state.to_json() for state in sampler.availability]
    sampler.stop()
    found_workloads = discover()
    report["workloads"] = {
        "registered": list(found_workloads.workloads),
        "left_out": list(found_workloads.problems),
    }
    report["datasets"] = _datasets(data_dir)
    usage = shutil.disk_usage(data_dir)
    report["disk"] = {"free_bytes": usage.free, "total_bytes": usage.total}
    return report


def render(report: dict[str, Any]) -> list[str]:
    lines = [f"data directory: {report['data_dir']} ({report['disk']['free_bytes'] / 1e9:.1f} GB free)"]
    torch = report["torch"]
    if "error" in torch:
        lines.append(f"torch: {torch['error']}")
    else:
        lines.append(f"torch {torch['version']} (CUDA {torch['cuda'] or 'none'})")
        for device in torch["devices"]:
            lines.append(f"  device {device['id']}: {device['name']}")
            lines.append(f"    MFU peak: {device['mfu_peak']}")
    lines.append("sensors:")
    for sensor in report["sensors"]:
        state = "available" if sensor["available"] else sensor["reason"]
        domains = f" ({', '.join(sensor['domains'])})" if sensor["domains"] else ""
        lines.append(f"  {sensor['sensor']}: {state}{domains}")
        if sensor["hint"]:
            lines.append(f"    hint: {sensor['hint']}")
    workloads = report["workloads"]
    lines.append(f"workloads: {', '.join(workloads['registered'])}")
    lines.extend(f"  {problem}" for problem in workloads["left_out"])
    lines.append("datasets:")
    for dataset in report["datasets"]:
        detail = f"{dataset['samples']:,} samples" if "samples" in dataset else dataset.get("reason", "")
        lines.append(f"  {dataset['name']}: {dataset['status']}, {detail}")
    return lines
