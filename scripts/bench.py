#!/usr/bin/env python3
"""make bench: what darklaunch costs Envoy, against no filter and Envoy's own mirroring.

One run, all on loopback, the same closed-loop load against nine front Envoy
configurations, alternated and repeated:

  A  Envoy, no filter (the limit)
  N  an empty proxy-wasm filter (benches/noop-filter): the floor of any filter
  B  Envoy, native ``request_mirror_policies`` to the dark cluster (the peer)
  M  the same small module in ``send:dark`` mode: copies the request headers
     and ``dispatch_http_call``s them to the dark cluster, answer ignored: the
     floor of any proxy-wasm filter that sends a copy
  C  darklaunch loaded, no launch matches (``match.path_prefix`` elsewhere)
  C2 darklaunch loaded, filter disabled on the benchmarked route (route-scoped
     deployment, envoy/route_scoped.yaml): the filter is ``disabled: true``
     in the chain and only another route enables it; its launch matches
     every path, so it is the route that keeps the requests out of the VM
  D  darklaunch, 100% shadow, ``compare.body: none``
  E  darklaunch, 100% shadow, JSON compare of ~4 KiB bodies
  F  darklaunch, 1% sticky sampling on ``header:x-user-id``, JSON compare

and three gRPC configurations under gRPC load (h2load over h2c, unary calls
of ``bench.Catalog/GetItem``; the front Envoy's listener and clusters speak
HTTP/2), alternated with the others:

  G0  Envoy, no filter
  GB  Envoy, native ``request_mirror_policies`` to the dark gRPC service
  GD  darklaunch, a gRPC launch (``match.grpc_methods``), 100% shadow,
      ``compare.body: protobuf`` of ~2.6 KiB messages

Setup:

* upstreams: one Envoy (``--concurrency 1``, the bootstrap of
  scripts/upstreams.py with its ``primary`` and ``ok`` listeners, bodies
  replaced) answering with ``direct_response``: the primary a ~4 KiB JSON
  order, the dark side the same order with another ``/meta/generated_at``
  (an ignored pointer), so the bytes differ and E/F really parse and walk
  both documents, and every pair still matches;
* the front Envoy (``--concurrency 1``, one worker), fresh for every run,
  listener -> ``primary``; dark cluster HTTP/1.1 with circuit breakers raised;
  launches with ``max_in_flight`` 100000 and the breaker off in effect
  (scripts/upstreams.py ``launch``), so that nothing but sampling decides;
* load: ``wrk -t1 -c16 -d10s --latency`` (closed loop, flat out) with a Lua
  script that sends every request with an ``x-user-id`` from 10000 distinct
  users, in turn, in every configuration (the same requests everywhere; in F
  about 1% of the users, hence of the requests, are sampled in);
* CPU pinning (2 cores): the front Envoy on CPU 0 alone; wrk, the upstream
  Envoy and this script on CPU 1 (``taskset``), so the front Envoy is the
  bottleneck and its core is not shared with the load generator (the
  scale phase, last, unpins everything).
* gRPC (G0, GB, GD): ``h2load -t1 -c16 -m1`` (16 connections, one call in
  flight on each: closed loop, flat out) POSTs the same framed request (a
  ~410-byte message) with ``content-type: application/grpc`` and ``te:
  trailers``; its ``--warm-up-time`` is the warm-up, and the CPU meters
  start and stop when h2load says its measured seconds start and end. The
  upstreams are two nghttpd (nghttp2's C HTTP/2 server, Debian
  nghttp2-server, on CPU 1) serving the framed answer as a file with the
  trailer ``grpc-status: 0``: the primary a ~2.6 KiB catalog item (a
  double, strings, a repeated nested message, a repeated string, a nested
  message), the dark side the same item with another ``meta.generated_at``
  (field 7.1, ignored by GD's launch), so GD parses and walks both
  messages of every pair and every pair matches. Before each run one call
  through the front Envoy (raw h2c) must come back with the primary's
  message and ``grpc-status: 0`` in the trailers (h2load reads HTTP
  statuses only).

Shadow dispatch delay: a second phase sends a steady, modest load (wrk,
4 connections, a 7 ms pause after every answer, ~500 req/s, a unique
``n=<id>`` query on every request) through D, E and B and captures the
loopback packets with kernel timestamps (AF_PACKET + SO_TIMESTAMPNS, as
root): per request, when it reached the front Envoy, when the primary
request left it and when the shadow request left it. Cross-check: the
upstream Envoy's access logs (``x-request-id``, ``%START_TIME%`` in µs) of
the primary and dark listeners, joined on x-request-id.

Scale (the last phase; ``--no-scale`` skips it): B, M, D and E again (by
default those of them the main phase ran; ``--scale-configs``) with the
front Envoy on two workers (``--concurrency 2``, ``--scale-workers``) and
``wrk -t1 -c64`` (``--scale-connections``), alternated over 4 repetitions
(``--scale-repeats``; fewer when ``--repeats`` is smaller), to show that
what the workers share through Envoy's shared data, updated with CAS, holds
up under contention. D's and E's launches there have the process-wide token
bucket (``limits.max_rps`` 1,000,000: one CAS per shadowed request) and the
breaker (its defaults: a read per call, batched CAS writes) on, limits that
never bind (a call they held back is a problem). No CPU pinning in this
phase: two workers cannot have cores of their own on a 2-core machine, so
the front Envoy, wrk and a fresh upstream Envoy share both cores; front
CPU µs per request stays the cost of a configuration. The report puts each
configuration at one worker (the main phase) beside two, and D/M, E/B (by
req/s and by CPU) and the D − M and E − D differences at both.

Targets: differences of front Envoy CPU µs per request (C − N, F − C,
D − M, E − D) and ratios (C/A, F/A, D/B, E/B), each the median of the
per-repetition values (the runs of one repetition ran back to back); the
dispatch delay's p99; the module's size.

Writes the report to stdout, into BENCHMARKS.md (between bench.py markers:
one section for the HTTP configurations, the dispatch delay and the scale
phase, one for the gRPC configurations, each replaced only when the run
measured it; other sections kept) and the raw numbers to
.run/bench/result.json (``scale`` and ``scale_runs`` for the scale phase).
Exit status 0 whatever the targets say; 1 when the measurement itself broke
(an Envoy did not start, client errors or non-2xx answers, no shadow calls
where there should be, a call held back by the limits; for GD also a pair
that mismatches); 2 when a prerequisite is missing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upstreams as U  # noqa: E402
from fault_latency import PROFILE_PARTS, Profile  # noqa: E402
from upstreams import harness  # noqa: E402
from harness.grpc_services import frame, varint  # noqa: E402

OUT = U.ROOT / ".run" / "bench"
REPORT = U.ROOT / "BENCHMARKS.md"
BEGIN = "<!-- bench.py: begin (generated by `make bench`; rerunning replaces this section) -->"
END = "<!-- bench.py: end -->"
LAUNCH = "bench"
PATH = "/api/orders/42"
USERS = 10_000
MODULE_LIMIT = 614_400

CONFIGS = {
    "A": "Envoy, no filter",
    "N": "an empty proxy-wasm filter (benches/noop-filter): the floor",
    "B": "Envoy, native request_mirror_policies (100%)",
    "M": "the empty filter's send:dark mode: dispatch_http_call of every request, answer ignored",
    "C": "darklaunch, no launch matches",
    "C2": "darklaunch loaded, filter disabled on the benchmarked route (route-scoped)",
    "D": "darklaunch, 100% shadow, compare.body none",
    "E": "darklaunch, 100% shadow, JSON compare ~4 KiB",
    "F": "darklaunch, 1% sticky (header:x-user-id), JSON compare",
    # Samples (capture): G is E with capture on (every pair matches: nothing
    # to sample); H is E with /meta/generated_at compared, so every pair
    # mismatches; I is H with capture on, 60 samples a minute and the rest
    # dropped at the rate. Not in the default set: `--configs EGHI`.
    "G": "E with capture.per_minute 60 (no mismatch to sample)",
    "H": "E with every pair mismatching (/meta/generated_at compared)",
    "I": "H with capture.per_minute 60 (60 samples a minute, the rest dropped)",
    # gRPC load (h2load), HTTP/2 listener and clusters, nghttpd upstreams.
    "G0": "gRPC, Envoy, no filter",
    "GB": "gRPC, Envoy, native request_mirror_policies (100%)",
    "GD": "gRPC, darklaunch, 100% shadow, compare.body protobuf ~2.6 KiB",
}
GRPC = ("G0", "GB", "GD")
# Targets compare neighbours (C2 with A, C with N, F with C, D with M, E
# with D): alternating this order keeps each pair back to back.
DEFAULT_CONFIGS = "A,C2,N,C,F,B,M,D,E,G0,GB,GD"
# The configurations run by darklaunch (their launch stats are read).
DARKLAUNCH = frozenset("CDEFGHI") | {"GD", "C2"}

# (name, numerator, denominator, metric, op, limit)
TARGETS = [
    ("C/A req/s", "C", "A", "rps", ">=", 0.97),
    ("C/A p99", "C", "A", "p99_ms", "<=", 1.05),
    ("F/A req/s", "F", "A", "rps", ">=", 0.97),
    ("D/B req/s", "D", "B", "rps", ">=", 1.00),
    ("E/B req/s", "E", "B", "rps", ">=", 0.90),
    ("C2/A req/s", "C2", "A", "rps", ">=", 0.98),
    ("C2/A by CPU (A µs/req ÷ C2 µs/req)", "A", "C2", "us_per_req", ">=", 0.98),
]
INFO_RATIOS = [
    ("N/A req/s", "N", "A", "rps"),
    ("C/N req/s", "C", "N", "rps"),
    ("N/A by CPU (A µs/req ÷ N µs/req)", "A", "N", "us_per_req"),
    ("C/N by CPU (N µs/req ÷ C µs/req)", "N", "C", "us_per_req"),
    ("M/B req/s", "M", "B", "rps"),
    ("D/M req/s", "D", "M", "rps"),
    ("M/B by CPU (B µs/req ÷ M µs/req)", "B", "M", "us_per_req"),
    ("D/M by CPU (M µs/req ÷ D µs/req)", "M", "D", "us_per_req"),
    ("F/A p99", "F", "A", "p99_ms"),
    ("D/B p99", "D", "B", "p99_ms"),
    ("E/B p99", "E", "B", "p99_ms"),
    ("B/A req/s", "B", "A", "rps"),
    ("E/D req/s", "E", "D", "rps"),
    # CPU per request: A's µs/req ÷ C's µs/req is the C/A throughput a CPU-bound Envoy would see.
    ("C/A by CPU (A µs/req ÷ C µs/req)", "A", "C", "us_per_req"),
    ("F/A by CPU (A µs/req ÷ F µs/req)", "A", "F", "us_per_req"),
    ("D/B by CPU (B µs/req ÷ D µs/req)", "B", "D", "us_per_req"),
    ("E/B by CPU (B µs/req ÷ E µs/req)", "B", "E", "us_per_req"),
]

# Issue #15's targets: differences of front Envoy CPU µs per request, what a
# configuration adds over the one below it: darklaunch loaded over the empty
# filter (C − N), sticky sampling at 1% over no match (F − C), a shadowed
# call over the least a proxy-wasm filter does to send one (D − M), the JSON
# comparison of ~4 KiB bodies (E − D).
# (name, minuend, subtrahend, metric, limit): a PASS is a difference <= limit.
DIFF_TARGETS = [
    ("C − N front CPU µs/req", "C", "N", "us_per_req", 5.0),
    ("F − C front CPU µs/req", "F", "C", "us_per_req", 5.0),
    ("D − M front CPU µs/req", "D", "M", "us_per_req", 35.0),
    ("E − D front CPU µs/req", "E", "D", "us_per_req", 30.0),
]
# What the floors themselves cost (no target).
INFO_DIFFS = [
    ("N − A front CPU µs/req (the empty proxy-wasm filter)", "N", "A", "us_per_req"),
    ("M − B front CPU µs/req (dispatch_http_call against native mirroring)", "M", "B",
     "us_per_req"),
]
UNITS = {"us_per_req": "µs/req", "rps": "req/s", "p99_ms": "ms"}
# The scale phase (after the others; `--no-scale` skips it): these
# configurations with the front Envoy on two workers and wrk on 64
# connections, darklaunch with the shared-data limits on (SHARED_LIMITS);
# by default those of them that the main phase runs.
SCALE_CONFIGS = "BMDE"
# (name, numerator or minuend, denominator or subtrahend, metric, op), at
# one worker (the main phase) and at the scale phase's workers.
SCALE_COMPARISONS = [
    ("D/M req/s", "D", "M", "rps", "/"),
    ("D/M by CPU (M µs/req ÷ D µs/req)", "M", "D", "us_per_req", "/"),
    ("E/B req/s", "E", "B", "rps", "/"),
    ("E/B by CPU (B µs/req ÷ E µs/req)", "B", "E", "us_per_req", "/"),
    ("D − M front CPU µs/req", "D", "M", "us_per_req", "-"),
    ("E − D front CPU µs/req", "E", "D", "us_per_req", "-"),
]
DELAY_LIMIT_US = 1000.0
# `--baseline WASM`: configurations c, d, e, f are C, D, E, F run by that
# earlier build of darklaunch, alternating with them in the same run.
BASELINE: Optional[Path] = None
BASELINE_OF = {"C": "c", "D": "d", "E": "e", "F": "f"}
# Host calls per request in the probe configurations of scripts/hostcall_cost.py.
PROBE_CALLS = 50


# --------------------------------------------------------------------------
# Bodies and upstreams
# --------------------------------------------------------------------------

def _item(i: int) -> str:
    # The line items of benches/compare.rs.
    return (f'{{"id":{i},"sku":"SKU-{i:05}","name":"Item number {i}","price":{10 + i * 0.25},'
            f'"qty":{i % 7 + 1},"tags":["t{i % 3}","blue"],"etag":"e{i:x}"}}')


def order(size: int, generated_at: str) -> str:
    """An order document of about ``size`` bytes (as in benches/compare.rs)."""
    items: list = []
    length = 200
    while length < size:
        it = _item(len(items))
        length += len(it) + 1
        items.append(it)
    return ('{"order_id":"ord-8f3a2c","status":"confirmed","customer":{"id":4711,'
            '"name":"Ada Lovelace","email":"ada@example.com"},"meta":{"generated_at":"'
            + generated_at + '","version":2},"items":[' + ",".join(items) + '],"total":'
            + str(len(items) * 10) + "}")


PRIMARY_BODY = order(4096, "2024-05-01T12:00:00Z")
# Same document, another timestamp: the bytes differ (no fast path), the
# difference is at an ignored pointer, so every compared pair matches.
DARK_BODY = order(4096, "2024-05-01T12:00:01Z")
IGNORE = ["/meta/generated_at", "/items/*/etag"]


def _hcm(listener: dict) -> dict:
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def upstream_envoy(workdir: Path, access_logs: bool = False):
    """The upstream Envoy: listeners ``primary`` and ``dark`` (direct_response).

    Built from scripts/upstreams.py's bootstrap (its ``primary`` and ``ok``
    listeners, the latter renamed ``dark``) with the ~4 KiB bodies; with
    ``access_logs`` each listener logs ``<x-request-id> <start time, µs>``
    per request to ``<workdir>/<listener>.log``. Returns (Envoy, ports, logs).
    """
    ports = {k: harness.free_port() for k in U.LISTENERS}
    admin = harness.free_port()
    cfg = U.upstream_bootstrap(admin, ports)
    keep = []
    logs = {}
    for lst in cfg["static_resources"]["listeners"]:
        if lst["name"] not in ("primary", "ok"):
            continue
        name = "primary" if lst["name"] == "primary" else "dark"
        lst["name"] = name
        hcm = _hcm(lst)
        hcm["stat_prefix"] = f"up_{name}"
        # direct_response bodies are limited to 4096 bytes by default.
        hcm["route_config"]["max_direct_response_body_size_bytes"] = 65536
        route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
        route["direct_response"]["body"]["inline_string"] = (
            PRIMARY_BODY if name == "primary" else DARK_BODY)
        if access_logs:
            logs[name] = workdir / f"{name}.log"
            hcm["access_log"] = [{
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3."
                             "FileAccessLog",
                    "path": str(logs[name]),
                    "log_format": {"text_format_source": {
                        "inline_string": "%REQ(X-REQUEST-ID)% %START_TIME(%s.%6f)%\n"}},
                },
            }]
        keep.append(lst)
    cfg["static_resources"]["listeners"] = keep
    ports = {"primary": ports["primary"], "dark": ports["ok"]}
    env = harness.Envoy(cfg, admin, ports["primary"], concurrency=1, log_level="warning",
                        component_log_level=None, workdir=workdir, name="upstreams",
                        extra_args=["--file-flush-interval-msec", "100"])
    return env, ports, logs


# --------------------------------------------------------------------------
# gRPC: messages and upstreams (configurations G0, GB, GD)
# --------------------------------------------------------------------------

GRPC_METHOD = "bench.Catalog/GetItem"
GRPC_PATH = "/" + GRPC_METHOD
GRPC_HEADERS = ["content-type: application/grpc", "te: trailers"]
# The dark answer differs from the primary's only there (meta.generated_at).
GRPC_IGNORE = ["/7/1"]


def _pb_uint(number: int, n: int) -> bytes:
    return varint(number << 3) + varint(n)


def _pb_double(number: int, x: float) -> bytes:
    return varint(number << 3 | 1) + struct.pack("<d", x)


def _pb_len(number: int, data) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return varint(number << 3 | 2) + varint(len(data)) + data


def grpc_request() -> bytes:
    """GetItemRequest {1 id, 2 locale, 3 repeated field paths, 4 client {1 name,
    2 version, 3 request id}, 5 user agent}: about 410 bytes."""
    paths = ["id", "sku", "name", "price", "variants.sku", "variants.color", "variants.size",
             "variants.price", "variants.stock", "variants.warehouse", "tags",
             "meta.generated_at", "meta.version", "description"]
    client = (_pb_len(1, "catalog-web-frontend") + _pb_len(2, "2024.05.1-build.8812")
              + _pb_len(3, "req-6f1c2a9e-3b7d-4c5e-9a10-8d2f4e6b7c01"))
    return (_pb_uint(1, 42) + _pb_len(2, "en-GB")
            + b"".join(_pb_len(3, f"item.{x}") for x in paths) + _pb_len(4, client)
            + _pb_len(5, "Mozilla/5.0 (X11; Linux x86_64) catalog-web/2024.05.1 grpc-web-bridge"))


def grpc_item(generated_at_ms: int) -> bytes:
    """Item {1 id, 2 sku, 3 name, 4 price (double), 5 repeated Variant {1 sku,
    2 color, 3 size, 4 price (double), 5 stock, 6 warehouse}, 6 repeated tags,
    7 meta {1 generated_at (ms), 2 version, 3 source}, 8 description}:
    about 2.6 KiB; ``generated_at_ms`` is field 7.1."""
    colors = ["red", "blue", "green", "black", "white", "sand", "navy", "olive"]
    sizes = ["XS", "S", "M", "L", "XL", "XXL"]
    variants = b"".join(_pb_len(5, _pb_len(1, f"SKU-00042-{i:02d}") + _pb_len(2, colors[i % 8])
                                + _pb_len(3, sizes[i % 6]) + _pb_double(4, 129.95 + i * 0.25)
                                + _pb_uint(5, 3 + i * 7 % 40) + _pb_len(6, f"eu-west-{1 + i % 3}b"))
                        for i in range(40))
    tags = b"".join(_pb_len(6, t) for t in ["outdoor", "waterproof", "hiking", "unisex",
                                              "sale", "new-season", "breathable", "recycled"])
    meta = _pb_uint(1, generated_at_ms) + _pb_uint(2, 2) + _pb_len(3, "catalog-service")
    description = ("A lightweight three-layer shell for hiking and everyday wear: taped seams, "
                   "an adjustable hood, two zipped hand pockets and a chest pocket, pit zips "
                   "for ventilation and a dropped back hem. The face fabric is made from "
                   "recycled polyester with a PFC-free durable water repellent finish; the "
                   "membrane is rated 20,000 mm hydrostatic head and 15,000 g/m2/24h "
                   "breathability. Packs into its own chest pocket. Machine washable at 30 "
                   "degrees; tumble dry low to reactivate the finish.")
    return (_pb_uint(1, 42) + _pb_len(2, "SKU-00042") + _pb_len(3, "Trailhead 3L Shell Jacket")
            + _pb_double(4, 129.95) + variants + tags + _pb_len(7, meta)
            + _pb_len(8, description))


GRPC_PRIMARY_ITEM = grpc_item(1714564800000)
# The same item, another meta.generated_at: the bytes differ (no fast path),
# the difference is at an ignored pointer, so every compared pair matches.
GRPC_DARK_ITEM = grpc_item(1714564801000)
GRPC_REQUEST = grpc_request()


def grpc_call(port: int, expect: bytes) -> list:
    """One unary call over raw h2c; what is wrong with the answer (nothing: [])."""
    from harness import grpc_services  # grpcio: only the gRPC configurations need it

    try:
        w = grpc_services.grpc_post(port, GRPC_PATH, GRPC_REQUEST, timeout=5.0)
    except Exception as exc:  # noqa: BLE001 - reported as a problem
        return [f"a gRPC call to port {port} failed: {exc!r}"]
    out = []
    if w.status != 200 or w.trailers_only or w.grpc_status != 0:
        out.append(f"a gRPC call to port {port} answered HTTP {w.status}, grpc-status "
                   f"{w.grpc_status}, trailers {w.trailers}")
    if w.messages != [expect]:
        out.append(f"a gRPC call to port {port} answered {len(w.messages)} messages of "
                   f"{[len(m) for m in w.messages]} bytes, not the expected {len(expect)}")
    return out


class GrpcUpstreams:
    """The primary and dark gRPC services: one nghttpd each (see
    upstreams.Nghttpd), serving ``GRPC_PATH`` from a file holding the framed
    item; ``ports`` {"primary", "dark"}, ``pids``, ``request_file`` (the
    framed request h2load sends)."""

    def __init__(self, workdir: Path):
        shutil.rmtree(workdir, ignore_errors=True)
        self.request_file = workdir / "request.bin"
        self.servers = {}
        for name, item in (("primary", GRPC_PRIMARY_ITEM), ("dark", GRPC_DARK_ITEM)):
            doc = workdir / "htdocs" / name / GRPC_PATH.lstrip("/")
            doc.parent.mkdir(parents=True, exist_ok=True)
            doc.write_bytes(frame(item))
            self.servers[name] = U.Nghttpd(f"grpc-{name}", workdir / "htdocs" / name, workdir)
        self.request_file.write_bytes(frame(GRPC_REQUEST))

    def start(self, pin: "Pinning") -> None:
        for srv in self.servers.values():
            srv.start(timeout=30)
            pin.pin(srv.proc.pid, pin.rest)
        problems = (grpc_call(self.ports["primary"], GRPC_PRIMARY_ITEM)
                    + grpc_call(self.ports["dark"], GRPC_DARK_ITEM))
        if problems:
            raise RuntimeError("gRPC upstreams: " + "; ".join(problems))

    @property
    def ports(self) -> dict:
        return {name: srv.port for name, srv in self.servers.items()}

    @property
    def pids(self) -> dict:
        return {f"grpc_{name}": srv.proc.pid for name, srv in self.servers.items()}

    def stop(self) -> None:
        for srv in self.servers.values():
            srv.stop()


# --------------------------------------------------------------------------
# Front Envoys
# --------------------------------------------------------------------------

def _launch(**over) -> dict:
    base = U.launch(LAUNCH, "dark", timeout_ms=1000, percent=100.0)
    base.update(over)
    return base


def launches_for(kind: str) -> list:
    json_compare = {"headers": ["content-type"], "body": "json", "ignore": IGNORE}
    if kind == "C":
        return [_launch(match={"path_prefix": "/nomatch"}, compare=json_compare)]
    if kind == "C2":
        return [_launch(compare=json_compare)]  # every path: only the route keeps it off
    if kind == "D":
        return [_launch(compare={"headers": ["content-type"], "body": "none"})]
    if kind == "E":
        return [_launch(compare=json_compare)]
    if kind == "F":
        return [_launch(sample={"percent": 1.0, "sticky_key": ["header:x-user-id"]},
                        compare=json_compare)]
    capture = {"per_minute": 60}
    every_pair_differs = dict(json_compare, ignore=["/items/*/etag"])
    if kind == "G":
        return [_launch(compare=json_compare, capture=capture)]
    if kind == "H":
        return [_launch(compare=every_pair_differs)]
    if kind == "I":
        return [_launch(compare=every_pair_differs, capture=capture)]
    raise ValueError(kind)


# The scale phase's darklaunch launches: what the workers of one Envoy share
# through its shared data, updated with CAS, switched on with limits that
# never bind: the process-wide token bucket (`limits.max_rps`, a million
# calls a second: one read and one CAS write per shadowed request) and the
# breaker with its defaults (one read per call; successes batched per
# worker and written at most every 100 ms; every dark answer is a 200, so
# it never opens). `max_in_flight` (per worker, no shared data) stays out of
# the way. A call they held back would count as skipped, a problem.
SHARED_LIMITS = {
    "limits": {"max_in_flight": 100_000, "max_rps": 1_000_000},
    "breaker": {"failure_ratio": 0.5, "min_calls": 20, "window_s": 10, "open_s": 30},
}


def limited(launches: list, shared_limits: bool) -> list:
    """``launches`` with SHARED_LIMITS when ``shared_limits``."""
    return [dict(launch, **SHARED_LIMITS) for launch in launches] if shared_limits else launches


def noop_wasm() -> Path:
    """The small module of configurations N and M (built by `make bench`)."""
    env = os.environ.get("NOOP_WASM")
    return Path(env) if env else (
        U.ROOT / "benches/noop-filter/target/wasm32-wasip1/release/noop_filter.wasm")


def front_envoy(kind: str, workdir: Path, ports: dict, workers: int = 1,
                shared_limits: bool = False) -> harness.Envoy:
    """The front Envoy of an HTTP configuration (not started), ``workers``
    worker threads; ``shared_limits``: darklaunch's launches with the token
    bucket and the breaker on (``SHARED_LIMITS``)."""
    if kind in GRPC:
        raise ValueError(f"{kind}: a gRPC configuration (grpc_front_envoy)")
    if kind == "N":
        # darklaunch's C configuration, with the empty module in its place.
        return U.filter_envoy(workdir, ports["primary"], [U.cluster("dark", ports["dark"])],
                              launches_for("C"), concurrency=workers, name="front-N",
                              wasm_path=noop_wasm())
    if kind.startswith("P:"):
        # scripts/hostcall_cost.py: the empty filter making PROBE_CALLS host
        # calls of one kind in every request-header callback.
        probe = kind[2:]
        return U.filter_envoy(workdir, ports["primary"], [U.cluster("dark", ports["dark"])],
                              [], concurrency=workers, name=f"front-probe-{probe}",
                              wasm_path=noop_wasm(),
                              plugin_config=f"probe:{probe}:{PROBE_CALLS}")
    if kind == "M":
        return U.filter_envoy(workdir, ports["primary"], [U.cluster("dark", ports["dark"])],
                              [], concurrency=workers, name="front-M", wasm_path=noop_wasm(),
                              plugin_config="send:dark")
    if kind == "C2":
        return route_scoped_front(workdir, ports)
    if kind in DARKLAUNCH:
        return U.filter_envoy(workdir, ports["primary"], [U.cluster("dark", ports["dark"])],
                              limited(launches_for(kind), shared_limits),
                              concurrency=workers, name=f"front-{kind}")
    if kind in "cdef" and BASELINE is not None:
        return U.filter_envoy(workdir, ports["primary"], [U.cluster("dark", ports["dark"])],
                              limited(launches_for(kind.upper()), shared_limits),
                              concurrency=workers,
                              name=f"front-baseline-{kind}", wasm_path=BASELINE)
    if kind == "A":
        return U.filter_envoy_plain(workdir, ports["primary"], concurrency=workers, name="front-A")
    if kind == "B":
        return mirror_front(workdir, ports, "front-B", concurrency=workers)
    raise ValueError(kind)


def route_scoped_front(workdir: Path, ports: dict) -> harness.Envoy:
    """C2: C's front Envoy with the filter declared ``disabled: true`` and
    enabled (``FilterConfig`` with an empty ``config``) only on a route the
    load never takes, ``/launch/``; the benchmarked route (``/`` -> primary)
    leaves it off, as in envoy/route_scoped.yaml."""
    env = U.filter_envoy(workdir, ports["primary"], [U.cluster("dark", ports["dark"])],
                         launches_for("C2"), concurrency=1, name="front-C2")
    hcm = _hcm(env.config["static_resources"]["listeners"][0])
    wasm = hcm["http_filters"][0]
    wasm["disabled"] = True
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    enable = {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": {}}
    routes.insert(0, {"match": {"prefix": "/launch/"}, "route": dict(routes[0]["route"]),
                      "typed_per_filter_config": {wasm["name"]: enable}})
    env.config_path.write_text(json.dumps(env.config, indent=2))
    return env


def mirror_front(workdir: Path, ports: dict, name: str, http2: bool = False,
                 concurrency: int = 1) -> harness.Envoy:
    """Envoy mirroring every request to the dark cluster (``request_mirror_policies``)."""
    admin, listener = harness.free_port(), harness.free_port()
    cfg = harness.bootstrap(admin, listener, primary_cluster=(U.LOOPBACK, ports["primary"]),
                            clusters={"dark": U.cluster("dark", ports["dark"], http2=http2)},
                            primary_http2=http2, http2_downstream=http2)
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "primary":
            c.update(U.cluster("primary", ports["primary"], http2=http2))
    hcm = _hcm(cfg["static_resources"]["listeners"][0])
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    route["request_mirror_policies"] = [{"cluster": "dark"}]
    return harness.Envoy(cfg, admin, listener, concurrency=concurrency, log_level="info",
                         component_log_level=None, workdir=workdir, name=name)


def grpc_launch() -> dict:
    """GD's launch: the gRPC method, 100%, protobuf comparison without a
    descriptor (fields by number), meta.generated_at ignored."""
    return _launch(match={"grpc_methods": [GRPC_METHOD]},
                   compare={"body": "protobuf", "ignore": GRPC_IGNORE})


def grpc_front_envoy(kind: str, workdir: Path, ports: dict) -> harness.Envoy:
    """G0, GB, GD: HTTP/2 listener, primary and dark clusters over HTTP/2 to
    the gRPC upstreams ``ports`` {"primary", "dark"}."""
    if kind == "G0":
        return U.filter_envoy_plain(workdir, ports["primary"], concurrency=1, name="front-G0",
                                    http2=True)
    if kind == "GB":
        return mirror_front(workdir, ports, "front-GB", http2=True)
    if kind == "GD":
        return U.filter_envoy(workdir, ports["primary"],
                              [U.cluster("dark", ports["dark"], http2=True)], [grpc_launch()],
                              concurrency=1, name="front-GD", http2=True)
    raise ValueError(kind)


# --------------------------------------------------------------------------
# CPU pinning
# --------------------------------------------------------------------------

class Pinning:
    """Front Envoy on CPU 0; this process (so wrk) and the upstreams on CPU 1."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and (os.cpu_count() or 1) >= 2 and bool(shutil.which("taskset"))
        self.front, self.rest = "0", "1"
        self.saved = os.sched_getaffinity(0)
        if self.enabled:
            os.sched_setaffinity(0, {1})  # children (wrk, Envoys) inherit it

    def release(self) -> None:
        """This process, so what it starts from now on, back on every CPU it had."""
        if self.enabled:
            os.sched_setaffinity(0, self.saved)

    def pin(self, pid: int, cpus: str) -> None:
        if self.enabled:
            subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    def describe(self) -> str:
        if not self.enabled:
            return "no CPU pinning"
        return ("front Envoy pinned to CPU 0 (all its threads, `taskset -a -p -c 0`); wrk, "
                "the upstream Envoy and the driver script on CPU 1")


