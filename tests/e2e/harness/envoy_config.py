"""Envoy configuration: the project's stats tags (``STATS_TAGS``, the single
source of the tag extractors that the bootstraps in envoy/ carry too), those
bootstraps (demo.yaml, route_scoped.yaml) with their ports replaced, and the
test bootstrap: clusters, the darklaunch wasm filter, the listener, and
filesystem LDS documents."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Iterable, Optional, Union

from .paths import REPO_ROOT, wasm_file
from .ports import LOOPBACK, free_port
from .upstream import Upstream


# --------------------------------------------------------------------------
# Stats tags: darklaunch.<launch>.<stat>[.<detail>] -> labelled families.
#
# Envoy's TagSpecifier: the first capture group is cut out of the stat name,
# the second (inside it) is the tag value. Every extractor runs against the
# full name, so the launch extractor and the detail extractor combine:
#   wasmcustom.darklaunch.orders-v2.skipped.sampled_out
#   -> name "wasmcustom.darklaunch.skipped", launch="orders-v2", reason="sampled_out"
#   -> /stats/prometheus: darklaunch_skipped{launch="orders-v2",reason="sampled_out"}
# A tag name can appear only once in stats_tags, hence one extractor per label
# covering every family that uses it. The regexes stay in the subset shared by
# RE2 and ECMAScript (no lookaround).
# --------------------------------------------------------------------------
LAUNCH_RE = r"[a-z0-9][a-z0-9_-]{0,63}"

STATS_TAGS: list[dict[str, str]] = [
    {
        # darklaunch.<launch>.<anything>
        "tag_name": "launch",
        "regex": r"^wasmcustom\.darklaunch\.((" + LAUNCH_RE + r")\.)",
    },
    {
        # darklaunch.<launch>.skipped.<reason> / .compare_skipped.<reason> /
        # .sample.dropped.<reason>
        "tag_name": "reason",
        "regex": r"^wasmcustom\.darklaunch\." + LAUNCH_RE
        + r"\.(?:skipped|compare_skipped|sample\.dropped)(\.([a-z0-9_]+))$",
    },
    {
        # darklaunch.<launch>.dark_response.<class> / .primary_response.<class>
        "tag_name": "class",
        "regex": r"^wasmcustom\.darklaunch\." + LAUNCH_RE
        + r"\.(?:dark_response|primary_response)(\.([a-z0-9_]+))$",
    },
    {
        # darklaunch.<launch>.mismatch_kind.<kind>
        "tag_name": "kind",
        "regex": r"^wasmcustom\.darklaunch\." + LAUNCH_RE
        + r"\.mismatch_kind(\.([a-z0-9_]+))$",
    },
    {
        # darklaunch.<launch>.field_mismatch.<folded JSON pointer or "other">
        "tag_name": "path",
        "regex": r"^wasmcustom\.darklaunch\." + LAUNCH_RE
        + r"\.field_mismatch(\.(.+))$",
    },
    {
        # darklaunch.<launch>.header_mismatch.<compared header name>
        "tag_name": "header",
        "regex": r"^wasmcustom\.darklaunch\." + LAUNCH_RE
        + r"\.header_mismatch(\.(.+))$",
    },
    {
        # darklaunch.<launch>.dark_grpc.<code> / .primary_grpc.<code>
        "tag_name": "code",
        "regex": r"^wasmcustom\.darklaunch\." + LAUNCH_RE
        + r"\.(?:dark_grpc|primary_grpc)(\.([a-z0-9_]+))$",
    },
]


def stats_tags_yaml(indent: int = 4) -> str:
    """STATS_TAGS as the block-style YAML list written into envoy/demo.yaml."""
    pad = " " * indent
    out = []
    for tag in STATS_TAGS:
        out.append(f"{pad}- tag_name: {tag['tag_name']}")
        out.append(f"{pad}  regex: '{tag['regex'].replace(chr(39), chr(39) * 2)}'")
    return "\n".join(out) + "\n"


DEMO_YAML = REPO_ROOT / "envoy" / "demo.yaml"
STATS_CONFIG_YAML = REPO_ROOT / "envoy" / "stats_config.yaml"


def stats_config() -> dict:
    """envoy/stats_config.yaml, the stats settings users copy into a bootstrap."""
    import yaml  # PyYAML, from .venv

    return yaml.safe_load(STATS_CONFIG_YAML.read_text())
DEMO_PORTS = {"admin": 9901, "listener": 10000, "v1": 8081, "v2": 8082,
              "catalog_v1": 8083, "catalog_v2": 8084}
DEMO_WASM = "target/module/darklaunch.wasm"
# envoy/route_scoped.yaml: the filter off by default, on for the launch's route.
ROUTE_SCOPED_YAML = REPO_ROOT / "envoy" / "route_scoped.yaml"
ROUTE_SCOPED_PORTS = {"admin": 9901, "listener": 10000, "v1": 8081, "v2": 8082}
# The complete bootstraps shipped in envoy/ (stats_config.yaml is a fragment).
ENVOY_BOOTSTRAPS = (DEMO_YAML, ROUTE_SCOPED_YAML)


def render_envoy_yaml(path: Path, defaults: dict, ports: dict, wasm: Union[str, Path]) -> str:
    """A shipped bootstrap with its ports (``defaults``: name -> the port the
    file says, each written once) and module path replaced.

    Plain text substitution, so the file Envoy reads is the shipped one.
    """
    text = Path(path).read_text()
    for name, default in defaults.items():
        needle = f"port_value: {default} "
        if text.count(needle) != 1:
            raise RuntimeError(f"{path}: expected exactly one '{needle.strip()}'")
        text = text.replace(needle, f"port_value: {ports.get(name, default)} ")
    needle = f"filename: {DEMO_WASM}"
    if text.count(needle) != 1:
        raise RuntimeError(f"{path}: expected exactly one '{needle}'")
    return text.replace(needle, f"filename: {wasm}")


def render_demo_yaml(ports: dict, wasm: Union[str, Path]) -> str:
    """envoy/demo.yaml with its ports (keys of DEMO_PORTS) and module path replaced."""
    return render_envoy_yaml(DEMO_YAML, DEMO_PORTS, ports, wasm)


def render_route_scoped_yaml(ports: dict, wasm: Union[str, Path]) -> str:
    """envoy/route_scoped.yaml with its ports (keys of ROUTE_SCOPED_PORTS) and module path replaced."""
    return render_envoy_yaml(ROUTE_SCOPED_YAML, ROUTE_SCOPED_PORTS, ports, wasm)


def parse_stats_tags_yaml(text: str) -> list[dict[str, str]]:
    """Reads back the ``- tag_name: X / regex: 'Y'`` pairs from a YAML file."""
    pairs = re.findall(
        r"^\s*- tag_name:\s*(\S+)\s*\n\s*regex:\s*'((?:[^']|'')*)'\s*$",
        text,
        flags=re.MULTILINE,
    )
    return [{"tag_name": n, "regex": r.replace("''", "'")} for n, r in pairs]


def tag_extract(name: str, tags: Iterable[dict] = None) -> tuple[str, dict[str, str]]:
    """Python model of Envoy's tag extraction, for unit checks of STATS_TAGS."""
    tags = STATS_TAGS if tags is None else tags
    remove: set[int] = set()
    labels: dict[str, str] = {}
    for tag in tags:
        m = re.search(tag["regex"], name)
        if not m:
            continue
        value_group = 2 if m.re.groups >= 2 else 1
        labels[tag["tag_name"]] = m.group(value_group)
        remove.update(range(m.start(1), m.end(1)))
    return "".join(c for i, c in enumerate(name) if i not in remove), labels


