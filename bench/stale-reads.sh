#!/usr/bin/env bash
# The read-after-write guarantee across instances, over many runs: runs the stale-read tests
# (crates/taskward-server/tests/api_production/stale_reads.rs: three instances on one
# PostgreSQL and a private Redis, writers through A with If-Match, every read checked against
# the writes acknowledged before it was sent), and the same over a private Redis Cluster whose
# master fails over (redis_cluster.rs), `runs` times each, one test at a time, with `hogs` busy
# loops taking CPU away, and sums what the clients saw per fault.
#
#   bench/stale-reads.sh [runs, default 10] [hogs, default 2]
#
# Needs the machine's PostgreSQL (database `test`) and redis-server on PATH, like the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
hogs=${2:-2}
cargo nextest run -p taskward-server --test api_production --no-run >/dev/null 2>&1
log=$(mktemp)
hog_pids=()
cleanup() {
  for p in "${hog_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -f "$log"
}
trap cleanup EXIT
for _ in $(seq "$hogs"); do
  (while :; do :; done) &
  hog_pids+=($!)
done
failed_runs=0
for run in $(seq "$runs"); do
  if ! cargo nextest run -p taskward-server --test api_production \
    -E 'test(/^stale_reads::|a_master_failing_over/)' \
    --no-capture --no-fail-fast -j 1 >>"$log" 2>&1; then
    failed_runs=$((failed_runs + 1))
  fi
  echo "run $run of $runs done" >&2
done
echo "stale-read runs: $runs per fault, $hogs CPU hogs; counts over all runs and phases"
awk '
  /^\[stale reads, [A-Za-z]+\] (before|during|after) / {
    f = $3; sub(/\]$/, "", f)
    reads[f] += $7; rfail[f] += $9; stale[f] += $11
    writes[f] += $18; wfail[f] += $20; lines[f]++
  }
  END {
    printf "%-12s %6s %9s %7s %12s %8s %13s\n", "fault", "runs", "reads", "stale", "failed reads", "writes", "failed writes"
    for (f in reads)
      printf "%-12s %6d %9d %7d %12d %8d %13d\n", f, lines[f] / 3, reads[f], stale[f], rfail[f], writes[f], wfail[f]
  }' "$log"
grep -E '^\[stale reads.*sample failure' "$log" | head -n 10 || true
echo "test runs that failed: $failed_runs"
