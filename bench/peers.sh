#!/usr/bin/env bash
# Vigil beside the peer supervisors, measured by the same harness in one run
# (../shared/peers/pbench.py): restart latency, hang detection, idle cost,
# and Vigil at scale. Raw JSON lines go to $PB_OUT; the summary table is
# printed and, with --out FILE, written into that file's section.
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

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}
VIGIL=${VIGIL:-$CARGO_TARGET_DIR/release/vigil} "$HERE/run_vigil.sh" all

for peer in $peers; do
    case $peer in
        daemontools|runit|s6) "$PEERS_DIR/run_svscan_family.sh" "$peer" ;;
        *) "$PEERS_DIR/run_$peer.sh" ;;
    esac || echo "peer $peer failed; continuing" >&2
done

summary=$(python3 "$PEERS_DIR/summarize.py" "$PB_OUT")
printf '%s\n' "$summary"
if [ -n "$out" ]; then
    python3 "$HERE/write_section.py" "$out" "## Supervisor: Vigil beside the peers (issue 3)" <<<"$summary"
fi