# --------------------------------------------------------------------------
# The test bootstrap
# --------------------------------------------------------------------------

def _addr(host: str, port: int) -> dict:
    return {"socket_address": {"address": host, "port_value": int(port)}}


def static_cluster(name: str, host: str, port: int, connect_timeout: str = "1s",
                   http2: bool = False) -> dict:
    cluster = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _addr(host, port)}}]}],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def wasm_filter(plugin_config: Union[dict, str], wasm_path: Union[str, Path],
                failure_policy: str = "FAIL_CLOSED", vm_env: Optional[dict] = None) -> dict:
    """The envoy.filters.http.wasm entry running darklaunch with ``plugin_config``.

    ``plugin_config`` is a dict (serialized with json.dumps) or a raw string
    (to feed the plugin invalid JSON); ``vm_env``: the VM's environment
    variables (``DARKLAUNCH_INVALID_CONFIG``).
    """
    value = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
    vm_config = {
        "vm_id": "darklaunch",
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": str(wasm_path)}},
    }
    if vm_env:
        vm_config["environment_variables"] = {"key_values": dict(vm_env)}
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "darklaunch",
                "root_id": "darklaunch",
                "vm_config": vm_config,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": value,
                },
                "failure_policy": failure_policy,
            },
        },
    }


ClusterSpec = Union[tuple, int, dict, None]


def listener(listener_port: int,
             plugin_config: Union[dict, str, None] = None,
             failure_policy: str = "FAIL_CLOSED",
             wasm_path: Union[str, Path, None] = None,
             http2_downstream: bool = False,
             route_timeout: str = "30s",
             name: str = "ingress",
             upgrades: Iterable[str] = (),
             vm_env: Optional[dict] = None,
             cluster: str = "primary",
             request_headers_to_remove: Iterable[str] = ()) -> dict:
    """The test listener: 127.0.0.1:listener_port, HCM stat_prefix ``ingress``,
    codec AUTO (HTTP/1.1 and h2c prior knowledge) or HTTP2 with
    ``http2_downstream``; route ``/`` -> ``cluster`` (``primary``); the darklaunch
    wasm filter when ``plugin_config`` is not None, then the router;
    ``upgrades``: upgrade types the HCM lets through (``websocket``);
    ``vm_env``: the wasm VM's environment variables;
    ``request_headers_to_remove``: headers the route removes before the upstream.
    """
    http_filters = []
    if plugin_config is not None:
        http_filters.append(wasm_filter(plugin_config, wasm_path or wasm_file(), failure_policy,
                                        vm_env))
    http_filters.append({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    })
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "codec_type": "HTTP2" if http2_downstream else "AUTO",
        "route_config": {
            "name": "local_route",
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [{
                    "match": {"prefix": "/"},
                    "route": {"cluster": cluster, "timeout": route_timeout},
                }],
            }],
        },
        "http_filters": http_filters,
    }
    if upgrades:
        hcm["upgrade_configs"] = [{"upgrade_type": u} for u in upgrades]
    if request_headers_to_remove:
        hcm["route_config"]["request_headers_to_remove"] = list(request_headers_to_remove)
    return {
        "name": name,
        "address": _addr(LOOPBACK, listener_port),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": hcm,
        }]}],
    }


LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"


def lds_document(listeners: Iterable[dict], version: str = "1") -> dict:
    """A DiscoveryResponse carrying ``listeners``, as a filesystem LDS file holds it."""
    return {"version_info": str(version),
            "resources": [dict(lst, **{"@type": LISTENER_TYPE}) for lst in listeners]}


def write_lds(path: Union[str, Path], listeners: Iterable[dict], version: str = "1") -> None:
    """Replaces the LDS file atomically: written beside the watched directory,
    then renamed into it (Envoy reloads on a move into ``watched_directory``)."""
    path = Path(path)
    tmp = path.parent.parent / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(json.dumps(lds_document(listeners, version), indent=2))
    os.rename(tmp, path)


def bootstrap(admin_port: int, listener_port: int,
              primary_cluster: tuple = (LOOPBACK, 8080),
              clusters: Optional[dict] = None,
              plugin_config: Union[dict, str, None] = None,
              failure_policy: str = "FAIL_CLOSED",
              wasm_path: Union[str, Path, None] = None,
              http2_downstream: bool = False,
              route_timeout: str = "30s",
              stats_flush_interval: Optional[str] = "1s",
              stats_tags: Optional[list] = None,
              lds_path: Union[str, Path, None] = None,
              upgrades: Iterable[str] = (),
              vm_env: Optional[dict] = None,
              primary_http2: bool = False,
              extra_listeners: Iterable[dict] = ()) -> dict:
    """An Envoy bootstrap as a dict (write it with json.dumps; Envoy reads JSON as YAML).

    * the ``listener(...)`` above on 127.0.0.1:listener_port, route ``/`` ->
      cluster ``primary``, the darklaunch filter when ``plugin_config`` is not None;
    * ``primary_http2``: the ``primary`` cluster speaks HTTP/2 (gRPC);
    * ``clusters``: extra STATIC clusters ``{name: (host, port) | port | None |
      cluster-dict}``; ``None`` gives a cluster on a closed loopback port;
    * ``extra_listeners``: more static listeners (``listener(...)`` dicts),
      after the test listener;
    * ``stats_config.stats_tags`` = STATS_TAGS; stats flushed every second so
      histogram quantiles show up quickly in /stats;
    * ``lds_path``: the listener is not static but delivered by filesystem LDS
      from that file (its directory watched); the caller writes the file
      (``write_lds``) before starting Envoy and rewrites it to swap the
      listener. ``plugin_config`` and the listener options are then unused.
    """
    all_clusters = [static_cluster("primary", *_host_port(primary_cluster), http2=primary_http2)]
    for name, spec in (clusters or {}).items():
        if isinstance(spec, dict):
            all_clusters.append(spec)
        elif spec is None:
            all_clusters.append(static_cluster(name, LOOPBACK, free_port()))
        else:
            all_clusters.append(static_cluster(name, *_host_port(spec)))
    config = {
        "node": {"id": "darklaunch-test", "cluster": "darklaunch-test"},
        "admin": {"address": _addr(LOOPBACK, admin_port)},
        "stats_config": {"stats_tags": list(STATS_TAGS if stats_tags is None else stats_tags)},
        "static_resources": {"clusters": all_clusters},
    }
    if lds_path is None:
        config["static_resources"]["listeners"] = [listener(
            listener_port, plugin_config, failure_policy, wasm_path, http2_downstream,
            route_timeout, upgrades=upgrades, vm_env=vm_env)]
    if extra_listeners:
        config["static_resources"].setdefault("listeners", []).extend(extra_listeners)
    if lds_path is not None:
        lds_path = Path(lds_path).resolve()
        config["dynamic_resources"] = {"lds_config": {
            "resource_api_version": "V3",
            "path_config_source": {
                "path": str(lds_path),
                "watched_directory": {"path": str(lds_path.parent)},
            },
        }}
    if stats_flush_interval:
        config["stats_flush_interval"] = stats_flush_interval
    return config


def _host_port(spec) -> tuple:
    if isinstance(spec, int):
        return (LOOPBACK, spec)
    if isinstance(spec, Upstream):
        return spec.address
    host, port = spec
    return (host, int(port))