# --------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------

USERS_LUA = """-- written by scripts/bench.py: every request carries x-user-id, cycling
-- through {n} distinct users (so 1% sticky sampling shadows ~1% of requests).
local n = {n}
local reqs = {{}}
local i = 0
function init(args)
  for k = 1, n do
    reqs[k] = wrk.format("GET", nil, {{["x-user-id"] = string.format("user-%05d", k)}})
  end
end
function request()
  i = i % n + 1
  return reqs[i]
end
"""


def users_script() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "users.lua"
    path.write_text(USERS_LUA.format(n=USERS))
    return path


def sampled_share(percent: float) -> float:
    """Share of the Lua script's users that 1% sticky sampling takes (sampled in when
    murmur3_x86_32(launch name + user id) < percent/100 × 2^32)."""
    hits = sum(harness.sticky_sampled(LAUNCH, f"user-{k:05d}", percent)
               for k in range(1, USERS + 1))
    return hits / USERS


def wrk_cmd(url: str, args, seconds: float) -> list:
    cmd = U.wrk_command(url, args.threads, args.connections, seconds)
    return cmd[:-1] + ["-s", str(users_script()), cmd[-1]]


# --------------------------------------------------------------------------
# One measured run
# --------------------------------------------------------------------------

def per_cpu() -> dict:
    """{cpu index: (busy, total, steal)} jiffies from /proc/stat (steal counts as busy)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            f = [int(x) for x in vals] + [0] * 8
            total = sum(f[:8])
            out[int(name[3:])] = (total - f[3] - f[4], total, f[7])
    return out


def cpu_steal(before: dict, after: dict, cpu: int) -> float:
    """Share of the time the hypervisor kept CPU ``cpu`` from this machine (steal)."""
    if cpu not in before or cpu not in after:
        return float("nan")
    total = after[cpu][1] - before[cpu][1]
    return (after[cpu][2] - before[cpu][2]) / total if total > 0 else float("nan")


def cpu_busy(before: dict, after: dict, cpu: int) -> float:
    """Share of the time CPU ``cpu`` was busy between two per_cpu() readings."""
    if cpu not in before or cpu not in after:
        return float("nan")
    busy = after[cpu][0] - before[cpu][0]
    total = after[cpu][1] - before[cpu][1]
    return busy / total if total > 0 else float("nan")


NOISY = 0.2  # cores used by other processes during a run that make it worth repeating


def wait_quiet(max_wait_s: float, deadline: float) -> tuple:
    """Waits (at most ``max_wait_s``, never past ``deadline``) until the rest of the
    machine uses under 0.3 cores; (seconds waited, last reading in cores)."""
    t0 = time.monotonic()
    busy = U.machine_busy(0.5)
    while (busy >= 0.3 and time.monotonic() - t0 < max_wait_s
           and time.monotonic() < deadline):
        busy = U.machine_busy(1.0)
    return time.monotonic() - t0, busy


def counters(env: harness.Envoy, kind: str) -> dict:
    out = env.launch_stats(LAUNCH) if kind.upper() in DARKLAUNCH else {}
    dark = env.stats("cluster.dark.upstream_rq_total")
    out["dark_rq"] = dark.get("cluster.dark.upstream_rq_total", 0)
    return out


def worker_connections(env: harness.Envoy) -> list:
    """Connections each worker of ``env`` accepted since it started (warm-up
    included; the listener's per-worker counters), worker 0 first."""
    out: dict = {}
    for name, value in env.stats("listener.").items():
        m = re.search(r"\.worker_(\d+)\.downstream_cx_total$", name)
        if m:
            out[int(m.group(1))] = out.get(int(m.group(1)), 0) + value
    return [out[w] for w in sorted(out)]


def start_front(kind: str, workdir: Path, ports: dict, pin: Pinning, args) -> tuple:
    """A front Envoy of ``kind``, started and pinned; (envoy, seconds to start)."""
    shutil.rmtree(workdir, ignore_errors=True)
    env = front_envoy(kind, workdir, ports, args.workers, args.shared_limits)
    t0 = time.monotonic()
    env.start(timeout=90)
    start_s = time.monotonic() - t0
    pin.pin(env.proc.pid, pin.front)
    return env, start_s


def run_once(kind: str, rep: int, idx: int, ports: dict, up_pid: int, pin: Pinning,
             args, env: Optional[harness.Envoy] = None) -> dict:
    """One measured run of ``kind``: on ``env`` when given (a front Envoy kept
    for the whole phase), else on a fresh front Envoy stopped afterwards."""
    if kind in GRPC:
        return run_once_grpc(kind, rep, idx, ports["grpc"], up_pid, pin, args)
    own = env is None
    start_s = 0.0
    if env is None:
        env, start_s = start_front(kind, OUT / f"run{idx:02d}-{kind}", ports, pin, args)
    try:
        url = env.url(PATH)
        # A kept Envoy is warm already: its warm-up only opens the connections.
        warmup = args.warmup if own else min(args.warmup, 1)
        if warmup > 0:
            U.Wrk(wrk_cmd(url, args, warmup)).wait()
        before = counters(env, kind)
        meter = U.CpuMeter({"front": env.proc.pid, "upstream": up_pid})
        cpus0 = per_cpu()
        wrk = U.Wrk(wrk_cmd(url, args, args.seconds))
        prof = (Profile(env.proc.pid, args.seconds, OUT / f"run{idx:02d}.perf")
                if getattr(args, "profile", False) else None)
        res = wrk.wait()
        cpus1 = per_cpu()
        cpu = meter.stop()
        shares = prof.shares() if prof else None
        # Let the last shadow calls finish before reading the counters.
        time.sleep(0.3)
        after = counters(env, kind)
        rss = U.rss_kib(env.proc.pid)
        cx_per_worker = worker_connections(env)
    finally:
        if own:
            env.stop()

    def delta(key):
        return after.get(key, 0) - before.get(key, 0)

    wrk_cores = res["cpu_s"] / cpu["seconds"]
    row = {
        "kind": kind, "rep": rep, "run": idx, "workers": args.workers,
        "connections": args.connections, "cx_per_worker": cx_per_worker,
        "rps": res["rps"], "requests": res["requests"],
        "p50_ms": res["p50_ms"], "p90_ms": res["p90_ms"], "p99_ms": res["p99_ms"],
        "max_ms": res["max_ms"],
        "errors": sum(res["errors"].values()), "non_2xx": res["non_2xx"],
        "matched": delta("matched"), "shadowed": delta("shadowed"),
        "compared": delta("compared"), "mismatch": delta("mismatch"),
        "sampled": delta("sample.captured"), "sample_drops": delta("sample.dropped.rate"),
        # The minute's samples are usually all taken during the warm-up.
        "sampled_total": after.get("sample.captured", 0),
        "skipped": sum(delta(k) for k in after if k.startswith("skipped.")
                       and not k.endswith("sampled_out")),
        "sampled_out": delta("skipped.sampled_out"),
        "dark_rq": delta("dark_rq"),
        "cpu_front": cpu["front"], "cpu_upstream": cpu["upstream"], "cpu_wrk": wrk_cores,
        "cpu_others": max(0.0, cpu["machine"] - cpu["front"] - cpu["upstream"] - wrk_cores),
        "cpu0_busy": cpu_busy(cpus0, cpus1, 0), "cpu1_busy": cpu_busy(cpus0, cpus1, 1),
        "cpu0_steal": cpu_steal(cpus0, cpus1, 0),
        "start_s": start_s, "rss_mib": rss / 1024,
        "wrk": res["raw"],
    }
    row["us_per_req"] = row["cpu_front"] / row["rps"] * 1e6 if row["rps"] else 0.0
    if shares:
        row["profile"] = {k: row["us_per_req"] * shares[k] for k, _ in PROFILE_PARTS}
    row["shadow_share"] = row["dark_rq"] / row["requests"] if row["requests"] else 0.0
    row["problems"] = problems(row)
    return row


def run_once_grpc(kind: str, rep: int, idx: int, grpc_up: GrpcUpstreams, up_pid: int,
                  pin: Pinning, args) -> dict:
    """One measured run of G0, GB or GD: a fresh front Envoy, one checked
    call, then h2load (its own warm-up, then the measured seconds). The CPU
    meters and the counters' first reading are taken when h2load says its
    measured seconds start, the meters stopped when it says they are over,
    so that CPU time and h2load's request count cover the same seconds."""
    workdir = OUT / f"run{idx:02d}-{kind}"
    shutil.rmtree(workdir, ignore_errors=True)
    env = grpc_front_envoy(kind, workdir, grpc_up.ports)
    t0 = time.monotonic()
    env.start(timeout=90)
    start_s = time.monotonic() - t0
    pin.pin(env.proc.pid, pin.front)
    at: dict = {}
    try:
        check = grpc_call(env.listener_port, GRPC_PRIMARY_ITEM)
        log = workdir / "h2load.log"
        cmd = U.h2load_command(env.url(GRPC_PATH), args.connections, args.seconds,
                               args.warmup, grpc_up.request_file, GRPC_HEADERS, log)
        h2 = U.H2load(cmd, args.seconds + args.warmup, log)

        def main_started():
            at["before"] = counters(env, kind)
            at["meter"] = U.CpuMeter({"front": env.proc.pid, "upstream": up_pid,
                                      "load": h2.pid, **grpc_up.pids})
            at["cpus0"] = per_cpu()

        def main_over():
            at["cpus1"] = per_cpu()
            at["cpu"] = at["meter"].stop()

        res = h2.wait(main_started, main_over)
        # Let the last shadow calls finish before reading the counters.
        time.sleep(0.3)
        after = counters(env, kind)
        rss = U.rss_kib(env.proc.pid)
    finally:
        env.stop()
    before, cpu, cpus0, cpus1 = at["before"], at["cpu"], at["cpus0"], at["cpus1"]

    def delta(key):
        return after.get(key, 0) - before.get(key, 0)

    upstreams = cpu["upstream"] + sum(cpu[k] for k in grpc_up.pids)
    row = {
        "kind": kind, "rep": rep, "run": idx,
        "rps": res["rps"], "requests": res["requests"],
        "p50_ms": res.get("p50_ms", 0.0), "p90_ms": res.get("p90_ms", 0.0),
        "p99_ms": res.get("p99_ms", 0.0), "max_ms": res.get("max_ms", 0.0),
        "errors": res.get("failed", 0) + res.get("errored", 0) + res.get("timeout", 0),
        "non_2xx": res["non_2xx"], "logged": res.get("logged", 0),
        "matched": delta("matched"), "shadowed": delta("shadowed"),
        "compared": delta("compared"), "mismatch": delta("mismatch"),
        "skipped": sum(delta(k) for k in after if k.startswith("skipped.")
                       and not k.endswith("sampled_out")),
        "dark_grpc_ok": delta("dark_grpc.ok"), "primary_grpc_ok": delta("primary_grpc.ok"),
        "dark_grpc_other": sum(delta(k) for k in after if k.startswith("dark_grpc.")
                               and k != "dark_grpc.ok"),
        "dark_rq": delta("dark_rq"),
        "cpu_front": cpu["front"], "cpu_upstream": upstreams, "cpu_wrk": cpu["load"],
        "cpu_others": max(0.0, cpu["machine"] - cpu["front"] - upstreams - cpu["load"]),
        "cpu0_busy": cpu_busy(cpus0, cpus1, 0), "cpu1_busy": cpu_busy(cpus0, cpus1, 1),
        "cpu0_steal": cpu_steal(cpus0, cpus1, 0), "metered_s": cpu["seconds"],
        "start_s": start_s, "rss_mib": rss / 1024, "check": check,
        "wrk": res["raw"],
    }
    # The meters cover h2load's measured seconds: CPU seconds per request done.
    row["us_per_req"] = (cpu["front"] * cpu["seconds"] / row["requests"] * 1e6
                         if row["requests"] else 0.0)
    row["shadow_share"] = row["dark_rq"] / row["requests"] if row["requests"] else 0.0
    row["problems"] = problems(row)
    return row


def grpc_problems(r: dict) -> list:
    out = list(r.get("check", []))
    if r["errors"] or r["non_2xx"]:
        out.append(f"h2load saw {r['errors']} failed, errored or timed-out requests and "
                   f"{r['non_2xx']} non-2xx answers")
    k = r["kind"]
    if k == "G0" and r["dark_rq"]:
        out.append(f"{r['dark_rq']} dark requests in a configuration without shadowing")
    if k in ("GB", "GD") and not 0.95 <= r["shadow_share"] <= 1.05:
        out.append(f"{r['dark_rq']} dark requests for {r['requests']} client requests "
                   f"({r['shadow_share']:.3f} per request, expected 1)")
    if k == "GD":
        if r["skipped"]:
            out.append(f"{r['skipped']} matched requests skipped (limits?)")
        if r["compared"] == 0 or r["mismatch"]:
            out.append(f"GD compared {r['compared']} pairs, {r['mismatch']} mismatches "
                       "(expected all compared, none mismatching: the answers differ only at "
                       f"{GRPC_IGNORE}, which the launch ignores; a module whose src/protobuf "
                       "is still the stub compares gRPC bodies as bytes, so every pair "
                       "mismatches)")
        if r["compared"] < 0.99 * r["shadowed"]:
            out.append(f"only {r['compared']} of {r['shadowed']} shadowed pairs compared "
                       "(compare_skipped?)")
        if r["dark_grpc_ok"] < 0.99 * r["shadowed"] or r["dark_grpc_other"]:
            out.append(f"dark_grpc.ok {r['dark_grpc_ok']} and {r['dark_grpc_other']} other "
                       f"codes for {r['shadowed']} shadowed calls (expected all ok)")
        if r["primary_grpc_ok"] < 0.99 * r["compared"]:
            out.append(f"primary_grpc.ok {r['primary_grpc_ok']} for {r['compared']} pairs")
    return out


def problems(r: dict) -> list:
    if r["kind"] in GRPC:
        return grpc_problems(r)
    out = []
    if r["errors"] or r["non_2xx"]:
        out.append(f"client saw {r['errors']} socket errors and {r['non_2xx']} non-2xx answers")
    k = r["kind"].upper()  # a baseline run is checked like its configuration
    if k in "BMDEGHI" and r["shadow_share"] < 0.95:
        out.append(f"only {r['dark_rq']} dark requests for {r['requests']} client requests")
    if k in "DEGHI" and r["skipped"]:
        out.append(f"{r['skipped']} matched requests skipped (limits?)")
    if k in "EG" and (r["compared"] == 0 or r["mismatch"]):
        out.append(f"{k} compared {r['compared']} pairs, {r['mismatch']} mismatches "
                   "(expected all compared, none mismatching)")
    if k in "HI" and (r["compared"] == 0 or r["mismatch"] != r["compared"]):
        out.append(f"{k} compared {r['compared']} pairs, {r['mismatch']} mismatches "
                   "(expected every pair mismatching)")
    if k == "I" and not (0 < r["sampled_total"] <= 120 and r["sample_drops"] > 0):
        out.append(f"I sampled {r['sampled_total']} pairs since start and dropped "
                   f"{r['sample_drops']} while measured (expected at most 60 a minute, "
                   "the rest dropped)")
    if k in "EGH" and r["sampled"]:
        out.append(f"{k} wrote {r['sampled']} samples")
    if k in "AC" and r["dark_rq"]:
        out.append(f"{r['dark_rq']} dark requests in a configuration without shadowing")
    if k == "C" and r["matched"]:
        out.append(f"{r['matched']} requests matched the launch")
    if k == "C2" and (r["matched"] or r["dark_rq"]):
        out.append(f"{r['matched']} requests reached darklaunch and {r['dark_rq']} the dark "
                   "cluster on a route that keeps the filter off")
    if k == "F" and r["shadowed"] == 0:
        out.append("F shadowed nothing")
    return out


# --------------------------------------------------------------------------
# Shadow dispatch delay
# --------------------------------------------------------------------------

def read_log(path: Path) -> dict:
    """{x-request-id: start time (s)} from an upstream access log."""
    out = {}
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] != "-":
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def quantile(xs: list, q: float) -> float:
    """Nearest-rank quantile of sorted ``xs``."""
    if not xs:
        return float("nan")
    i = min(len(xs) - 1, max(0, int(round(q * len(xs) + 0.5)) - 1))
    return xs[i]


