"""The programmable upstream: an in-process HTTP/1.1 server on 127.0.0.1 that
answers each ``Request`` with the ``Reply`` its handler returns (delays,
chunks, resets, raw bytes) and records every request it received."""

from __future__ import annotations

import http.server
import json
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from .headers import HeaderList
from .ports import LOOPBACK
from .process import _register, _unregister


@dataclass
class Request(HeaderList):
    method: str
    path: str  # with query string
    headers: list  # [(lowercased-name, value)] in arrival order
    body: bytes
    time: float  # time.monotonic() when the request was fully read

    @property
    def path_only(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def query(self) -> dict:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))


@dataclass
class Reply:
    status: int = 200
    headers: list = field(default_factory=list)  # [(name, value)]
    body: bytes = b""
    delay: float = 0.0  # seconds to sleep before answering
    reset: bool = False  # close the socket abruptly (TCP RST)
    reset_after_headers: bool = False  # with reset: send status + headers first
    reset_after_bytes: int = 0  # with reset_after_headers: body bytes sent before the RST
    chunks: Optional[list] = None  # send these with transfer-encoding: chunked
    chunk_delay: float = 0.0  # sleep between chunks
    # Bytes written verbatim as the whole answer (status line, headers, body:
    # nothing is added), for answers no well-behaved server gives (wrong
    # content-length, 1xx before the final status, odd status lines). The
    # connection is then closed (FIN), or reset (RST) with ``reset``; put
    # ``connection: close`` in it, or Envoy may reuse the closing connection.
    raw: Optional[bytes] = None

    @staticmethod
    def json(obj, status: int = 200, headers: Optional[list] = None, **kw) -> "Reply":
        hdrs = [("content-type", "application/json")] + list(headers or [])
        return Reply(status=status, headers=hdrs, body=json.dumps(obj).encode(), **kw)

    @staticmethod
    def text(text: str, status: int = 200, headers: Optional[list] = None, **kw) -> "Reply":
        hdrs = [("content-type", "text/plain")] + list(headers or [])
        return Reply(status=status, headers=hdrs, body=text.encode(), **kw)


Handler = Union[Callable[[Request], Reply], Reply]


def _echo_handler(name: str) -> Callable[[Request], Reply]:
    def handler(req: Request) -> Reply:
        return Reply.json({"upstream": name, "method": req.method, "path": req.path})
    return handler


