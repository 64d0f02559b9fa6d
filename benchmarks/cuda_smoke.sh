#!/usr/bin/env bash
# A short run of every workload preset on a CUDA device, for a first look at a new
# GPU host (and for checking benchd's CUDA path itself). Writes one JSON file of
# runs per workload, plus the device's description, into OUT (default ./cuda-smoke).
#
#   benchmarks/cuda_smoke.sh [OUT]
#
# Epochs are fractions of the real ones and LSUN is a 10% synthetic set, so the
# figures are for checking, not for standing beside the published table; the
# fraction recorded with each run says so.
set -uo pipefail
out=${1:-cuda-smoke}
mkdir -p "$out"
data=${BENCHD_DATA_DIR:-$(mktemp -d)}
export BENCHD_DATA_DIR=$data
benchd() { python3 -m benchd "$@"; }

nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv > "$out/gpu.csv" 2>&1
python3 -m benchd.workloads.probe > "$out/probe.json"
benchd data prepare mnist wikitext-2
benchd data prepare lsun-classroom --scale 0.1

status=0
run() {
  local workload=$1
  shift
  benchd run "$workload" --device cuda --json "$@" > "$out/$workload.json" || status=1
  python3 - "$out/$workload.json" <<'PY'
import json, sys
for run in json.load(open(sys.argv[1])):
    s = run["summary"] or {}
    print(f'{run["workload"]:<12}{run["preset"]:<22}{run["outcome"]:<10}'
          f'{s.get("epoch_seconds", float("nan")):>9.3f} s  {s.get("samples_per_second", 0):>12,.0f} {run["sample_unit"]}/s'
          f'  peak {((run["peak_device_bytes"] or 0) / 1e9):.2f} GB  fraction {run["fraction"]}')
PY
}
run vae --epochs 3 --timeout 120
run siamese --epochs 2 --fraction 0.5 --timeout 180
run transformer --epochs 2 --fraction 0.25 --timeout 180
run dcgan --epochs 2 --fraction 0.5 --timeout 180
exit $status
