"""Every figure docs/performance.md owes a CUDA GPU, in one command of at most ten minutes.

    python benchmarks/gpu_evidence.py [--device cuda] [--out evidence] [--quick]

Runs, through `benchd run --json` in a data directory of its own (synthetic
data; LSUN at 5%), one after another:

- the standard suite (`standard-v1`);
- precision modes: each workload's first preset, the large transformer and
  gpt's GPT-2-small preset in fp32, tf32, amp-bf16, compiled fp32 and
  compiled amp-bf16 (device timing): epoch seconds, TFLOP/s, MFU and the loss
  change against fp32 after the same steps;
- reference against device timing (the VAE);
- the first epoch: FLOPs are counted after the timed epochs, so epoch 1 of a
  run pays what the reference's first epoch paid; its figure is listed;
- `--device all` is the daemon's, not `run`'s: every device benchd sees is
  run in turn;
- the contended flag: a run beside a second process using the device;
- the preemption latency: a run that yields to a tenant (`--yield-to-tenants`);
- two deterministic runs' fingerprints.

Writes `evidence.json` (every run's JSON, grouped) and `evidence.md` (a table
per group, with the machine) under --out, and prints the markdown. A step
that fails is recorded with its outcome and message, never dropped. `--quick`
is the CPU dry run the tests make: the smallest fractions, one workload per
group, no suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from yield_latency import _newest, _running, _wait_for

MODES = (
    ("fp32", []),
    ("tf32", ["--precision", "tf32"]),
    ("amp-bf16", ["--precision", "amp-bf16"]),
    ("fp32 compiled", ["--compile"]),
    ("amp-bf16 compiled", ["--precision", "amp-bf16", "--compile"]),
)
PRECISION_CASES = (  # each workload's first preset, the large transformer, GPT-2 small's shape
    ("vae", "bs128", "0.1"),
    ("siamese", "bs64", "0.02"),
    ("transformer", "b20-e200-l2-h200", "0.05"),
    ("dcgan", "bs64", "0.05"),
    ("transformer", "b200-e500-l4-h500", "0.05"),
    ("gpt", "b8-d768-l12-s1024", "0.01"),
)
QUICK_CASE = ("vae", "bs128", "0.02")
HEADER = "| run | outcome | epoch s | TFLOP/s | MFU | loss vs fp32 | contended | fingerprint | message |"
TENANT = (  # says "busy" once its first product is done, then keeps the device busy until it is killed
    "import os, sys, torch\n"
    "torch.set_num_threads(os.cpu_count() or 1)\n"
    "x = torch.rand(1024, 1024, device=torch.device(sys.argv[1]))\n"
    "(x @ x).sum().item()\n"
    "print('busy', flush=True)\n"
    "while True:\n"
    "    (x @ x).sum().item()\n"
)


def start_tenant(device: str) -> subprocess.Popen[str]:
    """A second process using the device, returned once it does: a run started after this meets it from its
    first epoch, however long the tenant took to import torch. It is another job, as a tenant is: a session
    of its own (the kernel's autogroup scheduling shares the CPUs between sessions, so in ours it would
    compete with this script and `benchd run` for one share), and on the CPU a thread for every CPU."""
    tenant = subprocess.Popen([sys.executable, "-c", TENANT, device], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)  # fmt: skip
    assert tenant.stdout is not None
    if tenant.stdout.readline().strip() != "busy":
        tenant.kill()
        raise RuntimeError(f"the tenant process ended before it used {device} (exit {tenant.wait()})")
    return tenant


class Evidence:
    def __init__(self, device: str, data_dir: Path, quick: bool) -> None:
        self.device, self.data_dir, self.quick = device, data_dir, quick
        self.groups: dict[str, list[dict[str, Any]]] = {}

    def benchd(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "BENCHD_DATA_DIR": str(self.data_dir)}
        command = [sys.executable, "-m", "benchd", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)

    def run(self, group: str, label: str, *args: str) -> list[dict[str, Any]]:
        """`benchd run ARGS --json`, its runs recorded under `group` with `label`; a failure is kept too."""
        result = self.benchd("run", *args, "--device", self.device, "--json")
        try:
            runs = json.loads(result.stdout)
        except ValueError:
            runs = [
                {"outcome": "error", "message": (result.stderr.strip().splitlines() or ["no output"])[-1]}
            ]
        for run in runs:
            self.groups.setdefault(group, []).append({"label": label, **run})
        return runs

    def suite(self) -> None:
        if not self.quick:
            self.run("suite", "standard-v1", "--suite", "standard-v1")

    def precision_modes(self) -> None:
        cases = (QUICK_CASE,) if self.quick else PRECISION_CASES
        for workload, preset, fraction in cases:
            for mode, flags in MODES[:2] if self.quick else MODES:
                shape = ["-p", preset, "--fraction", fraction, "--epochs", "2", "--timing", "device"]
                self.run("precision", f"{workload} {preset} {mode}", workload, *shape, *flags)

    def timings(self) -> None:
        fraction = "0.02" if self.quick else "1"
        for timing in ("reference", "device"):
            shape = ["-p", "bs128", "--fraction", fraction, "--epochs", "2", "--timing", timing]
            self.run("timing", f"vae bs128 {timing}", "vae", *shape)

    def contended(self) -> None:
        tenant = start_tenant(self.device)
        try:
            # Whole epochs: under half a second an epoch is not judged for foreign load, and the quick
            # dry run's small MNIST takes about that alone on two cores.
            shape = ["-p", "bs128", "--fraction", "1", "--epochs", "2"]
            self.run("contended", "vae bs128 beside a second process", "vae", *shape)
        finally:
            tenant.kill()
            tenant.wait()

    def preemption(self) -> None:
        """From a tenant's first use of the device to the run's end as `preempted`: the tenant starts once
        the run has recorded an epoch, and the latency is read from the stored run."""
        env = {**os.environ, "BENCHD_DATA_DIR": str(self.data_dir)}
        args = ["run", "vae", "-p", "bs128", "--epochs", "50", "--device", self.device, "--yield-to-tenants"]
        run = subprocess.Popen([sys.executable, "-m", "benchd", *args], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
        tenant = None
        try:
            running = _wait_for(lambda: _running(self.data_dir), 300)
            tenant = start_tenant(self.device)
            began = time.time()
            ended = _wait_for(lambda: (r := _newest(self.data_dir)) is not None and r.finished_at and r, 120)
            latency = f"yield latency {ended.finished_at - began:.2f} s" if ended.id == running.id else "?"
            self.groups.setdefault("preemption", []).append({"label": latency, **ended.to_json()})
        except RuntimeError as exc:  # the run never started or never yielded: said, not dropped
            self.groups.setdefault("preemption", []).append({"label": "yield latency", "outcome": "error",
                                                             "message": str(exc)})  # fmt: skip
        finally:
            for process in (p for p in (tenant, run) if p is not None):
                process.kill()
                process.wait()

    def fingerprints(self) -> None:
        for number in (1, 2):
            shape = ["-p", "bs128", "--fraction", "0.02" if self.quick else "0.1", "--deterministic"]
            self.run("determinism", f"vae bs128 deterministic, run {number}", "vae", *shape)


def _row(entry: dict[str, Any], fp32: dict[str, float]) -> str:
    summary = entry.get("summary") or {}
    compute = summary.get("compute") or {}
    seconds, flops, mfu = (
        summary.get("epoch_seconds"),
        compute.get("flops_per_second"),
        compute.get("mfu_ratio"),
    )
    loss = (entry.get("epochs") or [{}])[-1].get("loss")
    key = " ".join(entry["label"].split()[:2])
    change = f"{loss / fp32[key] - 1:+.1%}" if loss is not None and fp32.get(key) else ""
    fingerprint = (entry.get("determinism") or {}).get("fingerprint", "")
    cells = [entry["label"], str(entry.get("outcome")), f"{seconds:.3f}" if seconds else "",
             f"{flops / 1e12:.2f}" if flops else "", f"{mfu:.1%}" if mfu else "", change,
             "yes" if entry.get("contended") else "", fingerprint,
             (entry.get("message") or "")[:80]]  # fmt: skip
    return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


def markdown(evidence: Evidence, machine: dict[str, Any]) -> str:
    devices = ", ".join(f"{d['id']}: {d['name']}" for d in (machine.get("torch") or {}).get("devices", []))
    lines = [f"Machine: {devices}; torch {(machine.get('torch') or {}).get('version')}, "
             f"{time.strftime('%Y-%m-%d')}{' (quick dry run)' if evidence.quick else ''}.", ""]  # fmt: skip
    for group, entries in evidence.groups.items():
        fp32 = {" ".join(e["label"].split()[:2]): (e.get("epochs") or [{}])[-1].get("loss")
                for e in entries if e["label"].endswith(" fp32")}  # fmt: skip
        lines += [f"### {group}", "", HEADER, "|" + " --- |" * (HEADER.count("|") - 1)]
        lines += [_row(entry, fp32) for entry in entries] + [""]
    return "\n".join(lines)


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path("evidence"))
    parser.add_argument(
        "--quick", action="store_true", help="the CPU dry run: smallest fractions, a few runs"
    )
    chosen = parser.parse_args(arguments)
    chosen.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="benchd-evidence-") as data_dir:
        evidence = Evidence(chosen.device, Path(data_dir), chosen.quick)
        if chosen.quick:  # the VAE alone: a small MNIST
            evidence.benchd("data", "prepare", "mnist", "--scale", "0.05")
        else:
            evidence.benchd("data", "prepare", "lsun-classroom", "--scale", "0.05")
        machine = json.loads(evidence.benchd("doctor", "--json").stdout or "{}")
        steps = [evidence.suite, evidence.precision_modes, evidence.timings, evidence.contended,
                 evidence.preemption, evidence.fingerprints]  # fmt: skip
        for step in steps:
            step()
    (chosen.out / "evidence.json").write_text(json.dumps({"machine": machine, "groups": evidence.groups},
                                                         indent=2) + "\n")  # fmt: skip
    text = markdown(evidence, machine)
    (chosen.out / "evidence.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
