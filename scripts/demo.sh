#!/usr/bin/env bash
# The check engine demo: a real HTTP server on loopback, judged by
# `vigil check builtin:http` while it is up, after it goes down, and without
# a grant. Each step prints vigil's answer and its exit code.
set -uo pipefail
cd "$(dirname "$0")/.."
VIGIL=${VIGIL:-vigil}

bold() { if [ -t 1 ]; then printf '\n\033[1m%s\033[0m\n' "$*"; else printf '\n%s\n' "$*"; fi; }
run() {
    printf '$ vigil %s\n' "$*"
    "$VIGIL" "$@"
    printf '  -> exit code %d\n' "$?"
}

exec 3< <(python3 tests/fixtures/http_server.py)
server_pid=$!
trap 'kill $server_pid 2>/dev/null' EXIT
read -r _ port <&3
url="http://127.0.0.1:$port"

bold "1. The server is up: ok (exit 0)"
run check builtin:http --config url=$url/ok --allow-host $url

bold "2. Its JSON says a dependency is down: retry (exit 75, 'not yet')"
run check builtin:http --config url=$url/json/down --config json-field=checks.db=ok --allow-host $url

bold "3. No grant for the destination: error (exit 1, waiting will not help)"
run check builtin:http --config url=$url/ok

bold "4. The server goes away: retry (connection refused)"
kill $server_pid; wait $server_pid 2>/dev/null
run check builtin:http --config url=$url/ok --allow-host $url

bold "5. What a component can touch"
run inspect builtin:http
