"""Istio as darklaunch meets it: WasmPlugin manifests checked against Istio's
CRD schema, a WasmPlugin's pluginConfig rendered the way istiod hands it
to the proxy (inline in the listener, or by ECDS), and an EnvoyFilter's route
patches applied to a sidecar's inbound route configuration the way istiod
applies them, each step citing istio/istio.

How the CRD's OpenAPI v3 schema becomes something ``jsonschema`` checks
-----------------------------------------------------------------------
A Kubernetes structural schema is JSON Schema plus a few extensions that
the API server (not JSON Schema) enforces. ``crd_validator`` maps each:

* unknown fields: the API server prunes them, and ``kubectl`` (strict field
  validation, the default since 1.27) rejects them, so every object schema
  with ``properties`` and without ``x-kubernetes-preserve-unknown-fields``
  gets ``additionalProperties: false`` (``pluginConfig`` keeps any field);
* ``nullable: true`` (OpenAPI 3.0) becomes ``type: [<type>, "null"]``;
* ``format: int32``/``int64`` become minimum/maximum bounds;
* ``x-kubernetes-int-or-string`` already comes with the ``anyOf`` that says it;
* ``x-kubernetes-list-type: map`` with ``x-kubernetes-list-map-keys``: items
  must be unique by those keys (a custom keyword);
* ``x-kubernetes-validations`` are CEL rules; each rule of this CRD is
  implemented in Python (``CEL_RULES``, keyed by the rule text). A rule not
  in that table is reported as an error, so a newer CRD cannot pass
  unchecked: add the rule to the table;
* ``apiVersion``, ``kind`` and ``metadata`` are not in the schema (the API
  server handles them): they are added (the version, the kind, a DNS-1123
  name and namespace).

The schema has no ``oneOf``/``not`` today; ``jsonschema`` evaluates those
natively (Istio CRDs express proto oneofs with ``oneOf`` + ``not``/``anyOf``
of ``required``, which is plain JSON Schema), so they need no mapping.
``pattern`` is matched with Python's ``re.search`` where the API server uses
RE2; the CRD's patterns are in the common subset.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from pathlib import Path
from typing import Iterable, Optional

import jsonschema
import yaml

from .envoy_config import bootstrap
from .paths import REPO_ROOT
from .ports import LOOPBACK, free_port

EXAMPLES = REPO_ROOT / "examples"
WASMPLUGIN_API = "extensions.istio.io/v1alpha1"
CRD_NAME = "wasmplugins.extensions.istio.io"
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Istio's FailStrategy -> Envoy's failure_policy (pilot/pkg/model/extensions.go);
# unset stays unset, which Envoy treats as fail closed.
FAIL_STRATEGY = {"FAIL_OPEN": "FAIL_OPEN", "FAIL_CLOSE": "FAIL_CLOSED",
                 "FAIL_RELOAD": "FAIL_RELOAD"}


# --------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------

def load_docs(path: os.PathLike) -> list:
    """The non-empty documents of a YAML file (PyYAML's safe loader: YAML 1.1,
    like the sigs.k8s.io/yaml that kubectl uses for the scalars that matter
    here: on/off/yes/no are booleans in both)."""
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def example_files(root: Path = EXAMPLES) -> list:
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def wasmplugins(docs: Iterable[dict]) -> list:
    return [d for d in docs if isinstance(d, dict) and d.get("kind") == "WasmPlugin"]


# --------------------------------------------------------------------------
# CRD schema -> jsonschema validator
# --------------------------------------------------------------------------

def crd_path() -> Path:
    """ISTIO_WASMPLUGIN_CRD, else tests/data/istio-wasmplugin-crd.yaml (Istio's
    WasmPlugin CRD as its release manifests ship it)."""
    env = os.environ.get("ISTIO_WASMPLUGIN_CRD")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT / "tests" / "data" / "istio-wasmplugin-crd.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError("Istio WasmPlugin CRD not found in: "
                            + ", ".join(str(c) for c in candidates))


def crd_openapi_schema(version: str = "v1alpha1", path: Optional[Path] = None) -> dict:
    """The openAPIV3Schema of ``version`` in the WasmPlugin CRD."""
    for doc in load_docs(path or crd_path()):
        if (doc.get("kind") == "CustomResourceDefinition"
                and doc.get("metadata", {}).get("name") == CRD_NAME):
            for v in doc["spec"]["versions"]:
                if v["name"] == version:
                    return v["schema"]["openAPIV3Schema"]
            raise KeyError(f"{CRD_NAME} has no version {version}")
    raise KeyError(f"no CustomResourceDefinition {CRD_NAME} in {path or crd_path()}")


_INT_BOUNDS = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}


def to_json_schema(node):
    """A Kubernetes structural schema rewritten as plain JSON Schema (see the
    module docstring); ``x-kubernetes-*`` keywords stay for the custom checks."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        elif key == "description":
            continue
        else:
            out[key] = to_json_schema(value)
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    fmt = out.get("format")
    if fmt in _INT_BOUNDS:
        lo, hi = _INT_BOUNDS[fmt]
        out.setdefault("minimum", lo)
        out.setdefault("maximum", hi)
        del out["format"]
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def _cel_url_scheme(url: str) -> bool:
    # isURL(self) ? scheme in [...] : isURL("http://" + self) && ...: a URL
    # with a scheme must use one of these; a bare reference is taken as
    # http://<ref> (and so passes).
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return (m.group(1).lower() if m else "") in ("", "http", "https", "oci", "file")


