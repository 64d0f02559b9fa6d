#!/usr/bin/env bash
# Reference timing beside device timing on a CUDA host, for docs/performance.md:
# the VAE (both presets, full epochs) in reference timing on the CPU and on CUDA,
# whose published finding was "faster on the CPU than on the GPU"; the
# transformer b200-e500-l4-h500 (full epochs) in both timings on CUDA; and a
# short reference run of the Siamese network and DCGAN on CUDA, to exercise
# their workers, pinned memory and side work there. Datasets are synthetic
# twins at the real sizes (LSUN at 5%). Each run's JSON goes to OUT, and one
# line per run to stdout.
#
#   benchmarks/fidelity_cuda.sh [OUT] [GPU]     (GPU: default cuda)
set -uo pipefail
out=${1:-fidelity}
gpu=${2:-cuda}
mkdir -p "$out"
export BENCHD_DATA_DIR=${BENCHD_DATA_DIR:-$(mktemp -d)}
benchd() { python3 -m benchd "$@"; }

nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv > "$out/gpu.csv" 2>&1
python3 -m benchd.workloads.probe > "$out/probe.json"
nproc > "$out/cpus.txt"
benchd data prepare mnist wikitext-2 > /dev/null
benchd data prepare lsun-classroom --scale 0.05 > /dev/null

status=0
run() {
  local name=$1
  shift
  benchd run "$@" --json > "$out/$name.json" || status=1
  python3 - "$out/$name.json" <<'PY'
import json, sys
for run in json.load(open(sys.argv[1])):
    s = run["summary"] or {}
    phases = " ".join(f"{k} {v:.2f}" for k, v in (s.get("phases") or {}).items())
    print(f'{run["workload"]:<12}{run["preset"]:<20}{run["device_type"] or "-":<5}{run["timing"] or "-":<10}'
          f'w{run["workers"]} {run["outcome"]:<6}{s.get("epoch_seconds", float("nan")):>9.3f} s'
          f'  frac {run["fraction"]:<5} [{phases}]  peak {((run["peak_device_bytes"] or 0) / 1e9):.2f} GB'
          f'  loss {run["epochs"][-1]["loss"] if run["epochs"] else float("nan"):.3f}')
PY
}
run vae-cpu-reference vae --device cpu --epochs 3 --timing reference --timeout 300
run vae-gpu-reference vae --device "$gpu" --epochs 3 --timing reference --timeout 300
run vae-cpu-device vae --device cpu --epochs 3 --timing device --timeout 300
run vae-gpu-device vae --device "$gpu" --epochs 3 --timing device --timeout 300
run transformer-gpu-reference transformer -p b200-e500-l4-h500 --device "$gpu" --epochs 2 --timing reference --timeout 300
run transformer-gpu-device transformer -p b200-e500-l4-h500 --device "$gpu" --epochs 2 --timing device --timeout 300
run siamese-gpu-reference siamese -p bs64 --device "$gpu" --epochs 2 --fraction 0.1 --timing reference --timeout 200
run dcgan-gpu-reference dcgan -p bs64 --device "$gpu" --epochs 2 --fraction 0.5 --timing reference --timeout 200
exit $status
