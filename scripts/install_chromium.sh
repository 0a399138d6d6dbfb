#!/usr/bin/env bash
# Debian's `chromium`, headless, for tests/e2e/test_inspector.py: it opens
# the page `darklaunch-report samples --html` writes, lets its script run,
# and dumps the DOM and a screenshot (tests/e2e/harness/chromium.py). Also:
# `make chromium` (a prerequisite of `make e2e` and `make e2e-compat`).
#
# A no-op (and offline) when `chromium` is on PATH. Otherwise, as root,
# scripts/debian_install.sh installs the package without its recommends
# (no fonts beyond its dependencies, no desktop extras).
#
# Set CHROMIUM_BIN to use another binary (the tests read it too); this
# script then checks that it exists and does nothing else.

set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if [[ -n "${CHROMIUM_BIN:-}" ]]; then
  have "$CHROMIUM_BIN" || {
    echo "install_chromium: ${CHROMIUM_BIN} not found (CHROMIUM_BIN)" >&2
    exit 1
  }
  exit 0
fi
if have chromium; then
  exit 0
fi
"$(dirname "$0")/debian_install.sh" chromium

have chromium || {
  echo "install_chromium: the package installed but chromium is not on PATH" >&2
  exit 1
}
chromium --version >&2
