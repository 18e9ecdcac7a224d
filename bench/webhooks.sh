#!/usr/bin/env bash
# Webhooks (issue 13): two release instances over the machine's Redis + PostgreSQL.
# Delivery throughput to a local receiver, then PATCH throughput and p99 with no endpoint and
# with endpoints that never answer (each attempt waits out the 10 s timeout), in one run.
#
#   bench/webhooks.sh [tasks, default 2500] [endpoints, default 4] [hanging endpoints, default 100]
#
# Works in schema `taskward_bench_w` and Redis prefix `taskward_bench_w:`, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export TASKS=${1:-2500} ENDPOINTS=${2:-4} HANGING=${3:-100}
# The receivers run on loopback.
export TASKWARD_WEBHOOKS__ALLOW_PRIVATE_NETWORKS=true
example=webhooks ns=taskward_bench_w clients=1000
. bench/two-instances.sh
KEY=$($bin keys create --org bench --mode test --scopes read,write,admin 2>/dev/null)
export KEY
target/release/examples/webhooks
