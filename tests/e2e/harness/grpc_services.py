"""gRPC for the end-to-end tests: tests/e2e/grpc/shop.proto compiled at test
time, grpcio servers of ``pkg.Svc`` on loopback that record every call, a
client that reads answers as bytes, gRPC wire helpers, and the Envoy pieces
a gRPC test needs. ``from harness import grpc_services`` (grpcio and
grpcio-tools come with the Makefile's PY_DEPS; nothing else imports them).

* ``compile_protos(out_dir)`` -> ``Protos``: ``python -m grpc_tools.protoc``
  writes the Python stubs and a descriptor set (``--include_imports``) into
  ``out_dir``; the generated modules (``pb2``, ``pb2_grpc``), the descriptor
  set (``descriptor_set``, ``descriptor_b64`` for a launch's
  ``compare.proto_descriptor``) and ``item(id)``, the reference ``Item``.
  Compiled once per process.
* ``GrpcService(protos, name, dark=False)``: a grpcio server on 127.0.0.1
  serving ``pkg.Svc`` through generic handlers that see and send message
  bytes. Every call is recorded as a ``Call`` (method, request message bytes,
  invocation metadata, deadline, the messages and status it answered). The
  primary (``dark=False``) always answers ``item(id)`` (``Get``) or items
  1..count (``List``); the dark one does what the request's ``behave`` field
  asks (``GET_BEHAVIOURS``, ``LIST_BEHAVIOURS``), and answers like the
  primary when it is empty.
* ``GrpcClient(port)``: ``get``/``list`` -> ``Answer`` (status code name,
  message bytes, details, metadata); never raises on a non-OK status.
* ``frame``/``unframe``, ``grpc_post``: gRPC messages on the wire, and one
  call over raw h2c (``harness.h2c_requests``) to see what a client library
  hides: a trailers-only answer, a message followed by a non-OK status.
* ``envoy_kwargs(dark)``: the bootstrap keywords of a gRPC test (HTTP/2
  listener, HTTP/2 primary, the dark clusters ``GRPC_CLUSTERS`` and the two
  hop listeners they need); ``route_listener`` one more listener straight to
  a cluster; ``tap_lines(envoy)`` what the ``dark_tap`` hop logged of each
  request's headers.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Optional

import grpc

from .client import h2c_requests
from .envoy_config import listener, static_cluster
from .headers import HeaderList
from .paths import REPO_ROOT
from .ports import LOOPBACK, free_port
from .process import _register, _unregister

PROTO_DIR = REPO_ROOT / "tests" / "e2e" / "grpc"
PROTO_FILE = "shop.proto"
SERVICE = "pkg.Svc"
GET = f"/{SERVICE}/Get"
LIST = f"/{SERVICE}/List"

# What the dark service does, by the request's ``behave`` field.
GET_BEHAVIOURS = {
    "": "the primary's item",
    "price": "price 10.5 instead of 10.0 (field 3, /price)",
    "tag": "tags [1, 2, 4] instead of [1, 2, 3] (field 4, /tags/*)",
    "nested": "detail.note changed (field 6.1, /detail/note)",
    "delta": "delta -8 instead of -7 (field 8, /delta)",
    "not_found": "status NOT_FOUND, trailers-only (no message, no headers before)",
    "data_loss": "the primary's item, then status DATA_LOSS in the trailers",
    "slow": "the primary's item after SLOW_SECONDS (sooner when the call is cancelled)",
    "field_order": "the primary's item, its fields written in reverse order",
    "map_order": "the primary's item, its map entries in reverse order",
    "unpacked": "the primary's item, its repeated int32 unpacked",
}
LIST_BEHAVIOURS = {
    "": "the primary's items",
    "price_2nd": "the 2nd item's price 10.5 instead of 10.0",
    "fewer": "one item fewer (the last one missing)",
}
SLOW_SECONDS = 2.0
PRICE, CHANGED_PRICE = 10.0, 10.5


# --------------------------------------------------------------------------
# The proto, compiled at test time


@dataclass
class Protos:
    pb2: ModuleType
    pb2_grpc: ModuleType
    descriptor_set: bytes  # a FileDescriptorSet, imports included
    out_dir: Path

    @property
    def descriptor_b64(self) -> str:
        return base64.b64encode(self.descriptor_set).decode()

    def item(self, id: int, **changes):  # noqa: A002 - the field's name
        """The reference ``pkg.Item`` number ``id`` (every field set), with ``changes``."""
        pb2 = self.pb2
        fields = dict(id=id, name=f"item-{id}", price=PRICE, tags=[1, 2, 3],
                      attrs={"a": "1", "b": "2", "c": "3"},
                      detail=pb2.Nested(note="boxed", stock=5), color=pb2.GREEN, delta=-7)
        fields.update(changes)
        return pb2.Item(**fields)

    def encode(self, msg) -> bytes:
        """``msg`` as the services send it: deterministic (map keys sorted)."""
        return msg.SerializeToString(deterministic=True)

    def get_request(self, id: int = 7, behave: str = "") -> bytes:  # noqa: A002
        return self.encode(self.pb2.GetRequest(id=id, behave=behave))

    def list_request(self, count: int = 3, behave: str = "") -> bytes:
        return self.encode(self.pb2.ListRequest(count=count, behave=behave))

    def parse_item(self, data: bytes):
        return self.pb2.Item.FromString(data)

    def item_wire(self, msg, *, field_order: bool = False, map_order: bool = False,
                  unpacked: bool = False) -> bytes:
        """An ``Item`` encoded by hand, the same message in other bytes:
        ``field_order`` writes the fields last to first, ``map_order`` the
        map entries in reverse key order, ``unpacked`` each tag as a field
        of its own (wire type 0) instead of one packed run (wire type 2).
        With no option, the bytes are ``encode(msg)``'s."""
        pb2 = self.pb2

        def alone(**one) -> bytes:
            return self.encode(pb2.Item(**one))

        keys = sorted(msg.attrs, reverse=map_order)
        if unpacked:
            tags = b"".join(varint(4 << 3 | 0) + varint(t & 0xFFFFFFFFFFFFFFFF)
                            for t in msg.tags)
        else:
            tags = alone(tags=list(msg.tags))
        parts = [alone(id=msg.id), alone(name=msg.name), alone(price=msg.price), tags,
                 b"".join(alone(attrs={k: msg.attrs[k]}) for k in keys),
                 alone(detail=msg.detail), alone(color=msg.color), alone(delta=msg.delta)]
        if field_order:
            parts.reverse()
        return b"".join(parts)


