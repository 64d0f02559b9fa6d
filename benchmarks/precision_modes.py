"""Precision and compilation against fp32 eager: achieved TFLOP/s, MFU, speed-up, and the loss they reach.

Runs each chosen workload's first preset (or the presets named) through
`benchd run --timing device` in every mode, two epochs each at a short
fraction, and prints a markdown table for docs/performance.md: the
representative epoch, achieved TFLOP/s and MFU (docs/metrics.md), the speed-up
over fp32 eager, and the mean training loss of the last epoch next to fp32's
after the same steps. Target: every mode's loss within LOSS_TOLERANCE of
fp32's (a mode that moves it further is a defect; exit 1), and on an
H100/H200-class GPU the large transformer presets at 30% MFU or more in
amp-bf16, and gpt's b8-d768-l12-s1024 at 45% or more in amp-bf16 compiled
(published GPT-2-small training loops reach 40-50% on A100s). A mode the
device cannot run is listed with its reason.

    python benchmarks/precision_modes.py --device cuda --fraction 0.05 \\
        --preset transformer=b200-e500-l10-h1024 --data-dir DIR
    python benchmarks/precision_modes.py --device cuda --workload gpt --preset gpt=b8-d768-l12-s1024
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from typing import Any

MODES: dict[str, tuple[str, ...]] = {
    "fp32": ("--precision", "fp32"),
    "tf32": ("--precision", "tf32"),
    "amp-bf16": ("--precision", "amp-bf16"),
    "compiled": ("--precision", "fp32", "--compile"),
    "amp-bf16 compiled": ("--precision", "amp-bf16", "--compile"),
}
FIRST_PRESETS = {"vae": "bs128", "siamese": "bs64", "transformer": "b20-e200-l2-h200", "dcgan": "bs64",
                 "gpt": "b16-d384-l6-s256"}  # fmt: skip
LOSS_TOLERANCE = 0.05  # as tests/test_precision.py: a mode may move the loss by 5% of fp32's at most


def run(workload: str, preset: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchd", "run", workload, "-p", preset, "--device", args.device,
               "--fraction", str(args.fraction), "--epochs", "2", "--timing", "device", "--no-telemetry",
               "--json", *MODES[mode]] + (["--data-dir", args.data_dir] if args.data_dir else [])  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 2 or not done.stdout.strip():
        return {"outcome": "error", "message": done.stderr.strip().splitlines()[-1:]}
    (result,) = json.loads(done.stdout)
    return result


def row(workload: str, preset: str, mode: str, result: dict[str, Any], fp32: dict[str, Any] | None) -> str:
    if result.get("outcome") != "ok":
        return f"| {workload} | {preset} | {mode} | {result.get('outcome')}: {result.get('message')} |||||"
    summary = result["summary"]
    compute = summary.get("compute") or {}
    seconds, loss = summary["epoch_seconds"], result["epochs"][-1]["loss"]
    tflops = compute.get("flops_per_second")
    mfu = compute.get("mfu_ratio")
    speedup = fp32["summary"]["epoch_seconds"] / seconds if fp32 else None
    base_loss = fp32["epochs"][-1]["loss"] if fp32 else None
    moved = abs(loss - base_loss) / abs(base_loss) if base_loss else None
    compiled = f" (compile {compute['compile_seconds']:.0f} s)" if "compile_seconds" in compute else ""
    if moved is None:
        loss_cell = f"{loss:.4f}"
    else:
        loss_cell = f"{loss:.4f} ({moved:.1%}{'' if moved <= LOSS_TOLERANCE else ': DEFECT'})"
    return " | ".join([
        f"| {workload}", preset, mode + compiled, f"{seconds:.3f}",
        "-" if tflops is None else f"{tflops / 1e12:.2f}",
        "-" if mfu is None else f"{mfu:.1%}",
        "-" if speedup is None else f"{speedup:.2f}x",
        loss_cell,
    ]) + " |"  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--workload", action="append", help="Workload (repeatable). Default: all five.")
    parser.add_argument("--preset", action="append", default=[], help="WORKLOAD=PRESET instead of the first.")
    parser.add_argument(
        "--mode", action="append", choices=list(MODES), help="Mode (repeatable). Default: all."
    )
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    presets = FIRST_PRESETS | dict(item.split("=", 1) for item in args.preset)
    workloads = args.workload or list(FIRST_PRESETS)
    modes = args.mode or list(MODES)
    lines = ["| workload | preset | mode | epoch s | TFLOP/s | MFU | vs fp32 | last-epoch loss |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    versions: dict[str, Any] = {}
    defects = 0
    for workload in workloads:
        results = {
            mode: run(workload, presets[workload], mode, args) for mode in dict.fromkeys(["fp32", *modes])
        }
        fp32 = results["fp32"] if results["fp32"].get("outcome") == "ok" else None
        for mode in modes:
            line = row(workload, presets[workload], mode, results[mode], fp32)
            defects += "DEFECT" in line
            lines.append(line)
            print(line, flush=True)
        if fp32:
            versions = {k: fp32.get(k) for k in ("device_name", "torch_version", "driver_version")}
            versions["peak"] = (fp32["summary"].get("compute") or {}).get("peak_source")
    print(f"\n{platform.node()}: {versions}, fraction {args.fraction}, two epochs, device timing\n")
    print("\n".join(lines))
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main())
