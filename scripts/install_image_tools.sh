#!/usr/bin/env bash
# Debian's packages for the module's OCI image: `skopeo` (copies the image
# layout that scripts/oci_image.py writes to a registry and back; `make
# image`) and `docker-registry` (the registry, "distribution", that
# tests/e2e/test_image.py runs on loopback for its round trip; `make
# image-registry`, a prerequisite of `make e2e`).
#
#   scripts/install_image_tools.sh skopeo [docker-registry]
#
# A no-op (and offline) when every program named is on PATH. Otherwise, as
# root: apt-get update, then install the missing packages without their
# recommends and without letting docker-registry start its service: the test
# runs its own registry on a free loopback port with a temporary storage
# directory, and nothing must keep listening on :5000 afterwards.

set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 skopeo [docker-registry]" >&2
  exit 2
fi

have() { command -v "$1" >/dev/null 2>&1; }

missing=()
for pkg in "$@"; do
  case $pkg in
    skopeo | docker-registry) have "$pkg" || missing+=("$pkg") ;;
    *) echo "install_image_tools: unknown package $pkg" >&2; exit 2 ;;
  esac
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install_image_tools: ${missing[*]} missing and not root;" \
       "install Debian's package(s): apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

# Keep maintainer scripts from starting the registry service: Docker-style
# images ship a policy-rc.d that denies every start (exit 101); add one for
# the install only when the machine has none.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# temporary, scripts/install_image_tools.sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [[ -n $own_policy ]]; then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "install_image_tools: apt-get install ${missing[*]} (Debian)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}" >/dev/null

# If a service manager started the packaged registry anyway (a machine booted
# with systemd), stop and disable it so :5000 stays free.
if [[ " ${missing[*]} " == *" docker-registry "* ]]; then
  if [[ -d /run/systemd/system ]] && have systemctl; then
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/docker-registry ]]; then
    /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
  fi
fi

for pkg in "${missing[@]}"; do
  have "$pkg" || {
    echo "install_image_tools: the package $pkg installed but $pkg is not on PATH" >&2
    exit 1
  }
done
