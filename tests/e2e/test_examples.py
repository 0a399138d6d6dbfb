"""The shipped examples (examples/): parsed, validated against Istio's
WasmPlugin CRD, checked against each other, and their darklaunch
configurations loaded by the real module in Envoy, as istiod would hand them
over. Istio itself is not run: what Istio does with these resources is
modelled in tests/e2e/harness/istio.py (each step cites istio/istio)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

from typing import Optional

import pytest

import harness
from harness import istio

sys.path.insert(0, str(harness.REPO_ROOT / "tests"))

ISTIO = harness.REPO_ROOT / "examples" / "istio"
LAUNCH = "orders-v2"
ZERO_SHA = "0" * 64
CONFIGMAP_LIMIT = 1024 * 1024  # Kubernetes: a ConfigMap's data, in bytes
# The stats Istio's bootstrap always keeps, whatever proxyStatsMatcher adds
# (pkg/bootstrap/config.go: v2Prefixes "reporter=", the required prefixes
# "cluster_manager,listener_manager,server,cluster.xds-grpc,wasm", v2Suffix
# "component,istio"; the rbac suffixes; the vhost route regex). "wasm" is a
# plain prefix, so it keeps darklaunch's wasmcustom.darklaunch.* stats too.
ISTIO_STATS_PREFIXES = ["reporter=", "cluster_manager", "listener_manager", "server",
                        "cluster.xds-grpc", "wasm", "component", "istio"]
ISTIO_STATS_SUFFIXES = ["rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied"]
ISTIO_STATS_REGEXES = [r"vhost\..*\.route\..*"]


@pytest.fixture(scope="session")
def vc():
    """What the Envoy tests below take from the former tests/validate_config.py
    (``darklaunch-report validate`` replaced its CLI): ``envoy --mode validate``
    of a WasmPlugin's filter as istiod renders it, and darklaunch's refusal
    lines in Envoy's output. Fails early without PyYAML and jsonschema."""
    try:
        import jsonschema  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"{exc}: the example tests need PyYAML and jsonschema; `make test` "
                    "installs them into .venv (pip install pyyaml jsonschema)", pytrace=False)

    def validate_in_envoy(plugin: dict, wasm_path=None, envoy_path=None) -> tuple:
        """(exit code, output) of ``envoy --mode validate`` with the WasmPlugin's filter."""
        cfg = istio.istio_bootstrap(plugin, wasm_path or harness.wasm_file())
        return harness.Envoy.validate(cfg, envoy_path)

    def config_errors_from_output(out: str) -> list:
        """darklaunch's refusal lines (``darklaunch: invalid configuration: <path>: ...``)."""
        found = []
        for ln in out.splitlines():
            m = re.search(r"darklaunch: ((?:invalid configuration|configuration).*)$", ln)
            if m and "[error]" in ln:
                found.append("darklaunch: " + m.group(1))
        return found

    return types.SimpleNamespace(validate_in_envoy=validate_in_envoy,
                                 config_errors_from_output=config_errors_from_output)


@pytest.fixture(scope="session")
def docs(vc) -> dict:
    """{path relative to examples/istio: [documents]} for every YAML file there."""
    return {str(p.relative_to(ISTIO)): istio.load_docs(p) for p in istio.example_files(ISTIO)}


def _all(docs: dict, kind: str) -> list:
    return [(f, d) for f, ds in docs.items() for d in ds if d.get("kind") == kind]


