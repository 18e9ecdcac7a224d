#!/usr/bin/env bash
# taskward against the floor, in one table: the shared harness (../shared/bench/run-anchors.sh)
# measures the bare axum floor (`/static`, and a key check + one Redis GET) and, as extra rows
# in the same alternating loop, taskward's GET (production shape and embedded) and /healthz.
# Unlike ../shared/bench/taskward-side-by-side.sh, taskward runs in its default configuration,
# logs at the default level included: switching a feature off is not what is measured.
#
#   bench/floor.sh                                   # a fresh release build
#   BENCH_BINS="/tmp/old/taskward target/release/taskward" bench/floor.sh   # A/B of builds
#   REPEATS=2 DURATION=10 CONNS=64 bench/floor.sh    # knobs of run-anchors.sh pass through
#
# Rows are labelled by the binary's parent directory. By default only the floor and taskward
# are measured (SKIP="py1 py2 redisbench pg", PYDANTIC=0); set SKIP= to add the rest.
# Needs wrk and the machine's Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED_BENCH:-$(realpath ../shared/bench)}
if [ -n "${BENCH_BINS:-}" ]; then
  read -r -a bins <<<"$BENCH_BINS"
else
  cargo build --release -q -p taskward
  bins=("$PWD/target/release/taskward")
fi
export N_TASKS=${N_TASKS:-10000} SKIP=${SKIP-py1 py2 redisbench pg} PYDANTIC=${PYDANTIC:-0}
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
pids=() dbs=() prefixes=() dirs=() targets=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for db in "${dbs[@]}"; do
    psql -h 127.0.0.1 -U postgres -d postgres -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  done
  for p in "${prefixes[@]}"; do
    redis-cli --scan --pattern "$p*" | xargs -r -n 500 redis-cli del >/dev/null
  done
  rm -rf "${dirs[@]}"
}
trap cleanup EXIT
for i in "${!bins[@]}"; do
  bin=$(realpath "${bins[$i]}")
  label=$(basename "$(dirname "$bin")")
  [ "${#bins[@]}" -gt 1 ] && label="$label$i"
  db="tw_floor_$$_$i" prefix="twfloor_$$_$i:"
  dbs+=("$db") prefixes+=("$prefix")
  psql -h 127.0.0.1 -U postgres -d postgres -qc "create database $db" >/dev/null
  prod=(TASKWARD_REDIS_URL=redis://127.0.0.1:6379 "TASKWARD_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db"
        "TASKWARD_HOT__REDIS_PREFIX=$prefix")
  d1=$(mktemp -d) d2=$(mktemp -d) p1=$(port) p2=$(port)
  dirs+=("$d1" "$d2")
  env "${prod[@]}" "$bin" serve --listen "127.0.0.1:$p1" --data-dir "$d1" >"$d1/log" 2>&1 &
  pid1=$!
  "$bin" serve --listen "127.0.0.1:$p2" --data-dir "$d2" >"$d2/log" 2>&1 &
  pid2=$!
  pids+=("$pid1" "$pid2")
  sleep 2
  k1=$(env "${prod[@]}" "$bin" keys create --org bench --mode live --scopes read,write | tail -1)
  k2=$("$bin" keys create --data-dir "$d2" --org bench --mode live --scopes read,write | tail -1)
  python3 "$shared/lib/seed_api.py" "http://127.0.0.1:$p1" "$k1" task_ "$N_TASKS"
  python3 "$shared/lib/seed_api.py" "http://127.0.0.1:$p2" "$k2" task_ "$N_TASKS"
  targets+="tw-$label-redis|http://127.0.0.1:$p1|/v1/tasks/{id}|$k1|$pid1;"
  targets+="tw-$label-healthz|http://127.0.0.1:$p1|/healthz|$k1|$pid1;"
  targets+="tw-$label-embedded|http://127.0.0.1:$p2|/v1/tasks/{id}|$k2|$pid2;"
done
EXTRA_TARGETS="${targets%;}" "$shared/run-anchors.sh" "$@"
