#!/usr/bin/env bash
# The sandbox's cost before and after a change, in one run on one machine:
# per-check cost (host/benches/sandbox.rs, the same file built against both
# commits) and Vigil's CPU with 1,000 services checked by builtin:tcp every
# second (bench/run_vigil.sh scale). Rows alternate builds (before, after,
# before, after) so a drift of the machine shows as spread, not as a change.
#
#   bench/sandbox_before_after.sh BASE_COMMIT [--out BENCHMARKS.md] [--quick] [--no-scale]
#
# The older commit is checked out in a worktree under $HOME/.cache/vigil
# and built with its own target directory (the first time: a full wasmtime
# build, about 10 minutes on two cores).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BASE=${1:?usage: $0 BASE_COMMIT [--out FILE] [--quick] [--no-scale]}; shift
out=""; quick=""; scale=1
while [ $# -gt 0 ]; do
    case $1 in
        --out) out=$2; shift 2 ;;
        --quick) quick=--quick; shift ;;
        --no-scale) scale=""; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}
BASE_SRC=$HOME/.cache/vigil/bench-base/src
BASE_TARGET=$HOME/.cache/vigil/bench-base/target
base_rev=$(git -C "$ROOT" rev-parse --short "$BASE")
head_rev=$(git -C "$ROOT" rev-parse --short HEAD)
[ -z "$(git -C "$ROOT" status --porcelain -- host wit checks guest-sdk)" ] || head_rev="$head_rev+"

# The older tree, with today's bench file dropped in (it uses only API that
# both builds have).
# Kept between runs (a fresh checkout's new mtimes would rebuild it).
if [ "$(git -C "$BASE_SRC" rev-parse HEAD 2>/dev/null)" != "$(git -C "$ROOT" rev-parse "$BASE")" ]; then
    git -C "$ROOT" worktree remove --force "$BASE_SRC" 2>/dev/null || rm -rf "$BASE_SRC"
    git -C "$ROOT" worktree prune
    git -C "$ROOT" worktree add --detach "$BASE_SRC" "$BASE" >/dev/null
fi
for f in host/benches/sandbox.rs host/benches/common/mod.rs; do
    cmp -s "$ROOT/$f" "$BASE_SRC/$f" || cp "$ROOT/$f" "$BASE_SRC/$f"
done
grep -q 'name = "sandbox"' "$BASE_SRC/host/Cargo.toml" ||
    printf '\n[[bench]]\nname = "sandbox"\nharness = false\n' >>"$BASE_SRC/host/Cargo.toml"