def _one(docs: dict, file: str, kind: str, name: str = None) -> dict:
    found = [d for d in docs[file] if d.get("kind") == kind
             and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{file}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _plugins(docs: dict) -> list:
    return _all(docs, "WasmPlugin")


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _pod_labels(docs: dict) -> dict:
    """{Deployment name: pod template labels} (the last definition of each name wins)."""
    return {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for _, d in _all(docs, "Deployment")}


# --------------------------------------------------------------------------
# Parsing and schemas
# --------------------------------------------------------------------------

def test_every_example_yaml_parses(vc):
    """Every YAML file under examples/ parses; Kubernetes objects (all of
    examples/istio/, and any document with an apiVersion) have the fields
    and name the API server requires."""
    files = istio.example_files()
    assert any(p.parent == ISTIO for p in files), files
    for path in files:
        docs = istio.load_docs(path)
        assert docs, f"{path}: no document"
        for d in docs:
            assert isinstance(d, dict), f"{path}: a document is not a mapping"
            if path.parent != ISTIO and "apiVersion" not in d:
                continue  # another tool's file (e.g. a Prometheus config)
            for key in ("apiVersion", "kind", "metadata"):
                assert key in d, f"{path}: {d.get('kind')} without {key}"
            assert re.fullmatch(istio.DNS1123_SUBDOMAIN, d["metadata"].get("name", "")), path


def test_the_istio_examples_are_all_there(docs):
    assert set(docs) >= {"wasmplugin.yaml", "wasmplugin-file.yaml", "destinationrule.yaml",
                         "telemetry.yaml", "workload.yaml", "route-scoped.yaml"}
    assert (ISTIO / "Dockerfile").is_file() and (ISTIO / "README.md").is_file()
    assert len(_plugins(docs)) == 2


def test_wasmplugins_match_the_crd_schema(vc, docs):
    validator = istio.crd_validator()
    plugins = _plugins(docs)
    assert plugins
    for file, plugin in plugins:
        assert istio.schema_errors(plugin, validator) == [], file


def test_the_crd_schema_check_catches_mistakes(vc, docs):
    """The schema mapping bites: Envoy's FAIL_CLOSED spelling, unknown fields
    (also misspelled ones inside spec), CEL rules, int32, list-map keys."""
    validator = istio.crd_validator()
    good = _one(docs, "wasmplugin.yaml", "WasmPlugin")

    def errors(mutate) -> str:
        bad = copy.deepcopy(good)
        mutate(bad["spec"])
        return "\n".join(istio.schema_errors(bad, validator))

    assert "spec.failStrategy" in errors(lambda s: s.update(failStrategy="FAIL_CLOSED"))
    assert "'plugin_config' was unexpected" in errors(lambda s: s.update(plugin_config={}))
    assert "'version' was unexpected" in errors(
        lambda s: s["match"][0]["ports"][0].update(version=1))
    assert "url must have schema" in errors(lambda s: s.update(url="ftp://h/x.wasm"))
    assert "only one of targetRefs or selector" in errors(
        lambda s: s.update(targetRefs=[{"kind": "Service", "name": "orders"}]))
    assert "wildcard not allowed" in errors(
        lambda s: s["selector"]["matchLabels"].update(app="ord*"))
    assert "spec.sha256" in errors(lambda s: s.update(sha256="sha256:" + ZERO_SHA))
    assert "spec.priority" in errors(lambda s: s.update(priority=2**31))
    assert "duplicate entry" in errors(
        lambda s: s["match"][0]["ports"].append({"number": 8080}))
    assert "spec.phase" in errors(lambda s: s.update(phase="AUTHZ_LATE"))
    assert "'url' is a required property" in errors(lambda s: s.pop("url"))
    assert "spec.pluginConfig" in errors(lambda s: s.update(pluginConfig=["not", "an object"]))


def test_every_crd_cel_rule_is_implemented(vc):
    """A newer CRD with a rule the mapping does not know must not pass unchecked."""
    found = {istio._norm_rule(r["rule"]) for r in _walk_rules(istio.crd_openapi_schema())}
    assert len(found) == 7 and found <= set(istio.CEL_RULES), found - set(istio.CEL_RULES)


def _walk_rules(node):
    if isinstance(node, dict):
        yield from node.get("x-kubernetes-validations", [])
        for v in node.values():
            yield from _walk_rules(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_rules(v)


# --------------------------------------------------------------------------
# The resources agree with each other
# --------------------------------------------------------------------------

def test_destinationrule_shape(docs):
    drs = _all(docs, "DestinationRule")
    assert drs
    for file, dr in drs:
        assert dr["apiVersion"] in ("networking.istio.io/v1", "networking.istio.io/v1beta1",
                                    "networking.istio.io/v1alpha3"), file
        spec = dr["spec"]
        assert isinstance(spec.get("host"), str) and spec["host"], file
        names = [s["name"] for s in spec.get("subsets", [])]
        assert names and len(names) == len(set(names)), file
        for s in spec["subsets"]:
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", s["name"]), s
            assert isinstance(s.get("labels"), dict) and s["labels"], s


def _fqdn(host: str, namespace: str) -> str:
    return host if "." in host else f"{host}.{namespace}.svc.cluster.local"


def test_every_named_cluster_is_generated_by_the_examples(vc, docs):
    """outbound|PORT|SUBSET|HOST exists in a sidecar only when HOST is a
    Service with PORT and, for a subset, a DestinationRule defines it; its
    pods exist (some Deployment matches Service selector + subset labels)."""
    services = {_fqdn(d["metadata"]["name"], d["metadata"]["namespace"]): d
                for _, d in _all(docs, "Service")}
    rules = {_fqdn(d["spec"]["host"], d["metadata"]["namespace"]): d
             for _, d in _all(docs, "DestinationRule")}
    pods = _pod_labels(docs)
    for file, plugin in _plugins(docs):
        names = istio.plugin_clusters(plugin["spec"]["pluginConfig"])
        assert names, file
        for name in names:
            parsed = istio.parse_istio_cluster(name)
            assert parsed and parsed[0] == "outbound", f"{file}: {name} is not an Istio cluster"
            _, port, subset, host = parsed
            svc = services.get(host)
            assert svc, f"{file}: {name}: no Service {host} in the examples"
            assert port in [p["port"] for p in svc["spec"]["ports"]], name
            labels = dict(svc["spec"]["selector"])
            if subset:
                dr = rules.get(host)
                assert dr, f"{file}: {name}: no DestinationRule for {host}"
                sub = {s["name"]: s for s in dr["spec"]["subsets"]}.get(subset)
                assert sub, f"{file}: {name}: DestinationRule {host} has no subset {subset}"
                labels.update(sub["labels"])
            assert any(_selects(labels, pl) for pl in pods.values()), \
                f"{name}: no Deployment has pods labelled {labels}"


def test_the_service_port_is_http(docs):
    svc = _one(docs, "workload.yaml", "Service", "orders")
    (port,) = [p for p in svc["spec"]["ports"] if p["port"] == 8080]
    assert port.get("appProtocol") == "http" or re.match(r"^http(-|$)", port["name"])


def test_plugin_runs_on_the_live_pods_only_and_live_traffic_stays_there(vc, docs):
    pods = _pod_labels(docs)
    vs = _one(docs, "destinationrule.yaml", "VirtualService")
    dr = _one(docs, "destinationrule.yaml", "DestinationRule")
    subsets = {s["name"]: s["labels"] for s in dr["spec"]["subsets"]}
    for file, plugin in _plugins(docs):
        spec = plugin["spec"]
        selected = {n for n, labels in pods.items()
                    if _selects(spec["selector"]["matchLabels"], labels)}
        assert selected == {"orders-v1"}, (file, selected)
        assert spec["match"] == [{"mode": "SERVER", "ports": [{"number": 8080}]}], file
        assert spec["failStrategy"] == "FAIL_OPEN" and spec["phase"] == "STATS", file
        assert plugin["metadata"]["namespace"] == "shop", file
        for launch in spec["pluginConfig"]["launches"]:
            dark_subset = istio.parse_istio_cluster(launch["dark_cluster"])[2]
            noise_subset = istio.parse_istio_cluster(launch["noise"]["cluster"])[2]
            # the dark subset selects orders-v2 only, the noise subset the live pods
            assert {n for n, pl in pods.items() if _selects(subsets[dark_subset], pl)} \
                == {"orders-v2"}
            assert {n for n, pl in pods.items() if _selects(subsets[noise_subset], pl)} \
                == selected
            # credentials do not reach the dark side
            removed = {h.lower() for h in launch["request_headers"]["remove"]}
            assert {"authorization", "cookie"} <= removed
    # every live request goes to the subset the plugin runs on, none to v2
    routes = [r for http in vs["spec"]["http"] for r in http["route"]]
    assert [r["destination"].get("subset") for r in routes] == ["v1"]
    assert routes[0].get("weight", 100) == 100
    assert _fqdn(vs["spec"]["hosts"][0], "shop") == _fqdn(dr["spec"]["host"], "shop")


def test_the_two_variants_agree(docs):
    oci = _one(docs, "wasmplugin.yaml", "WasmPlugin")
    local = _one(docs, "wasmplugin-file.yaml", "WasmPlugin")
    assert oci["metadata"] == local["metadata"], "same name: one replaces the other"
    for key in ("selector", "pluginName", "type", "phase", "priority", "failStrategy",
                "match", "pluginConfig"):
        assert oci["spec"].get(key) == local["spec"].get(key), key
    assert oci["spec"]["url"].startswith("oci://")
    assert local["spec"]["url"].startswith("file:///")
    assert "sha256" not in local["spec"], "Istio ignores sha256 for file://"

    # The file variant's orders-v1 is workload.yaml's plus the mount annotations.
    base = _one(docs, "workload.yaml", "Deployment", "orders-v1")
    mounted = _one(docs, "wasmplugin-file.yaml", "Deployment", "orders-v1")
    ann = dict(mounted["spec"]["template"]["metadata"]["annotations"])
    volumes = json.loads(ann.pop("sidecar.istio.io/userVolume"))
    mounts = json.loads(ann.pop("sidecar.istio.io/userVolumeMount"))
    stripped = copy.deepcopy(mounted)
    stripped["spec"]["template"]["metadata"]["annotations"] = ann
    assert stripped == base
    # {volume name: volume} and {volume name: mount}, as the injector ranges over them
    assert set(volumes) == set(mounts) and len(volumes) == 1
    (vol_name,) = volumes
    cm = volumes[vol_name]["configMap"]["name"]
    mount = mounts[vol_name]["mountPath"].rstrip("/")
    path = local["spec"]["url"][len("file://"):]
    assert path.startswith(mount + "/"), (path, mount)
    key = path[len(mount) + 1:]
    # the documented `kubectl create configmap` makes that ConfigMap and key
    text = (ISTIO / "wasmplugin-file.yaml").read_text()
    assert f"create configmap {cm}" in text and f"--from-file={key}=" in text
    readme = (ISTIO / "README.md").read_text()
    assert f"create configmap {cm}" in readme and f"--from-file={key}=" in readme


def test_sha256_placeholder_is_documented(docs):
    """For oci:// Istio compares sha256 with the image manifest digest, which
    only exists once the image is pushed: the example carries a placeholder
    and says where the digest comes from."""
    spec = _one(docs, "wasmplugin.yaml", "WasmPlugin")["spec"]
    assert spec["sha256"] in (ZERO_SHA, "") or re.fullmatch(r"[a-f0-9]{64}", spec["sha256"])
    text = (ISTIO / "wasmplugin.yaml").read_text()
    readme = (ISTIO / "README.md").read_text()
    for doc in (text, readme):
        assert "crane digest" in doc and "manifest" in doc.lower()
    assert "sha256sum" in readme


def test_module_fits_the_file_variant(wasm_path):
    """The file:// variant ships the module in a ConfigMap (1 MiB of data at most)."""
    data = wasm_path.read_bytes()
    assert data[:4] == b"\0asm"
    assert len(data) < CONFIGMAP_LIMIT - 4096, (
        f"{wasm_path} is {len(data)} bytes: too big for the ConfigMap of "
        "examples/istio/wasmplugin-file.yaml; document the image volume instead")
    # what `sha256sum` prints for the https:// form (informational)
    assert len(hashlib.sha256(data).hexdigest()) == 64


def test_dockerfile_is_a_compat_wasm_image():
    lines = [ln.strip() for ln in (ISTIO / "Dockerfile").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    instr = [ln.split()[0].upper() for ln in lines]
    assert lines[0].split() == ["FROM", "scratch"]
    assert instr.count("COPY") + instr.count("ADD") == 1, "exactly one layer"
    assert "RUN" not in instr
    (copy_line,) = [ln for ln in lines if ln.upper().startswith("COPY")]
    src, dst = copy_line.split()[1:]
    assert dst in ("./plugin.wasm", "/plugin.wasm", "plugin.wasm")
    # the documented build context + the COPY source is the module `make build` writes
    text = (ISTIO / "Dockerfile").read_text()
    m = re.search(r"docker build -f examples/istio/Dockerfile \\\n#\s+-t \S+ (\S+)", text)
    assert m, "the Dockerfile documents its docker build command"
    assert harness.REPO_ROOT / m.group(1) / src == harness.DEFAULT_WASM


def test_stats_settings_are_the_projects(vc, docs):
    """telemetry.yaml's ConfigMap carries exactly envoy/stats_config.yaml (the
    harness's STATS_TAGS and the latency buckets), and the live pods point at
    it and keep the stats."""
    cm = _one(docs, "telemetry.yaml", "ConfigMap")
    # Istio mounts the ConfigMap and reads this key (ISTIO_BOOTSTRAP_OVERRIDE=
    # /etc/istio/custom-bootstrap/custom_bootstrap.json in the injection template).
    override = json.loads(cm["data"]["custom_bootstrap.json"])
    assert override == harness.stats_config()
    assert override["stats_config"]["stats_tags"] == harness.STATS_TAGS
    for file in ("workload.yaml", "wasmplugin-file.yaml"):
        dep = _one(docs, file, "Deployment", "orders-v1")
        ann = dep["spec"]["template"]["metadata"]["annotations"]
        assert ann["sidecar.istio.io/bootstrapOverride"] == cm["metadata"]["name"]
        assert dep["metadata"]["namespace"] == cm["metadata"]["namespace"]
        assert _inclusion_prefixes(docs, file) == ["wasmcustom.darklaunch"]


def _inclusion_prefixes(docs: dict, file: str = "workload.yaml") -> list:
    import yaml
    dep = _one(docs, file, "Deployment", "orders-v1")
    proxy = yaml.safe_load(dep["spec"]["template"]["metadata"]["annotations"][
        "proxy.istio.io/config"])
    return proxy["proxyStatsMatcher"]["inclusionPrefixes"]


# --------------------------------------------------------------------------
# With the real module in Envoy
# --------------------------------------------------------------------------

def test_istio_renders_numbers_as_doubles(vc):
    assert istio.istio_plugin_config_json({"a": 1000, "b": 5.0, "c": 0.25, "d": [True, None]}) \
        == '{"a":1000,"b":5,"c":0.25,"d":[true,null]}'


@pytest.mark.parametrize("file", ["wasmplugin.yaml", "wasmplugin-file.yaml"])
def test_plugin_config_is_accepted_by_the_module(vc, docs, file, envoy_path, wasm_path):
    plugin = _one(docs, file, "WasmPlugin")
    cfg = istio.istio_bootstrap(plugin, wasm_path)
    clusters = [c["name"] for c in cfg["static_resources"]["clusters"]]
    assert "outbound|8080|v2|orders.shop.svc.cluster.local" in clusters
    assert "outbound|8080|v1|orders.shop.svc.cluster.local" in clusters
    code, out = harness.Envoy.validate(cfg, envoy_path)
    assert code == 0, out
    assert not vc.config_errors_from_output(out)


@pytest.mark.parametrize("path,value,message", [
    (["launches", 0, "sample", "percent"], 150, "must be between 0 and 100"),
    (["launches", 0, "noise", "percent"], -1, "must be between 0 and 100"),
    (["launches", 0, "compare", "ignored"], ["/meta"], "unknown field `ignored`"),
    (["launches", 0, "timeout_ms"], 0, "must be between 1 and 60000"),
    # YAML 1.1: an unquoted `off` is a boolean, not the string darklaunch wants
    (["launches", 0, "request_headers", "set", "x-env"], False, "must be a string"),
])
def test_broken_plugin_config_is_rejected_with_its_path(vc, docs, envoy_path, wasm_path,
                                                        path, value, message):
    plugin = copy.deepcopy(_one(docs, "wasmplugin.yaml", "WasmPlugin"))
    # The default policy (refuse), so that Envoy's validate mode fails on it.
    plugin["spec"].pop("vmConfig")
    node = plugin["spec"]["pluginConfig"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    # still a valid WasmPlugin: only darklaunch can tell
    assert istio.schema_errors(plugin) == []
    code, out = vc.validate_in_envoy(plugin, wasm_path, envoy_path)
    assert code != 0, out
    json_path = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")
    errors = vc.config_errors_from_output(out)
    assert any(json_path in e and message in e for e in errors), (json_path, errors or out)
    assert "Unable to create Wasm plugin shop.darklaunch" in out


def _json_reply(tag: str):
    def handler(req: harness.Request) -> harness.Reply:
        return harness.Reply.json({"path": req.path_only, "items": [{"id": 1}], "v": tag})
    return handler


def _istio_like_envoy(vc, docs, tmp_path, envoy_path, wasm_path, upstreams: dict,
                      inclusion_prefixes: list, name: str,
                      matcher: Optional[list] = None) -> harness.Envoy:
    """Envoy configured the way an Istio sidecar of an orders-v1 pod would be
    for darklaunch: the WasmPlugin's filter as istiod renders it, clusters
    named the Istio way, Istio's stats_matcher with the pod's
    proxyStatsMatcher prefixes, and telemetry.yaml's custom_bootstrap.json
    merged with --config-yaml, as the agent does (pkg/envoy/proxy.go)."""
    plugin = _one(docs, "wasmplugin.yaml", "WasmPlugin")
    cm = _one(docs, "telemetry.yaml", "ConfigMap")
    admin, listener = harness.free_port(), harness.free_port()
    cfg = istio.istio_bootstrap(plugin, wasm_path, admin, listener, primary=upstreams["primary"],
                             clusters={k: v for k, v in upstreams.items() if k != "primary"},
                             stats_tags=[{"tag_name": "base_tag", "regex": r"^base\.((.+?)\.)"}])
    cfg["stats_config"]["stats_matcher"] = {"inclusion_list": {"patterns": matcher or [
        *({"prefix": p} for p in ISTIO_STATS_PREFIXES + inclusion_prefixes),
        *({"suffix": s} for s in ISTIO_STATS_SUFFIXES),
        *({"safe_regex": {"regex": r}} for r in ISTIO_STATS_REGEXES)]}}
    override = json.dumps(json.loads(cm["data"]["custom_bootstrap.json"]))
    return harness.Envoy(cfg, admin, listener, envoy_path=envoy_path,
                         extra_args=["--config-yaml", override],
                         workdir=tmp_path / name, name=name)


def test_istio_example_shadows_and_labels_stats(vc, docs, envoy_path, wasm_path, tmp_path,
                                                upstream_factory):
    plugin = _one(docs, "wasmplugin.yaml", "WasmPlugin")
    launch = plugin["spec"]["pluginConfig"]["launches"][0]
    assert launch["name"] == LAUNCH
    v1 = upstream_factory(_json_reply("v1"), "v1")
    v2 = upstream_factory(_json_reply("v1"), "v2")  # answers like v1: no mismatch
    v1_copy = upstream_factory(_json_reply("v1"), "v1-copy")
    env = _istio_like_envoy(vc, docs, tmp_path, envoy_path, wasm_path, {
        "primary": v1,
        launch["dark_cluster"]: v2,
        launch["noise"]["cluster"]: v1_copy,
    }, _inclusion_prefixes(docs), "istio-like")
    try:
        env.start()
        # the override was merged into the bootstrap, not put in its place
        boot = next(c for c in env.config_dump()["configs"]
                    if c["@type"].endswith("BootstrapConfigDump"))["bootstrap"]
        assert [t["tag_name"] for t in boot["stats_config"]["stats_tags"]] \
            == ["base_tag"] + [t["tag_name"] for t in harness.STATS_TAGS]

        secrets = {"authorization": "Bearer user-token", "cookie": "session=s1",
                   "x-api-key": "k"}
        users = [f"user-{i}" for i in range(40)]
        sampled = [u for u in users if harness.sticky_sampled(LAUNCH, u, 5)]
        with env.client() as c:
            for i in range(3):  # users.always
                r = c.get(f"/api/orders/{i}", headers=dict(secrets, **{"x-user-id": "qa-1"}))
                assert r.status == 200 and r.json()["v"] == "v1"
            for u in users:  # sticky 5%
                r = c.get("/api/orders/7", headers={"x-user-id": u})
                assert r.status == 200 and r.json()["v"] == "v1"
            assert c.request("POST", "/api/orders", body=b"{}").status == 200  # GET/HEAD only
            assert c.get("/health").status == 200  # another path
        shadowed = 3 + len(sampled)
        stats = env.wait_settled(LAUNCH)
        assert stats["matched"] == 43
        assert stats["shadowed"] == shadowed and stats["forced"] == 3
        assert stats.get("skipped.sampled_out", 0) == 40 - len(sampled)
        assert stats["compared"] == shadowed and stats.get("mismatch", 0) == 0

        dark = v2.wait_for_count(shadowed)
        assert len(dark) == shadowed
        for req in dark:
            assert req.header("x-darklaunch-shadow") == LAUNCH
            assert req.header("host") == launch["dark_authority"]
            assert req.header("x-env") == "dark"
            for h in secrets:
                assert req.header(h) is None, f"{h} reached the dark side"
        assert all(req.header("x-darklaunch-shadow") == LAUNCH for req in v1_copy.requests())
        assert v1.count() == 45  # every client request, once

        samples = harness.parse_prometheus(env.prometheus())
        got = {(n, tuple(sorted(lab.items()))): v for n, lab, v in samples
               if n.startswith("darklaunch_")}
        L = ("launch", LAUNCH)
        assert got[("darklaunch_shadowed", (L,))] == str(shadowed)
        assert got[("darklaunch_forced", (L,))] == "3"
        assert got[("darklaunch_skipped", (L, ("reason", "sampled_out")))] \
            == str(40 - len(sampled))
        assert got[("darklaunch_dark_response", (("class", "2xx"), L))] == str(shadowed)
        assert all(lab.get("launch") == LAUNCH for n, lab, _ in samples
                   if n.startswith("darklaunch_") and n != "darklaunch_config_invalid")
    finally:
        env.stop()


def test_istios_default_stats_matcher_keeps_the_stats(vc, docs, envoy_path, wasm_path,
                                                      tmp_path, upstream_factory):
    """Without workload.yaml's proxyStatsMatcher the stats still show: Istio
    always keeps the prefix "wasm", which wasmcustom.darklaunch.* starts
    with. (An Envoy matcher that lacks it, as a mesh may narrow it to, drops
    every one of them: the last part.)"""
    launch = _one(docs, "wasmplugin.yaml", "WasmPlugin")["spec"]["pluginConfig"]["launches"][0]
    v1 = upstream_factory(_json_reply("v1"), "v1")
    v2 = upstream_factory(_json_reply("v1"), "v2")
    env = _istio_like_envoy(vc, docs, tmp_path, envoy_path, wasm_path, {
        "primary": v1, launch["dark_cluster"]: v2, launch["noise"]["cluster"]: None,
    }, [], "istio-default-stats")
    try:
        env.start()
        r = env.request("/api/orders/1", headers={"x-user-id": "qa-1"})
        assert r.status == 200
        v2.wait_for_count(1)
        env.wait_settled(LAUNCH)
        assert env.stat(f"darklaunch.{LAUNCH}.shadowed") == 1
        assert ("darklaunch_shadowed", {"launch": LAUNCH}, "1") in harness.parse_prometheus(
            env.prometheus())
    finally:
        env.stop()
    narrowed = _istio_like_envoy(vc, docs, tmp_path, envoy_path, wasm_path, {
        "primary": v1, launch["dark_cluster"]: v2, launch["noise"]["cluster"]: None,
    }, [], "istio-narrowed-stats", matcher=[{"prefix": "reporter="}, {"prefix": "server"}])
    try:
        narrowed.start()
        assert narrowed.request("/api/orders/1", headers={"x-user-id": "qa-1"}).status == 200
        v2.wait_for_count(2)
        assert narrowed.stats("wasmcustom.") == {}
    finally:
        narrowed.stop()


VALIDATE_DATA = harness.REPO_ROOT / "tests" / "data" / "validate"


def _run_validate(*args, stdin: str = None) -> subprocess.CompletedProcess:
    """``darklaunch-report validate ARGS`` from the repository root (``make
    report`` builds it; DARKLAUNCH_REPORT points at it)."""
    exe = Path(os.environ.get("DARKLAUNCH_REPORT")
               or harness.REPO_ROOT / "target" / "debug" / "darklaunch-report")
    if not exe.is_file():
        pytest.fail(f"darklaunch-report not found at {exe}: run `make report` "
                    "or set DARKLAUNCH_REPORT", pytrace=False)
    return subprocess.run([str(exe), "validate", *map(str, args)], cwd=harness.REPO_ROOT,
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_validate_config_cli(tmp_path, envoy_path, wasm_path):
    """``darklaunch-report validate``: the filter's own parser (no Envoy, no
    module) over every shape a configuration comes in. The shipped examples
    pass; each file of the bad corpus (tests/data/validate/) gives exactly
    the expected lines, with the library's JSON paths; every single-rule
    mutation of tests/data/bad_configs.json is refused, as a JSON file and as
    a WasmPlugin; the three warnings do not fail the run unless asked; exit
    codes 0/1/2. Envoy refuses the bad Envoy corpus the same way."""
    # The shipped examples and the demo: valid, no warning.
    shipped = sorted(p.relative_to(harness.REPO_ROOT) for p in ISTIO.glob("*.yaml"))
    proc = _run_validate(*shipped, "envoy/demo.yaml", "envoy/route_scoped.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    oks = [ln for ln in lines if ": ok (" in ln]
    assert len(oks) == 4, proc.stdout
    assert re.fullmatch(r"examples/istio/wasmplugin\.yaml:\d+: WasmPlugin shop/darklaunch: "
                        r"ok \(1 launch\)", oks[1]), oks
    assert re.fullmatch(r"examples/istio/wasmplugin-file\.yaml:\d+: WasmPlugin "
                        r"shop/darklaunch: ok \(1 launch\)", oks[0]), oks
    assert re.fullmatch(r"envoy/demo\.yaml:\d+: listener ingress, http filter "
                        r"envoy\.filters\.http\.wasm, plugin darklaunch: ok \(2 launches\)",
                        oks[2]), oks
    assert re.fullmatch(r"envoy/route_scoped\.yaml:\d+: listener ingress, http filter "
                        r"darklaunch: ok \(1 launch\)", oks[3]), oks
    assert "examples/istio/workload.yaml: no darklaunch configuration" in lines
    assert "examples/istio/route-scoped.yaml: no darklaunch configuration" in lines
    assert lines[-1] == "4 configurations in 8 files: 0 invalid, 0 warnings"
    assert not [ln for ln in lines if "warning:" in ln or "error:" in ln]

    # The bad corpus: one line per configuration, in file order.
    corpus = ["bad.json", "ecds-bad.json", "envoy-bad.yaml", "wasmplugins-bad.yaml"]
    proc = _run_validate(*(f"tests/data/validate/{f}" for f in corpus))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    want = [
        r"tests/data/validate/bad\.json: error: launches\[0\]\.match: at most one of "
        r"path_prefix, path_exact and path_template",
        r"tests/data/validate/ecds-bad\.json: extension config shop\.darklaunch: error: "
        r"launches\[0\]\.timeout_ms: must be between 1 and 60000",
        r"tests/data/validate/envoy-bad\.yaml:\d+: listener public, http filter "
        r"envoy\.filters\.http\.wasm, plugin darklaunch: error: launches\[0\]\.name: must match "
        r"\^\[a-z0-9\]\[a-z0-9_-\]\{0,63\}\$",
        r"tests/data/validate/envoy-bad\.yaml:\d+: listener internal, http filter "
        r"envoy\.filters\.http\.wasm, plugin darklaunch: error: the configuration is a "
        r"google\.protobuf\.Struct, which the module refuses .*: the plugin `configuration` "
        r"must be a google\.protobuf\.StringValue whose value is the JSON configuration; its "
        r"content, as JSON in a StringValue, would be accepted",
        r"tests/data/validate/wasmplugins-bad\.yaml:14: WasmPlugin shop/percent-150: error: "
        r"launches\[0\]\.sample\.percent: must be between 0 and 100",
        r"tests/data/validate/wasmplugins-bad\.yaml:40: WasmPlugin shop/unquoted-off: error: "
        r"launches\[0\]\.request_headers\.set\.x-cache: must be a string",
        r"tests/data/validate/wasmplugins-bad\.yaml:\d+: WasmPlugin shop/no-config: error: the "
        r"configuration is empty: the plugin `configuration` must be a "
        r"google\.protobuf\.StringValue whose value is the JSON configuration",
        r"tests/data/validate/wasmplugins-bad\.yaml:63: WasmPlugin shop/misspelled: error: "
        r"launches\[0\]\.compare\.ignored: unknown field `ignored`, expected one of .*`ignore`.*",
    ]
    lines = proc.stdout.splitlines()
    assert len(lines) == len(want) + 1, proc.stdout  # the ConfigMap is skipped silently
    for pattern, line in zip(want, lines):
        assert re.fullmatch(pattern, line), (pattern, line)
    assert lines[-1] == "8 configurations in 4 files: 8 invalid, 0 warnings"

    # The three warnings: exit 0, or 1 with --deny-warnings.
    proc = _run_validate("tests/data/validate/lds-warnings.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    where = r"tests/data/validate/lds-warnings\.yaml:\d+: listener public, http filter " \
            r"envoy\.filters\.http\.wasm, plugin darklaunch: "
    warn = [ln for ln in proc.stdout.splitlines() if "warning:" in ln]
    assert len(warn) == 3, proc.stdout
    assert re.fullmatch(where + r'warning: launches\[0\]\.dark_cluster: "orders" is also the '
                        r'cluster the primary route sends these requests to \(prefix "/" of '
                        r"this HTTP connection manager\): .*compare it with itself", warn[0])
    assert re.fullmatch(where + r"warning: launches\[1\]\.sample\.percent: 100% of the matching "
                        r"requests are shadowed and limits\.max_rps is not set: .*", warn[1])
    assert re.fullmatch(where + r"warning: launches\[2\]\.unsafe_methods: true, and "
                        r"request_headers\.set marks nothing on the shadow requests: .*"
                        r"`x-darklaunch-shadow` header.*", warn[2])
    assert re.fullmatch(where + r"ok \(3 launches\)", proc.stdout.splitlines()[3])
    assert proc.stdout.splitlines()[-1] == "1 configuration in 1 file: 0 invalid, 3 warnings"
    assert _run_validate("--deny-warnings", "tests/data/validate/lds-warnings.yaml") \
        .returncode == 1

    # Every single-rule mutation, as a JSON file and as a WasmPlugin (stdin).
    cases = harness.bad_configs()
    files = []
    for i, (_, cfg) in enumerate(cases):
        files.append(tmp_path / f"case-{i:02d}.json")
        files[-1].write_text(json.dumps(cfg, indent=2))
    proc = _run_validate("-q", *files)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == len(cases) + 1, proc.stdout
    for (case, _), path, line in zip(cases, files, lines):
        assert line.startswith(f"{path}: error: {case['error']}"), (case["name"], line)
    import yaml
    plugins = [{"apiVersion": istio.WASMPLUGIN_API, "kind": "WasmPlugin",
                "metadata": {"name": f"case-{i:02d}", "namespace": "shop"},
                "spec": {"url": "file:///darklaunch.wasm", "pluginConfig": cfg}}
               for i, (_, cfg) in enumerate(cases)]
    proc = _run_validate("-", stdin=yaml.safe_dump_all(plugins))
    lines = proc.stdout.splitlines()
    for i, (case, _) in enumerate(cases):
        name, error = case["name"], case["error"]
        (line,) = [ln for ln in lines if f"WasmPlugin shop/case-{i:02d}:" in ln]
        if name == "integer written as a float":
            # istiod writes 1000.0 as 1000: the module accepts it from a WasmPlugin
            assert line.endswith("ok (1 launch)"), line
        else:
            assert re.match(rf"<stdin>:\d+: WasmPlugin shop/case-{i:02d}: error: ", line), line
            assert error.split(" at line ")[0] in line, (name, line)

    # Usage and I/O errors: 2; nothing to check at all: 1.
    assert _run_validate("--bogus", "x.json").returncode == 2
    missing = _run_validate("tests/data/validate/no-such-file.json")
    assert missing.returncode == 2 and "no-such-file.json" in missing.stderr
    nothing = _run_validate("examples/istio/workload.yaml")
    assert nothing.returncode == 1 and "no darklaunch configuration found" in nothing.stdout

    # Envoy refuses the bad Envoy corpus just so: the real module, in validate mode.
    boot = yaml.safe_load((VALIDATE_DATA / "envoy-bad.yaml").read_text())
    listeners = boot["static_resources"]["listeners"]
    for listener, message in ((listeners[0], "launches[0].name: must match"),
                              (listeners[1], "must be a google.protobuf.StringValue")):
        one = copy.deepcopy(boot)
        one["static_resources"]["listeners"] = [listener]
        wasm = listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]
        wasm["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(wasm_path)
        code, out = harness.Envoy.validate(one, envoy_path)
        assert code != 0 and message in out, out[-3000:]


def test_istio_ecds_delivery_of_a_refused_config(vc, docs, envoy_path, wasm_path, tmp_path,
                                                 upstream_factory):
    """istiod does not put the filter in the listener: it sends it by ECDS
    (config_discovery, initial_fetch_timeout 0, no default config), modelled
    here with filesystem ECDS. What a refused pluginConfig then does:

    * on a proxy that has none yet (first attach, every new or restarted
      pod), the filter stays without a config and Envoy answers EVERY request
      of the listener with 500, whatever failStrategy says;
    * on a proxy running a good one, the update is rejected and the previous
      configuration keeps serving and shadowing.

    Hence keep_last_good in the examples (test_delivery.py shows what it does
    on the same paths), and `darklaunch-report validate` before applying
    (examples/istio/README.md).
    Here the example without it: the default, refuse."""
    good = copy.deepcopy(_one(docs, "wasmplugin.yaml", "WasmPlugin"))
    assert good["spec"].pop("vmConfig")["env"] == [
        {"name": "DARKLAUNCH_INVALID_CONFIG", "value": "keep_last_good"}]
    bad = copy.deepcopy(good)
    bad["spec"]["pluginConfig"]["launches"][0]["sample"]["percent"] = 150
    launch = good["spec"]["pluginConfig"]["launches"][0]
    v1 = upstream_factory(_json_reply("v1"), "v1")
    v2 = upstream_factory(_json_reply("v1"), "v2")
    ecds = tmp_path / "ecds" / "darklaunch.json"
    ecds.parent.mkdir()
    istio.write_ecds(ecds, bad, wasm_path, "1")
    admin, listener = harness.free_port(), harness.free_port()
    cfg = istio.istio_bootstrap(good, wasm_path, admin, listener, primary=v1,
                             clusters={launch["dark_cluster"]: v2,
                                       launch["noise"]["cluster"]: None})
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    hcm["typed_config"]["http_filters"][0] = istio.ecds_http_filter(good, ecds)
    env = harness.Envoy(cfg, admin, listener, envoy_path=envoy_path,
                        workdir=tmp_path / "envoy", name="ecds")
    prefix = "extension_config_discovery.http_filter.shop.darklaunch."

    def updates(kind: str) -> int:
        return env.stats(prefix + "update_").get(prefix + "update_" + kind, 0)

    forced = {"x-user-id": "qa-1"}
    try:
        env.start()  # LIVE: a rejected first config does not hold the listener back
        assert updates("rejected") == 1
        env.wait_log(r"launches\[0\]\.sample\.percent: must be between 0 and 100")
        for _ in range(3):
            assert env.request("/api/orders/1", headers=forced).status == 500
        assert v1.count() == 0 and v2.count() == 0

        istio.write_ecds(ecds, good, wasm_path, "2")
        env.wait_until(lambda: updates("success") == 1, timeout=15, what="ECDS update 2")
        r = env.request("/api/orders/1", headers=forced)
        assert r.status == 200 and r.json()["v"] == "v1"
        v2.wait_for_count(1)

        istio.write_ecds(ecds, bad, wasm_path, "3")
        env.wait_until(lambda: updates("rejected") == 2, timeout=15, what="ECDS update 3")
        r = env.request("/api/orders/2", headers=forced)
        assert r.status == 200 and r.json()["v"] == "v1"
        v2.wait_for_count(2)  # the previous configuration still shadows
        env.wait_settled(LAUNCH)
    finally:
        env.stop()