# Each CEL rule of the CRD, keyed by its text with whitespace collapsed.
CEL_RULES = {
    '!self.contains("*")':
        lambda v: "*" not in v,
    'self.all(key, !key.contains("*"))':
        lambda v: all("*" not in k for k in v),
    "self.all(key, key.size() != 0)":
        lambda v: all(len(k) != 0 for k in v),
    "self.size() == 0":
        lambda v: len(v) == 0,
    'isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : '
    '(isURL("http://" + self) && url("http://" + self).getScheme() in '
    '["", "http", "https", "oci", "file"])':
        _cel_url_scheme,
    '(has(self.valueFrom) ? self.valueFrom : "") != "HOST" || !has(self.value)':
        lambda v: v.get("valueFrom", "") != "HOST" or "value" not in v,
    "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + "
    "(has(self.targetRefs) ? 1 : 0) <= 1":
        lambda v: sum(k in v for k in ("selector", "targetRef", "targetRefs")) <= 1,
}


def _norm_rule(rule: str) -> str:
    return " ".join(rule.split())


def _x_validations(validator, rules, instance, schema):
    for r in rules:
        rule = _norm_rule(r["rule"])
        check = CEL_RULES.get(rule)
        if check is None:
            yield jsonschema.ValidationError(
                f"CEL rule not implemented in harness/istio.py CEL_RULES: {rule}")
            continue
        try:
            ok = check(instance)
        except (TypeError, AttributeError):
            ok = True  # the type check reports a wrong type
        if not ok:
            yield jsonschema.ValidationError(r.get("message") or f"failed CEL rule {rule}")


def _x_list_map_keys(validator, keys, instance, schema):
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(instance, list):
        return
    seen = set()
    for item in instance:
        if not isinstance(item, dict):
            continue
        key = tuple(json.dumps(item.get(k), sort_keys=True) for k in keys)
        if key in seen:
            yield jsonschema.ValidationError(
                f"duplicate entry for key {dict(zip(keys, (item.get(k) for k in keys)))} "
                "(x-kubernetes-list-type: map)")
        seen.add(key)


def crd_validator(version: str = "v1alpha1", path: Optional[Path] = None):
    """A jsonschema validator for whole WasmPlugin objects."""
    schema = to_json_schema(copy.deepcopy(crd_openapi_schema(version, path)))
    schema.setdefault("type", "object")
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"const": f"extensions.istio.io/{version}"}
    props["kind"] = {"const": "WasmPlugin"}
    props["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 253, "pattern": DNS1123_SUBDOMAIN},
            "namespace": {"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL},
        },
    }
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind",
                                                                   "metadata"})
    schema["additionalProperties"] = False
    cls = jsonschema.validators.extend(jsonschema.Draft202012Validator, {
        "x-kubernetes-validations": _x_validations,
        "x-kubernetes-list-map-keys": _x_list_map_keys,
    })
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(obj: dict, validator=None) -> list:
    """Readable errors (``spec.failStrategy: 'X' is not one of [...]``), sorted."""
    validator = validator or crd_validator()
    out = []
    for e in validator.iter_errors(obj):
        where = ".".join(str(p) for p in e.absolute_path) or "(root)"
        out.append(f"{where}: {e.message}")
    return sorted(out)


