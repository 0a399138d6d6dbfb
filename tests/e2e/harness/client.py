"""HTTP clients for talking to Envoy: one-shot and keep-alive HTTP/1.1
(http.client), and several concurrent HTTP/2 streams on one h2c connection
(the ``h2`` library)."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Optional, Union

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from .headers import HeaderList


@dataclass
class Response(HeaderList):
    status: int
    headers: list  # [(lowercased-name, value)]
    body: bytes
    elapsed: float = 0.0
    trailers: list = field(default_factory=list)  # h2c: [(name, value)] after the body

    def json(self):
        return json.loads(self.body)


def _to_response(resp: http.client.HTTPResponse, t0: float) -> Response:
    body = resp.read()
    headers = [(k.lower(), v) for k, v in resp.getheaders()]
    return Response(resp.status, headers, body, time.monotonic() - t0)


def http_request(url: str, method: str = "GET", headers: Union[dict, list, None] = None,
                 body: Optional[bytes] = None, timeout: float = 10.0) -> Response:
    """One request on a fresh connection; never raises on HTTP error statuses."""
    u = urllib.parse.urlsplit(url)
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    with Client(u.hostname, u.port or 80, timeout) as client:
        return client.request(method, path, headers, body)


class Client:
    """A keep-alive HTTP/1.1 client for one host:port (one per thread).

    ``headers`` are a dict or a list of pairs (to repeat a name); a ``body``
    gets a content-length. HTTP error statuses are answers, not exceptions.
    """

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._conn: Optional[http.client.HTTPConnection] = None
        self._reused = False

    def request(self, method: str, path: str, headers: Union[dict, list, None] = None,
                body: Optional[bytes] = None) -> Response:
        while True:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self._reused = False
            reused = self._reused
            try:
                t0 = time.monotonic()
                self._conn.putrequest(method, path, skip_accept_encoding=True)
                items = headers.items() if isinstance(headers, dict) else (headers or [])
                for k, v in items:
                    self._conn.putheader(k, v)
                if body is not None:
                    self._conn.putheader("content-length", str(len(body)))
                self._conn.endheaders(body)
                resp = self._conn.getresponse()
                out = _to_response(resp, t0)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if not reused:
                    raise
                # An idle keep-alive connection closed by the peer: the request
                # never got out, send it again on a fresh connection.
                continue
            except BaseException:
                self.close()
                raise
            if resp.will_close:
                self.close()
            else:
                self._reused = True
            return out

    def get(self, path: str, headers=None) -> Response:
        return self.request("GET", path, headers)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# Flow-control windows large enough that the server never waits for a
# WINDOW_UPDATE from us.
_H2_WINDOW = 1 << 30


def h2c_requests(host: str, port: int, requests: list, timeout: float = 10.0,
                 authority: Optional[str] = None) -> list:
    """Sends every request at once, each on its own stream of ONE h2c
    connection (HTTP/2 prior knowledge), then reads all the answers.

    ``requests``: ``[(method, path, headers, body)]`` (``headers`` a dict or
    pairs, ``body`` bytes or None). Returns ``[Response]`` in the same order,
    trailers in ``trailers``; a stream the server reset gives
    ``Response(0, [("rst", code)], b"")``,
    and so does every unanswered stream after a GOAWAY (code ``goaway``: h2
    accepts no frame after one). ``elapsed`` is from the first byte sent to
    that stream's end.
    """
    authority = authority or f"{host}:{port}"
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="latin-1"))
    conn.local_settings = h2.settings.Settings(
        client=True,
        initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _H2_WINDOW})
    conn.initiate_connection()
    conn.increment_flow_control_window(_H2_WINDOW - 65535)
    streams: dict = {}
    unsent: dict = {}  # stream id -> request body bytes not sent yet

    def send_bodies() -> None:
        """As much of each request body as the server's flow-control windows allow."""
        for sid in list(unsent):
            if streams[sid]["done"] is not None:
                del unsent[sid]
                continue
            body = unsent[sid]
            while body:
                n = min(len(body), conn.local_flow_control_window(sid),
                        conn.max_outbound_frame_size)
                if n <= 0:
                    break
                conn.send_data(sid, body[:n])
                body = body[n:]
            unsent[sid] = body
            if not body:
                conn.end_stream(sid)
                del unsent[sid]

    for method, path, headers, body in requests:
        sid = conn.get_next_available_stream_id()
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        conn.send_headers(sid, [(":method", method), (":scheme", "http"), (":path", path),
                                (":authority", authority)]
                          + [(k.lower(), str(v)) for k, v in items],
                          end_stream=not body)
        streams[sid] = {"headers": None, "body": bytearray(), "done": None, "rst": None,
                        "trailers": []}
        if body:
            unsent[sid] = bytes(body)
    send_bodies()

    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.monotonic()
        sock.sendall(conn.data_to_send())

        def finish(sid: int, rst=None) -> None:
            s = streams.get(sid)
            if s is not None and s["done"] is None:
                s["rst"] = rst if s["rst"] is None else s["rst"]
                s["done"] = time.monotonic() - t0

        goaway = False
        while not goaway and any(s["done"] is None for s in streams.values()):
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("h2c connection closed by the server")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    s = streams.get(event.stream_id)
                    if s is not None and s["headers"] is None:
                        s["headers"] = event.headers
                elif isinstance(event, h2.events.TrailersReceived):
                    if event.stream_id in streams:
                        streams[event.stream_id]["trailers"] = list(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    if event.stream_id in streams:
                        streams[event.stream_id]["body"] += event.data
                elif isinstance(event, h2.events.StreamEnded):
                    finish(event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    finish(event.stream_id, int(event.error_code))
                elif isinstance(event, h2.events.ConnectionTerminated):
                    goaway = True
                    for sid in streams:
                        finish(sid, "goaway")
                elif isinstance(event, (h2.events.WindowUpdated,
                                        h2.events.RemoteSettingsChanged)):
                    send_bodies()
            sock.sendall(conn.data_to_send())
        try:
            conn.close_connection()
            sock.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            pass
    responses = []
    for sid in sorted(streams):
        s = streams[sid]
        if s["rst"] is not None or not s["headers"]:
            responses.append(Response(0, [("rst", str(s["rst"]))], bytes(s["body"]), s["done"]))
            continue
        fields = s["headers"]
        status = int(dict(fields).get(":status", "0"))
        hdrs = [(k, v) for k, v in fields if not k.startswith(":")]
        responses.append(Response(status, hdrs, bytes(s["body"]), s["done"], s["trailers"]))
    return responses
