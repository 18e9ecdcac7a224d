#!/usr/bin/env bash
# Event streams at scale (issue 12): two release instances over the machine's Redis +
# PostgreSQL; STREAMS tenant streams held open on instance B (its RSS and CPU while they idle),
# then FANOUT of them kept, writes through A and through B, and how soon after each write's
# acknowledgement its event reaches every stream.
#
#   bench/streams.sh [streams, default 10000] [fan-out streams, default 1000]
#
# Works in schema `taskward_bench_s` and Redis prefix `taskward_bench_s:`, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
streams=${1:-10000}
fanout=${2:-1000}
db="postgres://postgres@127.0.0.1:5432/test"
psql_() { psql -q -h 127.0.0.1 -U postgres -d test -v ON_ERROR_STOP=1 "$@"; }
cargo build --release -q -p taskward --example streams --bin taskward
bin=$PWD/target/release/taskward
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  psql_ -c 'DROP SCHEMA IF EXISTS taskward_bench_s CASCADE' 2>/dev/null || true
  redis-cli --scan --pattern 'taskward_bench_s:*' | xargs -r redis-cli del >/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
psql_ -c 'DROP SCHEMA IF EXISTS taskward_bench_s CASCADE'
ulimit -n "$(ulimit -Hn)"

export TASKWARD_DATABASE_URL=$db TASKWARD_REDIS_URL=redis://127.0.0.1:6379
export TASKWARD_DURABLE__SCHEMA=taskward_bench_s TASKWARD_HOT__REDIS_PREFIX=taskward_bench_s:
export TASKWARD_LOG__FILTER=warn TASKWARD_LIMITS__MAX_CONNECTIONS=$((streams + 1000))
KEY=$($bin keys create --org bench --mode test --scopes read,write 2>/dev/null)

start() { # port; sets $pid
  "$bin" serve --listen "127.0.0.1:$1" >/dev/null 2>>"$tmp/server.log" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$tmp/server.log"; exit 1
}
pa=$(free_port); start "$pa"
pb=$(free_port); start "$pb"; b_pid=$pid
A_URL=http://127.0.0.1:$pa B_URL=http://127.0.0.1:$pb KEY=$KEY B_PID=$b_pid STREAMS=$streams FANOUT=$fanout \
  target/release/examples/streams
