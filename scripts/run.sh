#!/usr/bin/env bash
# Builds and runs the service on this machine: one API server and one worker process against
# the SQLite store in $JOBSERVER_DATA (default ./data). Creates a first user and prints a
# token for curl. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

export JOBSERVER_DATA="${JOBSERVER_DATA:-$PWD/data}"
PORT="${JOBSERVER_PORT:-8080}"
swift build -c release --product jobserver
swift build -c release --product jobserver-launch
BIN="$(swift build -c release --show-bin-path)/jobserver"

"$BIN" migrate
if ! "$BIN" user list | grep -q $'\tdemo$'; then
    TOKEN="$("$BIN" user create demo | tail -n 1)"
else
    TOKEN="$("$BIN" token create demo --label run.sh | tail -n 1)"
fi

if [ -z "${ANTHROPIC_API_KEY:-}" ]; then
    echo "note: ANTHROPIC_API_KEY is not set: jobs will fail with E005 until the worker has a key." >&2
fi

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# Each job's agent runs in its own sandbox (docs/security.md); the worker checks at start
# that one can be set up and says why if not.
"$BIN" worker --concurrency 2 &
pids+=($!)
"$BIN" serve --port "$PORT" &
pids+=($!)

cat <<MSG

jobserver is running on http://127.0.0.1:$PORT (data in $JOBSERVER_DATA)
API token for user 'demo':
  export TOKEN=$TOKEN
Try:
  curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$PORT/v1/jobs
MSG
wait -n "${pids[@]}"
