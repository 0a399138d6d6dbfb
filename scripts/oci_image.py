#!/usr/bin/env python3
"""Writes the darklaunch module as an OCI image layout that Istio's WasmPlugin
can pull (`url: oci://...`), without a container engine; `make image` runs it.

    python3 scripts/oci_image.py [--wasm PATH] [--out DIR] [--name NAME] [--tag TAG] [--verify]

The image is the "compat" variant of the Wasm image format, the one a
`docker build` of `FROM scratch` + `COPY ... ./plugin.wasm` gives:

* one layer, media type application/vnd.oci.image.layer.v1.tar+gzip, a gzipped
  tar holding one regular file, `plugin.wasm` (the module, byte for byte);
* an OCI image config (application/vnd.oci.image.config.v1+json) whose
  rootfs.diff_ids is the sha256 of that tar, platform wasip1/wasm;
* an OCI image manifest (application/vnd.oci.image.manifest.v1+json) with the
  annotation module.wasm.image/variant=compat, which the variant asks for
  when the layer has the OCI media type (Istio does not read it; other Wasm
  runtimes do).

What Istio's agent does with it (istio/istio pkg/wasm: imagefetcher.go, and
cache.go for the checksum): it fetches the manifest with go-containerregistry;
a manifest whose mediaType is not Docker's schema 2 is read as OCI and the
"compat" reader tries first: the image must have a layer (some releases
require exactly one, others take the last) whose media type is
application/vnd.oci.image.layer.v1.tar+gzip;
it gunzips and walks the tar for the first entry whose base name is
`plugin.wasm`, and checks the bytes start with the Wasm magic number. For an
oci:// URL the WasmPlugin's `sha256` is compared with the hex digest of the
image MANIFEST (img.Digest()), not with the module's checksum.
tests/e2e/test_image.py asserts each of these after a round trip through a
registry.

Reproducible: the same module gives the same bytes, so the same digest. The
tar entry has mtime 0, uid/gid 0, mode 0644 and no user names; the gzip
header carries no name and mtime 0 (written here, not by the gzip module,
whose header differs between Python versions); the JSON documents have
sorted keys and no whitespace; nothing records the time of the build. (The
deflate stream is zlib's at level 9: the same zlib gives the same bytes.)

The layout (OCI image-layout 1.0.0) replaces DIR (default target/image):
DIR/oci-layout, DIR/index.json (one manifest, org.opencontainers.image.ref.name
= TAG) and DIR/blobs/sha256/<hex> for the layer, the config and the manifest.
skopeo reads it as `oci:DIR:TAG`; `skopeo copy --preserve-digests
oci:DIR:TAG docker://REGISTRY/NAME:TAG` pushes it unchanged.

Printed: the image, the module's sha256 and size, and the line
`digest sha256:<hex>`: the manifest digest, which the registry reports for the
pushed image and which, without "sha256:", is the WasmPlugin's `sha256`.
--verify also asks skopeo (if on PATH, else it fails) to read the layout and
report the same digest.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tomllib
import zlib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WASM = REPO_ROOT / "target" / "module" / "darklaunch.wasm"
DEFAULT_OUT = REPO_ROOT / "target" / "image"

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
PLUGIN_FILE = "plugin.wasm"
VARIANT_ANNOTATION = {"module.wasm.image/variant": "compat"}
REF_NAME = "org.opencontainers.image.ref.name"
WASM_MAGIC = b"\0asm"


def cargo_package() -> dict:
    with open(REPO_ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["package"]


def canonical_json(doc) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(module: bytes) -> bytes:
    """A tar with one regular file, plugin.wasm, and nothing that varies."""
    info = tarfile.TarInfo(PLUGIN_FILE)
    info.size = len(module)
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(module))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """RFC 1952 member: no file name, mtime 0, XFL 2 (level 9), OS 255 (unknown)."""
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x02\xff"
    comp = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    body = comp.compress(data) + comp.flush()
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return header + body + trailer


def build(module: bytes, tag: str) -> tuple[dict, str]:
    """The layout's files {relative path: bytes} and the manifest digest."""
    if module[:4] != WASM_MAGIC or len(module) < 8:
        raise ValueError("not a Wasm module (no \\0asm header)")
    tar = layer_tar(module)
    layer = gzip_bytes(tar)
    config = canonical_json({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": LAYER_TYPE, "digest": sha256(layer), "size": len(layer)}],
        "annotations": VARIANT_ANNOTATION,
    })
    digest = sha256(manifest)
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [{"mediaType": MANIFEST_TYPE, "digest": digest, "size": len(manifest),
                       "annotations": {REF_NAME: tag}}],
    })
    files = {"oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}), "index.json": index}
    for blob in (layer, config, manifest):
        files["blobs/sha256/" + hashlib.sha256(blob).hexdigest()] = blob
    return files, digest


def write_layout(files: dict, out: Path) -> None:
    """Replaces ``out`` with exactly these files (no blob of an earlier build stays)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, data in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def skopeo_digest(out: Path, tag: str) -> str:
    skopeo = shutil.which("skopeo")
    if not skopeo:
        raise RuntimeError("skopeo not found (make image installs it: scripts/install_image_tools.sh skopeo)")
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{out}:{tag}"], check=True,
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL).stdout
    return sha256(raw)


def main(argv=None) -> int:
    pkg = cargo_package()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wasm", type=Path, default=Path(os.environ.get("DARKLAUNCH_WASM", DEFAULT_WASM)),
                    help="the module (default: DARKLAUNCH_WASM, else the release build)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="layout directory (replaced)")
    ap.add_argument("--name", default=pkg["name"], help="image name (default: Cargo.toml's)")
    ap.add_argument("--tag", default=pkg["version"], help="tag (default: Cargo.toml's version)")
    ap.add_argument("--verify", action="store_true",
                    help="check that skopeo reads the layout and reports the same digest")
    args = ap.parse_args(argv)

    try:
        module = args.wasm.read_bytes()
    except FileNotFoundError:
        print(f"oci_image: {args.wasm} not found: run `make build`", file=sys.stderr)
        return 1
    try:
        files, digest = build(module, args.tag)
    except ValueError as e:
        print(f"oci_image: {args.wasm}: {e}", file=sys.stderr)
        return 1
    write_layout(files, args.out)
    if args.verify:
        got = skopeo_digest(args.out, args.tag)
        if got != digest:
            print(f"oci_image: skopeo reads {got} from {args.out}, expected {digest}", file=sys.stderr)
            return 1

    try:
        shown = args.out.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = args.out
    print(f"image   {args.name}:{args.tag}  oci:{shown}:{args.tag}  "
          f"(Wasm compat variant: one layer holding {PLUGIN_FILE})")
    print(f"module  {sha256(module)}  {len(module)} bytes  {args.wasm}")
    print(f"digest  {digest}")
    if args.verify:
        print("        (skopeo reads the same digest from the layout)")
    print(f"push:   skopeo copy --preserve-digests oci:{shown}:{args.tag} "
          f"docker://REGISTRY/{args.name}:{args.tag}")
    print(f"pin:    WasmPlugin spec.sha256: \"{digest.split(':', 1)[1]}\"  (the manifest digest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
