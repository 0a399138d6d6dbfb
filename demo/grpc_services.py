"""The demo's two versions of a small gRPC "catalog" service.

``shop.Catalog/GetItem`` takes ``{1: id}`` (a varint) and answers an Item:
``{1: id, 2: name, 3: price (double), 4: tags (repeated string)}``. v1 is the
primary; v2, the dark candidate, agrees except on purpose:

* ids divisible by 5: another price (field 3: a body mismatch at ``/3``);
* ids divisible by 11: ``NOT_FOUND`` with no message (a ``grpc_status``
  mismatch).

The messages are written in protobuf's wire format by hand (a few bytes),
so the demo needs grpcio but no generated code; the filter compares them
without a schema, by field number.

Run standalone (``python3 demo/grpc_services.py [v1_port v2_port]``) to serve
them on 127.0.0.1:8083 and :8084 until Ctrl-C.
"""

from __future__ import annotations

import struct
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from harness.grpc_services import varint  # noqa: E402

METHOD = "/shop.Catalog/GetItem"


def field(number: int, wire: int, payload: bytes) -> bytes:
    return varint(number << 3 | wire) + payload


def length_delimited(number: int, data: bytes) -> bytes:
    return field(number, 2, varint(len(data)) + data)


def request(item: int) -> bytes:
    """A GetItem request for ``item``."""
    return field(1, 0, varint(item))


def read_id(message: bytes) -> int:
    """Field 1 of a request (0 when absent)."""
    if message[:1] != b"\x08":
        return 0
    n = shift = 0
    for b in message[1:]:
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return n


def price(item: int, version: str) -> float:
    base = 10.0 + item % 7
    return base + 0.5 if version == "v2" and item % 5 == 0 else base


def item_message(item: int, version: str) -> bytes:
    return (field(1, 0, varint(item))
            + length_delimited(2, f"item {item}".encode())
            + field(3, 1, struct.pack("<d", price(item, version)))
            + length_delimited(4, b"demo") + length_delimited(4, b"catalog"))


def expected_difference(item: int) -> str:
    """What v2 does differently for ``item``: "grpc_status", "body" or ""."""
    if item % 11 == 0:
        return "grpc_status"
    if item % 5 == 0:
        return "body"
    return ""


class Catalog:
    """One version served on 127.0.0.1:``port``; ``calls`` counts the calls it got."""

    def __init__(self, version: str, port: int):
        self.version = version
        self.calls = 0
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.unary_unary_rpc_method_handler(
            self._get, request_deserializer=None, response_serializer=None)
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("shop.Catalog", {"GetItem": handler}),))
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    def _get(self, message: bytes, context) -> bytes:
        with self._lock:
            self.calls += 1
        item = read_id(message)
        if self.version == "v2" and item % 11 == 0:
            context.abort(grpc.StatusCode.NOT_FOUND, "")
        return item_message(item, self.version)

    def stop(self) -> None:
        self.server.stop(grace=None)


def start(v1_port: int = 8083, v2_port: int = 8084) -> tuple:
    v1 = Catalog("v1", v1_port)
    try:
        v2 = Catalog("v2", v2_port)
    except BaseException:
        v1.stop()
        raise
    return v1, v2


def main(argv: list) -> int:
    ports = [int(a) for a in argv[1:3]] or [8083, 8084]
    v1, v2 = start(*ports)
    print(f"catalog v1 (primary) on :{v1.port}, v2 (dark) on :{v2.port}; Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        v1.stop()
        v2.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
