"""The module as an OCI image for Istio's WasmPlugin (`make image`,
scripts/oci_image.py), round-tripped through a real registry.

* ``make image`` is reproducible: the script, run again on the same module,
  writes the same bytes and prints the same manifest digest as the layout in
  target/image (which `make e2e` rebuilds first), and that layout is the
  "compat" variant of the Wasm image format, field by field.
* Debian's docker-registry (distribution) runs on a free loopback port with a
  temporary storage directory. skopeo pushes target/image there the way
  examples/istio/README.md says (to the repository and tag of
  examples/istio/wasmplugin.yaml's url), and pulls it back into a fresh
  layout: same manifest, same blobs, and its plugin.wasm is the module byte
  for byte.
* Istio's agent is modelled on the registry's HTTP API, each step citing
  istio/istio pkg/wasm (imagefetcher.go, cache.go): the manifest digest it
  compares `sha256` with is the one `make image` printed (the zero
  placeholder is refused), by tag and by digest, and the module it extracts
  is the module. The extracted file then runs in a real Envoy configured as
  istiod renders examples/istio/wasmplugin.yaml, for one shadowed request.

Not tested here: Istio itself, Kubernetes, pull secrets, TLS to the registry.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import harness
from harness import istio

ROOT = harness.REPO_ROOT
SCRIPT = ROOT / "scripts" / "oci_image.py"
IMAGE_DIR = ROOT / "target" / "image"  # where `make image` writes the layout
ISTIO = ROOT / "examples" / "istio"
LAUNCH = "orders-v2"

# Media types (OCI image spec; Docker's schema 2, which Istio also reads).
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
# The Accept header go-containerregistry's remote.Image sends for a manifest.
ACCEPT = ", ".join([OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST])
WASM_MAGIC = b"\0asm"


def cargo_version() -> str:
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["package"]["version"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the image `make image` builds -------------------------------------------

@dataclass
class Image:
    path: Path  # target/image
    tag: str
    digest: str  # "sha256:<hex>", as printed
    printed: str  # the script's output


def run_script(wasm: Path, out: Path) -> tuple[str, str]:
    """scripts/oci_image.py as `make image` runs it; (its output, the digest it printed)."""
    proc = subprocess.run([sys.executable, str(SCRIPT), "--wasm", str(wasm), "--out", str(out),
                           "--verify"], cwd=ROOT, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    text = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, f"oci_image.py failed:\n{text}"
    m = re.search(r"^digest\s+(sha256:[0-9a-f]{64})$", text, re.M)
    assert m, f"no digest line in:\n{text}"
    return text, m.group(1)


def layout_files(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def layout_manifest(path: Path, tag: str) -> tuple[dict, bytes, str]:
    """(index.json's descriptor for ``tag``, the manifest bytes, its digest)."""
    index = json.loads((path / "index.json").read_text())
    descs = [d for d in index["manifests"]
             if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    assert len(descs) == 1, f"{path}/index.json: {len(descs)} manifests tagged {tag}: {index}"
    desc = descs[0]
    blob = blob_file(path, desc["digest"])
    return desc, blob, "sha256:" + sha256_hex(blob)


def blob_file(path: Path, digest: str) -> bytes:
    algo, hexd = digest.split(":", 1)
    assert algo == "sha256", digest
    data = (path / "blobs" / "sha256" / hexd).read_bytes()
    assert sha256_hex(data) == hexd, f"blob {digest} does not hash to its name"
    return data


@pytest.fixture(scope="module")
def skopeo() -> str:
    import shutil
    path = shutil.which("skopeo")
    if not path:
        pytest.fail("skopeo not found: `make image` / `make image-registry` install Debian's "
                    "skopeo (scripts/install_image_tools.sh)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def image(wasm_path, skopeo, tmp_path_factory) -> Image:
    """target/image, checked to be what `make image` makes of this module now."""
    tag = cargo_version()
    printed, digest = run_script(wasm_path, tmp_path_factory.mktemp("image") / "layout")
    if not (IMAGE_DIR / "index.json").is_file():
        pytest.fail(f"{IMAGE_DIR} not found: run `make image` (make e2e does)", pytrace=False)
    _, _, current = layout_manifest(IMAGE_DIR, tag)
    if current != digest:
        pytest.fail(f"{IMAGE_DIR} holds {current}, but {wasm_path} gives {digest}: "
                    "run `make image` again", pytrace=False)
    return Image(IMAGE_DIR, tag, digest, printed)


# -- what Istio's agent accepts ------------------------------------------------

def istio_extract(manifest: dict, get_blob) -> bytes:
    """The module Istio's agent takes out of a fetched image, or AssertionError
    where it would refuse it. ``get_blob(descriptor)`` returns a blob's bytes.

    istio/istio pkg/wasm/imagefetcher.go: a manifest whose mediaType is
    Docker's schema 2 goes to extractDockerImage; any other is tried as the
    compat variant (extractOCIStandardImage) first: the layer list must not
    be empty (some releases require exactly one layer, others take the
    last), the layer's media type must be OCI's tar+gzip; then
    extractWasmPluginBinary gunzips it and walks the tar to the first entry
    whose base name is plugin.wasm. cache.go then refuses a module without
    the Wasm header (isValidWasmBinary: 8 bytes at least, \\0asm).
    """
    assert manifest.get("mediaType") != DOCKER_MANIFEST, "read as a Docker image, not OCI"
    layers = manifest.get("layers") or []
    assert len(layers) == 1, f"the compat variant has exactly one layer: {layers}"
    layer = layers[-1]
    assert layer["mediaType"] == OCI_LAYER, layer
    data = get_blob(layer)
    module = None
    with tarfile.open(fileobj=gzip.GzipFile(fileobj=io.BytesIO(data)), mode="r|") as tar:
        for member in tar:
            if os.path.basename(member.name) == "plugin.wasm":
                f = tar.extractfile(member)
                assert f is not None, f"{member.name} is not a regular file"
                module = f.read()
                assert len(module) == member.size
                break
    assert module is not None, "plugin.wasm not found in the layer"
    assert len(module) >= 8 and module[:4] == WASM_MAGIC, "not a Wasm binary"
    return module


class ChecksumMismatch(Exception):
    pass


# -- the registry --------------------------------------------------------------

class Registry(harness.ManagedProcess):
    """Debian's docker-registry ("distribution") on a free 127.0.0.1 port,
    storing in ``workdir``/storage; plain HTTP, no auth."""

    poll_interval = 0.1
    program = "docker-registry"
    missing_hint = "(make image-registry installs Debian's docker-registry)"

    def __init__(self, workdir: Path):
        import shutil
        super().__init__(shutil.which("docker-registry") or "/usr/bin/docker-registry",
                         "registry", "registry.log", workdir)
        self.port = harness.free_port()
        self.config_path = self.workdir / "config.yml"
        # JSON is YAML; the packaged /etc/docker/registry/config.yml (port
        # 5000, htpasswd auth) is not used.
        self.config_path.write_text(json.dumps({
            "version": "0.1",
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.workdir / "storage")},
                        "delete": {"enabled": True}},
            "http": {"addr": f"{harness.LOOPBACK}:{self.port}", "secret": "darklaunch-e2e"},
        }, indent=2))

    @property
    def host(self) -> str:
        return f"{harness.LOOPBACK}:{self.port}"

    def command(self) -> list:
        return [self.binary, "serve", str(self.config_path)]

    def is_ready(self) -> bool:
        return self.get("/v2/")[0] == 200

    def get(self, path: str, headers=None) -> tuple:
        """(status, headers, body) of a GET."""
        conn = http.client.HTTPConnection(harness.LOOPBACK, self.port, timeout=30)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def blob(self, repo: str, desc: dict) -> bytes:
        """A blob, checked against its descriptor (go-containerregistry verifies
        the digest of what it reads)."""
        status, _, body = self.get(f"/v2/{repo}/blobs/{desc['digest']}")
        assert status == 200, (status, desc)
        assert "sha256:" + sha256_hex(body) == desc["digest"] and len(body) == desc["size"], desc
        return body

    def istio_fetch(self, repo: str, reference: str, sha256: str) -> tuple[bytes, str]:
        """What Istio's agent does for ``url: oci://<host>/<repo>:<tag>`` (or
        ``@sha256:<hex>``) with ``sha256``: (the module, the manifest digest's hex).

        istio/istio pkg/wasm/imagefetcher.go fetches the image with
        go-containerregistry's remote.Image and takes img.Digest().Hex, the
        sha256 of the manifest as served (checked against Docker-Content-Digest);
        cache.go compares it with the WasmPlugin's sha256 (when not empty) and
        refuses the module on a mismatch ("module downloaded from ... has
        checksum ..., which does not match ..."), before any layer is read.
        """
        status, headers, body = self.get(f"/v2/{repo}/manifests/{reference}", {"Accept": ACCEPT})
        assert status == 200, (status, body[:300])
        digest = sha256_hex(body)
        assert headers.get("docker-content-digest") == "sha256:" + digest, headers
        if sha256 and sha256 != digest:
            raise ChecksumMismatch(f"has checksum {digest}, which does not match: {sha256}")
        manifest = json.loads(body)
        return istio_extract(manifest, lambda desc: self.blob(repo, desc)), digest


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = Registry(tmp_path_factory.mktemp("registry"))
    reg.start(timeout=30)
    yield reg
    reg.stop()


