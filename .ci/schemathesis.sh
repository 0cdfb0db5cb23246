#!/usr/bin/env bash
# Schemathesis against a live server (waitress via `flask serve`, a throwaway SQLite database with the demo
# catalogue and units), bounded: at most ST_MAX_EXAMPLES examples per operation and ST_TIMEOUT seconds.
# Fails on any 5xx or any response that does not conform to /api/v1/openapi.json. positive_data_acceptance
# is left out: a schema-valid body with an unknown category is rightly refused (422) by intake.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin}"
dir=$(mktemp -d)
port=$("$PY/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export INSTANCE_PATH="$dir" DATABASE_URL="sqlite:///$dir/st.sqlite3" SECRET_KEY=schemathesis RQ_QUEUE_PREFIX=schemathesis-
"$PY/flask" --app app db upgrade >"$dir/setup.log" 2>&1
"$PY/flask" --app app demo --no-quarter >>"$dir/setup.log" 2>&1
"$PY/flask" --app app serve --no-demo --workers 0 --port "$port" >"$dir/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$dir"' EXIT
rc=0
timeout "${ST_TIMEOUT:-150}" "$PY/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --url "http://127.0.0.1:$port" --wait-for-schema 60 --request-timeout 20 \
  --max-examples "${ST_MAX_EXAMPLES:-20}" --checks all --exclude-checks positive_data_acceptance \
  --generation-deterministic || rc=$?
[ "$rc" = 0 ] || tail -20 "$dir/server.log"
exit "$rc"
