"""Reference bands shipped with benchd: figures measured on known machines (docs/performance.md).

Each is written as the request that ran it and the data it ran on, so its
config id is computed by this benchd's catalog (bands.py): a band never
names an id from an older definition of the work. Every figure here is one
run's representative epoch; the spread of one run is unknown, so these bands
allow only the policy's minimum slowdown. Add your own from bundles with
`benchd bands add`.
"""

from __future__ import annotations

from typing import Any

H200_MACHINE = "1x NVIDIA H200 700 W, 16-core Xeon host"
H200_SOFTWARE = "driver 580.159.04, torch 2.11.0+cu130"
H200_DATE = "2026-11-27"
CPU_MACHINE = "2-core x86-64 VM, Intel Xeon, 24 GiB"
CPU_SOFTWARE = "torch 2.14.1"
CPU_DATE = "2026-11-27"

MNIST = "mnist/synthetic/v1/scale=1/seed=0"
WIKITEXT = "wikitext-2/synthetic/v1/scale=1/seed=0"
LSUN_5_PERCENT = "lsun-classroom/synthetic/v1/scale=0.05/seed=0"
LSUN = "lsun-classroom/synthetic/v1/scale=1/seed=0"


def _h200(request: dict[str, Any], data: str, seconds: float) -> dict[str, Any]:
    return {"device_type": "cuda", "device_name": "NVIDIA H200", "request": request,
            "preset": request["presets"], "data": data,
            "median_seconds": seconds, "machine": H200_MACHINE, "software": H200_SOFTWARE,
            "measured": H200_DATE}  # fmt: skip


def _cpu(workload: str, preset: str, data: str, seconds: float) -> dict[str, Any]:
    request = {"workload": workload, "suite": "standard-v1"}
    return {"device_type": "cpu", "device_name": "Intel(R) Xeon(R) Processor", "request": request,
            "preset": preset, "data": data, "median_seconds": seconds, "machine": CPU_MACHINE,
            "software": CPU_SOFTWARE, "measured": CPU_DATE}  # fmt: skip


# benchmarks/fidelity_cuda.sh on the H200 ("Reference and device timing on an NVIDIA H200").
SHIPPED: tuple[dict[str, Any], ...] = (
    _h200({"workload": "vae", "presets": "bs128", "epochs": 3, "timing": "reference"}, MNIST, 4.748),
    _h200({"workload": "vae", "presets": "bs128", "epochs": 3, "timing": "device"}, MNIST, 1.221),
    _h200({"workload": "vae", "presets": "bs5120", "epochs": 3, "timing": "reference"}, MNIST, 3.754),
    _h200({"workload": "vae", "presets": "bs5120", "epochs": 3, "timing": "device"}, MNIST, 0.036),
    _h200({"workload": "transformer", "presets": "b200-e500-l4-h500", "epochs": 2, "timing": "reference"},
          WIKITEXT, 10.274),
    _h200({"workload": "transformer", "presets": "b200-e500-l4-h500", "epochs": 2, "timing": "device"},
          WIKITEXT, 7.677),
    _h200({"workload": "siamese", "presets": "bs64", "epochs": 2, "fraction": 0.1, "timing": "reference"},
          MNIST, 1.226),
    _h200({"workload": "dcgan", "presets": "bs64", "epochs": 2, "fraction": 0.5, "timing": "reference"},
          LSUN_5_PERCENT, 5.622),
    # The standard suite on this project's CPU VM ("The standard suite").
    _cpu("vae", "bs128", MNIST, 3.96),
    _cpu("vae", "bs5120", MNIST, 2.89),
    _cpu("siamese", "bs64", MNIST, 11.0),
    _cpu("siamese", "bs1024", MNIST, 7.55),
    _cpu("transformer", "b20-e200-l2-h200", WIKITEXT, 40.6),
    _cpu("transformer", "b200-e500-l4-h500", WIKITEXT, 76.8),
    _cpu("dcgan", "bs64", LSUN, 46.8),
)  # fmt: skip