def run(cmd: list, registry: Registry = None, timeout: float = 120) -> str:
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT)
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        log = harness._tail(registry.log_text(), 30) if registry else ""
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{out}\n"
                             f"----- registry log -----\n{log}")
    return out


# -- the example's url ----------------------------------------------------------

@dataclass
class Target:
    host: str  # registry.example.com
    repo: str  # shop/darklaunch
    tag: str
    plugin: dict  # the WasmPlugin of examples/istio/wasmplugin.yaml


@pytest.fixture(scope="module")
def target() -> Target:
    docs = yaml.safe_load_all((ISTIO / "wasmplugin.yaml").read_text())
    (plugin,) = [d for d in docs if d and d.get("kind") == "WasmPlugin"]
    m = re.fullmatch(r"oci://([^/]+)/(.+):([^:/@]+)", plugin["spec"]["url"])
    assert m, f"wasmplugin.yaml: url {plugin['spec']['url']} is not oci://HOST/REPO:TAG"
    return Target(m.group(1), m.group(2), m.group(3), plugin)


@pytest.fixture(scope="module")
def pushed(image, target, registry, skopeo) -> str:
    """target/image pushed to the loopback registry as examples/istio/README.md
    says (its registry host replaced); the repository path."""
    # --insecure-policy: whatever /etc/containers/policy.json says on this machine.
    run([skopeo, "--insecure-policy", "copy", "--preserve-digests", "--dest-tls-verify=false",
         f"oci:{image.path}:{image.tag}", f"docker://{registry.host}/{target.repo}:{target.tag}"],
        registry)
    return target.repo


