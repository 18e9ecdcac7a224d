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
example=streams ns=taskward_bench_s clients=$streams
. bench/two-instances.sh
STREAMS=$streams FANOUT=$fanout target/release/examples/streams
