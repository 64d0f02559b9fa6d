#!/usr/bin/env bash
# End-to-end check of the daemon on a real host (for example a new GPU node):
# start `benchd serve` on a free port with nothing scheduled, trigger short runs
# on DEVICE, save the results, /metrics and /api/v1/status into OUT, then stop it
# with SIGTERM and report its exit code.
#
#   benchmarks/daemon_smoke.sh [OUT] [DEVICE]
set -uo pipefail
out=${1:-daemon-smoke}
device=${2:-auto}
mkdir -p "$out"
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
printf '[workloads]\n' > "$data/benchd.toml"
python3 -m benchd serve --config "$data/benchd.toml" --port "$port" --data-dir "$data" > "$out/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 120); do curl -sf "$url/readyz" > /dev/null && break; sleep 0.5; done
status=0
python3 -m benchd trigger vae --device "$device" --wait --json --url "$url" > "$out/vae.json" || status=1
python3 -m benchd trigger transformer -p b20-e200-l2-h200 -p b200-e500-l4-h500 --fraction 0.1 --epochs 2 \
  --device "$device" --wait --url "$url" || status=1
curl -sf "$url/metrics" > "$out/metrics.txt" || status=1
curl -sf "$url/api/v1/status" > "$out/status.json" || status=1
kill -TERM "$daemon"
wait "$daemon"
echo "daemon exit code after SIGTERM: $?"
grep -E '^benchd_(device_info|peak_device_memory_bytes|last_epoch_duration_seconds|runs_total)' "$out/metrics.txt"
exit $status