# -- the tests -------------------------------------------------------------------

def test_make_image_is_reproducible(image, wasm_path, tmp_path):
    """The same module gives the same bytes: the layout built again is
    identical, file by file, to target/image, and the printed digest is the
    manifest's."""
    again = tmp_path / "again"
    printed, digest = run_script(wasm_path, again)
    assert digest == image.digest
    assert layout_files(again) == layout_files(image.path)
    desc, manifest, got = layout_manifest(image.path, image.tag)
    assert got == desc["digest"] == image.digest and desc["size"] == len(manifest)
    assert f"image   darklaunch:{image.tag}" in printed
    module_line = f"module  sha256:{sha256_hex(wasm_path.read_bytes())}"
    assert module_line in printed
    # what the README tells users to run and to pin
    assert "skopeo copy --preserve-digests oci:" in printed
    assert f'spec.sha256: "{digest.split(":")[1]}"' in printed


def test_the_layout_is_the_compat_variant(image, wasm_path):
    """Field by field: an OCI image layout whose one manifest has one gzipped
    tar layer holding plugin.wasm (the module), the compat annotation, and a
    config whose diff_id is the tar's digest; nothing that records a time."""
    files = layout_files(image.path)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    assert len(index["manifests"]) == 1
    assert index["manifests"][0]["mediaType"] == OCI_MANIFEST
    desc, raw, _ = layout_manifest(image.path, image.tag)
    manifest = json.loads(raw)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == OCI_MANIFEST
    # the compat variant asks for this annotation when the layer is OCI tar+gzip
    assert manifest["annotations"] == {"module.wasm.image/variant": "compat"}
    assert manifest["config"]["mediaType"] == OCI_CONFIG
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == OCI_LAYER
    blobs = {"blobs/sha256/" + d["digest"].split(":")[1]
             for d in (desc, manifest["config"], layer)}
    assert set(files) == {"oci-layout", "index.json"} | blobs, "nothing else in the layout"

    config_raw = blob_file(image.path, manifest["config"]["digest"])
    assert len(config_raw) == manifest["config"]["size"]
    config = json.loads(config_raw)
    gz = blob_file(image.path, layer["digest"])
    assert len(gz) == layer["size"]
    assert gz[:3] == b"\x1f\x8b\x08" and gz[4:8] == b"\0\0\0\0", "gzip header without mtime"
    tar = gzip.decompress(gz)
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + sha256_hex(tar)]}
    assert (config["os"], config["architecture"]) == ("wasip1", "wasm")
    assert "created" not in config and "history" not in config

    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        (member,) = tf.getmembers()
        assert member.name == "plugin.wasm" and member.isreg()
        assert (member.mode, member.mtime, member.uid, member.gid) == (0o644, 0, 0, 0)
        assert (member.uname, member.gname) == ("", "")
        assert tf.extractfile(member).read() == wasm_path.read_bytes()
    assert istio_extract(manifest, lambda d: blob_file(image.path, d["digest"])) \
        == wasm_path.read_bytes()


