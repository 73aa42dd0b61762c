#!/usr/bin/env bash
# Zero-downtime benchmark (issue 14 §4): under a steady loopback HTTP load
# (RATE req/s, default 2000, bounded by count and time), N replaces
# (default 20) of one service; failed requests and p50/p99 latency per way
# of replacing:
#   steady         the same load and pauses, nothing replaced (the baseline)
#   vigil-replace  `vigil replace` with sockets held by Vigil (notify = true)
#   vigil-restart  `vigil restart`, sockets held by Vigil
#   vigil-kill9    kill -9 of the child, sockets held by Vigil
#   vigil-nosock   `vigil restart`, the server binds its own port (today's way)
#   pm2            `pm2 reload` in fork mode
#   supervisord    `supervisorctl restart`
#   runit          `sv restart`
# Peers that are not installed (see ../shared/peers/install.sh) are
# skipped. Usage: VIGIL=path/to/vigil bench/replace.sh [MODE...]
# Tiny run: N=2 RATE=200 bench/replace.sh vigil-replace
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VIGIL=${VIGIL:-$HERE/../target/release/vigil}
N=${N:-20}
RATE=${RATE:-2000}
PORT=${PORT:-18471}
SERVER=$HERE/replace_server.py
LOAD=$HERE/replace_load.py
D=$(mktemp -d /tmp/vigil-replace-bench.XXXX)
trap 'cleanup; rm -rf "$D"' EXIT
VPID=

cleanup() {
    if [ -n "$VPID" ]; then
        kill -TERM "$VPID" 2>/dev/null || true
        wait "$VPID" 2>/dev/null || true
        VPID=
    fi
}

wait_port() {
    for _ in $(seq 1 200); do
        python3 - "$PORT" <<'PY' && return 0
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
        sleep 0.05
    done
    echo "nothing listens on $PORT" >&2
    return 1
}

# measure LABEL COMMAND...: the load during N runs of COMMAND, one row.
measure() {
    local label=$1
    shift
    rm -f "$D/stop"
    python3 "$LOAD" "$PORT" "$RATE" $((N * 15 + 30)) "$D/stop" >"$D/load.json" &
    local lpid=$!
    sleep 1
    for _ in $(seq 1 "$N"); do
        "$@" >/dev/null
        sleep 0.5
    done
    touch "$D/stop"
    wait "$lpid"
    python3 - "$label" "$D/load.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
print(f"| {sys.argv[1]} | {r['requests']} | {r['refused']} | {r['failed_other']} | {r['p50_ms']} | {r['p99_ms']} |")
PY
}

vigil_service() { # $1: sockets (yes/no)
    rm -rf "$D/checks" "$D/state"
    mkdir -p "$D/checks/web"
    if [ "$1" = yes ]; then
        printf 'command = ["python3", "%s", "%s"]\nnotify = true\nstop-grace = "10s"\nbackoff = ["0s"]\n[sockets.http]\nlisten = "127.0.0.1:%s"\nbacklog = 4096\n' \
            "$SERVER" "$PORT" "$PORT" >"$D/checks/web/service.toml"
    else
        printf 'command = ["python3", "%s", "%s"]\nnotify = true\nstop-grace = "10s"\nbackoff = ["0s"]\n' \
            "$SERVER" "$PORT" >"$D/checks/web/service.toml"
    fi
    "$VIGIL" run --quiet --checks "$D/checks" --state-dir "$D/state" >"$D/vigil.log" 2>&1 &
    VPID=$!
    wait_port
}

vctl() { "$VIGIL" "$@" --state-dir "$D/state"; }

child_pid() {
    vctl status web --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"] or "")'
}

kill9() {
    local old
    old=$(child_pid)
    kill -9 "$old"
    for _ in $(seq 1 400); do
        local now
        now=$(child_pid || true)
        [ -n "$now" ] && [ "$now" != "$old" ] && return 0
        sleep 0.025
    done
}

run_mode() {
    case $1 in
    steady) vigil_service yes; measure "steady state (no replace; held sockets)" true; cleanup ;;
    vigil-replace) vigil_service yes; measure "vigil replace (held sockets)" vctl replace web; cleanup ;;
    vigil-restart) vigil_service yes; measure "vigil restart (held sockets)" vctl restart web; cleanup ;;
    vigil-kill9) vigil_service yes; measure "kill -9 (held sockets)" kill9; cleanup ;;
    vigil-nosock) vigil_service no; measure "vigil restart (no held sockets)" vctl restart web; cleanup ;;
    pm2)
        command -v pm2 >/dev/null || { echo "| pm2 reload (fork) | skipped: not installed | | | | |"; return; }
        PM2_HOME=$D/pm2 pm2 start python3 --name web --interpreter none -- "$SERVER" "$PORT" >/dev/null
        wait_port
        measure "pm2 reload (fork mode)" env PM2_HOME="$D/pm2" pm2 reload web
        PM2_HOME=$D/pm2 pm2 kill >/dev/null || true ;;
    supervisord)
        command -v supervisord >/dev/null || { echo "| supervisord restart | skipped: not installed | | | | |"; return; }
        cat >"$D/sup.conf" <<CONF
[unix_http_server]
file=$D/sup.sock
[supervisord]
nodaemon=true
logfile=$D/sup.log
pidfile=$D/sup.pid
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$D/sup.sock
[program:web]
command=python3 $SERVER $PORT
startsecs=0
stopwaitsecs=10
CONF
        supervisord -c "$D/sup.conf" &
        local spid=$!
        wait_port
        measure "supervisord restart" supervisorctl -c "$D/sup.conf" restart web
        kill -TERM "$spid"; wait "$spid" || true ;;
    runit)
        command -v runsvdir >/dev/null || { echo "| runit sv restart | skipped: not installed | | | | |"; return; }
        mkdir -p "$D/sv/web"
        printf '#!/bin/sh\nexec python3 %s %s\n' "$SERVER" "$PORT" >"$D/sv/web/run"
        chmod +x "$D/sv/web/run"
        runsvdir -P "$D/sv" &
        local rpid=$!
        wait_port
        measure "runit sv restart" sv restart "$D/sv/web"
        sv exit "$D/sv/web" >/dev/null || true
        kill -HUP "$rpid"; wait "$rpid" || true ;;
    *) echo "unknown mode $1" >&2; exit 2 ;;
    esac
}

echo "$N replaces under ${RATE} req/s (loopback, one connection per request)"
echo
echo "| how | requests | refused | other failures | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|"
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(steady vigil-replace vigil-restart vigil-kill9 vigil-nosock pm2 supervisord runit)
for m in "${modes[@]}"; do
    run_mode "$m"
done
