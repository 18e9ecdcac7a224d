#!/usr/bin/env bash
# Tenant listings over 10 M tasks and 1,000 tenants in the machine's PostgreSQL (issue 15):
# p50/p99 per listing of SPEC and the plan of each. The data stays in schema
# `taskward_bench_l` for the next run (loading takes minutes); DROP=1 removes it at the end.
#
#   bench/listing-scale.sh [tasks, default 10000000] [runs per listing, default 300]
set -euo pipefail
cd "$(dirname "$0")/.."
export TASKS=${1:-10000000} RUNS=${2:-300}
cargo run --release -q -p taskward-store --example listing_scale
