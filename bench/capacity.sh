#!/usr/bin/env bash
# Storage per task, for docs/capacity.md: one release instance over the machine's Redis and
# PostgreSQL (schema `taskward_bench_c`, Redis prefix `taskward_bench_c:`, both removed at the
# end); TASKS typical tasks created, each then updated UPDATES times (progress), then:
# Redis MEMORY USAGE of hot entries, PostgreSQL bytes per task (table + indexes) and per event.
#
#   bench/capacity.sh [tasks, default 10000] [updates per task, default 4]
set -euo pipefail
cd "$(dirname "$0")/.."
TASKS=${1:-10000} UPDATES=${2:-4}
ns=taskward_bench_c
db="postgres://postgres@127.0.0.1:5432/test"
psql_() { psql -q -h 127.0.0.1 -U postgres -d test -v ON_ERROR_STOP=1 "$@"; }
cargo build --release -q -p taskward --bin taskward
bin=$PWD/target/release/taskward
export TASKWARD_DATABASE_URL=$db TASKWARD_REDIS_URL=redis://127.0.0.1:6379
export TASKWARD_DURABLE__SCHEMA=$ns TASKWARD_HOT__REDIS_PREFIX=$ns: TASKWARD_LOG__FILTER=warn
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  psql_ -c "DROP SCHEMA IF EXISTS $ns CASCADE" 2>/dev/null || true
  redis-cli --scan --pattern "$ns:*" | xargs -r redis-cli del >/dev/null
}
trap cleanup EXIT
psql_ -c "DROP SCHEMA IF EXISTS $ns CASCADE"
key=$($bin keys create --org capacity --mode live --scopes read,write 2>/dev/null)
$bin serve --listen "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
python3 - "$port" "$key" "$TASKS" "$UPDATES" <<'PY'
import http.client, json, sys
port, key, tasks, updates = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
def send(method, path, body):
    c.request(method, path, json.dumps(body), h)
    r = c.getresponse(); r.read()
    assert r.status in (200, 201), (method, path, r.status)
for i in range(tasks):
    # A typical task: a type, a description, small inputs and additional_data.
    send("POST", "/v1/tasks", {"task_id": f"ingest-{i:08d}", "task_type": "api_buckets_uploads_batch_confirm",
         "status": "PENDING", "description": "Nightly ingestion of partner feed",
         "inputs": [f"s3://bucket/feeds/2026-12-03/part-{i:05d}.jsonl"],
         "additional_data": {"batch": f"b{i // 100}", "priority": "normal"}})
    for u in range(updates):
        done = (u + 1) * 50000 // updates
        body = {"status": "PROCESSING", "additional_data": {"progress": {"completed": done, "total": 50000}}}
        if u == updates - 1:
            body = {"status": "COMPLETED", "outputs": [f"s3://bucket/out/2026-12-03/part-{i:05d}.parquet"]}
        send("PATCH", f"/v1/tasks/ingest-{i:08d}", body)
PY
# Redis: the hot entries of a sample of tasks (SAMPLES 0: every field counted).
sample=$(redis-cli --scan --pattern "$ns:t:*" | head -n 200 || true)
n=$(echo "$sample" | wc -l)
total=0
for k in $sample; do total=$((total + $(redis-cli memory usage "$k" samples 0))); done
echo "Redis: $n hot entries sampled, $((total / n)) bytes each (MEMORY USAGE, samples 0)"
psql_ -At <<SQL
SET search_path TO $ns;
VACUUM ANALYZE tasks; VACUUM ANALYZE task_events;
SELECT 'PostgreSQL tasks: ' || count(*) || ' rows, table ' || pg_relation_size('tasks') / count(*)
  || ' B/task, with indexes ' || pg_total_relation_size('tasks') / count(*) || ' B/task' FROM tasks;
SELECT 'PostgreSQL task_events: ' || count(*) || ' rows, table ' || pg_relation_size('task_events') / count(*)
  || ' B/event, with indexes ' || pg_total_relation_size('task_events') / count(*) || ' B/event' FROM task_events;
SQL
