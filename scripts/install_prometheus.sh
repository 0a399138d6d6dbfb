#!/usr/bin/env bash
# Prometheus and promtool from Debian's `prometheus` package, for the
# Prometheus/Grafana end-to-end tests (tests/e2e/test_prometheus.py,
# tests/e2e/test_grafana.py) and `promtool check/test rules` on
# examples/prometheus/.  Also: `make prometheus` (a prerequisite of `make e2e`).
#
# A no-op (and offline) when both `prometheus` and `promtool` are on PATH.
# Otherwise, as root, scripts/debian_install.sh installs the package without
# its recommends (no node exporter) and without letting it start its service
# (the tests run their own `prometheus` on a free loopback port).
#
# Set PROMETHEUS_BIN / PROMTOOL_BIN to use other binaries (the tests read them
# too); this script then checks that they exist and does nothing else.

set -euo pipefail

want_prom=${PROMETHEUS_BIN:-prometheus}
want_tool=${PROMTOOL_BIN:-promtool}

have() { command -v "$1" >/dev/null 2>&1; }

if have "$want_prom" && have "$want_tool"; then
  exit 0
fi
if [[ -n "${PROMETHEUS_BIN:-}${PROMTOOL_BIN:-}" ]]; then
  have "$want_prom" || echo "install_prometheus: ${want_prom} not found (PROMETHEUS_BIN)" >&2
  have "$want_tool" || echo "install_prometheus: ${want_tool} not found (PROMTOOL_BIN)" >&2
  exit 1
fi
"$(dirname "$0")/debian_install.sh" prometheus

have prometheus && have promtool || {
  echo "install_prometheus: the package installed but prometheus/promtool are not on PATH" >&2
  exit 1
}
prometheus --version 2>&1 | head -n1 >&2