# --------------------------------------------------------------------------
# pluginConfig as istiod renders it
# --------------------------------------------------------------------------

def _struct_number(n) -> str:
    """A google.protobuf.Value number in Go's protojson: a double, written
    without exponent between 1e-6 and 1e21 (so 1000 stays "1000", 5.0 is "5")."""
    f = float(n)
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"{n!r} is not representable in a protobuf Struct")
    if f == int(f) and abs(f) < 1e21:
        return str(int(f))
    return repr(f)


def istio_plugin_config_json(cfg) -> str:
    """``pluginConfig`` (a protobuf Struct in the WasmPlugin) as the JSON string
    istiod puts in the filter's StringValue configuration: every number is a
    double. darklaunch's integer fields get "1000", never "1000.0"."""
    if isinstance(cfg, bool) or cfg is None:
        return json.dumps(cfg)
    if isinstance(cfg, (int, float)):
        return _struct_number(cfg)
    if isinstance(cfg, str):
        return json.dumps(cfg, ensure_ascii=False)
    if isinstance(cfg, list):
        return "[" + ",".join(istio_plugin_config_json(v) for v in cfg) + "]"
    if isinstance(cfg, dict):
        return "{" + ",".join(json.dumps(str(k), ensure_ascii=False) + ":"
                              + istio_plugin_config_json(v)
                              for k, v in sorted(cfg.items())) + "}"
    # YAML timestamps, dates and the like have no Struct form.
    raise ValueError(f"{cfg!r} ({type(cfg).__name__}) has no protobuf Struct form")


def istio_wasm_filter(plugin: dict, wasm_path) -> dict:
    """The envoy.filters.http.wasm entry for a WasmPlugin, shaped as istiod
    builds it (pilot/pkg/model/extensions.go): name <namespace>.<name>,
    root_id = pluginName, no vm_id, V8, the module as a local file (the agent
    fetches oci:// and https:// URLs and rewrites them so), the pluginConfig
    as JSON, failStrategy mapped to failure_policy."""
    spec = plugin.get("spec", {})
    meta = plugin.get("metadata", {})
    config = {
        "name": f"{meta.get('namespace', 'default')}.{meta.get('name', '')}",
        "root_id": spec.get("pluginName", ""),
        "vm_config": {
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": str(wasm_path)}},
        },
    }
    # vmConfig.env: INLINE values (the default) become key_values, HOST ones
    # host_env_keys (pilot/pkg/model/extensions.go).
    env = (spec.get("vmConfig") or {}).get("env") or []
    if env:
        inline = {e["name"]: e.get("value", "") for e in env
                  if e.get("valueFrom", "INLINE") == "INLINE"}
        host = [e["name"] for e in env if e.get("valueFrom") == "HOST"]
        variables = {}
        if inline:
            variables["key_values"] = inline
        if host:
            variables["host_env_keys"] = host
        config["vm_config"]["environment_variables"] = variables
    if spec.get("pluginConfig"):
        config["configuration"] = {"@type": STRING_VALUE,
                                   "value": istio_plugin_config_json(spec["pluginConfig"])}
    policy = FAIL_STRATEGY.get(spec.get("failStrategy", ""))
    if policy:
        config["failure_policy"] = policy
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {"@type": WASM_TYPE, "config": config},
    }


def plugin_clusters(plugin_config: dict) -> list:
    """Every Envoy cluster a darklaunch configuration names (dark and noise)."""
    names = []
    for launch in (plugin_config or {}).get("launches", []) or []:
        if not isinstance(launch, dict):
            continue
        for name in (launch.get("dark_cluster"),
                     (launch.get("noise") or {}).get("cluster")
                     if isinstance(launch.get("noise"), dict) else None):
            if isinstance(name, str) and name and name not in names:
                names.append(name)
    return names


def parse_istio_cluster(name: str) -> Optional[tuple]:
    """``outbound|8080|v2|orders.shop.svc.cluster.local`` -> (direction, 8080, "v2", host)."""
    parts = name.split("|")
    if len(parts) != 4 or parts[0] not in ("outbound", "inbound") or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2], parts[3]


