#!/usr/bin/env bash
# Benchmarks of the production shape (Redis + PostgreSQL), side by side in one run with the
# baselines issue 3 names: the same server's trivial endpoint, redis-benchmark GET against the
# same Redis, pgbench primary-key selects and single-row upserts on the same rows.
#
#   bench/production.sh [seconds per run, default 10]     (ROUNDS=3: alternating rounds)
#   BENCH_BINS="/tmp/old/taskward target/release/taskward" bench/production.sh
#
# The second form compares builds: every server-side row is measured for each binary in turn,
# in the same round, so the machine's drift hits them alike (labelled by the binary's parent
# directory). Each build gets a schema, Redis prefix and key of its own (builds may differ in
# their migrations), filled with the same rows. Without it, the script measures a fresh
# release build.
#
# Needs wrk, redis-benchmark and pgbench (Debian packages wrk, redis-tools, postgresql-client)
# and the machine's Redis (127.0.0.1:6379) and PostgreSQL (database `test`, user postgres).
# Works in schemas `taskward_bench<N>` and Redis prefixes `taskward_bench<N>:`, removed at the
# end.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${ROUNDS:-3}
tasks=10000
db="postgres://postgres@127.0.0.1:5432/test"
psql_() { psql -q -h 127.0.0.1 -U postgres -d test -v ON_ERROR_STOP=1 "$@"; }
if [ -n "${BENCH_BINS:-}" ]; then
  read -r -a bins <<<"$BENCH_BINS"
else
  cargo build --release -q -p taskward
  bins=("$PWD/target/release/taskward")
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tmp=$(mktemp -d)
pids=()
drop_all() {
  for i in "${!bins[@]}"; do
    psql_ -c "DROP SCHEMA IF EXISTS taskward_bench$i CASCADE" 2>/dev/null || true
    redis-cli --scan --pattern "taskward_bench$i:*" | xargs -r redis-cli del >/dev/null
  done
}
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  drop_all
  rm -rf "$tmp"
}
clear_redis() { redis-cli --scan --pattern "$TASKWARD_HOT__REDIS_PREFIX*" | xargs -r redis-cli del >/dev/null; }
trap cleanup EXIT
drop_all

export TASKWARD_DATABASE_URL=$db TASKWARD_REDIS_URL=redis://127.0.0.1:6379
export TASKWARD_LOG__FILTER=warn TASKWARD_DURABLE__POOL_SIZE=32 TASKS=$tasks
keys=()
use() { # index: the build to run, with its schema, prefix and key
  bin=${bins[$1]}
  export TASKWARD_DURABLE__SCHEMA=taskward_bench$1 TASKWARD_HOT__REDIS_PREFIX=taskward_bench$1:
  export KEY=${keys[$1]:-}
}

start() { # extra env assignments...; sets $pid
  env "$@" "$bin" serve --listen "127.0.0.1:$port" >/dev/null 2>"$tmp/server.log" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$tmp/server.log"; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
# Rows inserted with SQL are not in Redis (tasks created through the API are: write-through),
# and builds may lay Redis entries out differently: each server starts on an emptied prefix and
# warms it (random reads cover nearly every task in a few seconds).
start_warm() {
  clear_redis
  start
  wrk -t2 -c64 -d3s -s bench/lua/get_random.lua "http://127.0.0.1:$port" >/dev/null
}
name() { # the row label, with the binary's directory when comparing builds
  if [ "${#bins[@]}" -gt 1 ]; then printf '%s %s' "$(basename "$(dirname "$bin")")" "$1"; else printf '%s' "$1"; fi
}
# CPU ticks (user + system) of the processes whose pids come on stdin, summed (one that exits
# meanwhile counts nothing).
sum_ticks() { xargs -r -I{} awk '{print $14+$15}' /proc/{}/stat 2>/dev/null | awk '{s+=$1} END {print s+0}'; }
ticks() { echo "$pid" | sum_ticks; }
# CPU ticks of every PostgreSQL process, of the Redis server, and of the whole machine: each row
# also says what it cost the database, Redis and the machine (wrk and the kernel included), so
# a change that moves work from the server to PostgreSQL or Redis shows.
pg_ticks() { pgrep -x postgres | sum_ticks; }
redis_ticks() { pgrep -f 'redis-server.*:6379' | sum_ticks; }
busy_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8}' /proc/stat; }
per() { echo "($2 - $1) * 10000 / $3" | bc -l; } # ticks before, after, operations: us each
wrk_run() { # label, extra wrk args...; prints req/s, p99 and CPU per request
  local label=$1; shift
  local t0 g0 r0 m0 out t1 g1 r1 m1 rps p99 n non2xx
  t0=$(ticks) g0=$(pg_ticks) r0=$(redis_ticks) m0=$(busy_ticks)
  out=$(wrk -t2 -c64 -d"${secs}s" --latency "$@")
  t1=$(ticks) g1=$(pg_ticks) r1=$(redis_ticks) m1=$(busy_ticks)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-44s %10s req/s  p99 %8s  CPU us/req: server %5.1f  PG %5.1f  Redis %4.1f  machine %5.1f  non-2xx %s\n' \
    "$label" "$rps" "$p99" "$(per "$t0" "$t1" "$n")" "$(per "$g0" "$g1" "$n")" "$(per "$r0" "$r1" "$n")" \
    "$(per "$m0" "$m1" "$n")" "${non2xx:-0}"
}
pgbench_run() { # script file: prints tx/s and CPU per transaction, sampled mid-run (pgbench's
  # connections, and their PostgreSQL processes, come and go with it)
  local window=$((secs > 3 ? secs - 2 : 1)) g0 m0 g1 m1 tps n
  pgbench -h 127.0.0.1 -U postgres -n -M prepared -c 16 -j 2 -T "$secs" -f "$1" test >"$tmp/pgbench.out" 2>/dev/null &
  local pgb=$!
  sleep 1
  g0=$(pg_ticks) m0=$(busy_ticks)
  sleep "$window"
  g1=$(pg_ticks) m1=$(busy_ticks)
  wait "$pgb"
  tps=$(awk '/^tps/ {print $3}' "$tmp/pgbench.out")
  n=$(echo "$tps * $window" | bc -l)
  printf '%-44s %10.0f tx/s   %28s PG %5.1f  %10s machine %5.1f\n' \
    "" "$tps" "CPU us/tx:" "$(per "$g0" "$g1" "$n")" "" "$(per "$m0" "$m1" "$n")"
}

