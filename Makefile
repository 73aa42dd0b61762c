# Vigil: `make demo` runs the demo, `make test` runs every test.
# Both install what they need first and are safe to run again.

# One shared target dir outside the clone: wasmtime is heavy to compile, and
# the release build is reused by the tests and benchmarks.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/vigil/target
CARGO ?= cargo
VIGIL := $(CARGO_TARGET_DIR)/release/vigil

.PHONY: all setup setup-core build demo test lint unit examples bench clean-cache

all: build

# Everything the tests need: toolchains for the example checks, redis,
# postgres, node, Python tools.
setup:
	@scripts/setup.sh

# What building and the demo need: the wasm32-wasip2 target, python3.
setup-core:
	@scripts/setup.sh core

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

test: lint examples unit

bench: build examples
	$(CARGO) bench --locked -p vigil --bench checks -- --out $(CURDIR)/BENCHMARKS.md
	$(CARGO) bench --locked -p vigil --bench languages -- --out $(CURDIR)/BENCHMARKS.md

clean-cache:
	rm -rf $${XDG_CACHE_HOME:-$$HOME/.cache}/vigil/components