def dist(xs: list) -> dict:
    xs = sorted(xs)
    if not xs:
        return {}
    return {"n": len(xs), "min": xs[0], "p50": quantile(xs, 0.5), "p90": quantile(xs, 0.9),
            "p99": quantile(xs, 0.99), "p999": quantile(xs, 0.999), "max": xs[-1],
            "mean": statistics.fmean(xs)}


class Capture:
    """Kernel-timestamped capture of the HTTP requests sent on loopback to some ports.

    An AF_PACKET socket on ``lo`` (root or CAP_NET_RAW; standard library
    only) sees every packet when it is transmitted, stamped by the kernel
    (SO_TIMESTAMPNS) at that moment: for a request that Envoy writes, the
    instant it leaves Envoy; for a request written to Envoy, the instant it
    reaches Envoy's socket. Each loopback packet shows up twice (outgoing,
    then incoming); only the outgoing copy is kept. A request is recognised
    by the ``n=<id>`` query parameter the paced load puts on every request,
    which Envoy forwards to the primary and the shadow copy keeps.
    ``events[label][id]`` is the first such packet's time in seconds.
    """

    SO_TIMESTAMPNS = 35
    SO_RCVBUFFORCE = 33
    SOL_PACKET = 263
    PACKET_STATISTICS = 6

    def __init__(self, ports: dict):
        import socket
        import threading
        self.ports = ports  # port -> label
        self.events = {label: {} for label in ports.values()}
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        self.sock.bind(("lo", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, self.SO_TIMESTAMPNS, 1)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, self.SO_RCVBUFFORCE, 64 << 20)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        self.sock.settimeout(0.2)
        self._stop = False
        self._outgoing = socket.PACKET_OUTGOING
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import socket
        import struct
        rx = re.compile(rb"^[A-Z]+ [^ ?]*\?(?:[^ ]*&)?n=(\d+)")
        while not self._stop:
            try:
                data, anc, _, addr = self.sock.recvmsg(262144, 64)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] != self._outgoing or data[12:14] != b"\x08\x00":
                continue
            ip = data[14:]
            if len(ip) < 20 or ip[9] != 6:
                continue
            tcp = ip[(ip[0] & 0x0F) * 4:]
            if len(tcp) < 20:
                continue
            label = self.ports.get(int.from_bytes(tcp[2:4], "big"))
            if label is None:
                continue
            m = rx.match(tcp[(tcp[12] >> 4) * 4:])
            if not m:
                continue
            ts = None
            for level, typ, val in anc:
                if level == socket.SOL_SOCKET and typ == self.SO_TIMESTAMPNS and len(val) >= 16:
                    sec, nsec = struct.unpack("qq", val[:16])
                    ts = sec + nsec * 1e-9
            if ts is not None:
                self.events[label].setdefault(int(m.group(1)), ts)

    def stop(self) -> dict:
        """Stops; kernel drop statistics {"packets", "drops"} since the start."""
        import struct
        self._stop = True
        self.thread.join(5)
        try:
            raw = self.sock.getsockopt(self.SOL_PACKET, self.PACKET_STATISTICS, 8)
            packets, drops = struct.unpack("II", raw)
        except OSError:
            packets = drops = -1
        self.sock.close()
        return {"packets": packets, "drops": drops}