class _UpstreamHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops SYNs when Envoy opens dozens
    # of connections at once, and Envoy's 1 s connect timeout turns that into 503s.
    request_queue_size = 128
    upstream: "Upstream"

    def process_request(self, request, client_address):
        self.upstream._track(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        if self.upstream._untrack(request):
            self.close_request(request)  # no FIN first: SO_LINGER 0 makes close() a RST
        else:
            super().shutdown_request(request)

    def handle_error(self, request, client_address):
        # Peers (Envoy) closing connections mid-request are routine in tests.
        pass


class _UpstreamHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle
    # plus the peer's delayed ACK adds ~40 ms to every response.
    disable_nagle_algorithm = True
    server: _UpstreamHTTPServer

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass

    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            if not self.parse_request():
                return
            self._dispatch()
            self.wfile.flush()
        except (TimeoutError, ConnectionError, OSError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        te = (self.headers.get("transfer-encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until the empty line
                    while True:
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after the chunk
            return b"".join(parts)
        length = self.headers.get("content-length")
        if length:
            return self.rfile.read(int(length))
        return b""

    def _dispatch(self):
        up = self.server.upstream
        body = self._read_body()
        req = Request(
            method=self.command,
            path=self.path,
            headers=[(k.lower(), v) for k, v in self.headers.items()],
            body=body,
            time=time.monotonic(),
        )
        up._record(req)
        handler = up.handler
        try:
            reply = handler(req) if callable(handler) else handler
        except Exception as exc:  # noqa: BLE001 - a broken handler answers 500
            reply = Reply.text(f"handler error: {exc!r}", status=500)
        if reply is None:
            reply = Reply()
        if reply.delay:
            time.sleep(reply.delay)
        if reply.raw is not None:
            self.wfile.write(reply.raw)
            self.wfile.flush()
            if reply.reset:
                self._reset(sent_something=True)
            else:
                self.close_connection = True
            return
        if reply.reset and not reply.reset_after_headers:
            self._reset()
            return
        self._send(req, reply)

    def _reset(self, sent_something: bool = False):
        self.close_connection = True
        if sent_something:
            # Let what was written reach the peer: a RST discards unsent data.
            time.sleep(0.05)
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # The server closes the socket when handle() returns: with SO_LINGER
        # 0 that close sends a RST instead of a FIN.
        self.server.upstream._mark_reset(self.connection)

    def _send(self, req: Request, reply: Reply):
        head = req.method == "HEAD"
        no_body_status = reply.status < 200 or reply.status in (204, 304)
        names = {k.lower() for k, _ in reply.headers}
        self.send_response_only(reply.status)
        for k, v in reply.headers:
            self.send_header(k, v)
        chunked = reply.chunks is not None and not no_body_status
        if chunked and "transfer-encoding" not in names:
            self.send_header("transfer-encoding", "chunked")
        elif not chunked and not no_body_status and "content-length" not in names:
            self.send_header("content-length", str(len(reply.body)))
        if "connection" in names and any(
            k.lower() == "connection" and v.lower() == "close" for k, v in reply.headers
        ):
            self.close_connection = True
        self.end_headers()
        if reply.reset:  # reset_after_headers
            if reply.reset_after_bytes and not head:
                self.wfile.write(reply.body[: reply.reset_after_bytes])
            self._reset(sent_something=True)
            return
        if head or no_body_status:
            return
        if chunked:
            for i, chunk in enumerate(reply.chunks):
                if i and reply.chunk_delay:
                    self.wfile.flush()
                    time.sleep(reply.chunk_delay)
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(reply.body)


class Upstream:
    """An HTTP/1.1 server on 127.0.0.1 answering with ``handler(request)``.

    ``handler`` is a function ``Request -> Reply`` (or a fixed ``Reply``) and
    can be swapped at any time through the ``handler`` attribute.
    """

    def __init__(self, handler: Optional[Handler] = None, name: str = "upstream", port: int = 0):
        self.name = name
        self.handler: Handler = handler if handler is not None else _echo_handler(name)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests: list[Request] = []
        self._conns: set = set()
        self._resets: set = set()
        self._server = _UpstreamHTTPServer((LOOPBACK, port), _UpstreamHandler)
        self._server.upstream = self
        self.port: int = self._server.server_address[1]
        self.host = LOOPBACK
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"upstream-{name}", daemon=True)
        self._stopped = False
        self._thread.start()
        _register(self)

    # -- recording ---------------------------------------------------------
    def _record(self, req: Request) -> None:
        with self._cond:
            self._requests.append(req)
            self._cond.notify_all()

    def _track(self, sock) -> None:
        with self._lock:
            self._conns.add(sock)

    def _untrack(self, sock) -> bool:
        """Forgets a connection; True if it is to be closed with a RST."""
        with self._lock:
            self._conns.discard(sock)
            if sock in self._resets:
                self._resets.discard(sock)
                return True
            return False

    def _mark_reset(self, sock) -> None:
        with self._lock:
            self._resets.add(sock)

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def count(self) -> int:
        with self._lock:
            return len(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for_count(self, n: int, timeout: float = 10.0) -> list[Request]:
        """Waits until at least ``n`` requests arrived; returns them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"upstream {self.name}: {len(self._requests)} requests after "
                        f"{timeout}s, wanted {n}")
                self._cond.wait(left)
            return list(self._requests)

    # -- lifecycle ---------------------------------------------------------
    @property
    def address(self) -> tuple:
        return (self.host, self.port)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for sock in conns:  # idle keep-alive connections from Envoy
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        _unregister(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