_compiled: dict = {}
_compile_lock = threading.Lock()


def compile_protos(out_dir) -> Protos:
    """shop.proto through ``python -m grpc_tools.protoc`` into ``out_dir``
    (Python stubs, descriptor set), imported; once per process (the protobuf
    runtime holds one definition of a file), later calls return the first."""
    with _compile_lock:
        if "protos" in _compiled:
            return _compiled["protos"]
        out = Path(out_dir).resolve()
        out.mkdir(parents=True, exist_ok=True)
        desc = out / "shop.binpb"
        cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}",
               f"--python_out={out}", f"--grpc_python_out={out}",
               "--include_imports", f"--descriptor_set_out={desc}", PROTO_FILE]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")
        # shop_pb2_grpc imports shop_pb2 by its top-level name.
        sys.path.insert(0, str(out))
        try:
            import importlib

            pb2 = importlib.import_module("shop_pb2")
            pb2_grpc = importlib.import_module("shop_pb2_grpc")
        finally:
            sys.path.remove(str(out))
        protos = Protos(pb2, pb2_grpc, desc.read_bytes(), out)
        _compiled["protos"] = protos
        return protos


# --------------------------------------------------------------------------
# Wire helpers


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def frame(msg: bytes, compressed: bool = False) -> bytes:
    """One gRPC length-prefixed message."""
    return bytes([1 if compressed else 0]) + len(msg).to_bytes(4, "big") + msg


