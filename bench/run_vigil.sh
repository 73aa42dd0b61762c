#!/usr/bin/env bash
# Vigil under the peers harness: restart, rapid restart, hang detection,
# idle with 100 services, and 1,000 services with a 1 s builtin:tcp liveness
# check each. Usage: run_vigil.sh [restart|health|idle|scale|all]
# VIGIL_NAME (default vigil) prefixes the labels, e.g. to measure an older
# build in the same run.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PEERS_DIR=${PEERS_DIR:-$BENCH_DIR/../../shared/peers}
. "$PEERS_DIR/common.sh"
VIGIL=${VIGIL:?set VIGIL to the vigil binary}
D=$(mktemp -d /tmp/pb-vigil.XXXX); mk_webdir "$D"; S=$D/services; mkdir -p "$S"
VPID=

svc() { # $1 name, $2 argv as a TOML array, $3 extra toml
    mkdir -p "$S/$1"
    printf 'command = %s\nrestart = "always"\nbackoff = ["0s"]\n%s\n' "$2" "${3:-}" > "$S/$1/service.toml"
}
start() {
    "$VIGIL" run --checks "$S" --state-dir "$D/state" >"$D/out.log" 2>&1 &
    VPID=$!
}
stop() {
    [ -n "$VPID" ] || return 0
    kill -TERM "$VPID" 2>/dev/null || true
    wait "$VPID" 2>/dev/null || true
    VPID=
    reap_markers 99951 "771\\d\\d\\d" 18091 "772\\d\\d\\d\\d"
    rm -rf "$S"/* "$D/state"
}
trap 'stop; [ -n "${KEEP:-}" ] || rm -rf "$D"' EXIT
what=${1:-all}

if [[ $what == all || $what == restart ]]; then
    svc s '["/bin/sleep", "99951"]'
    start
    wait_for_marker() { for _ in $(seq 1 200); do pgrep -f "sleep 99951" >/dev/null && return 0; sleep 0.05; done; return 1; }
    wait_for_marker
    $BENCH restart --marker 99951 --runs $RUNS --settle $SETTLE --label "${VIGIL_NAME:-vigil} restart always, backoff 0s"
    $BENCH restart --marker 99951 --runs $RUNS --settle $RAPID_SETTLE --label "${VIGIL_NAME:-vigil} backoff 0s rapid"
    stop
fi

if [[ $what == all || $what == idle ]]; then
    for i in $(seq 0 99); do svc "idle$i" "[\"/bin/sleep\", \"$(printf 771%03d "$i")\"]"; done
    start
    sleep 3
    $BENCH idle --root "$VPID" --duration "$IDLE_S" --marker-re '771\d{3}' --count 100 --label "${VIGIL_NAME:-vigil} 100 services"
    stop
fi

if [[ $what == all || $what == health ]]; then
    svc web "[\"$PY\", \"-m\", \"http.server\", \"18091\", \"--bind\", \"127.0.0.1\", \"--directory\", \"$D/www\"]" '
[checks.startup]
check = "builtin:tcp"
period = "50ms"
[checks.startup.config]
port = "18091"
[checks.liveness]
check = "builtin:http"
period = "1s"
timeout = "500ms"
failure-threshold = 1
[checks.liveness.config]
url = "http://127.0.0.1:18091/"
[grants]
hosts = ["http://127.0.0.1:18091", "tcp://127.0.0.1:18091"]'
    start
    $BENCH health --marker 18091 --port 18091 --runs $HEALTH_RUNS --timeout 40 --label "${VIGIL_NAME:-vigil} builtin:http liveness 1s, threshold 1, timeout 0.5s" || true
    stop
fi

if [[ $what == all || $what == scale ]]; then
    # One loopback listener that accepts and closes, for 1,000 tcp checks.
    $PY -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 18092)); s.listen(4096)
while True:
    c, _ = s.accept(); c.close()
' &
    LPID=$!
    for i in $(seq 0 999); do
        svc "s$i" "[\"/bin/sleep\", \"$(printf 772%04d "$i")\"]" '
[checks.liveness]
check = "builtin:tcp"
period = "1s"
timeout = "500ms"
[checks.liveness.config]
port = "18092"
[grants]
hosts = ["tcp://127.0.0.1:18092"]'
    done
    start
    sleep 10
    $BENCH idle --root "$VPID" --duration "${SCALE_S:-60}" --marker-re '772\d{4}' --count 1000 --timeout 60 --label "${VIGIL_NAME:-vigil} 1000 services, 1 s builtin:tcp liveness each"
    stop
    # The same connects without a supervisor: the kernel's share is a floor.
    [ -n "${VIGIL_NAME:-}" ] || $PY "$BENCH_DIR/connect_floor.py" 18092 --duration "${SCALE_S:-60}" \
        --label "floor (bench/connect_floor.py, no supervisor)" || echo "connect floor failed" >&2
    kill "$LPID" 2>/dev/null || true
fi