def istio_bootstrap(plugin: dict, wasm_path, admin_port: int = 0, listener_port: int = 0,
                    primary=None, clusters: Optional[dict] = None, **kwargs) -> dict:
    """bootstrap with the WasmPlugin's filter in the listener, as istiod
    would configure it. ``clusters`` defaults to every cluster the pluginConfig
    names, on closed loopback ports (enough for validate mode)."""
    plugin_config = plugin.get("spec", {}).get("pluginConfig") or {}
    if clusters is None:
        clusters = {name: None for name in plugin_clusters(plugin_config)}
    cfg = bootstrap(admin_port or free_port(),
                            listener_port or free_port(),
                            primary_cluster=primary or (LOOPBACK, free_port()),
                            clusters=clusters, plugin_config={}, wasm_path=wasm_path,
                            **kwargs)
    filters = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["http_filters"]
    assert filters[0]["name"] == "envoy.filters.http.wasm", filters
    filters[0] = istio_wasm_filter(plugin, wasm_path)
    return cfg


def ecds_http_filter(plugin: dict, path, type_url: str = WASM_TYPE) -> dict:
    """The HTTP filter entry as istiod writes it for a WasmPlugin: no inline
    config, but config_discovery of the extension named <namespace>.<name>
    (pilot/pkg/networking/core/extension/extensionfilter.go: ADS,
    initial_fetch_timeout 0, no default config). Here the source is a file
    (filesystem ECDS, the directory watched) instead of ADS."""
    path = Path(path).resolve()
    meta = plugin.get("metadata", {})
    return {
        "name": f"{meta.get('namespace', 'default')}.{meta.get('name', '')}",
        "config_discovery": {
            "config_source": {
                "path_config_source": {"path": str(path),
                                       "watched_directory": {"path": str(path.parent)}},
                "resource_api_version": "V3",
                "initial_fetch_timeout": "0s",
            },
            "type_urls": [type_url],
        },
    }


