#!/usr/bin/env bash
# The cost of cgroups (docs/cgroups.md), off against on, in one run on one
# machine: restart latency (a SIGKILLed child until its successor runs,
# bench/run_vigil.sh restart) and Vigil's CPU and memory with 1,000 idle
# services (sleep, no checks) and with 1,000 services under a 1 s
# builtin:tcp liveness check (run_vigil.sh scale). Rounds alternate off, on,
# off, on, so a drift of the machine shows as spread, not as a change.
# Must run as root (or where Vigil may create cgroups), else "on" is "off".
#
#   VIGIL=target/release/vigil bench/cgroups.sh [--rounds N] [--out BENCHMARKS.md] [--quick]
#
# --quick: 5 restarts, 10 s windows, one round (to see that it works).
# The table goes to stdout, and with --out into that file's
# "## Cgroups: on against off" section (bench/write_section.py).
set -euo pipefail
CG_BENCH=$(cd "$(dirname "$0")" && pwd)
VIGIL=${VIGIL:?set VIGIL to the vigil binary}
export VIGIL
rounds=2; out=""; quick=""
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --quick) quick=1; rounds=1; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
PEERS_DIR=${PEERS_DIR:-$CG_BENCH/../../shared/peers}
export PEERS_DIR
. "$PEERS_DIR/common.sh"
if [ -n "$quick" ]; then
    export RUNS=5 IDLE_S=10 SCALE_S=10
fi
raw=$(mktemp /tmp/vigil-cgroups-bench.XXXX.jsonl)
export PB_OUT=$raw

# 1,000 services that only sleep: the idle cost of 1,000 cgroups.
idle1000() { # $1 label
    local d; d=$(mktemp -d /tmp/pb-cg.XXXX)
    for i in $(seq 0 999); do
        mkdir -p "$d/s/i$i"
        printf 'command = ["/bin/sleep", "%s"]\n' "$(printf 773%04d "$i")" > "$d/s/i$i/service.toml"
    done
    "$VIGIL" run --checks "$d/s" --state-dir "$d/state" >"$d/out.log" 2>&1 &
    local vpid=$!
    sleep 10
    $BENCH idle --root "$vpid" --duration "${SCALE_S:-60}" --marker-re '773\d{4}' --count 1000 --timeout 60 --label "$1 1000 idle services"
    kill -TERM "$vpid"; wait "$vpid" 2>/dev/null || true
    reap_markers "773\\d\\d\\d\\d"
    rm -rf "$d"
}

for round in $(seq 1 "$rounds"); do
    for mode in off on; do
        echo "round $round: cgroups $mode" >&2
        VIGIL_CGROUPS=$mode VIGIL_NAME="cgroups=$mode" "$CG_BENCH/run_vigil.sh" restart
        VIGIL_CGROUPS=$mode idle1000 "cgroups=$mode"
        VIGIL_CGROUPS=$mode VIGIL_NAME="cgroups=$mode" "$CG_BENCH/run_vigil.sh" scale
    done
done

table=$($PY - "$raw" "$(uname -r)" "$(nproc)" "$quick" <<'PYEOF'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
kernel, cpus, quick = sys.argv[2], sys.argv[3], sys.argv[4]
print(f"`bench/cgroups.sh`{' --quick' if quick else ''}, kernel {kernel}, {cpus} CPUs; "
      "off is `VIGIL_CGROUPS=off` (process groups), rounds alternate off and on.\n")
print("| what | cgroups | runs | median | p95 / spread |")
print("| --- | --- | --- | --- | --- |")
by = collections.defaultdict(list)
for r in rows:
    mode, _, what = r["label"].partition(" ")
    by[(r["test"], what, mode)].append(r)
for (test, what, mode), rs in sorted(by.items()):
    if test == "restart":
        samples = [s for r in rs for s in r["samples_ms"] if s is not None]
        samples.sort()
        med = samples[len(samples) // 2] if samples else None
        p95 = samples[int(len(samples) * 0.95) - 1] if samples else None
        print(f"| restart: {what} | {mode.split('=')[1]} | {len(samples)} | {med} ms | {p95} ms |")
    elif test == "idle":
        cpu = sorted(r["cpu_pct"] for r in rs)
        rss = sorted(r["rss_mib"] for r in rs)
        print(f"| {what}: CPU | {mode.split('=')[1]} | {len(rs)} | {cpu[len(cpu)//2]} % | {cpu[0]}..{cpu[-1]} % |")
        print(f"| {what}: RSS | {mode.split('=')[1]} | {len(rs)} | {rss[len(rss)//2]} MiB | {rss[0]}..{rss[-1]} MiB |")
PYEOF
)
echo "$table"
if [ -n "$out" ]; then
    echo "$table" | "$PY" "$CG_BENCH/write_section.py" "$out" "## Cgroups: on against off"
fi
rm -f "$raw"
