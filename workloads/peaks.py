"""Published peak FLOP/s of accelerators, by precision: the denominator of MFU (docs/metrics.md).

Figures are dense (no structured sparsity) tera-FLOP/s from the vendors'
datasheets and whitepapers; where a datasheet gives only the with-sparsity
figure, it is halved. fp16 and bf16 are tensor-core figures with float32
accumulation, which is what PyTorch's autocast matmuls use (GeForce cards run
those at half their fp16-accumulate rate). A device or precision missing here
has no MFU: a guessed denominator would make a ratio look exact that is not.
CPUs are never here: the harness measures their matmul peak (compute.py).
Torch-free, so the parent and the docs can read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from benchd.catalog.spec import Precision

TERA: Final = 1e12

# Precision modes (catalog.PRECISIONS) -> the peak column that bounds them.
PEAK_COLUMN: Final = {
    Precision.FP32.value: "fp32",
    Precision.TF32.value: "tf32",
    Precision.AMP_BF16.value: "bf16",
    Precision.AMP_FP16.value: "fp16",
}


@dataclass(frozen=True)
class PublishedPeak:
    """One accelerator model's peaks in TFLOP/s by column (fp32, tf32, bf16, fp16)."""

    device_type: str
    pattern: str  # matched against the device name torch reports, case-insensitively, from its start
    model: str
    tflops: dict[str, float]
    source: str

    def matches(self, device_type: str, name: str) -> bool:
        return device_type == self.device_type and re.match(self.pattern, name, re.IGNORECASE) is not None


def _nvidia(
    pattern: str, model: str, fp32: float | None, tf32: float, half: float, source: str
) -> PublishedPeak:
    tflops = ({"fp32": fp32} if fp32 is not None else {}) | {"tf32": tf32, "bf16": half, "fp16": half}
    return PublishedPeak("cuda", rf"^NVIDIA {pattern}", model, tflops, source)


def _apple(chip: str, fp32: float) -> PublishedPeak:
    return PublishedPeak(
        "mps",
        rf"^Apple {chip} GPU",
        f"Apple {chip} GPU",
        {"fp32": fp32},
        "Apple's announced GPU TFLOPS (fp32)",
    )


# Most specific first: the first entry that matches a name decides.
PUBLISHED_PEAKS: Final[tuple[PublishedPeak, ...]] = (
    _nvidia(r"B200\b", "B200", None, 1125, 2250, "HGX B200 datasheet, per GPU, sparse halved"),
    _nvidia(r"H200 NVL\b", "H200 NVL", 60, 417.5, 835.5, "H200 datasheet (NVL), sparse halved"),
    _nvidia(r"H200\b", "H200 SXM", 67, 494.5, 989.5, "H200 datasheet (SXM), sparse halved"),
    _nvidia(r"H100 NVL\b", "H100 NVL", 60, 417.5, 835.5, "H100 datasheet (NVL), sparse halved"),
    _nvidia(r"H100 PCIe\b", "H100 PCIe", 51, 378, 756.5, "H100 datasheet (PCIe), sparse halved"),
    _nvidia(r"H100\b", "H100 SXM", 67, 494.5, 989.5, "H100 datasheet (SXM), sparse halved"),
    _nvidia(r"A100\b", "A100", 19.5, 156, 312, "A100 datasheet (SXM and PCIe alike)"),
    _nvidia(r"A40\b", "A40", 37.4, 74.8, 149.7, "A40 datasheet"),
    _nvidia(r"A30\b", "A30", 10.3, 82, 165, "A30 datasheet"),
    _nvidia(r"A10\b", "A10", 31.2, 62.5, 125, "A10 datasheet"),
    _nvidia(r"L40S\b", "L40S", 91.6, 183, 362.05, "L40S datasheet"),
    _nvidia(r"L40\b", "L40", 90.5, 90.5, 181.05, "L40 datasheet"),
    _nvidia(r"L4\b", "L4", 30.3, 60, 121, "L4 datasheet, sparse halved"),
    _nvidia(r"GeForce RTX 5090\b", "GeForce RTX 5090", 104.8, 104.8, 209.5, "Blackwell GeForce whitepaper"),
    _nvidia(r"GeForce RTX 4090\b", "GeForce RTX 4090", 82.6, 82.6, 165.2, "Ada Lovelace whitepaper"),
    _nvidia(r"GeForce RTX 4080\b(?! SUPER)", "GeForce RTX 4080", 48.7, 48.7, 97.5, "Ada Lovelace whitepaper"),
    _nvidia(r"GeForce RTX 3090(?! Ti)\b", "GeForce RTX 3090", 35.6, 35.6, 71, "Ampere GA102 whitepaper"),
    _nvidia(r"GeForce RTX 3080(?! Ti)\b", "GeForce RTX 3080", 29.8, 29.8, 59.5, "Ampere GA102 whitepaper"),
    # Turing has neither TF32 nor bf16: fp32 and fp16 only (the published comparison's card).
    PublishedPeak(
        "cuda",
        r"^NVIDIA GeForce RTX 2070 SUPER\b",
        "GeForce RTX 2070 Super",
        {"fp32": 9.06, "fp16": 36.3},
        "Turing whitepaper rates at the 1770 MHz boost clock, 40 SMs",
    ),
    _apple("M1", 2.6),
    _apple("M1 Pro", 5.2),
    _apple("M1 Max", 10.4),
    _apple("M1 Ultra", 21.0),
    _apple("M2", 3.6),
    _apple("M2 Pro", 6.8),
    _apple("M2 Max", 13.6),
    _apple("M2 Ultra", 27.2),
)


@dataclass(frozen=True)
class Peak:
    """The FLOP/s a run's MFU divides by, and where the figure comes from."""

    flops: float
    source: str


def is_mig(device_name: str) -> bool:
    """A MIG instance (torch names one like "NVIDIA A100-SXM4-40GB MIG 1g.5gb"): a share of its GPU."""
    return re.search(r"\bMIG\b", device_name) is not None


def peaks_of(device_type: str, device_name: str) -> PublishedPeak | None:
    """The table's entry for this device, if it has one; none for a MIG instance, whose share of its
    GPU's peak nobody publishes (the whole GPU's would understate its MFU)."""
    if is_mig(device_name):
        return None
    return next((entry for entry in PUBLISHED_PEAKS if entry.matches(device_type, device_name)), None)


def published_peak(device_type: str, device_name: str, precision: str) -> Peak | str:
    """The published peak for this device in this precision mode, or why there is none."""
    column = PEAK_COLUMN.get(precision)
    if column is None:
        return f"no peak column for precision {precision!r}"
    entry = peaks_of(device_type, device_name)
    if entry is None and is_mig(device_name):
        return f"{device_name!r} is a MIG instance: no published peak for its share of the GPU"
    if entry is None:
        return f"no published peak for {device_name!r}"
    if column not in entry.tflops:
        return f"no published {column} peak for {entry.model}"
    return Peak(entry.tflops[column] * TERA, f"published: {entry.model} {column}, {entry.source}")
