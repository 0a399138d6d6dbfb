"""Real-Envoy test harness for darklaunch; ``import harness`` gives the names below.

* ``upstream``     - ``Upstream``, an in-process HTTP/1.1 server whose handler
                     turns each ``Request`` into a ``Reply``; it records them all;
* ``envoy_config`` - the bootstrap (JSON, which Envoy reads as YAML) with an
                     optional darklaunch wasm filter, ``STATS_TAGS``, which
                     the bootstraps in envoy/ carry too (a test keeps them
                     equal), and those bootstraps with their ports replaced;
* ``envoy``        - ``Envoy``: one process on loopback, its admin API, stats, log;
* ``prometheus``   - ``Prometheus``: one server scraping Envoys, its HTTP API;
* ``process``      - the process lifecycle Envoy and Prometheus share:
                     own process group, readiness, SIGTERM then SIGKILL,
                     whatever still runs stopped at exit;
* ``client``       - HTTP/1.1 and h2c clients;
* ``stats``        - stat sums, mismatch log lines, the Prometheus text format;
* ``sampling``     - the sticky sampling model;
* ``memory``       - the wasm heap of a process, from /proc;
* ``corpus``       - the bad configurations of tests/data/bad_configs.json;
* ``istio``        - WasmPlugin manifests against Istio's CRD schema,
                     pluginConfigs rendered as istiod delivers them (inline,
                     ECDS), EnvoyFilter route patches applied as istiod
                     applies them; ``from harness import istio``;
* ``chromium``     - headless Chromium on a local HTML file: ``dump_dom``,
                     ``screenshot``, ``elements``; ``from harness import chromium``;
* ``grpc_services`` - tests/e2e/grpc/shop.proto compiled at test time, recording
                     grpcio services (primary, and dark with selectable
                     behaviours), a bytes client, the gRPC Envoy clusters and
                     hops; ``from harness import grpc_services``;
* ``ports``, ``paths``, ``waiting`` - loopback ports, where things are, polling.

Also used by demo/, scripts/ and report/tests/fixtures/capture.py.
"""

from .client import Client, Response, h2c_requests, http_request
from .corpus import BAD_CONFIGS, bad_configs
from .envoy import DEFAULT_ENVOY, Envoy, EnvoyError, envoy_bin
from .envoy_config import (
    DEMO_PORTS,
    DEMO_WASM,
    DEMO_YAML,
    ENVOY_BOOTSTRAPS,
    LAUNCH_RE,
    LISTENER_TYPE,
    ROUTE_SCOPED_PORTS,
    ROUTE_SCOPED_YAML,
    STATS_CONFIG_YAML,
    STATS_TAGS,
    ClusterSpec,
    bootstrap,
    lds_document,
    listener,
    parse_stats_tags_yaml,
    render_demo_yaml,
    render_envoy_yaml,
    render_route_scoped_yaml,
    static_cluster,
    stats_config,
    stats_tags_yaml,
    tag_extract,
    wasm_filter,
    write_lds,
)
from .memory import wasm_memory_kib
from .paths import DEFAULT_WASM, REPO_ROOT, wasm_file
from .ports import LOOPBACK, free_port, port_is_free
from .process import ManagedProcess, ProcessError, _register, _tail, _unregister
from .prometheus import (
    Prometheus,
    PrometheusError,
    envoy_target,
    prometheus_bin,
    prometheus_series,
    promtool,
    promtool_bin,
    wait_prometheus_has,
)
from .sampling import murmur3_32, sticky_sampled
from .stats import (
    MISMATCH_MARK,
    SAMPLE_MARK,
    darklaunch_series,
    parse_mismatch_lines,
    parse_sample_lines,
    parse_prometheus,
    sum_prefix,
    wait_series_stable,
)
from .upstream import Handler, Reply, Request, Upstream
from .waiting import wait_until
