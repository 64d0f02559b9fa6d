"""The published comparison's figures as two results bundles: the seed table, reproducible by `compare`.

The figures are public facts (docs/workloads.md cites the comparison): epoch
seconds, and the memory and power its author reported. Each machine becomes a
bundle whose runs have the config a benchd run of the same work would have
(the preset, one full epoch, reference timing, the real dataset), so a
machine measured by benchd today lines up with them cell for cell.
Regenerate the files with `python -m tests.published` after a change here;
a test fails when they are stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchd import catalog
from benchd.catalog.identity import config_id
from benchd.datasets import facts
from benchd.results.bundle import BUNDLE_FORMAT, BUNDLE_VERSION

DIRECTORY = Path(__file__).resolve().parent / "fixtures" / "published"
EXPORTED_AT = 1_653_955_200.0  # 2022-05-31, when the comparison was published
REAL_SAMPLES = {
    "lsun-classroom": facts.LSUN_CLASSROOM_IMAGES,
    "mnist": facts.MNIST_TRAIN_IMAGES,
    "wikitext-2": facts.WIKITEXT2_TRAIN_TOKENS,
}
GB = 1_000_000_000

# Seconds per epoch, or the failure, with (memory GB, power W) where the author gave them.
Figure = float | str | tuple[float, float | None, float | None]
M1_CPU, M1_MPS, RTX = "cpu", "mps", "cuda:0"
FIGURES: dict[tuple[str, str], dict[str, Figure]] = {
    ("dcgan", "bs64"): {M1_CPU: 1942.078, M1_MPS: "error", RTX: (285.473, 1.3, 84)},
    ("dcgan", "bs1024"): {M1_CPU: 1684.591, M1_MPS: "error", RTX: (252.657, 4.45, 69)},
    ("siamese", "bs64"): {M1_CPU: 353.208, M1_MPS: (112.131, 1.42, None), RTX: (39.839, 1.3, 182)},
    ("siamese", "bs1024"): {M1_CPU: 197.937, M1_MPS: (15.547, 3.21, None), RTX: (20.538, 2.4, 189)},
    ("transformer", "b20-e200-l2-h200"): {M1_CPU: 282.73, M1_MPS: 505.52, RTX: 47.39},
    ("transformer", "b20-e500-l2-h500"): {M1_CPU: 405.90, M1_MPS: 502.79, RTX: 73.36},
    ("transformer", "b200-e500-l4-h500"): {M1_CPU: 362.12, M1_MPS: (104.67, 13.2, None),
                                           RTX: (59.98, 6.2, None)},
    ("transformer", "b200-e500-l6-h1024"): {M1_CPU: 513.85, M1_MPS: (137.19, 14.4, None),
                                            RTX: (72.54, 6.8, None)},
    ("transformer", "b200-e500-l10-h1024"): {M1_CPU: 745.80, M1_MPS: (216.04, 16.0, None), RTX: "oom"},
    ("vae", "bs128"): {M1_CPU: 3.746, M1_MPS: 8.760, RTX: 6.555},
    ("vae", "bs5120"): {M1_CPU: 1.933, M1_MPS: 1.998, RTX: 6.074},
}  # fmt: skip
MESSAGES = {"error": "the MPS backend crashed on this workload (published)",
            "oom": "out of memory on the 8 GB card (published)"}  # fmt: skip
MACHINES: dict[str, dict[str, Any]] = {
    "m1-ultra": {
        "system": {"hostname": "m1-ultra", "os": "Darwin", "machine": "arm64", "cpu": "Apple M1 Ultra",
                   "logical_cpus": 20, "memory_bytes": 128 * 2**30},
        "devices": {M1_CPU: ("cpu", "Apple M1 Ultra"), M1_MPS: ("mps", "Apple M1 Ultra")},
    },
    "rtx-2070-super": {
        "system": {"hostname": "rtx-2070-super", "os": "Linux", "machine": "x86_64", "cpu": None,
                   "logical_cpus": None, "memory_bytes": None,
                   "accelerator": {"name": "NVIDIA GeForce RTX 2070 SUPER", "memory_total_bytes": 8 * 2**30}},
        "devices": {RTX: ("cuda", "NVIDIA GeForce RTX 2070 SUPER")},
    },
}  # fmt: skip


def _run(run_id: int, workload: str, preset: str, device: str, figure: Figure,
         machine: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    spec = catalog.get_workload(workload)
    config = catalog.build_config(spec, spec.preset(preset), epochs=1, fraction=1.0).to_json()
    data = {"kind": "real", "fingerprint": f"{spec.dataset}/real/{REAL_SAMPLES[spec.dataset]}"}
    device_type, device_name = machine["devices"][device]
    failed = isinstance(figure, str)
    seconds, memory, power = figure if isinstance(figure, tuple) else (figure, None, None)
    samples = REAL_SAMPLES[spec.dataset]
    power_figure = {"average_power_watts": {"value": power, "source": "published"}}
    telemetry = {"domains": {device: power_figure}} if power else None
    epochs = [] if isinstance(seconds, str) else [{
        "index": 0, "duration_seconds": seconds, "samples": samples, "steps": 0, "data_wait_seconds": 0.0,
        "peak_allocated_bytes": None, "peak_reserved_bytes": round(memory * GB) if memory else None,
        "loss": None, "telemetry": telemetry, "phases": None, "validation_loss": None,
    }]  # fmt: skip
    return {
        "id": run_id, "workload": workload, "preset": preset, "config": config, "fraction": 1.0,
        "requested_device": device, "state": "finished", "outcome": figure if failed else "ok",
        "message": MESSAGES.get(figure) if failed else None, "stderr_tail": None, "log_path": None,
        "device": device, "device_type": device_type, "device_name": device_name, "precision": "float32",
        "torch_version": None, "benchd_version": "published", "driver_version": None, "data": "real",
        "data_samples": REAL_SAMPLES[spec.dataset],
        "parameters": spec.parameters(spec.preset(preset).options),
        "samples_per_epoch": samples, "sample_unit": spec.sample_unit, "peak_host_rss_bytes": None,
        "queued_at": EXPORTED_AT, "started_at": EXPORTED_AT, "finished_at": EXPORTED_AT,
        "timeout_seconds": None, "origin": "cli", "timing": "reference", "workers": None, "data_scale": None,
        "config_id": config_id(config, data), "system": machine["system"], "epochs": epochs,
    }  # fmt: skip


def bundle(hostname: str) -> dict[str, Any]:
    machine = MACHINES[hostname]
    cells = [
        (workload, preset, device, figure)
        for (workload, preset), by_device in FIGURES.items()
        for device, figure in by_device.items()
        if device in machine["devices"]
    ]
    runs = [_run(number, *cell, machine) for number, cell in enumerate(cells, start=1)]
    return {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "benchd_version": "published",
            "exported_at": EXPORTED_AT, "host": machine["system"], "runs": runs}  # fmt: skip


def outputs() -> dict[Path, str]:
    return {DIRECTORY / f"{name}.json": json.dumps(bundle(name), indent=1) + "\n" for name in MACHINES}


if __name__ == "__main__":
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    for path, text in outputs().items():
        path.write_text(text)
        print(f"wrote {path.name}")
