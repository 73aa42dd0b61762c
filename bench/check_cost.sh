#!/usr/bin/env bash
# Issue 15 §3: the in-process cost of network checks (builtin:tcp,
# builtin:http, builtin:redis PING) against loopback servers, in one run:
# the checks bench (host/benches/checks.rs) unpinned, as Vigil runs, then
# pinned to one core, where no hand-off between threads has to wake the
# other vCPU. The gap between the two runs is what such wake-ups cost on
# this machine (see docs/check-cost.md).
#
#   bench/check_cost.sh [--quick] [--out BENCHMARKS.md]
#
# --out writes the unpinned run's table into that file (the section of
# `make bench`); both runs are printed. Run it on a quiet machine: a busy
# one keeps both vCPUs awake and hides the wake-ups this measures.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
quick=""; out=()
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=--quick; shift ;;
        --out) out=(--out "$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"); shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}
cd "$ROOT"
bench=$(cargo bench --locked -p vigil --bench checks --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "checks" and m.get("executable"):
        print(m["executable"])')
echo "== unpinned (as vigil run) =="
"$bench" $quick "${out[@]}"
echo
echo "== pinned to CPU 1 (taskset -c 1) =="
taskset -c 1 "$bench" $quick
