#!/usr/bin/env bash
# The demo, in two parts.
# 1. `vigil check`: a real HTTP server on loopback judged by builtin:http
#    while it is up, after it goes down, and without a grant.
# 2. `vigil run --checks examples/quickstart`: a web server with an HTTP
#    readiness check, a worker judged by its heartbeat file, and an api that
#    starts once web is ready. Interactive: runs until Ctrl-C. Without a
#    terminal (CI): kills the web server once to show the restart, then
#    shuts down with SIGINT after a few seconds.
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

bold "6. vigil run: the quickstart services (transitions are 'TIME name * event', output 'TIME name | line')"
state=$(mktemp -d)
# A copy, so that the hot reload below edits the copy, not the repository.
checks="$state/checks"
cp -r examples/quickstart "$checks"
journal="$state/journal.jsonl"
# Wait until the journal holds at least $2 (default 1) lines matching $1.
wait_for() {
    for _ in $(seq 1 200); do
        [ "$(grep -c "$1" "$journal" 2>/dev/null || true)" -ge "${2:-1}" ] && return 0
        sleep 0.1
    done
    echo "(gave up waiting for $1)"
}
if [ -t 0 ] && [ -z "${CI:-}" ]; then
    echo "Ctrl-C stops it cleanly. In another terminal, try:"
    echo "  kill -9 \$(pgrep -f 'http.server 8071')      # restarted at once"
    echo "  $VIGIL status --state-dir $state"
    echo "  $VIGIL journal -f --state-dir $state"
    echo "  \$EDITOR $checks/web/service.toml           # applied on save (hot reload)"
    "$VIGIL" run --checks "$checks" --state-dir "$state"
    printf '  -> exit code %d\n' "$?"
else
    "$VIGIL" run --checks "$checks" --state-dir "$state" &
    vigil_pid=$!
    wait_for '"service":"api","kind":"ready"'
    web=$(grep -o '"service":"web","kind":"spawned","pid":[0-9]*' "$journal" | head -1 | grep -o '[0-9]*$')
    echo "--- kill -9 the web server (pid $web): vigil restarts it at once"
    kill -9 "$web"
    wait_for '"service":"web","kind":"ready"' 2

    bold "7. vigil status: every service; exit 0 only when all are ready"
    run status --state-dir "$state"

    bold "8. vigil journal web: what happened to it, and why"
    run journal web -n 12 --state-dir "$state"

    bold "9. Hot reload: save an edited manifest; a changed command restarts the service"
    sed -i 's/"8071", "--bind"/"8071", "--directory", ".", "--bind"/' "$checks/web/service.toml"
    wait_for '"service":"web","kind":"ready"' 3
    run journal web -n 7 --state-dir "$state"

    echo "--- SIGINT: graceful shutdown, api before web"
    kill -INT "$vigil_pid"
    wait "$vigil_pid"
    printf '  -> exit code %d\n' "$?"
fi
echo "journal: $journal"
