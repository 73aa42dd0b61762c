#!/usr/bin/env bash
# Builds the checks in checks/examples (Python, JavaScript, C) into
# $CARGO_TARGET_DIR/check-examples/, offline, with the toolchains that
# scripts/setup.sh installs under $HOME/.cache/vigil/tools.
#
# Each component is rebuilt only when its inputs change: its sources, the
# WIT contract, the tool pins and this script (a key file beside the .wasm
# records their hash).
#
#   scripts/build-examples.sh            build what changed
#   scripts/build-examples.sh --print    print the output directory
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools=${VIGIL_TOOLS:-$HOME/.cache/vigil/tools}
target=${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}
case $target in /*) ;; *) target=$root/$target ;; esac
out=$target/check-examples

if [[ ${1:-} == --print ]]; then
    echo "$out"
    exit 0
fi

say() { printf 'examples: %s\n' "$*" >&2; }
die() {
    printf 'examples: %s\n' "$*" >&2
    exit 1
}

py=$tools/python/bin
componentize_py=$py/componentize-py
componentize_js=$tools/node/node_modules/.bin/componentize-js
wit_bindgen=$tools/cargo/bin/wit-bindgen
wasm_tools=$py/wasm-tools

# A missing tool names the command that installs it.
need() {
    local path=$1 what=$2 install=$3
    [[ -x $path ]] && return 0
    die "$what is not installed ($path is missing).
  Install everything with: scripts/setup.sh   (or: make setup)
  or just this tool with:  $install"
}
pip_install="python3 -m venv $tools/python && $tools/python/bin/pip install -r scripts/tools/requirements.txt"
npm_install="mkdir -p $tools/node && cp scripts/tools/package.json scripts/tools/package-lock.json $tools/node/ && npm install --prefix $tools/node"
cargo_install="cargo install --locked --root $tools/cargo wit-bindgen-cli --version =0.61.0 --no-default-features --features c"

mkdir -p "$out"

# The hash of everything a component depends on.
key_of() {
    {
        cat "$root"/wit/*.wit "$root/scripts/tools/requirements.txt" \
            "$root/scripts/tools/package-lock.json" "$root/scripts/add-config-schema.py" "$0"
        for f in "$@"; do
            printf '%s\n' "$f"
            cat "$root/$f"
        done
    } | sha256sum | cut -c1-64
}

# record_source NAME FILE: the SHA-256 of the example's source, which the
# tests compare with the source they see, to refuse a stale component.
record_source() {
    sha256sum <"$root/$2" | cut -c1-64 >"$out/$1.source-sha256"
}

# up_to_date NAME KEY: the component exists and was built from KEY.
up_to_date() {
    [[ -f $out/$1.wasm && -f $out/$1.key && $(cat "$out/$1.key") == "$2" ]]
}

# with_schema WASM SCHEMA: carry the example's config schema (the
# toolchains cannot emit the custom section themselves), so `vigil
# validate` and `vigil inspect` know its keys as they know a Rust check's.
with_schema() {
    python3 "$root/scripts/add-config-schema.py" "$1" "$root/$2" >/dev/null
}

# finish NAME KEY TMP SOURCE: move a fresh build into place, then record
# its key and source hash.
finish() {
    mv -f "$3" "$out/$1.wasm"
    printf '%s\n' "$2" >"$out/$1.key"
    record_source "$1" "$4"
    say "built $out/$1.wasm ($(($(stat -c %s "$out/$1.wasm") / 1024)) KiB)"
}

export PYTHONDONTWRITEBYTECODE=1

# ---- Python: componentize-py ------------------------------------------------
build_python() {
    local name=json_health
    local key
    key=$(key_of checks/examples/python/app.py checks/examples/python/app.schema.json)
    if up_to_date $name "$key"; then
        record_source $name checks/examples/python/app.py
        return 0
    fi
    need "$componentize_py" "componentize-py (Python checks)" "$pip_install"
    say "building $name (Python, componentize-py; about 30 s)"
    local tmp=$out/$name.wasm.tmp
    (cd "$root/checks/examples/python" &&
        "$componentize_py" -d "$root/wit" -w checker componentize -p . app -o "$tmp" >/dev/null)
    with_schema "$tmp" checks/examples/python/app.schema.json
    finish $name "$key" "$tmp" checks/examples/python/app.py
}

# ---- JavaScript: componentize-js --------------------------------------------
build_javascript() {
    local name=heartbeat
    local key
    key=$(key_of checks/examples/javascript/heartbeat.js checks/examples/javascript/heartbeat.schema.json)
    if up_to_date $name "$key"; then
        record_source $name checks/examples/javascript/heartbeat.js
        return 0
    fi
    need "$componentize_js" "componentize-js (JavaScript checks)" "$npm_install"
    command -v node >/dev/null 2>&1 || die "node is not installed: run scripts/setup.sh (apt-get install nodejs)"
    say "building $name (JavaScript, componentize-js; about 45 s)"
    local tmp=$out/$name.wasm.tmp
    # The host links no wasi:http: leave out fetch() and the fetch event.
    "$componentize_js" "$root/checks/examples/javascript/heartbeat.js" \
        --wit "$root/wit" --world-name checker --disable http fetch-event \
        --out "$tmp" >/dev/null
    with_schema "$tmp" checks/examples/javascript/heartbeat.schema.json
    finish $name "$key" "$tmp" checks/examples/javascript/heartbeat.js
}

# ---- C: wit-bindgen c + zig cc (wasm32-wasi) + the preview1 adapter -----------
build_c() {
    local name=redis_ping
    local key
    key=$(key_of checks/examples/c/redis_ping.c checks/examples/c/redis_ping.schema.json)
    if up_to_date $name "$key"; then
        record_source $name checks/examples/c/redis_ping.c
        return 0
    fi
    need "$wit_bindgen" "wit-bindgen (C bindings)" "$cargo_install"
    need "$py/python" "zig (C compiler for wasm32-wasi, PyPI ziglang)" "$pip_install"
    need "$wasm_tools" "wasm-tools" "$pip_install"
    "$py/python" -m ziglang version >/dev/null 2>&1 ||
        die "zig (PyPI ziglang) is not installed in $tools/python. Install it with: $pip_install"
    say "building $name (C, wit-bindgen + zig cc + wasm-tools)"
    local work=$out/c-build
    rm -rf "$work"
    mkdir -p "$work"
    "$wit_bindgen" c "$root/wit" --world checker --out-dir "$work" >/dev/null 2>&1 ||
        "$wit_bindgen" c "$root/wit" --world checker --out-dir "$work"
    # The WASI preview1 reactor adapter of the wasmtime release Vigil links.
    (cd "$root" && CARGO_TARGET_DIR=$target cargo run --quiet --release --locked -p vigil-wasi-adapter -- \
        "$work/wasi_snapshot_preview1.reactor.wasm")
    "$py/python" -m ziglang cc --target=wasm32-wasi -mexec-model=reactor -Os \
        -Wall -Wextra -Werror -I "$work" \
        "$work/checker.c" "$root/checks/examples/c/redis_ping.c" \
        "$work/checker_component_type.o" -o "$work/module.wasm"
    "$wasm_tools" component new "$work/module.wasm" \
        --adapt wasi_snapshot_preview1="$work/wasi_snapshot_preview1.reactor.wasm" \
        -o "$work/$name.wasm"
    with_schema "$work/$name.wasm" checks/examples/c/redis_ping.schema.json
    "$wasm_tools" validate --features component-model "$work/$name.wasm"
    finish $name "$key" "$work/$name.wasm" checks/examples/c/redis_ping.c
    rm -rf "$work"
}

build_python
build_javascript
build_c
