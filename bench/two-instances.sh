# Sourced by the benchmarks of two release instances over the machine's Redis + PostgreSQL
# (`waiters.sh`, `streams.sh`): builds the binary and the load generator `$example`, works in
# schema and Redis prefix `$ns` (removed at the end), allows `$clients` connections more than
# usual, starts instances A and B (of `$BENCH_BIN` if set), and exports A_URL, B_URL, KEY
# and B_PID for the generator.
db="postgres://postgres@127.0.0.1:5432/test"
psql_() { psql -q -h 127.0.0.1 -U postgres -d test -v ON_ERROR_STOP=1 "$@"; }
cargo build --release -q -p taskward --example "$example" --bin taskward
# BENCH_BIN=<another build's binary> runs the same load against it (A/B; not TASKWARD_…,
# which the server would read as configuration).
bin=${BENCH_BIN:-$PWD/target/release/taskward}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  psql_ -c "DROP SCHEMA IF EXISTS $ns CASCADE" 2>/dev/null || true
  redis-cli --scan --pattern "$ns:*" | xargs -r redis-cli del >/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
psql_ -c "DROP SCHEMA IF EXISTS $ns CASCADE"
ulimit -n "$(ulimit -Hn)"

export TASKWARD_DATABASE_URL=$db TASKWARD_REDIS_URL=redis://127.0.0.1:6379
export TASKWARD_DURABLE__SCHEMA=$ns TASKWARD_HOT__REDIS_PREFIX=$ns:
export TASKWARD_LIMITS__MAX_CONNECTIONS=$((clients + 1000))
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
export A_URL=http://127.0.0.1:$pa B_URL=http://127.0.0.1:$pb KEY B_PID=$b_pid