def unframe(body: bytes) -> list:
    """The messages of a gRPC body (uncompressed ones)."""
    out, i = [], 0
    while i + 5 <= len(body):
        n = int.from_bytes(body[i + 1:i + 5], "big")
        out.append(body[i + 5:i + 5 + n])
        i += 5 + n
    if i != len(body):
        raise ValueError(f"truncated gRPC body: {len(body) - i} bytes left over")
    return out


@dataclass
class WireAnswer:
    """A gRPC answer as seen on an h2c stream."""
    status: int  # :status, 0 when the stream was reset
    headers: list  # the first HEADERS frame, pseudo-headers left out
    trailers: list  # the trailing HEADERS frame ([] for a trailers-only answer)
    messages: list  # message bytes

    @property
    def trailers_only(self) -> bool:
        return not self.trailers and any(k == "grpc-status" for k, _ in self.headers)

    @property
    def grpc_status(self) -> Optional[int]:
        for k, v in self.trailers or self.headers:
            if k == "grpc-status":
                return int(v)
        return None


def grpc_post(port: int, method: str, message: bytes, metadata=(), timeout: float = 10.0,
              host: str = LOOPBACK) -> WireAnswer:
    """One unary or server-streaming call over raw h2c: what really comes back."""
    headers = [("content-type", "application/grpc"), ("te", "trailers"), *metadata]
    [r] = h2c_requests(host, port, [("POST", method, headers, frame(message))], timeout)
    return WireAnswer(r.status, r.headers, list(r.trailers), unframe(r.body) if r.status else [])


# --------------------------------------------------------------------------
# The services


@dataclass
class Call(HeaderList):
    """One call a ``GrpcService`` received."""
    method: str  # "/pkg.Svc/Get"
    request: bytes  # the request message as it arrived (decompressed)
    headers: list  # invocation metadata [(key, value)]; -bin values are bytes
    deadline: Optional[float]  # seconds left on arrival; None: the call has no deadline
    behave: str
    time: float  # time.monotonic() on arrival
    replies: list = field(default_factory=list)  # message bytes sent
    code: str = "OK"  # the status it ended with (grpc.StatusCode name)


