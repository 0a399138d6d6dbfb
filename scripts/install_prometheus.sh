#!/usr/bin/env bash
# Prometheus and promtool from Debian's `prometheus` package, for the
# Prometheus/Grafana end-to-end tests (tests/e2e/test_prometheus.py,
# tests/e2e/test_grafana.py) and `promtool check/test rules` on
# examples/prometheus/.  Also: `make prometheus` (a prerequisite of `make e2e`).
#
# A no-op (and offline) when both `prometheus` and `promtool` are on PATH.
# Otherwise, as root: apt-get update, then install the package without its
# recommends (no node exporter) and without letting it start its service:
# the tests run their own `prometheus` on a free loopback port with a
# temporary TSDB, and nothing must keep listening on :9090 afterwards.
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
if [[ $(id -u) -ne 0 ]]; then
  echo "install_prometheus: prometheus/promtool missing and not root;" \
       "install Debian's 'prometheus' package (apt-get install --no-install-recommends prometheus)" >&2
  exit 1
fi

# Keep maintainer scripts from starting the service: Docker-style images ship
# a policy-rc.d that denies every start (exit 101); add one for the install
# only when the machine has none.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# temporary, scripts/install_prometheus.sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [[ -n $own_policy ]]; then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "install_prometheus: apt-get install prometheus (Debian)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  prometheus >/dev/null

# Belt and braces: if a service manager started the packaged daemon anyway
# (a machine booted with systemd), stop and disable it so :9090 stays free.
if [[ -d /run/systemd/system ]] && have systemctl; then
  systemctl disable --now prometheus.service >/dev/null 2>&1 || true
elif [[ -x /etc/init.d/prometheus ]]; then
  /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi

have prometheus && have promtool || {
  echo "install_prometheus: the package installed but prometheus/promtool are not on PATH" >&2
  exit 1
}
prometheus --version 2>&1 | head -n1 >&2