PACED_LUA = """-- written by scripts/bench.py: a unique n=<id> on every request, and a pause
-- of {pause} ms after every answer on each connection (a modest, steady load).
local n = 0
function request()
  n = n + 1
  return wrk.format("GET", "{path}?n=" .. n)
end
function delay()
  return {pause}
end
"""


def _self_cpu() -> float:
    """CPU seconds of this process (all threads: the packet capture)."""
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def delay_run(kind: str, pin: Pinning, args) -> dict:
    """Shadow dispatch delay of configuration ``kind`` under a paced load.

    Times from the packet capture (kernel timestamps): ``req`` the request
    reaching the front Envoy, ``primary`` the primary request leaving it,
    ``dark`` the shadow request leaving it. Cross-check: the upstream
    Envoy's access logs (arrival of the primary and the dark request there,
    joined on x-request-id).
    """
    workdir = OUT / f"delay-{kind}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "paced.lua"
    script.write_text(PACED_LUA.format(pause=args.delay_pause_ms, path=PATH))
    up, ports, logs = upstream_envoy(workdir / "upstreams", access_logs=True)
    up.start(timeout=60)
    pin.pin(up.proc.pid, pin.rest)
    env = front_envoy(kind, workdir / "front", ports)
    cap = None
    capture_error = ""
    res_wrk: dict = {}
    cmd: list = []
    try:
        env.start(timeout=90)
        pin.pin(env.proc.pid, pin.front)
        try:
            cap = Capture({env.listener_port: "req", ports["primary"]: "primary",
                           ports["dark"]: "dark"})
        except OSError as exc:  # not root: the access-log join still works
            capture_error = f"packet capture unavailable ({exc}); upstream access logs only"
        cmd = U.wrk_command(env.url(PATH), 1, args.delay_connections,
                            args.delay_seconds + 2)
        cmd = cmd[:-1] + ["-s", str(script), cmd[-1]]
        t0 = time.time()
        meter = U.CpuMeter({"front": env.proc.pid, "upstream": up.proc.pid})
        self0 = _self_cpu()
        cpus0 = per_cpu()
        res_wrk = U.Wrk(cmd).wait()
        cpus1 = per_cpu()
        self_cores = (_self_cpu() - self0)
        cpu = meter.stop()
        self_cores /= cpu["seconds"]
        wrk_cores = res_wrk["cpu_s"] / cpu["seconds"]
        cpu_others = max(0.0, cpu["machine"] - cpu["front"] - cpu["upstream"] - wrk_cores
                         - self_cores)
        time.sleep(1.5)  # the last shadow calls, then the access logs' 100 ms flush
    finally:
        stats = cap.stop() if cap else {}
        env.stop()
        up.stop()
    res = {"kind": kind, "command": " ".join(cmd).replace(str(U.ROOT) + "/", ""),
           "rps": res_wrk.get("rps", 0.0), "requests": res_wrk.get("requests", 0),
           "cpu_front": cpu["front"], "cpu_self": self_cores, "cpu_others": cpu_others,
           "cpu0_steal": cpu_steal(cpus0, cpus1, 0),
           "capture": stats, "problems": []}
    if capture_error:
        res["problems"].append(capture_error)
    if cap:
        ev = cap.events
        # The first two seconds warm up (connections, V8 tier-up); left out.
        ids = [i for i, t in ev["req"].items() if t >= t0 + 2.0]
        both = [i for i in ids if i in ev["primary"] and i in ev["dark"]]
        res["joined"] = len(both)
        res["measured"] = len(ids)
        res["dark_after_req"] = dist([(ev["dark"][i] - ev["req"][i]) * 1e6 for i in both])
        res["primary_after_req"] = dist([(ev["primary"][i] - ev["req"][i]) * 1e6
                                         for i in ids if i in ev["primary"]])
        res["dark_after_primary"] = dist([(ev["dark"][i] - ev["primary"][i]) * 1e6
                                          for i in both])
        if kind in "BDE" and len(both) < 0.95 * max(1, len(ids)):
            res["problems"].append(f"only {len(both)} of {len(ids)} requests were seen leaving "
                                   "to both the primary and the dark cluster")
        if stats.get("drops", 0) > 0:
            res["problems"].append(f"packet capture dropped {stats['drops']} packets")
    prim, dark = read_log(logs["primary"]), read_log(logs["dark"])
    res["upstream_log"] = dist([(dark[r] - prim[r]) * 1e6 for r in dark if r in prim])
    errors = sum(res_wrk.get("errors", {}).values()) + res_wrk.get("non_2xx", 0)
    if errors:
        res["problems"].append(f"client saw {errors} errors or non-2xx answers")
    return res


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def medians(rows: list) -> dict:
    out = {}
    for k in CONFIGS:
        rs = [r for r in rows if r["kind"] == k]
        if not rs:
            continue
        out[k] = {x: statistics.median(r[x] for r in rs)
                  for x in ("rps", "p50_ms", "p90_ms", "p99_ms", "cpu_front", "cpu_upstream",
                            "cpu_wrk", "cpu_others", "us_per_req", "shadow_share",
                            "cpu0_busy", "cpu1_busy")}
        out[k]["runs"] = len(rs)
        out[k]["rps_range"] = (min(r["rps"] for r in rs), max(r["rps"] for r in rs))
        out[k]["p99_range"] = (min(r["p99_ms"] for r in rs), max(r["p99_ms"] for r in rs))
    return out


def per_rep(rows: list, num: str, den: str, metric: str, op: str) -> list:
    """``num`` ÷ (op "/") or − (op "-") ``den`` within each repetition."""
    out = []
    for rep in sorted({r["rep"] for r in rows}):
        a = [r[metric] for r in rows if r["rep"] == rep and r["kind"] == num]
        b = [r[metric] for r in rows if r["rep"] == rep and r["kind"] == den]
        if a and b and (op == "-" or b[0]):
            out.append(a[0] / b[0] if op == "/" else a[0] - b[0])
    return out


