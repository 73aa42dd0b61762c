# Vigil: `make demo` runs the demo, `make test` runs every test.
# Both install what they need first and are safe to run again.

# One shared target dir outside the clone: wasmtime is heavy to compile, and
# the release build is reused by the tests and benchmarks.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/vigil/target
CARGO ?= cargo
VIGIL := $(CARGO_TARGET_DIR)/release/vigil

.PHONY: all setup setup-core build demo test lint unit examples bench clean-cache install static soak soak-short soak-1000 fuzz

# `make install PREFIX=/opt/vigil` (and DESTDIR= for packaging).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DOCDIR ?= $(PREFIX)/share/doc/vigil
# `make static`: musl links the C runtime in, so the binary runs in an image
# with nothing else in it (`FROM scratch`).
STATIC_TARGET := x86_64-unknown-linux-musl
STATIC := $(CARGO_TARGET_DIR)/$(STATIC_TARGET)/release/vigil

all: build

# Everything the tests need: toolchains for the example checks, redis,
# postgres, node, Python tools.
setup:
	@scripts/setup.sh

# What building and the demo need: the wasm32-wasip2 target, python3.
setup-core:
	@scripts/setup.sh core

# Both binaries of the package: `vigil` and `vigil-probe` (README "Exec
# probes: vigil-probe").
build: setup-core
	$(CARGO) build --release --locked -p vigil

demo: build
	@VIGIL=$(VIGIL) scripts/demo.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --locked --workspace --all-targets -- -D warnings

# The checks in checks/examples (Python, JavaScript, C), built offline with
# the toolchains setup installs; rebuilt only when their sources change.
examples: setup
	@scripts/build-examples.sh

unit: setup examples
	$(CARGO) test --release --locked --workspace

test: lint examples static unit soak-short

# The chaos soak (tests/soak/, RELIABILITY.md): vigil with a few dozen
# services of mixed behaviour under random faults and control-plane load,
# invariants checked throughout; exit 1 on any violation, with evidence.
# `make soak DURATION=30m`, `SEED=N` replays a run's choices. Root mounts
# a small tmpfs as the state directory (the disk-full fault).
DURATION ?= 30m
SOAK_OUT ?= $(CARGO_TARGET_DIR)/soak
SOAK := python3 tests/soak/soak.py --vigil $(VIGIL) $(if $(SEED),--seed $(SEED))

soak: build
	$(SOAK) --duration $(DURATION) --vigil-kill-every 180 --out $(SOAK_OUT)/soak

# Two minutes, part of `make test`.
soak-short: build
	$(SOAK) --duration 2m --vigil-kill-every 30 --warmup 15 --min-trend 30 --out $(SOAK_OUT)/short

# 1,000 services with a liveness check each under kills: no missed restarts.
soak-1000: build
	$(SOAK) --duration $(if $(filter command line,$(origin DURATION)),$(DURATION),5m) --services 1000 \
		--tickers 20 --followers 20 --slowloris 40 --burst 100 --gap 0.5 --vigil-kill-every 120 \
		--out $(SOAK_OUT)/1000

# Every fuzz target (docs/fuzzing.md) for FUZZ_SECS seconds each, one at a
# time, printing inputs per target; an input that panics or takes over 2 s
# is saved under $TMPDIR/vigil-fuzz-found/. `make test` replays the
# corpora (tests/fuzz-corpus) and a few thousand mutations of each.
FUZZ_SECS ?= 60
fuzz: setup-core
	VIGIL_FUZZ_SECS=$(FUZZ_SECS) $(CARGO) test --release --locked -p vigil --lib fuzz_tests -- --nocapture --test-threads=1

bench: build examples
	$(CARGO) bench --locked -p vigil --bench checks -- --out $(CURDIR)/BENCHMARKS.md
	$(CARGO) bench --locked -p vigil --bench languages -- --out $(CURDIR)/BENCHMARKS.md

# The release binary keeps line tables for backtraces (150 MB); the
# installed one is stripped (about 26 MB). The docs are each command's
# --help, as the binary prints it, plus the README and docs/.
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 -s $(VIGIL) $(DESTDIR)$(BINDIR)/vigil
	install -m 0755 -s $(VIGIL)-probe $(DESTDIR)$(BINDIR)/vigil-probe
	$(VIGIL) --help >$(DESTDIR)$(DOCDIR)/vigil.txt
	for c in $$($(VIGIL) --help | awk '/^Commands:/ {f=1; next} /^$$/ {f=0} f && $$1 != "help" {print $$1}'); do \
		$(VIGIL) $$c --help >$(DESTDIR)$(DOCDIR)/vigil-$$c.txt || exit 1; \
	done
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/

# Fully static, stripped binaries (no line tables: they are for the
# debugging build). A full build of its own dependency tree the first time.
# `vigil` is position-independent (ASLR); `vigil-probe`, started for every
# exec probe, is not unless PROBE_PIE=1: relocating itself at every start
# was a fifth of its run (BENCHMARKS.md, "Exec probe"; README, "Exec
# probes: vigil-probe", says what that trades).
PROBE_PIE ?= 0
STATIC_FLAGS := --release --locked -p vigil --target $(STATIC_TARGET) \
	--config profile.release.debug=false --config profile.release.strip=true
static:
	@scripts/setup.sh static
	$(CARGO) build $(STATIC_FLAGS) --bin vigil
	$(CARGO) rustc $(STATIC_FLAGS) --bin vigil-probe $(if $(filter 1,$(PROBE_PIE)),,-- -C relocation-model=static)
	@for b in $(STATIC) $(STATIC)-probe; do \
		if readelf -l $$b | grep -q "program interpreter"; then echo "$$b is not static" >&2; exit 1; fi; \
	done
	@ls -l $(STATIC) $(STATIC)-probe

clean-cache:
	rm -rf $${XDG_CACHE_HOME:-$$HOME/.cache}/vigil/components