class GrpcService:
    """``pkg.Svc`` on 127.0.0.1 (see the module's docstring); ``address``,
    ``calls()``, ``clear()``, ``wait_for_count(n)``, ``stop()``."""

    def __init__(self, protos: Protos, name: str, dark: bool = False, max_workers: int = 16):
        self.protos = protos
        self.name = name
        self.dark = dark
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._calls: list[Call] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers,
                                                              thread_name_prefix=f"grpc-{name}"),
                                   options=[("grpc.so_reuseport", 0)])
        # No (de)serializers: the handlers see and send message bytes.
        handlers = {
            "Get": grpc.unary_unary_rpc_method_handler(self._get),
            "List": grpc.unary_stream_rpc_method_handler(self._list),
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.host = LOOPBACK
        self.port = self._server.add_insecure_port(f"{LOOPBACK}:0")
        if not self.port:
            raise RuntimeError(f"grpc service {name}: could not bind 127.0.0.1")
        self._server.start()
        self._stopped = False
        _register(self)

    # -- handlers ----------------------------------------------------------
    def _record(self, method: str, request: bytes, context, behave: str) -> Call:
        left = context.time_remaining()
        call = Call(method=method, request=request,
                    headers=[(m.key, m.value) for m in context.invocation_metadata()],
                    deadline=left if left is not None and left < 1e6 else None,
                    behave=behave, time=time.monotonic())
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()
        return call

    def _get(self, request: bytes, context):
        p = self.protos
        req = p.pb2.GetRequest.FromString(request)
        behave = req.behave if self.dark else ""
        call = self._record(GET, request, context, behave)
        item = p.item(req.id)
        reply = p.encode(item)
        if behave == "price":
            reply = p.encode(p.item(req.id, price=CHANGED_PRICE))
        elif behave == "tag":
            reply = p.encode(p.item(req.id, tags=[1, 2, 4]))
        elif behave == "nested":
            reply = p.encode(p.item(req.id, detail=p.pb2.Nested(note="loose", stock=5)))
        elif behave == "delta":
            reply = p.encode(p.item(req.id, delta=-8))
        elif behave == "not_found":
            call.code = "NOT_FOUND"
            context.abort(grpc.StatusCode.NOT_FOUND, f"no item {req.id}")
        elif behave == "data_loss":
            # grpcio sends the returned message, then this status.
            call.code = "DATA_LOSS"
            context.set_code(grpc.StatusCode.DATA_LOSS)
            context.set_details("checksum mismatch")
        elif behave == "slow":
            deadline = time.monotonic() + SLOW_SECONDS
            while time.monotonic() < deadline and context.is_active():
                time.sleep(0.02)
        elif behave in ("field_order", "map_order", "unpacked"):
            reply = p.item_wire(item, **{behave: True})
        elif behave:
            call.code = "INVALID_ARGUMENT"
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown behave {behave!r}")
        call.replies.append(reply)
        return reply

    def _list(self, request: bytes, context):
        p = self.protos
        req = p.pb2.ListRequest.FromString(request)
        behave = req.behave if self.dark else ""
        call = self._record(LIST, request, context, behave)
        count = req.count
        if behave == "fewer":
            count -= 1
        elif behave not in ("", "price_2nd"):
            call.code = "INVALID_ARGUMENT"
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown behave {behave!r}")
        for i in range(1, count + 1):
            item = p.item(i, price=CHANGED_PRICE) if behave == "price_2nd" and i == 2 \
                else p.item(i)
            reply = p.encode(item)
            call.replies.append(reply)
            yield reply

    # -- recording ---------------------------------------------------------
    def calls(self, method: Optional[str] = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def count(self) -> int:
        with self._lock:
            return len(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def wait_for_count(self, n: int, timeout: float = 10.0) -> list[Call]:
        """Waits until at least ``n`` calls arrived; returns them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._calls) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"grpc service {self.name}: {len(self._calls)} calls "
                                       f"after {timeout}s, wanted {n}")
                self._cond.wait(left)
            return list(self._calls)

    # -- lifecycle ---------------------------------------------------------
    @property
    def address(self) -> tuple:
        return (self.host, self.port)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.stop(grace=0).wait(5)
        _unregister(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------
# The client


@dataclass
class Answer:
    """What a grpcio client got."""
    code: str  # grpc.StatusCode name: "OK", "NOT_FOUND", "UNAVAILABLE", ...
    messages: list  # message bytes
    details: str = ""
    initial_metadata: list = field(default_factory=list)
    trailing_metadata: list = field(default_factory=list)

    @property
    def message(self) -> Optional[bytes]:
        """The only message; None when there is none."""
        if len(self.messages) > 1:
            raise ValueError(f"{len(self.messages)} messages")
        return self.messages[0] if self.messages else None


def _md(md) -> list:
    return [(m.key, m.value) for m in (md or ())]


class GrpcClient:
    """A grpcio channel to 127.0.0.1:port (Envoy's listener or a service),
    calls made with message bytes."""

    def __init__(self, port: int, host: str = LOOPBACK):
        self.channel = grpc.insecure_channel(
            f"{host}:{port}", options=[("grpc.enable_http_proxy", 0),
                                       ("grpc.enable_retries", 0)])
        self._get = self.channel.unary_unary(GET)
        self._list = self.channel.unary_stream(LIST)

    def get(self, request: bytes, metadata=(), timeout: float = 5.0,
            compression=None) -> Answer:
        try:
            reply, call = self._get.with_call(request, metadata=list(metadata), timeout=timeout,
                                              compression=compression)
        except grpc.RpcError as err:
            return Answer(err.code().name, [], err.details() or "",
                          _md(err.initial_metadata()), _md(err.trailing_metadata()))
        return Answer(call.code().name, [reply], call.details() or "",
                      _md(call.initial_metadata()), _md(call.trailing_metadata()))

    def list(self, request: bytes, metadata=(), timeout: float = 5.0) -> Answer:
        stream = self._list(request, metadata=list(metadata), timeout=timeout)
        messages = []
        try:
            for m in stream:
                messages.append(m)
        except grpc.RpcError:
            pass
        return Answer(stream.code().name, messages, stream.details() or "",
                      _md(stream.initial_metadata()), _md(stream.trailing_metadata()))

    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# Envoy

# The dark clusters of ``envoy_kwargs``:
GRPC_CLUSTERS = {
    "dark_h2": "the dark service over HTTP/2",
    "dark_h1": "the dark service over HTTP/1.1, which it does not speak",
    "dark_closed": "HTTP/2 to a closed loopback port",
    "dark_slow": "the dark service through a hop listener that removes grpc-timeout, "
                 "so that only the caller's own timeout ends a slow call",
    "dark_tap": "the dark service through a hop listener that logs each request's "
                "headers to Envoy's log (tap_lines)",
}
TAP_MARK = "darklaunch-test-tap"
TAP_HEADERS = [":authority", ":path", ":method", "te", "content-type", "grpc-encoding",
               "grpc-accept-encoding", "grpc-timeout", "x-darklaunch-shadow", "x-user-id",
               "user-agent"]


def _tap_log() -> dict:
    fmt = {"tap": TAP_MARK, **{h.lstrip(":"): f"%REQ({h.upper()})%" for h in TAP_HEADERS},
           "grpc_status": "%GRPC_STATUS(NUMBER)%"}
    return {
        "name": "envoy.access_loggers.stderr",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog",
            "log_format": {"json_format": fmt},
        },
    }


def _hcm(lst: dict) -> dict:
    return lst["filter_chains"][0]["filters"][0]["typed_config"]


def route_listener(port: int, cluster: str, name: str, **kw) -> dict:
    """An HTTP/2 listener without the darklaunch filter routing everything to
    ``cluster``; its HCM stats under ``name`` (not the test listener's ``ingress``)."""
    lst = listener(port, http2_downstream=True, cluster=cluster, name=name, **kw)
    _hcm(lst)["stat_prefix"] = name
    return lst


def envoy_kwargs(dark: GrpcService) -> dict:
    """``bootstrap``/``envoy_factory`` keywords for gRPC: the listener speaks
    HTTP/2 (``http2_downstream``), the ``primary`` cluster HTTP/2 (pass the
    primary service's ``address`` as the primary), and the clusters of
    ``GRPC_CLUSTERS`` with their hop listeners."""
    slow_port, tap_port = free_port(), free_port()
    tap = route_listener(tap_port, "dark_h2", "dark_tap_hop")
    _hcm(tap)["access_log"] = [_tap_log()]
    return {
        "primary_http2": True,
        "http2_downstream": True,
        "clusters": {
            "dark_h2": static_cluster("dark_h2", *dark.address, http2=True),
            "dark_h1": static_cluster("dark_h1", *dark.address),
            "dark_closed": static_cluster("dark_closed", LOOPBACK, free_port(), http2=True),
            "dark_slow": static_cluster("dark_slow", LOOPBACK, slow_port, http2=True),
            "dark_tap": static_cluster("dark_tap", LOOPBACK, tap_port, http2=True),
        },
        "extra_listeners": [
            route_listener(slow_port, "dark_h2", "dark_slow_hop",
                           request_headers_to_remove=["grpc-timeout"]),
            tap,
        ],
    }


def tap_lines(envoy) -> list:
    """What the ``dark_tap`` hop logged: one dict per request, header name
    (pseudo-headers without their colon) -> value as a string, None when
    absent; ``grpc_status``: the answer's, a number as a string."""
    out = []
    for line in envoy.log_text().splitlines():
        if TAP_MARK not in line or not line.lstrip().startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        out.append({k: (None if v in ("-", "", None) else str(v)) for k, v in doc.items()})
    return out


def grpc_timeout_seconds(value: str) -> float:
    """A grpc-timeout header value ("500m", "2S") in seconds."""
    units = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
    return int(value[:-1]) * units[value[-1]]
