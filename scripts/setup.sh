#!/usr/bin/env bash
# Installs what building and testing Vigil needs (`core`: only what building
# and the demo need). Idempotent: each step checks first and does nothing
# when the tool is already there.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
    say "cargo not found: install Rust with rustup first" >&2
    exit 1
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    say "adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi

if ! rustup component list --installed 2>/dev/null | grep -q '^clippy'; then
    rustup component add clippy
fi
if ! rustup component list --installed 2>/dev/null | grep -q '^rustfmt'; then
    rustup component add rustfmt
fi

# Loopback servers the tests and the demo run against.
need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if ((${#need_apt[@]})); then
    say "installing ${need_apt[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}"
fi

# `setup.sh core` stops here: the demo needs no more (`make demo`).
if [[ ${1:-all} == core ]]; then
    exit 0
fi

# ---- Groups for images and monitoring (`setup.sh static|containers|prometheus`;
# `all` runs each). Debian packages, installed only when their command is missing.
apt_now() {
    export DEBIAN_FRONTEND=noninteractive
    say "installing $* with apt-get"
    if [[ $(id -u) -ne 0 ]]; then
        sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    else
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    fi
}
# apt_missing COMMAND PACKAGE: install PACKAGE unless COMMAND is there.
apt_missing() { command -v "$1" >/dev/null 2>&1 || apt_now "$2"; }
# `make static`: the musl target, and musl-gcc for the C in ring and wasmtime.
setup_static() {
    if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
        say "adding the x86_64-unknown-linux-musl target"
        rustup target add x86_64-unknown-linux-musl
    fi
    apt_missing musl-gcc musl-tools
}
# tests/e2e/containers.rs: a real OCI runtime (podman, driving runc: crun
# refuses cgroup v1 hybrid hosts), the two PID-1 programs it compares, and
# busybox-static for the services inside the image.
setup_containers() {
    apt_missing podman podman
    apt_missing runc runc
    apt_missing tini tini
    apt_missing dumb-init dumb-init
    # busybox (dynamic) may be there already; the image needs the static one.
    dpkg -s busybox-static >/dev/null 2>&1 || apt_now busybox-static
}
# tests/e2e/prometheus.rs: a real Prometheus server and promtool.
setup_prometheus() {
    apt_missing prometheus prometheus
    apt_missing promtool prometheus
}
case ${1:-all} in
static) setup_static; exit 0 ;;
containers) setup_containers; exit 0 ;;
prometheus) setup_prometheus; exit 0 ;;
esac
setup_static
setup_containers
setup_prometheus

# ---- Checks in other languages (checks/examples) and protocol test servers --
# Toolchains live outside the repo, under $VIGIL_TOOLS; each step is skipped
# when the installed pins match scripts/tools/ (a stamp holds their hash).
cd "$(dirname "$0")/.."
TOOLS=${VIGIL_TOOLS:-$HOME/.cache/vigil/tools}
mkdir -p "$TOOLS"

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root for: $* (run it as root, then run this script again)" >&2
        exit 1
    fi
}
apt_updated=
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if [[ -z $apt_updated ]]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    say "installing $* with apt-get"
    as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
hash_of() { cat "$@" | sha256sum | cut -c1-64; }
stamp_matches() { [[ -f $1 && $(cat "$1") == "$2" ]]; }

# Redis and PostgreSQL servers for the builtin:redis/postgres tests, Node.js
# for componentize-js, the venv module for the Python tools.
need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if ! command -v postgres >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    need_apt+=(postgresql)
fi
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
# A pseudo-terminal for `vigil top` (tests/e2e/top.rs).
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
if ((${#need_apt[@]})); then
    apt_install "${need_apt[@]}"
fi

# Python: componentize-py, zig (C for wasm32-wasi), wasm-tools,
# prometheus_client (its parsers check /metrics in tests/e2e/http.rs) and
# grpcio with grpcio-health-checking (tests/e2e/grpc.rs).
want=$(hash_of scripts/tools/requirements.txt)
if ! stamp_matches "$TOOLS/python/.vigil-stamp" "$want" || [[ ! -x $TOOLS/python/bin/componentize-py ]] \
    || ! "$TOOLS/python/bin/python" -c 'import prometheus_client, grpc_health.v1' >/dev/null 2>&1; then
    say "installing scripts/tools/requirements.txt into $TOOLS/python"
    python3 -m venv "$TOOLS/python"
    "$TOOLS/python/bin/pip" install --quiet --disable-pip-version-check -r scripts/tools/requirements.txt
    echo "$want" >"$TOOLS/python/.vigil-stamp"
fi

# JavaScript: componentize-js, from the committed lock file.
want=$(hash_of scripts/tools/package.json scripts/tools/package-lock.json)
if ! stamp_matches "$TOOLS/node/.vigil-stamp" "$want" || [[ ! -x $TOOLS/node/node_modules/.bin/componentize-js ]]; then
    say "installing componentize-js into $TOOLS/node (npm install from scripts/tools/package-lock.json)"
    mkdir -p "$TOOLS/node"
    cp scripts/tools/package.json scripts/tools/package-lock.json "$TOOLS/node/"
    # npm install (not ci): the lock pins every version, and npm fills in the
    # optional per-platform packages that a lock made on one machine omits.
    (cd "$TOOLS/node" && npm install --no-audit --no-fund --loglevel=error)
    echo "$want" >"$TOOLS/node/.vigil-stamp"
fi

# The status page's browser test (tests/e2e/page.rs): Debian's Chromium,
# driven by playwright-core from tests/browser's lock file (no browser
# download: it runs /usr/bin/chromium).
command -v chromium >/dev/null 2>&1 || apt_install chromium
want=$(hash_of tests/browser/package.json tests/browser/package-lock.json)
if ! stamp_matches "$TOOLS/browser/.vigil-stamp" "$want" || [[ ! -d $TOOLS/browser/node_modules/playwright-core ]]; then
    say "installing playwright-core into $TOOLS/browser (npm install from tests/browser/package-lock.json)"
    mkdir -p "$TOOLS/browser"
    cp tests/browser/package.json tests/browser/package-lock.json "$TOOLS/browser/"
    (cd "$TOOLS/browser" && npm install --no-audit --no-fund --loglevel=error)
    echo "$want" >"$TOOLS/browser/.vigil-stamp"
fi

# C bindings: wit-bindgen's C generator (a one-off build of a few minutes).
WIT_BINDGEN_VERSION=0.61.0
if [[ $("$TOOLS/cargo/bin/wit-bindgen" --version 2>/dev/null) != "wit-bindgen-cli $WIT_BINDGEN_VERSION"* ]]; then
    say "building wit-bindgen-cli $WIT_BINDGEN_VERSION into $TOOLS/cargo (once; a few minutes)"
    cargo install --quiet --locked --root "$TOOLS/cargo" wit-bindgen-cli \
        --version "=$WIT_BINDGEN_VERSION" --no-default-features --features c
fi