# Rows: created through each build's own schema (the server migrates it), filled with SQL.
for i in "${!bins[@]}"; do
  use "$i"
  keys[i]=$($bin keys create --org bench --mode test --scopes read,write 2>/dev/null)
  start
  psql_ -c "INSERT INTO taskward_bench$i.tasks (org, mode, task_id, task_type, status, active, inputs, additional_data,
              description, created_at, updated_at, version, create_digest)
            SELECT 'bench', 'test', 't' || i, 'api_buckets_batches_process', 'PENDING', true, '[\"batch_xyz789\"]',
                   jsonb_build_object('batch_id', 'batch_' || i, 'bucket_id', 'bkt_products', 'job_id', 'ray_job_' || i),
                   'Batch processing task in progress', now(), now(), 1, 'bench'
            FROM generate_series(1, $tasks) i; ANALYZE taskward_bench$i.tasks"
  stop
done

echo "== reads (wrk -t2 -c64 -d${secs}s; $tasks tasks), $rounds alternating rounds"
for round in $(seq "$rounds"); do
  for i in "${!bins[@]}"; do
    use "$i"
    start_warm
    wrk_run "$(name "trivial endpoint (/healthz)")" "http://127.0.0.1:$port/healthz"
    wrk_run "$(name "GET served from Redis")" -s bench/lua/get_random.lua "http://127.0.0.1:$port"
    stop
  done
  printf '%-44s ' "redis-benchmark -t get -d 600 -c 64"
  redis-benchmark -h 127.0.0.1 -p 6379 -t get -d 600 -c 64 -P 1 -n $((secs * 60000)) -q | tr '\r' '\n' | grep -E '^GET' | tail -n 1
done

cat >"$tmp/select.sql" <<SQL
\set id random(1, $tasks)
SELECT task_id, task_type, status, inputs, outputs, additional_data, description, created_at, updated_at, started_at, finished_at, version
  FROM taskward_bench0.tasks WHERE org = 'bench' AND mode = 'test' AND task_id = 't' || :id;
SQL
cat >"$tmp/upsert.sql" <<SQL
\set id random(1, $tasks)
INSERT INTO taskward_bench0.tasks (org, mode, task_id, task_type, status, active, additional_data, created_at, updated_at, version, create_digest)
  VALUES ('bench', 'test', 't' || :id, 'api_buckets_batches_process', 'PENDING', true, '{"n": 1}', now(), now(), 1, 'bench')
  ON CONFLICT (org, mode, task_id) DO UPDATE SET additional_data = excluded.additional_data, updated_at = now(), version = taskward_bench0.tasks.version + 1;
SQL

# Misses: a TTL of 0 makes every re-warm expire at once, so each GET misses Redis, reads
# PostgreSQL and writes Redis back, as a real miss does. Like the reads, in alternating rounds
# with their baseline, so the machine's drift hits every row of a round alike.
echo "== misses, $rounds alternating rounds"
for round in $(seq "$rounds"); do
  for i in "${!bins[@]}"; do
    use "$i"
    clear_redis
    start TASKWARD_HOT__TTL_SECS=0
    wrk_run "$(name "GET missing Redis (from PostgreSQL)")" -s bench/lua/get_random.lua "http://127.0.0.1:$port"
    stop
  done
  printf '%-44s\n' "pgbench primary-key select (-M prepared -c 16 -j 2)"
  pgbench_run "$tmp/select.sql"
done

echo "== writes, $rounds alternating rounds"
for round in $(seq "$rounds"); do
  for i in "${!bins[@]}"; do
    use "$i"
    start_warm
    wrk_run "$(name "PATCH (durable, then Redis)")" -s bench/lua/patch_random.lua "http://127.0.0.1:$port"
    stop
  done
  printf '%-44s\n' "pgbench single-row upsert (-M prepared -c 16 -j 2)"
  pgbench_run "$tmp/upsert.sql"
done