build() { # $1 source dir, $2 target dir; prints the bench executable
    (cd "$1" && CARGO_TARGET_DIR=$2 cargo build --release --locked -p vigil >&2 &&
        CARGO_TARGET_DIR=$2 cargo bench --locked -p vigil --bench sandbox --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "sandbox" and m.get("executable"):
        print(m["executable"])')
}
echo "building $base_rev (before) and $head_rev (after)" >&2
before_bench=$(build "$BASE_SRC" "$BASE_TARGET")
after_bench=$(build "$ROOT" "$CARGO_TARGET_DIR")
before_vigil=$BASE_TARGET/release/vigil
after_vigil=$CARGO_TARGET_DIR/release/vigil

rows=$(mktemp /tmp/vigil-sandbox-bench.XXXX.jsonl)
# Pinned to one core: unpinned, a call's latency and CPU on this runtime are
# bimodal (whether a parked worker on the other core had to be woken), and
# that swamps what the sandbox changes.
pin=""; command -v taskset >/dev/null && pin="taskset -c 1"
for round in 1 2 3; do
    VIGIL_NAME=before $pin "$before_bench" --bench $quick --json "$rows" >/dev/null
    VIGIL_NAME=after $pin "$after_bench" --bench $quick --json "$rows" >/dev/null
done

if [ -n "$scale" ]; then
    export PB=${PB:-/tmp/peerbench}; mkdir -p "$PB"
    export PB_OUT=$PB/sandbox-$(date +%Y%m%d-%H%M%S).jsonl; : >"$PB_OUT"
    for round in 1 2; do
        VIGIL=$before_vigil VIGIL_NAME=before "$HERE/run_vigil.sh" scale
        VIGIL=$after_vigil VIGIL_NAME=after "$HERE/run_vigil.sh" scale
    done
fi

summary=$(python3 - "$rows" "${PB_OUT:-}" "$base_rev" "$head_rev" "$quick" <<'PY'
import json, os, statistics, sys, platform
rows_path, pb_out, base, head, quick = sys.argv[1:6]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
order = []
for r in rows:
    if r["row"] not in order:
        order.append(r["row"])
def fmt(us):
    return f"{us/1000:.2f} ms" if us >= 1000 else f"{us:.1f} µs"
out = []
rounds = max(1, len([r for r in rows if r["build"] == "before"]) // max(1, len(order)))
out.append(f"One run on one machine ({os.cpu_count()} cores, {platform.machine()}), `bench/sandbox_before_after.sh {base}{' --quick' if quick else ''}`: before = {base}, after = {head}. The per-check bench ran {rounds} times per build, alternating, pinned to one core (`taskset -c 1`; unpinned, latency and CPU are bimodal on this VM, depending on whether a parked worker on the other core must be woken). CPU per call is the whole process's user + system time over the timed calls divided by their number, median of the runs; latency is the range of the runs' medians. Change = after / before - 1 on CPU per call. The 1,000-service rows run unpinned, as Vigil runs.")
out.append("")
out.append("| per check | CPU per call before | after | change | latency median before | after | p99 before | after |")
out.append("|---|---|---|---|---|---|---|---|")
for name in order:
    b = [r for r in rows if r["row"] == name and r["build"] == "before"]
    a = [r for r in rows if r["row"] == name and r["build"] == "after"]
    if not a or not b:
        continue
    bm = statistics.median(r["median_us"] for r in b); am = statistics.median(r["median_us"] for r in a)
    bp = statistics.median(r["p99_us"] for r in b); ap = statistics.median(r["p99_us"] for r in a)
    bc = statistics.median(r.get("cpu_us", 0) for r in b); ac = statistics.median(r.get("cpu_us", 0) for r in a)
    change = f"{100*(ac/bc-1):+.1f} %" if bc else "n/a"
    spread = lambda rs: "–".join(fmt(x) for x in (min(r["median_us"] for r in rs), max(r["median_us"] for r in rs)))
    out.append(f"| {name} | {fmt(bc)} | {fmt(ac)} | {change} | {spread(b)} | {spread(a)} | {fmt(bp)} | {fmt(ap)} |")
if pb_out and os.path.exists(pb_out):
    scale = {}
    for l in open(pb_out):
        if not l.strip():
            continue
        r = json.loads(l)
        label = r.get("label", "")
        build = label.split(" ", 1)[0]
        cpu = r.get("cpu_pct", r.get("cpu_percent"))
        rss = r.get("rss_mib", r.get("rss_mb"))
        if cpu is not None:
            scale.setdefault(build, []).append((cpu, rss))
    if scale:
        out.append("")
        out.append("| 1,000 services, 1 s builtin:tcp liveness each | runs (CPU % of one core, RSS MiB) | median CPU |")
        out.append("|---|---|---|")
        for build in ("before", "after"):
            runs = scale.get(build, [])
            if runs:
                cells = ", ".join(f"{c:.1f} % / {r:.0f}" if r is not None else f"{c:.1f} %" for c, r in runs)
                out.append(f"| {build} | {cells} | {statistics.median(c for c, _ in runs):.1f} % |")
print("\n".join(out))
PY
)
printf '%s\n' "$summary"
if [ -n "$out" ]; then
    python3 "$HERE/write_section.py" "$out" "## Sandbox hardening: cost before and after (issue 10)" <<<"$summary"
fi
