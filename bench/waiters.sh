#!/usr/bin/env bash
# Long-poll at scale (issue 5): two release instances over the machine's Redis + PostgreSQL;
# WAITERS long-polls held open on instance B (its RSS and CPU while they idle), then writes
# through A and through B and how soon after each write's acknowledgement its waiter answers.
#
#   bench/waiters.sh [waiters, default 10000]
#
# Works in schema `taskward_bench_w` and Redis prefix `taskward_bench_w:`, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
waiters=${1:-10000}
example=waiters ns=taskward_bench_w clients=$waiters
. bench/two-instances.sh
WAITERS=$waiters target/release/examples/waiters