def compare(rows: list, med: dict, num: str, den: str, metric: str, op: str) -> tuple:
    """(median of the per-repetition values, the value of the medians,
    per-repetition values) of ``num`` ÷ (op "/") or − (op "-") ``den``;
    (None, None, []) when the runs lack either configuration."""
    vals = per_rep(rows, num, den, metric, op)
    if not vals or num not in med or den not in med:
        return None, None, []
    a, b = med[num][metric], med[den][metric]
    return statistics.median(vals), a / b if op == "/" else a - b, vals


def _signed(x: float, op: str, unit: str = "") -> str:
    """A ratio with three decimals, a difference signed with one (and ``unit``)."""
    return f"{x:.3f}" if op == "/" else f"{x:+.1f}" + (f" {unit}" if unit else "")


def verdict(value, op: str, limit: float) -> str:
    if value is None:
        return "n/a"
    ok = value >= limit if op == ">=" else value <= limit
    return "PASS" if ok else "FAIL"


def disturbance_lines(discarded: list, noisy: list, bad: list, paced: list = ()) -> list:
    """The report's closing notes: runs repeated because other processes
    disturbed them, ``paced`` (notes on the paced runs), runs kept though
    disturbed, and the problems found."""
    lines = []
    if discarded:
        lines += [f"Runs disturbed by other processes (more than {NOISY} cores) and repeated: "
                  + ", ".join(f"{r['run']} ({r['kind']}"
                              + (f", {r['workers']} workers" if r.get("workers", 1) > 1 else "")
                              + f", {r['cpu_others']:.2f} cores)" for r in discarded) + ".", ""]
    lines += list(paced)
    if noisy:
        lines += [f"Note: other processes used more than {NOISY} cores during runs {noisy} "
                  "(kept: the repeat was disturbed too, or the time budget was spent); those "
                  "numbers include their interference.", ""]
    if bad:
        lines += ["Problems:", ""] + [f"- run {i} ({k}): {p}" for i, k, p in bad] + [""]
    return lines


def runs_table(rows: list, per_worker: bool = False) -> str:
    """The HTTP runs, one line each; ``per_worker``: with the connections each
    front Envoy worker accepted."""
    out = []
    for r in rows:
        dl = r["kind"].upper() in DARKLAUNCH
        out.append([r["run"], r["rep"], r["kind"], f"{r['rps']:.0f}", f"{r['p50_ms']:.3f}",
                    f"{r['p99_ms']:.3f}", f"{r['max_ms']:.1f}", f"{r['cpu_front']:.2f}",
                    f"{r['us_per_req']:.0f}", f"{r['cpu_upstream']:.2f}",
                    f"{r['cpu_wrk']:.2f}", f"{r['cpu_others']:.2f}",
                    f"{r['cpu0_busy']:.2f}", f"{r['cpu1_busy']:.2f}", r["dark_rq"],
                    r["shadowed"] if dl else "-", r["compared"] if dl else "-",
                    r["errors"] + r["non_2xx"]]
                   + (["/".join(map(str, r.get("cx_per_worker", [])))] if per_worker else []))
    return U.markdown_table(["run", "rep", "cfg", "req/s", "p50 ms", "p99 ms", "max ms",
                             "CPU front", "µs/req", "CPU upstream", "CPU wrk",
                             "CPU others", "CPU 0 busy", "CPU 1 busy", "dark reqs",
                             "shadowed", "compared", "errors"]
                            + (["connections per worker"] if per_worker else []), out)


def least_share(rows: list) -> str:
    """The smallest share of the connections that one front Envoy worker
    accepted, over ``rows`` (50% for two workers: perfectly even)."""
    shares = [min(r["cx_per_worker"]) / sum(r["cx_per_worker"]) for r in rows
              if len(r.get("cx_per_worker", [])) > 1 and sum(r["cx_per_worker"])]
    return f"{min(shares) * 100:.0f}%" if shares else "-"


def scale_section(rows: list, scale_rows: list, args) -> tuple:
    """The scale phase's subsection (lines) and results: each configuration
    at one worker (``rows``, the main phase) and at ``--scale-workers``
    (``scale_rows``), then SCALE_COMPARISONS at both."""
    w = args.scale_workers
    med1, med2 = medians(rows), medians(scale_rows)
    per_cfg = []
    for k in args.scale_list:
        if k not in med2:
            continue
        m1, m2 = med1.get(k), med2[k]
        runs = [r for r in scale_rows if r["kind"] == k]
        us = [r["us_per_req"] for r in runs]
        per_cfg.append([
            k, CONFIGS[k], f"{m1['rps']:.0f}" if m1 else "-",
            f"{m1['us_per_req']:.1f}" if m1 else "-", m2["runs"], f"{m2['rps']:.0f}",
            f"{m2['rps_range'][0]:.0f}–{m2['rps_range'][1]:.0f}", f"**{m2['us_per_req']:.1f}**",
            f"{min(us):.0f}–{max(us):.0f}", f"{m2['cpu_front']:.2f}", f"{m2['p99_ms']:.3f}",
            least_share(runs), f"{m2['shadow_share']:.3f}"])
    per_cfg_md = U.markdown_table(
        ["cfg", "configuration", "1 worker: req/s", "1 worker: front CPU µs/req"]
        + [f"{w} workers: {x}" for x in (
            "runs", "req/s", "req/s range", "front CPU µs/req", "µs/req range",
            "front Envoy CPU (cores)", "p99 ms", "least-loaded worker's share of connections",
            "dark req / req")], per_cfg)
    results: dict = {"workers": w, "connections": args.scale_connections,
                     "repeats": args.scale_repeats, "configs": args.scale_list,
                     "minutes": round(args.scale_minutes, 2), "shared_limits": SHARED_LIMITS,
                     "medians": med2, "comparisons": {}}
    comp = []

    def fmt(x, op, unit):
        return "-" if x is None else _signed(x, op, unit)

    for name, num, den, metric, op in SCALE_COMPARISONS:
        v1, o1, _ = compare(rows, med1, num, den, metric, op)
        v2, o2, vals2 = compare(scale_rows, med2, num, den, metric, op)
        if v2 is None:
            continue
        unit = UNITS[metric] if op == "-" else ""
        results["comparisons"][name] = {
            "1": {"median_per_repetition": v1, "of_medians": o1},
            str(w): {"median_per_repetition": v2, "of_medians": o2, "per_repetition": vals2}}
        comp.append([name, fmt(v1, op, unit), fmt(o1, op, unit), fmt(v2, op, unit),
                     fmt(o2, op, unit),
                     f"{_signed(min(vals2), op)} … {_signed(max(vals2), op)}"])
    comp_md = U.markdown_table(
        ["comparison", "1 worker: median per repetition", "1 worker: of medians",
         f"{w} workers: median per repetition", f"{w} workers: of medians",
         f"{w} workers: per-repetition range"], comp)
    example = " ".join(shlex.quote(x) for x in wrk_cmd(
        f"http://127.0.0.1:PORT{PATH}", argparse.Namespace(
            threads=args.threads, connections=args.scale_connections),
        args.seconds)).replace(str(U.ROOT) + "/", "")
    seq = args.scale_list
    lines = [
        f"### Scale: {w} workers, {args.scale_connections} connections",
        "",
        f"The same load with the front Envoy on {w} workers (`--concurrency {w}`) and "
        f"{args.scale_connections} connections, D and E with the process-wide token bucket "
        "and the breaker on (limits that never bind): do the paths the workers share "
        "through Envoy's shared data hold up under contention? The 1-worker columns are "
        "the main phase's medians (above).",
        "",
        per_cfg_md,
        "",
        comp_md,
        "",
        f"- front Envoy: `--concurrency {w}`, not pinned: on this 2-core machine {w} "
        "workers cannot have cores of their own, so the front Envoy, wrk and a fresh "
        "upstream Envoy (`--concurrency 1`) all run on both cores wherever the kernel puts "
        "them. req/s is then what the whole machine does and depends on how the cores are "
        "shared; front CPU µs/req (the front Envoy's CPU time, all its threads, per "
        "request) is still the cost of a configuration, and the per-repetition ratios and "
        "differences compare configurations run under the same conditions",
        f"- load: `{example}`, closed loop; `{args.warmup}` s warm-up discarded per run; "
        f"fresh front Envoy per run; {args.scale_repeats} repetitions, alternating: "
        f"{' '.join(seq)} on even repetitions, {' '.join(reversed(seq))} on odd ones; "
        f"waits for quiet and repeats disturbed runs as the main phase does; the "
        f"phase took {args.scale_minutes:.1f} min",
        "- D and E: the launches of the main phase with `limits` "
        f"`{json.dumps(SHARED_LIMITS['limits'])}` and `breaker` "
        f"`{json.dumps(SHARED_LIMITS['breaker'])}` (the breaker's defaults). Every "
        "shadowed request reads the token bucket and writes it back with CAS (retried when "
        "another worker wrote in between), each worker reads the breaker at most every 100 ms "
        "while it is closed and writes its batched successes with CAS at most every 100 ms; a call held back would "
        "count as skipped (a problem, below). Per-field admission (the list of pointers "
        "with a counter of their own) is not exercised: in E every pair matches, and a "
        "worker caches each pointer after its first mismatch",
        "- the 1-worker columns differ in more than the workers: the main phase pins the "
        "front Envoy alone on CPU 0, runs 16 connections, and its D and E have no token "
        "bucket (`max_rps` 0: no shared-data access) and a breaker that reads and batches "
        "the same way but cannot open. So compare the ratios and differences at each "
        "worker count, not the absolute µs/req across the two",
        "- least-loaded worker's share of connections: the fewest connections one worker "
        "accepted (warm-up and measured connections, the listener's per-worker "
        "`downstream_cx_total`) as a share of all, the lowest over the runs; 50% is even",
        "",
    ]
    return lines, results


def profile_table(rows: list) -> str:
    """``--profile``: each configuration's front Envoy CPU µs/req split by
    where the code lives (perf samples), and the targets' differences split
    the same way (medians of per-repetition differences)."""
    rows = [r for r in rows if r.get("profile")]
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    if not rows:
        return ""
    parts = [k for k, _ in PROFILE_PARTS]
    out = ["| cfg | µs/req | " + " | ".join(t for _, t in PROFILE_PARTS) + " |",
           "|---|---|" + "---|" * len(parts)]
    for k in kinds:
        mine = [r for r in rows if r["kind"] == k]
        cells = [statistics.median(r["profile"][p] for r in mine) for p in parts]
        out.append(f"| {k} | {statistics.median(r['us_per_req'] for r in mine):.1f} | "
                   + " | ".join(f"{c:.1f}" for c in cells) + " |")
    out += ["", "| difference | µs/req | " + " | ".join(t for _, t in PROFILE_PARTS) + " |",
            "|---|---|" + "---|" * len(parts)]
    for num, den in (("C", "N"), ("F", "C"), ("D", "M"), ("E", "D"), ("C2", "A"), ("N", "A"),
                     ("M", "B")):
        by_rep: dict = {}
        for r in rows:
            if r["kind"] in (num, den):
                by_rep.setdefault(r["rep"], {})[r["kind"]] = r
        pairs = [v for v in by_rep.values() if num in v and den in v]
        if not pairs:
            continue
        total = statistics.median(v[num]["us_per_req"] - v[den]["us_per_req"] for v in pairs)
        cells = [statistics.median(v[num]["profile"][p] - v[den]["profile"][p] for v in pairs)
                 for p in parts]
        out.append(f"| {num} − {den} | {total:+.1f} | "
                   + " | ".join(f"{c:+.1f}" for c in cells) + " |")
    return "\n".join(out) + "\n"