def test_round_trip_through_a_registry(image, pushed, target, registry, skopeo, wasm_path,
                                       tmp_path):
    """Pushed with skopeo, the registry serves the same manifest under the
    tag; skopeo pulls it back into a fresh layout with the same manifest and
    blobs, and that layout's plugin.wasm is the module, byte for byte."""
    status, _, body = registry.get(f"/v2/{pushed}/tags/list")
    assert status == 200 and json.loads(body) == {"name": pushed, "tags": [target.tag]}
    inspected = json.loads(run([skopeo, "inspect", "--tls-verify=false",
                                f"docker://{registry.host}/{pushed}:{target.tag}"], registry))
    assert inspected["Digest"] == image.digest
    assert (inspected["Os"], inspected["Architecture"]) == ("wasip1", "wasm")

    pulled = tmp_path / "pulled"
    run([skopeo, "--insecure-policy", "copy", "--preserve-digests", "--src-tls-verify=false",
         f"docker://{registry.host}/{pushed}:{target.tag}", f"oci:{pulled}:{target.tag}"],
        registry)
    desc, raw, digest = layout_manifest(pulled, target.tag)
    assert digest == desc["digest"] == image.digest, "the manifest digest make image printed"
    _, ours, _ = layout_manifest(image.path, image.tag)
    assert raw == ours, "the registry and skopeo kept the manifest byte for byte"
    manifest = json.loads(raw)
    for d in [manifest["config"]] + manifest["layers"]:
        assert blob_file(pulled, d["digest"]) == blob_file(image.path, d["digest"])
    module = istio_extract(manifest, lambda d: blob_file(pulled, d["digest"]))
    assert sha256_hex(module) == sha256_hex(wasm_path.read_bytes())
    assert module == wasm_path.read_bytes()