def write_ecds(path, plugin: dict, wasm_path, version: str) -> None:
    """Writes (atomically) the ECDS DiscoveryResponse carrying the WasmPlugin's
    filter config, as the extension named <namespace>.<name>."""
    path = Path(path)
    meta = plugin.get("metadata", {})
    doc = {"version_info": str(version), "resources": [{
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": f"{meta.get('namespace', 'default')}.{meta.get('name', '')}",
        "typed_config": istio_wasm_filter(plugin, wasm_path)["typed_config"],
    }]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(path)


# --------------------------------------------------------------------------
# EnvoyFilter route patches on a sidecar's inbound route configuration
# --------------------------------------------------------------------------

FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
ENVOYFILTER_API = "networking.istio.io/v1alpha3"


def plugin_filter_name(plugin: dict) -> str:
    """The name istiod gives a WasmPlugin's HTTP filter (and its ECDS
    resource): <namespace>.<name> (pilot/pkg/model/extensions.go ResourceName,
    pilot/pkg/networking/core/extension/wasmplugin.go toEnvoyHTTPFilter)."""
    meta = plugin.get("metadata", {})
    return f"{meta.get('namespace', 'default')}.{meta.get('name', '')}"


def inbound_route_config(port: int, service_host: str) -> dict:
    """The route configuration istiod builds for an HTTP port on a sidecar's
    inbound side (pilot/pkg/networking/core/httproute.go
    buildSidecarInboundHTTPRouteConfig, route.go BuildDefaultHTTPInboundRoute,
    Istio 1.24 and later with ENABLE_INBOUND_RETRY_POLICY's default): named
    after the inbound cluster ``inbound|<port>||``, one virtual host
    ``inbound|http|<port>`` with one route, ``default``, prefix ``/``, to
    that cluster without timeout."""
    cluster = f"inbound|{port}||"
    return {
        "name": cluster,
        "validate_clusters": False,
        "virtual_hosts": [{
            "name": f"inbound|http|{port}",
            "domains": ["*"],
            "routes": [{
                "name": "default",
                "match": {"prefix": "/"},
                "decorator": {"operation": f"{service_host}:{port}/*"},
                "route": {
                    "cluster": cluster,
                    "timeout": "0s",
                    "max_stream_duration": {"max_stream_duration": "0s",
                                            "grpc_timeout_header_max": "0s"},
                    "retry_policy": {"retry_on": "reset-before-request", "num_retries": 2},
                },
            }],
        }],
    }


# Fields of Envoy's route messages that are protobuf maps: a MERGE replaces
# their entries by key instead of merging into them.
_MAP_FIELDS = {"typed_per_filter_config"}


def proto_merge(dst: dict, src: dict) -> dict:
    """proto.Merge on the JSON form, as istiod's MERGE patches do it
    (pkg/proto/merge): messages merged field by field, map entries replaced
    by key, repeated fields appended, scalars (and Any values) replaced."""
    for key, value in src.items():
        if key in _MAP_FIELDS and isinstance(value, dict):
            dst.setdefault(key, {}).update(copy.deepcopy(value))
        elif (isinstance(value, dict) and isinstance(dst.get(key), dict)
              and "@type" not in value):
            proto_merge(dst[key], value)
        elif isinstance(value, list) and isinstance(dst.get(key), list):
            dst[key].extend(copy.deepcopy(value))
        else:
            dst[key] = copy.deepcopy(value)
    return dst


def _route_config_matches(match: dict, rc: dict) -> bool:
    # envoyfilter/rc_patch.go routeConfigurationMatch (sidecars): the port is
    # parsed from the route configuration's name (inbound|<port>||, or the
    # port number itself on the outbound side).
    rcm = match.get("routeConfiguration")
    if rcm is None:
        return True
    name = rc.get("name", "")
    port = parse_istio_cluster(name)[1] if name.startswith("inbound|") else (
        int(name) if name.isdigit() else 0)
    if rcm.get("portNumber") and int(rcm["portNumber"]) != port:
        return False
    return not rcm.get("name") or rcm["name"] == name


def _vhost_matches(match: dict, vh: dict) -> bool:
    vm = (match.get("routeConfiguration") or {}).get("vhost")
    return vm is None or not vm.get("name") or vm["name"] == vh.get("name")


def _route_matches(match: dict, route: dict) -> bool:
    rm = ((match.get("routeConfiguration") or {}).get("vhost") or {}).get("route")
    if rm is None:
        return True
    if rm.get("action", "ANY") != "ANY":
        raise NotImplementedError("route action matching is not modelled")
    return not rm.get("name") or rm["name"] == route.get("name")


def apply_route_patches(envoy_filter: dict, context: str, route_config: dict) -> dict:
    """An EnvoyFilter's VIRTUAL_HOST and HTTP_ROUTE patches applied to a
    route configuration the way istiod applies them
    (envoyfilter/rc_patch.go ApplyRouteConfigurationPatches): per virtual
    host its MERGEs first, then per route the route MERGEs, then the
    INSERT_BEFORE/INSERT_AFTER/INSERT_FIRST/ADD of routes. Patches of other
    contexts are skipped (ANY applies everywhere); other operations and
    targets raise NotImplementedError. Returns a new route configuration."""
    rc = copy.deepcopy(route_config)
    patches = []
    for p in envoy_filter["spec"]["configPatches"]:
        match = p.get("match") or {}
        if match.get("context", "ANY") not in ("ANY", context):
            continue
        if p["applyTo"] not in ("VIRTUAL_HOST", "HTTP_ROUTE"):
            raise NotImplementedError(f"applyTo {p['applyTo']} is not modelled")
        if not _route_config_matches(match, rc):
            continue
        patches.append((p["applyTo"], p["patch"]["operation"], match, p["patch"].get("value")))
    for vh in rc.get("virtual_hosts", []):
        for target, op, match, value in patches:
            if target == "VIRTUAL_HOST" and _vhost_matches(match, vh):
                if op != "MERGE":
                    raise NotImplementedError(f"VIRTUAL_HOST {op} is not modelled")
                proto_merge(vh, value)
        routes = vh.setdefault("routes", [])
        for route in routes:
            for target, op, match, value in patches:
                if (target == "HTTP_ROUTE" and op == "MERGE" and _vhost_matches(match, vh)
                        and _route_matches(match, route)):
                    proto_merge(route, value)
        for target, op, match, value in patches:
            if target != "HTTP_ROUTE" or op == "MERGE" or not _vhost_matches(match, vh):
                continue
            new = copy.deepcopy(value)
            at = [i for i, r in enumerate(routes) if _route_matches(match, r)]
            if op == "ADD":
                routes.append(new)
            elif op == "INSERT_BEFORE" and at:
                routes.insert(at[0], new)
            elif op == "INSERT_AFTER" and at:
                routes.insert(at[0] + 1, new)
            elif op == "INSERT_FIRST" and at:
                routes.insert(0, new)
            elif op not in ("INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST"):
                raise NotImplementedError(f"HTTP_ROUTE {op} is not modelled")
    return rc