def report(rows: list, delays: list, args, info: dict, pin: Pinning, cmdline: str,
           elapsed: float, load_before: tuple, module_size: int, share: float,
           discarded: list, scale_rows: list = ()) -> tuple:
    med = medians(rows)
    summary = []
    for k, m in med.items():
        summary.append([
            k, CONFIGS[k], m["runs"], f"{m['rps']:.0f}",
            f"{m['rps_range'][0]:.0f}–{m['rps_range'][1]:.0f}",
            f"{m['p50_ms']:.3f}", f"{m['p99_ms']:.3f}",
            f"{m['p99_range'][0]:.2f}–{m['p99_range'][1]:.2f}",
            f"{m['cpu_front']:.2f}", f"{m['us_per_req']:.1f}",
            f"{m['cpu0_busy']:.2f}", f"{m['cpu1_busy']:.2f}", f"{m['shadow_share']:.3f}",
        ])
    summary_md = U.markdown_table(
        ["cfg", "configuration", "runs", "req/s (median)", "req/s range", "p50 ms",
         "p99 ms", "p99 range ms", "front Envoy CPU (cores)", "front CPU µs/req",
         "CPU 0 busy", "CPU 1 busy", "dark req / req"], summary)

    targets = []
    results = {}
    # The differences (issue #15's targets), then the ratios; a row whose
    # configurations did not both run is left out.
    rules = ([(name, num, den, metric, "-", "<=", limit)
              for name, num, den, metric, limit in DIFF_TARGETS]
             + [(name, num, den, metric, "/", cmp, limit)
                for name, num, den, metric, cmp, limit in TARGETS])
    for name, num, den, metric, op, cmp, limit in rules:
        value, of_medians, vals = compare(rows, med, num, den, metric, op)
        if value is None:
            continue
        v = verdict(value, cmp, limit)
        unit = UNITS[metric] if op == "-" else ""
        results[name] = {"median_per_repetition": value, "of_medians": of_medians,
                         "per_repetition": vals, "limit": f"{cmp} {limit:g} {unit}".strip(),
                         "verdict": v}
        if op == "/":  # the keys ratio targets had before there were differences
            results[name].update(median_ratio=value, ratio_of_medians=of_medians)
        targets.append([name, _signed(value, op, unit), _signed(of_medians, op, unit),
                        f"{cmp} {limit:.2f}" if op == "/" else f"{cmp} {limit:g} {unit}",
                        f"**{v}**"])
    for dl in (d for d in delays if d["kind"] in "DE" and d.get("dark_after_primary")):
        p99 = dl["dark_after_primary"]["p99"]
        v = verdict(p99, "<=", DELAY_LIMIT_US)
        results[f"dispatch delay p99 {dl['kind']}"] = {"value_us": p99, "verdict": v}
        targets.append([f"shadow dispatch delay p99 ({dl['kind']}: dark out − primary out)",
                        f"{p99:.0f} µs", "-", f"<= {DELAY_LIMIT_US:.0f} µs", f"**{v}**"])
    v = "PASS" if module_size <= MODULE_LIMIT else "FAIL"
    results["module size"] = {"bytes": module_size, "verdict": v}
    targets.append(["module size", f"{module_size:,} B ({module_size / 1024:.0f} KiB)", "-",
                    f"<= {MODULE_LIMIT:,} B (600 KiB)", f"**{v}**"])
    targets_md = U.markdown_table(["target", "median per repetition", "of medians", "target",
                                   "verdict"], targets)
    info_rows = []
    baseline_ratios = [
        (f"{k} vs baseline {b} by CPU ({b} µs/req ÷ {k} µs/req; > 1: this build is cheaper)",
         b, k, "us_per_req") for k, b in BASELINE_OF.items()]
    for name, num, den, metric, op in ([r + ("/",) for r in INFO_RATIOS + baseline_ratios]
                                       + [r + ("-",) for r in INFO_DIFFS]):
        value, of_medians, _ = compare(rows, med, num, den, metric, op)
        unit = UNITS[metric] if op == "-" else ""
        if value is not None:
            info_rows.append([name, _signed(value, op, unit), _signed(of_medians, op, unit)])
    info_md = U.markdown_table(["other ratios and differences (no target)",
                                "median per repetition", "of medians"], info_rows)

    def q(dd: dict, key: str) -> str:
        return f"{dd[key]:.0f}" if dd else "-"

    delay_rows = []
    for d in delays:
        dr, pr, dp = (d.get("dark_after_req", {}), d.get("primary_after_req", {}),
                      d.get("dark_after_primary", {}))
        ul = d.get("upstream_log", {})
        delay_rows.append([d["kind"], CONFIGS[d["kind"]], d.get("measured", "-"),
                           f"{d['rps']:.0f}", q(dp, "p50"), q(dp, "p90"), q(dp, "p99"),
                           q(dp, "p999"), q(dp, "max"), q(pr, "p50"), q(pr, "p99"),
                           q(dr, "p50"), q(dr, "p99"),
                           f"{q(ul, 'p50')} / {q(ul, 'p99')}",
                           f"{d.get('cpu_front', 0):.2f}", f"{d.get('cpu_others', 0):.2f}",
                           f"{d.get('cpu0_steal', 0) * 100:.1f}%"])
    delay_md = U.markdown_table(
        ["cfg", "configuration", "requests", "req/s",
         "dark out − primary out: p50 µs", "p90", "p99", "p99.9", "max",
         "primary out − request in: p50 µs", "p99", "dark out − request in: p50 µs", "p99",
         "cross-check, upstream arrivals dark − primary: p50 / p99 µs",
         "front CPU (cores)", "CPU others", "CPU 0 steal"], delay_rows)

    scale_lines, scale_results = (scale_section(rows, list(scale_rows), args) if scale_rows
                                  else ([], {}))

    bad = [(r["run"], r["kind"], p) for r in rows for p in r["problems"]]
    bad += [("delay", d["kind"], p) for d in delays for p in d["problems"]]
    bad += [(r["run"], f"{r['kind']}, {r['workers']} workers", p) for r in scale_rows
            for p in r["problems"]]
    noisy = [r["run"] for r in list(rows) + list(scale_rows) if r["cpu_others"] > NOISY]
    example = " ".join(shlex.quote(x) for x in wrk_cmd(
        f"http://127.0.0.1:PORT{PATH}", args, args.seconds)).replace(str(U.ROOT) + "/", "")
    seq = with_baseline(args.config_list)
    order = (f"alternating: {' '.join(seq)} on even repetitions, "
             f"{' '.join(reversed(seq))} on odd ones")
    lines = [
        BEGIN,
        "## Envoy throughput and latency: darklaunch vs. no filter vs. native mirroring",
        "",
        f"Generated by `make bench` (`{cmdline}`) on {time.strftime('%Y-%m-%d %H:%M %Z')}, "
        f"{elapsed / 60:.1f} min.",
        "",
        "### Targets",
        "",
        targets_md,
        "",
        "Ratios and differences are taken per repetition (the runs of one repetition ran "
        "back to back) and their median is the verdict; the ratio or difference of the "
        "per-configuration medians is shown beside it. The differences are of the front "
        "Envoy's CPU time per request (µs/req): what darklaunch adds over the empty filter "
        "(C − N), 1% sticky sampling over no match (F − C), a shadowed call over the least "
        "a proxy-wasm filter does to send a copy (D − M), the JSON comparison (E − D). A "
        "row is left out when its configurations did not both run. The script never fails "
        "on a missed target.",
        "",
        "### Medians per configuration",
        "",
        summary_md,
        "",
        info_md,
        "",
        "### Shadow dispatch delay (when the shadow request leaves the front Envoy)",
        "",
        delay_md if delays else "(not measured)",
        "",
        *scale_lines,
        "### Setup",
        "",
        *U.machine_lines(info),
        f"- load average before the run: {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f} (1, 5, 15 min)",
        f"- CPU: {pin.describe()}",
        f"- load: `{example}`, closed loop, flat out; "
        + (f"`{args.warmup}` s warm-up discarded per run; fresh front Envoy per run; "
           if args.fresh else
           f"one front Envoy per configuration, started once and kept for the whole phase "
           f"(pinned to CPU 0, idle between its runs); each run a slice after a "
           f"`{min(args.warmup, 1)}` s warm-up (its connections) that is discarded; ")
        + f"{args.repeats} repetitions, {order}; before each "
        f"run the script waits (up to {args.quiet_wait:g} s) until other processes use under "
        f"0.3 cores, and a run during which they used more than {NOISY} cores is repeated "
        f"once (during the first {args.budget_min:g} minutes). The Lua script "
        f"sends `x-user-id: user-00001` … `user-{USERS:05d}` in turn (varied ids, every "
        f"configuration); for F, {share * 100:.2f}% of those users are sampled in "
        "(sticky sampling: murmur3_x86_32(launch name + key) < percent/100 × 2^32)",
        *([f"- baseline module of c, d, e, f: `{BASELINE}` "
            f"({BASELINE.stat().st_size:,} B)"] if BASELINE is not None else []),
        f"- front Envoy: `--concurrency 1`, HTTP/1.1 to the upstreams, cluster circuit "
        "breakers raised; darklaunch `FAIL_CLOSED`, one launch, `timeout_ms` 1000, "
        "`max_in_flight` 100000, breaker off in effect (min_calls 4e9), compare "
        f"`content-type` + body (`none` in D; `json` in C, E, F with ignore {IGNORE}); "
        "C's launch matches `/nomatch` only; C2's launch matches every path, but the filter is "
        "`disabled: true` and only a route the load does not take (`/launch/`) enables it; "
        "B mirrors 100% with `request_mirror_policies`",
        f"- upstream Envoy: `--concurrency 1`, `direct_response`: primary a {len(PRIMARY_BODY)}"
        f"-byte JSON order (items as in benches/compare.rs), dark the same document with "
        "another `/meta/generated_at` (ignored): bytes differ, so E and F parse and walk both "
        "bodies, and every pair matches",
        f"- dispatch delay: `wrk -t1 -c{args.delay_connections} -d{args.delay_seconds + 2}s` "
        f"with a Lua script that puts a unique `n=<id>` query on every request and pauses "
        f"{args.delay_pause_ms} ms after every answer (steady, far from saturation; first 2 s "
        "left out), per configuration; loopback packet capture with kernel timestamps "
        "(AF_PACKET, SO_TIMESTAMPNS); cross-check: a fresh upstream Envoy whose two listeners "
        "write `%REQ(X-REQUEST-ID)% %START_TIME(%s.%6f)%` access logs",
        "- columns: front Envoy CPU = cores used by the front Envoy process during the "
        "measured seconds; µs/req = that CPU time per request (the cost of a configuration, "
        "less sensitive to the machine than req/s); CPU 0 / CPU 1 busy = share of each core "
        "not idle (softirq and hypervisor steal included): CPU 0 runs only the front Envoy, "
        "CPU 1 wrk + upstream Envoy + this script; CPU others = cores used by processes "
        "outside the benchmark; dark req / req = requests the dark cluster received per "
        "client request",
        "",
        "### All runs",
        "",
        runs_table(rows) if rows else "(none)",
        "",
        *([f"Scale phase ({args.scale_workers} workers, {args.scale_connections} "
           "connections; CPU 0 and CPU 1 run everything):", "",
           runs_table(scale_rows, per_worker=True), ""] if scale_rows else []),
    ]
    noisy_delays = [d["kind"] for d in delays if d.get("cpu_others", 0) > NOISY]
    paced = []
    if noisy_delays:
        paced = [f"Note: other processes used more than {NOISY} cores during the paced runs of "
                 f"{', '.join(noisy_delays)}; their tails include that interference.", ""]
    lines += disturbance_lines(discarded, noisy, bad, paced)
    lines.append(END)
    return "\n".join(lines), results, med, bool(bad), scale_results


METHOD = """\
### Method

Throughput and latency. Each configuration gets its own front Envoy
(`--concurrency 1`: one worker), started once for the whole phase
(`--fresh`: one per run) and pinned to CPU 0; only the one being measured
has traffic, so it has the core alone; wrk (`-t1 -c16`: one
thread, 16 connections, closed loop with no pause) and the upstream Envoy
share CPU 1. With 16 connections the front Envoy's worker has requests
waiting nearly all the time: CPU 0 is 85–97% busy (column `CPU 0 busy`;
what is left is wake-up latency between the two cores of this VM: 32 or 64
connections did not raise it, they only lengthened the queues), while CPU 1
keeps 30–50% idle, so wrk and the upstream Envoy are not the bottleneck.
Requests/s is then the front Envoy's capacity in that configuration and
latency is mostly queueing (≈ connections ÷ throughput), which is why p99
follows requests/s. `front CPU µs/req` (the front Envoy's CPU time per
request) is the cost of a configuration; it varies less with the machine
than requests/s. One upstream Envoy (C++ `direct_response`) serves both the
primary and the dark listener; in B, M, D and E it answers twice as many
requests. The configurations alternate (A C2 N C F B M D E, then back):
each target's two configurations run back to back, so that slow drifts of
the machine cancel in their difference, and each target uses the median
of the per-repetition ratios or differences. N and M are the floors a
proxy-wasm filter cannot go below: N is an HTTP context that does nothing;
M (the same module configured `send:dark`) copies the request headers and
`dispatch_http_call`s them to the dark cluster from the request-header
callback, ignoring the answer — no sampling, queue, comparison or stats.
So N/A bounds C/A and F/A, and M/B bounds D/B and E/B, for any proxy-wasm
filter on this Envoy; C/N and D/M are what darklaunch itself adds.

Shadow dispatch delay. The shadow call must be dispatched by the root
context: the SDK delivers a dispatched call's answer to the context that made
the call and drops it if that context is gone, and an HTTP context is gone
as soon as the client has its response. At the end of the request the HTTP
context queues a job and rings a per-worker shared queue; the root
dispatches from `on_queue_ready`, which Envoy runs after it has forwarded the primary. (A
variant that entered the root at once, through the SDK's exported
`proxy_on_queue_ready`, sent the shadow ~12 µs *before* the primary, p99
75 µs, but held the primary back: `primary out − request in` grew by
100–200 µs at p50 over the doorbell in three alternating runs, so the
doorbell stayed.) To see when the call leaves, a steady load far from saturation (wrk, 4 connections, a 7 ms pause
after every answer) carries a unique `n=<id>` query on every request; Envoy
forwards it to the primary and the shadow copy keeps it. A packet socket on
`lo` records with kernel timestamps, per request, when it reached the front
Envoy (`request in`; a GET is one packet), when the primary request left for
the primary cluster (`primary out`) and when the shadow request left for the
dark cluster (`dark out`). For a GET the request ends with its headers and
the router sends the primary in that same pass, so `primary out` is the
moment Envoy has processed the end of the request, and `dark out − primary
out` is the delay of the shadow dispatch: that is the number the target
uses. `dark out − request in` adds the time until Envoy picks the request
up at all, which on this VM includes waking an idle vCPU (hundreds of µs;
Envoy's native mirror, B, shows the same in `primary out − request in`).
B, which sends its copy from the router in the same pass as the primary, is
the reference. The method suggested first — the upstream Envoy logging
`%START_TIME%` per listener and joining the dark arrival with the primary
arrival on x-request-id — is kept as a cross-check, but is coarse here: the
upstream Envoy (one worker) reads the two requests one after the other, so
its timestamps include its own per-request processing time (~50–100 µs on
this machine), and with darklaunch the dark request is often read first
(negative differences).

Scale. The main phase runs one worker, so nothing darklaunch keeps in
Envoy's shared data — the launch's token bucket, its breaker, the list of
fields with a counter of their own — is ever contended: one worker's CAS
never meets another's. The scale phase (last, `--no-scale` skips it) runs
B, M, D and E again with the front Envoy on two workers and wrk on 64
connections (the kernel spreads them over the workers: the report shows the
least-loaded worker's share), D and E with a token bucket of a million calls
a second and the breaker at its defaults: limits that never bind, but every
shadowed request now reads the bucket and writes it back with CAS, retried
when the other worker wrote in between, and each worker reads the breaker
(at most every 100 ms while it is closed).
With two workers on a 2-core machine nothing can be pinned usefully: the
front Envoy, wrk and the upstream Envoy share both cores as the kernel
decides, the machine (not the front Envoy alone) is saturated, and req/s
is what the whole machine does. Front CPU µs/req — the front Envoy's CPU
time, all its threads, per request — is still a configuration's cost, so
the test is whether D/M and E/B by CPU, and D − M, stay at two workers what
they are at one; were the CAS paths to collapse under contention (retry
storms, calls let through or held back), D and E would grow against M and
B, which share nothing. The one-worker numbers come from the main phase,
which differs in more than the workers (the front Envoy pinned alone on CPU
0, 16 connections, no token bucket), so only the ratios and differences at
each worker count compare, not absolute µs/req across the two. The field
list is not exercised: every pair of E matches, and each worker caches a
field's counter after its first mismatch.
"""


def write_benchmarks(section: str, begin: str = BEGIN, end: str = END,
                     method: str = METHOD) -> None:
    """Replaces the section between ``begin`` and ``end`` in BENCHMARKS.md
    (``method`` appended inside it); a new section goes after the HTTP one
    (``END``), or after the title."""
    section = section.replace(end, method + "\n" + end)
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + section + tail
    elif begin != BEGIN and END in text:
        head, tail = text.split(END, 1)
        text = head + END + "\n\n" + section + tail
    else:
        lines = text.splitlines(keepends=True)
        # After the title, above every existing section.
        i = next((n + 1 for n, line in enumerate(lines) if line.startswith("# ")), 0)
        text = "".join(lines[:i]) + "\n" + section + "\n" + "".join(lines[i:])
    REPORT.write_text(text)


