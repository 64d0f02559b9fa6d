#!/usr/bin/env bash
# Telemetry on a real host: what `benchd doctor` finds, then short runs whose epochs
# carry the sensor figures. Writes doctor.json and runs.json into OUT.
#
#   benchmarks/telemetry_smoke.sh [OUT] [DEVICE]
set -uo pipefail
out=${1:-telemetry-smoke}
device=${2:-auto}
mkdir -p "$out"
export BENCHD_DATA_DIR=${BENCHD_DATA_DIR:-$(mktemp -d)}
python3 -m benchd doctor --json > "$out/doctor.json" || exit 1
python3 -m benchd run transformer -p b200-e500-l10-h1024 --epochs 3 --fraction 0.5 --device "$device" \
  --json > "$out/runs.json" || exit 1
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
doctor = json.load(open(f"{out}/doctor.json"))
for sensor in doctor["sensors"]:
    print(f"{sensor['sensor']:8} {'available ' + ','.join(sensor['domains']) if sensor['available'] else sensor['reason']}")
for run in json.load(open(f"{out}/runs.json")):
    print(run["workload"], run["preset"], run["device"], run["outcome"], "baseline", json.dumps(run["baseline"]))
    print("  summary", {k: v for k, v in run["summary"].items() if k != "epochs"})
    for epoch in run["epochs"]:
        figures = epoch["telemetry"]["domains"].get(run["device"], {})
        print(f"  epoch {epoch['index']} {epoch['duration_seconds']:.2f} s", {k: v.get("value", v) if isinstance(v, dict) else v for k, v in figures.items()})
PY
