#!/usr/bin/env bash
# Load benchmark of GET /v1/tasks/{task_id} on the embedded default, side by side with the
# same server's trivial endpoint (/healthz, the HTTP floor), against a release build.
#
#   bench/get.sh [seconds per run, default 10] [connections, default 64]
#
# Needs wrk (Debian package `wrk`). Runs each endpoint twice, alternating, so that drift in the
# machine's load shows up in both.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
cargo build --release -q -p taskward
bin=target/release/taskward
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT

key=$($bin keys create --data-dir "$dir" --org bench --mode test --scopes read,write 2>/dev/null)
TASKWARD_LOG__FILTER=warn $bin serve --data-dir "$dir" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/v1/tasks" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"task_id":"task_abc123def456","task_type":"api_buckets_batches_process","status":"PROCESSING","inputs":["batch_xyz789"],"additional_data":{"batch_id":"batch_xyz789","bucket_id":"bkt_products","job_id":"ray_job_123"},"description":"Batch processing task in progress"}' >/dev/null

run() { # name, path, extra wrk args...
  local name=$1 path=$2; shift 2
  local out
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" "http://127.0.0.1:$port$path")
  local rps p99 cpu
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-8s %12s req/s   p99 %8s\n' "$name" "$rps" "$p99"
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$pid/stat"; }

echo "wrk -t2 -c$conns -d${secs}s; server pid $pid"
for round in 1 2; do
  t0=$(cpu_ticks); run healthz /healthz; t1=$(cpu_ticks)
  run get /v1/tasks/task_abc123def456 -H "Authorization: Bearer $key"; t2=$(cpu_ticks)
  echo "  round $round server CPU: healthz $((t1-t0)) ticks, get $((t2-t1)) ticks (1 tick = 10 ms)"
done