# --------------------------------------------------------------------------
# The gRPC report
# --------------------------------------------------------------------------

GRPC_BEGIN = ("<!-- bench.py gRPC: begin (generated by `make bench`; a run of G0, GB and GD "
              "replaces this section) -->")
GRPC_END = "<!-- bench.py gRPC: end -->"


GRPC_COMPARISONS = [
    # (name, numerator, denominator, metric, op)
    ("GD ÷ GB, front CPU µs/req: darklaunch against native mirroring", "GD", "GB",
     "us_per_req", "/"),
    ("GD − GB, front CPU µs/req: what darklaunch costs over native mirroring", "GD", "GB",
     "us_per_req", "-"),
    ("GB − G0, front CPU µs/req: native mirroring's copy", "GB", "G0", "us_per_req", "-"),
    ("GD − G0, front CPU µs/req: darklaunch's shadowed and compared call", "GD", "G0",
     "us_per_req", "-"),
    ("GD ÷ GB, req/s", "GD", "GB", "rps", "/"),
    ("GB ÷ G0, req/s", "GB", "G0", "rps", "/"),
]


def grpc_report(rows: list, args, info: dict, pin: Pinning, cmdline: str, elapsed: float,
                load_before: tuple, module_size: int, discarded: list) -> tuple:
    """(section, results, medians, problems) of the gRPC configurations."""
    med = medians(rows)
    smoke = args.repeats < 3 or args.seconds < 10
    results = {}
    comp_rows = []
    for name, num, den, metric, op in GRPC_COMPARISONS:
        value, of_medians, vals = compare(rows, med, num, den, metric, op)
        if value is None:
            continue
        results[name] = {"median_per_repetition": value, "of_medians": of_medians,
                         "per_repetition": vals}
        comp_rows.append([name, _signed(value, op), _signed(of_medians, op),
                          f"{_signed(min(vals), op)} … {_signed(max(vals), op)}"])
    comp_md = U.markdown_table(["comparison", "median of per-repetition values",
                                "from the medians", "per-repetition range"], comp_rows)
    summary = []
    for k, m in med.items():
        us = [r["us_per_req"] for r in rows if r["kind"] == k]
        summary.append([
            k, CONFIGS[k], m["runs"], f"{m['rps']:.0f}",
            f"{m['rps_range'][0]:.0f}–{m['rps_range'][1]:.0f}",
            f"{m['p50_ms']:.3f}", f"{m['p99_ms']:.3f}", f"{m['cpu_front']:.2f}",
            f"**{m['us_per_req']:.1f}**", f"{min(us):.0f}–{max(us):.0f}",
            f"{m['cpu0_busy']:.2f}", f"{m['cpu1_busy']:.2f}", f"{m['shadow_share']:.3f}",
        ])
    summary_md = U.markdown_table(
        ["cfg", "configuration", "runs", "req/s (median)", "req/s range", "p50 ms", "p99 ms",
         "front Envoy CPU (cores)", "front CPU µs/req", "µs/req range", "CPU 0 busy",
         "CPU 1 busy", "dark req / req"], summary)
    run_rows = []
    for r in rows:
        dl = r["kind"] == "GD"
        run_rows.append([r["run"], r["rep"], r["kind"], f"{r['rps']:.0f}", f"{r['p50_ms']:.3f}",
                         f"{r['p99_ms']:.3f}", f"{r['max_ms']:.1f}", f"{r['cpu_front']:.2f}",
                         f"{r['us_per_req']:.1f}", f"{r['cpu_upstream']:.2f}",
                         f"{r['cpu_wrk']:.2f}", f"{r['cpu_others']:.2f}",
                         f"{r['cpu0_busy']:.2f}", f"{r['cpu1_busy']:.2f}", r["dark_rq"],
                         r["shadowed"] if dl else "-", r["compared"] if dl else "-",
                         r["mismatch"] if dl else "-", r["dark_grpc_ok"] if dl else "-",
                         r["errors"] + r["non_2xx"]])
    runs_md = U.markdown_table(["run", "rep", "cfg", "req/s", "p50 ms", "p99 ms", "max ms",
                                "CPU front", "µs/req", "CPU upstreams", "CPU h2load",
                                "CPU others", "CPU 0 busy", "CPU 1 busy", "dark reqs",
                                "shadowed", "compared", "mismatch", "dark_grpc.ok",
                                "errors"], run_rows)
    bad = [(r["run"], r["kind"], p) for r in rows for p in r["problems"]]
    noisy = [r["run"] for r in rows if r["cpu_others"] > NOISY]
    seq = with_baseline(args.config_list)
    example = " ".join(shlex.quote(x) for x in U.h2load_command(
        f"http://127.0.0.1:PORT{GRPC_PATH}", args.connections, args.seconds, args.warmup,
        Path("request.bin"), GRPC_HEADERS, Path("h2load.log")))
    lines = [
        GRPC_BEGIN,
        "## gRPC: darklaunch vs native mirroring",
        "",
        f"Generated by `make bench` (`{cmdline}`) on {time.strftime('%Y-%m-%d %H:%M %Z')} "
        f"(the whole run {elapsed / 60:.1f} min).",
        "",
    ]
    if smoke:
        lines += [f"**Smoke run ({args.repeats} repetition(s) of {args.seconds} s): these "
                  "numbers only show that the configurations run; they are not a measurement. "
                  "Rerun `make bench` on a quiet machine.**", ""]
    lines += [
        "Unary gRPC calls through the front Envoy (one worker, pinned alone to CPU 0): "
        "G0 no filter, GB Envoy's `request_mirror_policies` to the dark service, GD "
        "darklaunch with a gRPC launch at 100% comparing the answers as protobuf. "
        "The metric is the front Envoy's CPU time per call.",
        "",
        comp_md,
        "",
        "### Medians per configuration",
        "",
        summary_md,
        "",
        "### Setup",
        "",
        *U.machine_lines(info)[:2],
        f"- load generator: {info.get('h2load', '?')}; upstreams: {info.get('nghttpd', '?')}",
        *U.machine_lines(info)[3:],
        f"- module size: {module_size:,} B",
        f"- load average before the run: {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f} (1, 5, 15 min)",
        "- CPU: front Envoy pinned to CPU 0 (`taskset -a -p -c 0`); h2load, both nghttpd, the "
        "(idle) HTTP upstream Envoy and the driver script on CPU 1"
        if pin.enabled else f"- CPU: {pin.describe()}",
        f"- load: `{example}` (h2load {args.warmup} s warm-up, then {args.seconds} s measured; "
        "CPU meters started and stopped on h2load's own \"Main benchmark duration is "
        "started/over\" lines); fresh front Envoy per run; "
        f"{args.repeats} repetitions, alternating with the other configurations: "
        f"{' '.join(seq)} on even repetitions, {' '.join(reversed(seq))} on odd ones; runs "
        f"disturbed by other processes (more than {NOISY} cores) repeated once",
        f"- request: `{GRPC_PATH}`, one {len(GRPC_REQUEST)}-byte message (id, locale, 14 "
        "field paths, a nested client message, a user-agent string), framed; "
        f"answer: a {len(GRPC_PRIMARY_ITEM)}-byte item (id, sku, name, a double price, 40 "
        "variants as a repeated nested message of four strings, a double and a varint, 8 tags "
        "as a repeated string, a nested meta message, a 480-byte description); the dark "
        "answer differs only in meta.generated_at (field 7.1, a varint)",
        "- front Envoy: `--concurrency 1`, HTTP/2 listener (`codec_type: HTTP2`), primary "
        "and dark clusters over HTTP/2 with circuit breakers raised; GB: "
        "`request_mirror_policies: [{cluster: dark}]`; GD: darklaunch `FAIL_CLOSED`, one "
        "launch: `" + json.dumps({k: v for k, v in grpc_launch().items()
                                   if k in ("match", "sample", "timeout_ms", "compare")})
        + "` (`max_in_flight` 100000, breaker off in effect)",
        "- upstreams: two nghttpd (nghttp2's C HTTP/2 server, one thread each, h2c): "
        "the framed answer served as a file with `--trailer 'grpc-status: 0'`",
        "- columns: as in the HTTP section; CPU upstreams = both nghttpd (and the idle HTTP "
        "upstream Envoy); CPU h2load = the load generator during the measured seconds; "
        "µs/req = front Envoy CPU seconds during h2load's measured seconds ÷ the calls "
        "h2load completed in them; p50/p99 from h2load's `--log-file` (request start to "
        "end of response); dark req / req = requests the dark cluster received per call; "
        "shadowed, compared, mismatch, dark_grpc.ok = darklaunch's counters during the "
        "measured seconds",
        "",
        "### All runs",
        "",
        runs_md,
        "",
    ]
    lines += disturbance_lines(discarded, noisy, bad)
    lines.append(GRPC_END)
    return "\n".join(lines), results, med, bool(bad)


GRPC_METHOD_TEXT = """\
### Method (gRPC)

The same harness as the HTTP configurations — a fresh front Envoy per run
(`--concurrency 1`) pinned alone to CPU 0, everything else on CPU 1, the
configurations alternated within each repetition, comparisons taken as the
median of per-repetition ratios and differences, runs disturbed by other
processes repeated — with gRPC in place of HTTP/1.1:

- **Load.** h2load (nghttp2) over h2c, 16 connections with one call in
  flight on each (`-c16 -m1`: closed loop, flat out), every call the same
  unary request. h2load's `--warm-up-time` is the warm-up; the script reads
  h2load's output as it comes and starts the CPU meters when h2load says its
  measured seconds start and stops them when it says they are over, so the
  front Envoy's CPU time and h2load's count of completed calls cover the
  same seconds. h2load has no latency percentiles: p50/p99 come from its
  `--log-file`.
- **h2load and trailers.** h2load counts HTTP statuses only; it neither
  reads nor checks `grpc-status`. So before each run one call goes through
  the front Envoy over raw h2c (the tests' h2 client) and must come back
  HTTP 200 with the primary's message and `grpc-status: 0` in the trailers;
  in GD darklaunch's `dark_grpc.ok` and `primary_grpc.ok` counters check
  every call of the run.
- **Upstreams.** Two nghttpd (nghttp2's HTTP/2 server, C, one thread each)
  serve the framed answer as a file with `--trailer 'grpc-status: 0'`: every
  call gets HEADERS, DATA and trailing HEADERS carrying `grpc-status: 0`, as
  from a gRPC server, after the whole request has been read. nghttpd sends
  no `content-type` (it derives one from a file extension, and a gRPC path
  has none); grpcio clients accept that, Envoy forwards it, and
  `compare.body: protobuf` does not look at it. Envoy's `direct_response`
  cannot serve gRPC: Envoy turns a local reply to a gRPC request into a
  trailers-only gRPC answer (no message; a 200 becomes `grpc-status: 2`,
  UNKNOWN, with the body as `grpc-message`). That answer ends with its
  headers, so no encoder filter gets a body to frame: the gRPC HTTP/1.1
  reverse bridge, which adds the frame and the `grpc-status: 0` trailer to
  an upstream's answer, rejects it (`upstream responded with unsupported
  content-type application/grpc`). A grpcio server (Python, thread pool,
  generic handler on raw bytes) would have capped the rate far below the
  front Envoy's: sharing CPU 1 with h2load it answered ~5,400 calls a
  second, nghttpd ~75,000 (same request and answer, one check on a busy
  machine). With nghttpd CPU 1 stays mostly idle (column `CPU 1 busy`), so
  requests/s is the front Envoy's capacity here too, and CPU µs per call
  its cost.
- **Messages.** The comparison does real work on every pair: the dark
  answer is the primary's item with another `meta.generated_at` (field 7.1),
  so the bytes differ and there is no identical-bytes shortcut; GD's launch
  compares without a descriptor (fields by number) and ignores `/7/1`, so
  both messages are parsed, rendered and walked, and every pair matches
  (`mismatch` must be 0).
- **Reading.** GB − G0 is what one mirrored copy costs Envoy natively; GD −
  G0 what darklaunch costs per shadowed and compared call (copying the
  request, dispatching it from the root context, both answers brought back
  into the VM, the protobuf comparison, stats); GD ÷ GB and GD − GB put the
  two side by side, per repetition.
"""


# --------------------------------------------------------------------------

def load_arguments(ap: argparse.ArgumentParser, seconds: int) -> None:
    """The options `run_once` reads: repetitions and the wrk load of one run."""
    ap.add_argument("--repeats", type=int, default=5, help="runs of each configuration (5)")
    ap.add_argument("--seconds", type=int, default=seconds,
                    help=f"measured seconds per run ({seconds})")
    ap.add_argument("--warmup", type=int, default=2, help="discarded warm-up seconds per run (2)")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    # Not options: the main phase's front Envoy (one worker, launches as
    # launches_for() builds them); the scale phase changes them.
    ap.set_defaults(workers=1, shared_limits=False)


def with_baseline(configs: list) -> list:
    """Each of C, D, E, F followed by its baseline run when there is a baseline."""
    out = []
    for c in configs:
        out.append(c)
        if BASELINE is not None and c in BASELINE_OF:
            out.append(BASELINE_OF[c])
    return out


def parse_configs(text: str) -> list:
    """``--configs``: names separated by commas or spaces (``G0,GB,GD``); a
    token that is not a name is a run of one-letter names (``ANBMCDEF``,
    ``EGHI``). Raises ValueError on an unknown name."""
    out = []
    for token in re.split(r"[,\s]+", text.strip().upper()):
        if not token:
            continue
        if token in CONFIGS:
            out.append(token)
        elif all(c in CONFIGS for c in token):
            out.extend(token)
        else:
            raise ValueError(f"unknown configuration in {token!r}; known: {', '.join(CONFIGS)}")
    return list(dict.fromkeys(out))


