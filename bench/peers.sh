#!/usr/bin/env bash
# Vigil beside the peer supervisors, measured by the same harness in one run
# (../shared/peers/pbench.py): restart latency, hang detection, idle cost,
# and Vigil at scale. Raw JSON lines go to $PB_OUT; the summary table is
# printed and, with --out FILE, written into that file's section. As root,
# bench/procwatch.py also times every restart from kernel timestamps.
#
#   bench/peers.sh [--peers "daemontools runit pm2 supervisord monit horust"] [--out BENCHMARKS.md]
#
# The peers must be installed first: ../shared/peers/install.sh (apt, pip,
# npm, cargo; about 5 minutes).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
[ -f "$PEERS_DIR/pbench.py" ] || { echo "peers harness not found at $PEERS_DIR (set PEERS_DIR)" >&2; exit 2; }

peers="daemontools runit pm2 supervisord monit horust"
out=""
while [ $# -gt 0 ]; do
    case $1 in
        --peers) peers=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

export PB=${PB:-/tmp/peerbench}
export PB_OUT=${PB_OUT:-$PB/results-$(date +%Y%m%d-%H%M%S).jsonl}
mkdir -p "$PB"
: > "$PB_OUT"

# Restart latency from kernel timestamps, recorded beside the harness for
# every supervisor (bench/procwatch.py; needs root for the proc connector).
PW_OUT=${PB_OUT%.jsonl}-procwatch.jsonl
PW_PID=
if [ "$(id -u)" = 0 ]; then
    : > "$PW_OUT"
    python3 "$HERE/procwatch.py" record "$PW_OUT" 99951,99901,99902,99903,99904,99905,99906,99907,99908 &
    PW_PID=$!
    trap '[ -n "$PW_PID" ] && kill "$PW_PID" 2>/dev/null' EXIT
    sleep 1
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}
VIGIL=${VIGIL:-$CARGO_TARGET_DIR/release/vigil} "$HERE/run_vigil.sh" all

for peer in $peers; do
    case $peer in
        daemontools|runit|s6) "$PEERS_DIR/run_svscan_family.sh" "$peer" ;;
        *) "$PEERS_DIR/run_$peer.sh" ;;
    esac || echo "peer $peer failed; continuing" >&2
done

summary=$(python3 "$PEERS_DIR/summarize.py" "$PB_OUT")
if [ -n "$PW_PID" ]; then
    kill "$PW_PID"; wait "$PW_PID" 2>/dev/null || true; PW_PID=
    summary+=$'\n\nRestart latency from kernel timestamps (bench/procwatch.py, same run): the killed child'"'"$'s exit to the new child'"'"$'s exec, with the supervisor'"'"$'s reaction (exit → fork of the new child) and the child'"'"$'s setup (fork → exec).\n\n'
    summary+=$(python3 "$HERE/procwatch.py" summarize "$PW_OUT")
fi
printf '%s\n' "$summary"
if [ -n "$out" ]; then
    python3 "$HERE/write_section.py" "$out" "## Supervisor: Vigil beside the peers (issue 3)" <<<"$summary"
fi
