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
# root, scripts/debian_install.sh installs the missing packages without their
# recommends and without letting docker-registry start its service (the test
# runs its own registry on a free loopback port).

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
"$(dirname "$0")/debian_install.sh" "${missing[@]}"

for pkg in "${missing[@]}"; do
  have "$pkg" || {
    echo "install_image_tools: the package $pkg installed but $pkg is not on PATH" >&2
    exit 1
  }
done
