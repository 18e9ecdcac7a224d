#!/usr/bin/env bash
# Schemathesis against a release build of the server: does /openapi.json tell the truth?
#
# Embedded shape over a temporary data directory, authenticated with the all-scopes test key
# the first start prints. Every check runs except `use_after_free` and
# `ensure_resource_availability` (DELETE cancels a task, it does not remove it, as the reference
# API does), in every phase including the stateful one (links: create → get / update / kill).
# Schemathesis comes from PyPI, pinned, into a throwaway virtualenv.
#
#   ci/schemathesis.sh [max-examples]      (default 200: about two minutes on 2 cores)
#
# Settings of the run, and why (see also ci/schemathesis.toml and ci/schemathesis_hooks.py):
# - one worker: with two, Hypothesis describing its filters from two threads at once trips
#   CPython's parser ("AST constructor recursion depth mismatch"), an error of the tool.
# - limits.max_wait_secs=1: `?wait=` long-polls a task that does not change for that long;
#   the document says the wait is cut to this limit, and 60 s per generated request would
#   make the run take hours.
# - the event streams (`task_events`, `tenant_events`) are left out: a stream stays open until
#   its task ends, so every generated request would wait out Schemathesis's timeout. Their
#   parameters are checked by the API tests (tests/api/events.rs).
# - `create_webhook` is left out: whether a URL is accepted depends on what its host resolves
#   to at that moment (public addresses only), which no schema can state, so schema-valid URLs
#   are refused. Its bad input is checked by tests/api/webhooks.rs; the other webhook
#   operations run here (unknown ids answer 404).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
max_examples=${1:-${SCHEMATHESIS_MAX_EXAMPLES:-200}}

# SERVER_BIN: another build to test (e.g. target/debug/taskward while iterating).
bin=${SERVER_BIN:-target/release/taskward}
if [ -z "${SERVER_BIN:-}" ]; then
    cargo build --release --locked -p taskward
fi

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# SCHEMATHESIS_VENV: an existing virtualenv with this version (to iterate without reinstalling).
venv=${SCHEMATHESIS_VENV:-$work/venv}
if [ -z "${SCHEMATHESIS_VENV:-}" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TASKWARD_LIMITS__MAX_WAIT_SECS=1 RUST_LOG=warn \
    "$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
    >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
key=
for _ in $(seq 200); do
    key=$(grep -o 'sk_test_[A-Za-z0-9]*' "$work/stdout" | head -n 1 || true)
    if [ -n "$key" ] && python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/stderr" >&2; echo "taskward serve exited" >&2; exit 1; fi
    sleep 0.1
done
[ -n "$key" ] || { echo "no first-start key printed" >&2; exit 1; }

start=$(date +%s)
status=0
SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH=ci \
    "$venv/bin/schemathesis" --config-file ci/schemathesis.toml run \
    "http://127.0.0.1:$port/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks all --exclude-checks use_after_free,ensure_resource_availability \
    --exclude-operation-id task_events --exclude-operation-id tenant_events \
    --exclude-operation-id create_webhook \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$max_examples" \
    --seed "${SCHEMATHESIS_SEED:-20261202}" \
    --workers 1 \
    --report junit,ndjson --report-dir "${SCHEMATHESIS_REPORT_DIR:-$work/report}" || status=$?
echo "schemathesis: exit $status after $(( $(date +%s) - start )) s"
if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the server died during the run:" >&2
    cat "$work/stderr" >&2
    exit 1
fi
if grep -q 'panicked' "$work/stderr"; then
    echo "the server panicked during the run:" >&2
    grep -B2 -A5 'panicked' "$work/stderr" >&2
    exit 1
fi
exit "$status"