def run_repeated(kind: str, rep: int, run_no, ports: dict, up_pid: int, pin: Pinning, args,
                 deadline: float, discarded: list,
                 env: Optional[harness.Envoy] = None) -> dict:
    """One run of ``kind`` (``run_once``, numbered by ``run_no``) after waiting
    for quiet; repeated once when other processes used more than NOISY cores
    during it, unless ``deadline`` has passed (the disturbed run goes to
    ``discarded``)."""
    label = f"rep {rep} {kind}" + (f" ({args.workers} workers)" if args.workers > 1 else "")
    for attempt in range(2):
        waited, busy = wait_quiet(args.quiet_wait, deadline)
        r = run_once(kind, rep, next(run_no), ports, up_pid, pin, args, env)
        r["waited_s"], r["busy_before"] = waited, busy
        if r["cpu_others"] <= NOISY or attempt == 1 or time.monotonic() > deadline:
            break
        discarded.append(r)
        print(f"run {r['run']:2d} {label}: other processes used {r['cpu_others']:.2f} cores: "
              "discarded, repeating", flush=True)
    print(f"run {r['run']:2d} {label}: {r['rps']:7.0f} req/s "
          f"p50 {r['p50_ms']:.3f} p99 {r['p99_ms']:.3f} ms  cpu front "
          f"{r['cpu_front']:.2f} up {r['cpu_upstream']:.2f} load {r['cpu_wrk']:.2f} "
          f"others {r['cpu_others']:.2f} cpu0 {r['cpu0_busy']:.2f} cpu1 "
          f"{r['cpu1_busy']:.2f}  {r['us_per_req']:.1f} µs/req  dark "
          f"{r['shadow_share']:.3f}/req"
          + (f"  connections per worker {r['cx_per_worker']}" if args.workers > 1 else "")
          + (f"  PROBLEMS: {r['problems']}" if r["problems"] else ""), flush=True)
    return r


def scale_phase(configs: list, args, pin: Pinning, run_no, rows: list,
                discarded: list) -> None:
    """The scale phase: ``configs`` with the front Envoy on ``--scale-workers``
    workers, wrk on ``--scale-connections`` connections, darklaunch's launches
    with SHARED_LIMITS, alternated over ``--scale-repeats`` repetitions; no
    CPU pinning (from here on this process and all it starts run on every
    CPU). Runs go to ``rows``, disturbed ones to ``discarded``."""
    sargs = argparse.Namespace(**vars(args))
    sargs.workers, sargs.connections = args.scale_workers, args.scale_connections
    sargs.shared_limits = True
    pin.release()
    unpinned = Pinning(False)
    up, ports, _ = upstream_envoy(OUT / "scale-upstreams")
    try:
        up.start(timeout=60)
        # The same rule as the main phase's --budget-min: 10.5 s per planned run.
        deadline = time.monotonic() + 10.5 * args.scale_repeats * len(configs)
        for rep in range(args.scale_repeats):
            for kind in (configs if rep % 2 == 0 else configs[::-1]):
                rows.append(run_repeated(kind, rep + 1, run_no, ports, up.proc.pid, unpinned,
                                         sargs, deadline, discarded))
    finally:
        up.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    load_arguments(ap, seconds=4)
    # Short slices, more of them: medians of back-to-back differences.
    ap.set_defaults(repeats=10)
    ap.add_argument("--configs", default=DEFAULT_CONFIGS,
                    help="which configurations, alternated in this order: one-letter names "
                         "in a run, others separated by commas "
                         f"({DEFAULT_CONFIGS}; `--configs G0,GB,GD` for gRPC only)")
    ap.add_argument("--delay-configs", default=None,
                    help="configurations measured under the paced load (ACDEB when any HTTP "
                         "configuration runs, else none); '' skips it")
    ap.add_argument("--delay-seconds", type=int, default=12,
                    help="measured seconds of the paced load (12, after 2 s warm-up)")
    ap.add_argument("--delay-connections", type=int, default=4,
                    help="wrk connections of the dispatch-delay load (4)")
    ap.add_argument("--delay-pause-ms", type=int, default=7,
                    help="pause after every answer per connection, ms (7: ~500 req/s)")
    ap.add_argument("--quiet-wait", type=float, default=15,
                    help="before each run, wait up to this many seconds for other processes "
                         "to leave the machine (15)")
    ap.add_argument("--budget-min", type=float, default=None,
                    help="minutes after which throughput runs no longer wait for quiet nor "
                         "repeat a run disturbed by other processes (10.5 s per planned "
                         "run: 7.9 for the 45 runs of ANBMC,C2,DEF, 10.5 with G0, GB, GD)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="an earlier build of darklaunch.wasm: adds configurations c, d, e, "
                         "f (C, D, E, F run by it), alternating with them, and their CPU "
                         "ratios")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    ap.add_argument("--profile", action="store_true",
                    help="perf-record the front Envoy during each measured run and print its "
                         "CPU per request split into kernel, Envoy binary (Envoy, V8 runtime, "
                         "host calls), the module's compiled code and libc")
    ap.add_argument("--fresh", action="store_true",
                    help="a fresh front Envoy for every run, instead of one per HTTP "
                         "configuration kept up for the whole phase")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--no-scale", action="store_true",
                    help="skip the scale phase (front Envoy on several workers, many "
                         "connections; run last)")
    ap.add_argument("--scale-configs", default=None,
                    help=f"configurations of the scale phase, alternated in this order "
                         f"({SCALE_CONFIGS}: those of them the main phase runs; any HTTP "
                         "configuration; '' skips it)")
    ap.add_argument("--scale-repeats", type=int, default=None,
                    help="repetitions of the scale phase (--repeats, at most 4)")
    ap.add_argument("--scale-workers", type=int, default=2,
                    help="front Envoy workers (--concurrency) in the scale phase (2)")
    ap.add_argument("--scale-connections", type=int, default=64,
                    help="wrk connections in the scale phase (64)")
    ap.add_argument("--wait-quiet", type=float, default=0,
                    help="first wait up to this many seconds for the 1-minute load average "
                         "to drop below 0.5 (0)")
    args = ap.parse_args(argv)
    U.install_signal_exit()
    global BASELINE
    if args.baseline is not None:
        if not args.baseline.is_file():
            print(f"baseline module not found: {args.baseline}", file=sys.stderr)
            return 2
        BASELINE = args.baseline.resolve()
        for k, b in BASELINE_OF.items():
            CONFIGS[b] = f"{CONFIGS[k]} — baseline module"
    try:
        args.config_list = parse_configs(args.configs)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    configs = with_baseline(args.config_list)
    grpc_configs = [c for c in configs if c in GRPC]
    http_configs = [c for c in configs if c not in GRPC]
    if args.delay_configs is None:
        args.delay_configs = "ACDEB" if http_configs else ""
    delay_configs = [c for c in args.delay_configs.upper() if c in CONFIGS]
    if args.budget_min is None:
        args.budget_min = round(10.5 * args.repeats * len(configs) / 60, 1)
    if args.no_scale:
        args.scale_configs = ""
    elif args.scale_configs is None:
        args.scale_configs = ",".join(c for c in SCALE_CONFIGS if c in args.config_list)
    try:
        scale_configs = parse_configs(args.scale_configs)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if set(scale_configs) & set(GRPC):
        print("the scale phase runs HTTP configurations only", file=sys.stderr)
        return 2
    if args.scale_repeats is None:
        args.scale_repeats = min(args.repeats, 4)
    args.scale_list = scale_configs
    tools = (["wrk"] if http_configs or delay_configs or scale_configs else []) + (
        ["h2load", "nghttpd"] if grpc_configs else [])
    for tool in tools:
        if not shutil.which(tool):
            print(f"{tool} not found: run `make tools`", file=sys.stderr)
            return 2
    wasm = harness.wasm_file()
    if not wasm.exists():
        print(f"module not found: {wasm} (make build)", file=sys.stderr)
        return 2
    if set("NM") & set(configs + delay_configs + scale_configs) and not noop_wasm().exists():
        print(f"empty filter not found: {noop_wasm()} (make bench builds it)", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    cmdline = "scripts/bench.py" + "".join(
        " " + shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(f"# bench: {cmdline}", flush=True)

    deadline = time.monotonic() + args.wait_quiet
    while os.getloadavg()[0] >= 0.5 and time.monotonic() < deadline:
        print(f"  load average {os.getloadavg()[0]:.2f}, waiting for < 0.5", flush=True)
        time.sleep(min(60.0, max(1.0, deadline - time.monotonic())))
    load_before = os.getloadavg()
    if load_before[0] >= 0.5:
        print(f"  note: 1-minute load average {load_before[0]:.2f} (machine not quiet)",
              flush=True)

    pin = Pinning(not args.no_pin)
    info = U.machine()
    for tool in ("h2load", "nghttpd"):
        try:
            info[tool] = subprocess.run([tool, "--version"], capture_output=True, text=True,
                                        timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            info[tool] = "?"
    module_size = wasm.stat().st_size
    share = sampled_share(1.0)
    rows: list = []
    scale_rows: list = []
    discarded: list = []
    discarded_delays: list = []
    delays: list = []
    broken = []
    run_no = itertools.count(1)
    fronts: dict = {}
    t_start = time.time()
    up, ports, _ = upstream_envoy(OUT / "upstreams")
    grpc_up = GrpcUpstreams(OUT / "grpc-upstreams") if grpc_configs else None
    try:
        up.start(timeout=60)
        pin.pin(up.proc.pid, pin.rest)
        if grpc_up is not None:
            grpc_up.start(pin)
            ports = dict(ports, grpc=grpc_up)
        # The HTTP configurations' front Envoys start once and stay up for the
        # phase (idle ones cost nothing): runs are then short slices of one
        # steady Envoy each, and the configurations a target compares run
        # back to back (DEFAULT_CONFIGS orders them so), which keeps the
        # machine's slow drifts out of their differences.
        if not args.fresh:
            for kind in configs:
                if kind not in GRPC:
                    fronts[kind], _ = start_front(kind, OUT / f"front-{kind}", ports, pin, args)
        # Past this point no run waits for quiet or is repeated (~10 minutes in all).
        deadline = time.monotonic() + args.budget_min * 60
        for rep in range(args.repeats):
            order = configs if rep % 2 == 0 else configs[::-1]
            for kind in order:
                rows.append(run_repeated(kind, rep + 1, run_no, ports, up.proc.pid, pin, args,
                                         deadline, discarded, fronts.get(kind)))
    except Exception as exc:  # noqa: BLE001 - reported; a broken measurement
        broken.append(f"throughput runs aborted: {exc!r}")
        print(f"ERROR: {exc!r}", flush=True)
    finally:
        for env in fronts.values():
            env.stop()
        up.stop()
        if grpc_up is not None:
            grpc_up.stop()
    try:
        deadline = time.monotonic() + 90.0  # at most 1.5 more minutes of waiting/repeating
        for kind in delay_configs:
            for attempt in range(2):
                wait_quiet(args.quiet_wait, deadline)
                d = delay_run(kind, pin, args)
                if d["cpu_others"] <= NOISY or attempt == 1 or time.monotonic() > deadline:
                    break
                discarded_delays.append(d)
                print(f"delay {kind}: other processes used {d['cpu_others']:.2f} cores: "
                      "discarded, repeating", flush=True)
            delays.append(d)
            dp, pr = d.get("dark_after_primary", {}), d.get("primary_after_req", {})
            ul = d.get("upstream_log", {})
            print(f"delay {kind}: {d['rps']:.0f} req/s, {d.get('joined', 0)} requests; dark out "
                  f"- primary out p50 {dp.get('p50', 0):.0f} p90 {dp.get('p90', 0):.0f} p99 "
                  f"{dp.get('p99', 0):.0f} µs; primary out - request in p50 "
                  f"{pr.get('p50', 0):.0f} p99 {pr.get('p99', 0):.0f} µs; upstream log "
                  f"dark - primary p50 {ul.get('p50', 0):.0f} p99 {ul.get('p99', 0):.0f} µs"
                  + (f"  PROBLEMS: {d['problems']}" if d["problems"] else ""), flush=True)
    except Exception as exc:  # noqa: BLE001
        broken.append(f"dispatch-delay runs aborted: {exc!r}")
        print(f"ERROR: {exc!r}", flush=True)
    t_scale = time.time()
    if scale_configs:
        try:
            scale_phase(scale_configs, args, pin, run_no, scale_rows, discarded)
        except Exception as exc:  # noqa: BLE001
            broken.append(f"scale runs aborted: {exc!r}")
            print(f"ERROR: {exc!r}", flush=True)
    args.scale_minutes = (time.time() - t_scale) / 60
    elapsed = time.time() - t_start

    aborted = ("Aborted:\n\n" + "\n".join(f"- {b}" for b in broken) + "\n\n") if broken else ""
    http_rows = [r for r in rows if r["kind"] not in GRPC]
    grpc_rows = [r for r in rows if r["kind"] in GRPC]
    results: dict = {}
    scale_results: dict = {}
    med: dict = {}
    bad = False
    if http_rows or delays or scale_rows:
        section, results, med, bad, scale_results = report(
            http_rows, delays, args, info, pin, cmdline, elapsed, load_before, module_size,
            share, [r for r in discarded if r["kind"] not in GRPC], scale_rows)
        section = section.replace(END, aborted + END)
        print()
        print(section.replace(BEGIN + "\n", "").replace("\n" + END, ""))
        if not args.no_write:
            write_benchmarks(section)
            print(f"\n(written to {REPORT.relative_to(U.ROOT)})")
    grpc_results: dict = {}
    if grpc_rows:
        section, grpc_results, grpc_med, grpc_bad = grpc_report(
            grpc_rows, args, info, pin, cmdline, elapsed, load_before, module_size,
            [r for r in discarded if r["kind"] in GRPC])
        section = section.replace(GRPC_END, aborted + GRPC_END)
        med.update(grpc_med)
        bad = bad or grpc_bad
        print()
        print(section.replace(GRPC_BEGIN + "\n", "").replace("\n" + GRPC_END, ""))
        if not args.no_write:
            write_benchmarks(section, GRPC_BEGIN, GRPC_END, GRPC_METHOD_TEXT)
            print(f"\n(written to {REPORT.relative_to(U.ROOT)})")
    if args.profile:
        print("\n" + profile_table(rows))
    (OUT / "result.json").write_text(json.dumps(
        {"args": vars(args), "machine": info, "module_size": module_size,
         "sampled_share": share, "targets": results, "grpc": grpc_results, "medians": med,
         "scale": scale_results, "runs": rows, "scale_runs": scale_rows,
         "discarded": discarded, "discarded_delays": discarded_delays,
         "delays": delays, "broken": broken}, indent=2, default=str))
    return 1 if broken or bad or not (rows or scale_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