def test_istio_pins_the_manifest_digest_make_image_printed(image, pushed, target, registry,
                                                           wasm_path):
    """The WasmPlugin's sha256 for an oci:// URL is the manifest digest
    `make image` printed, not the module's checksum: Istio's agent accepts the
    first, refuses the module's checksum and the example's zero placeholder,
    and takes the module by tag and by digest (url ...@sha256:<hex>)."""
    hexd = image.digest.split(":")[1]
    module, digest = registry.istio_fetch(pushed, target.tag, hexd)
    assert digest == hexd and module == wasm_path.read_bytes()
    assert registry.istio_fetch(pushed, target.tag, "")[1] == hexd  # no pin: any digest
    assert registry.istio_fetch(pushed, image.digest, "")[0] == module  # oci://...@sha256:<hex>
    placeholder = target.plugin["spec"]["sha256"]
    assert placeholder in ("0" * 64, "")
    for wrong in {sha256_hex(module), placeholder} - {""}:
        with pytest.raises(ChecksumMismatch):
            registry.istio_fetch(pushed, target.tag, wrong)


def test_the_istio_example_documents_these_steps(image, target):
    """examples/istio/README.md pushes with the command the test ran, to where
    wasmplugin.yaml points, and wasmplugin.yaml's tag is Cargo.toml's version."""
    assert target.tag == image.tag == cargo_version()
    readme = (ISTIO / "README.md").read_text()
    push = (f"skopeo copy --preserve-digests oci:target/image:{target.tag} \\\n"
            f"    docker://{target.host}/{target.repo}:{target.tag}")
    assert push in readme, f"examples/istio/README.md does not show:\n{push}"
    assert "make image" in readme
    assert target.plugin["spec"].get("imagePullPolicy") in ("IfNotPresent", "Always")


def test_the_pulled_module_runs_in_envoy(image, pushed, target, registry, envoy_path, tmp_path,
                                         upstream_factory):
    """The module Istio's agent would take from the registry, loaded by a real
    Envoy configured as istiod renders examples/istio/wasmplugin.yaml: it
    announces its configuration, Envoy counts its VMs, and one request from a
    users.always user is answered by the primary and shadowed once."""
    module, _ = registry.istio_fetch(pushed, target.tag, image.digest.split(":")[1])
    fetched = tmp_path / "fetched" / "plugin.wasm"
    fetched.parent.mkdir()
    fetched.write_bytes(module)

    spec = target.plugin["spec"]
    (launch,) = spec["pluginConfig"]["launches"]
    assert launch["name"] == LAUNCH

    def reply(tag):
        return lambda req: harness.Reply.json({"path": req.path_only, "v": tag})

    v1 = upstream_factory(reply("v1"), "v1")
    v2 = upstream_factory(reply("v1"), "v2")
    v1_copy = upstream_factory(reply("v1"), "v1-copy")
    admin, listener = harness.free_port(), harness.free_port()
    cfg = istio.istio_bootstrap(target.plugin, fetched, admin, listener, primary=v1,
                                clusters={launch["dark_cluster"]: v2,
                                          launch["noise"]["cluster"]: v1_copy})
    env = harness.Envoy(cfg, admin, listener, envoy_path=envoy_path,
                        workdir=tmp_path / "envoy", name="envoy-oci")
    try:
        env.start()
        env.wait_log(r"darklaunch: configured 1 launches: orders-v2 \(dark cluster "
                     + re.escape(launch["dark_cluster"]))
        # Envoy's live V8 Wasm VMs (Envoy 1.36 and 1.40); 1.40 also counts
        # them as wasm.wasm_vm_count, which 1.36 does not have.
        wasm = env.stats("wasm.")
        assert wasm.get("wasm.envoy.wasm.runtime.v8.active", 0) >= 1, wasm
        assert wasm.get("wasm.wasm_vm_count", 1) >= 1, wasm
        r = env.request("/api/orders/1", headers={"x-user-id": spec["pluginConfig"]["launches"][0]
                                                  ["users"]["always"][0]})
        assert r.status == 200 and r.json() == {"path": "/api/orders/1", "v": "v1"}
        stats = env.wait_settled(LAUNCH)
        assert stats["matched"] == 1 and stats["shadowed"] == 1 and stats["forced"] == 1, stats
        assert stats["compared"] == 1 and stats.get("mismatch", 0) == 0, stats
        assert v2.wait_for_count(1)[0].header("x-darklaunch-shadow") == LAUNCH
    except BaseException:
        sys.stderr.write(f"\n----- {env.name} log -----\n{harness._tail(env.log_text(), 60)}\n")
        raise
    finally:
        env.stop()
