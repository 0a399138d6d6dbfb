#!/usr/bin/env bash
# Installs Debian packages the tests need, without their recommends and
# without letting their services start: the tests run their own servers
# (Prometheus, a registry) on free loopback ports, and nothing packaged must
# keep listening afterwards. Used by scripts/install_prometheus.sh and
# scripts/install_image_tools.sh, which decide what is missing.
#
#   scripts/debian_install.sh PACKAGE...     (as root)
#
# A package's service has the package's name; it is stopped and disabled if
# a service manager started it anyway.

set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 PACKAGE..." >&2
  exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "debian_install: not root; install Debian's package(s):" \
       "apt-get install --no-install-recommends $*" >&2
  exit 1
fi

# Keep maintainer scripts from starting services: Docker-style images ship a
# policy-rc.d that denies every start (exit 101); add one for the install
# only when the machine has none.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# temporary, scripts/debian_install.sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [[ -n $own_policy ]]; then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "debian_install: apt-get install $* (Debian)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "$@" >/dev/null

# Belt and braces: on a machine booted with systemd (or with init scripts),
# stop and disable what started anyway.
for pkg in "$@"; do
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now "$pkg.service" >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/$pkg ]]; then
    "/etc/init.d/$pkg" stop >/dev/null 2>&1 || true
  fi
done
