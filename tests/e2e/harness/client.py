"""HTTP clients for talking to Envoy: one-shot and keep-alive HTTP/1.1
(http.client), and several concurrent HTTP/2 streams on one h2c connection."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import time
import urllib.parse
from dataclasses import dataclass
from typing import Optional, Union


@dataclass
class Response:
    status: int
    headers: list  # [(lowercased-name, value)]
    body: bytes
    elapsed: float = 0.0

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

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


# --------------------------------------------------------------------------
# A small HTTP/2 (h2c, prior knowledge) client: several requests sent at once
# as concurrent streams on one connection. Standard library only, so it needs
# its own HPACK decoder (RFC 7541). (curl 7.88's --parallel multiplexing over
# prior knowledge fails with "Error in the HTTP2 framing layer".)
# --------------------------------------------------------------------------

# RFC 7541 Appendix A.
HPACK_STATIC_TABLE = [
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"),
    (":status", "200"), (":status", "204"), (":status", "206"), (":status", "304"),
    (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
]

# RFC 7541 Appendix B: the bit length of the Huffman code of each symbol
# (0..255, then EOS). The code is canonical, so the lengths determine it.
_HUFFMAN_LENGTHS = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30,
]


def _huffman_decoding_table() -> dict:
    """{(length, code): symbol} of the canonical code with _HUFFMAN_LENGTHS."""
    assert len(_HUFFMAN_LENGTHS) == 257
    assert sum(2 ** (30 - n) for n in _HUFFMAN_LENGTHS) == 2 ** 30, "not a complete code"
    table, code, prev = {}, 0, None
    for length, sym in sorted((n, s) for s, n in enumerate(_HUFFMAN_LENGTHS)):
        if prev is not None:
            code = (code + 1) << (length - prev)
        table[(length, code)] = sym
        prev = length
    return table


_HUFFMAN = _huffman_decoding_table()


def huffman_decode(data: bytes) -> bytes:
    out = bytearray()
    code = length = 0
    for byte in data:
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            length += 1
            sym = _HUFFMAN.get((length, code))
            if sym is not None:
                if sym == 256:
                    raise ValueError("EOS in a Huffman string")
                out.append(sym)
                code = length = 0
            elif length > 30:
                raise ValueError("invalid Huffman code")
    if length > 7 or code != (1 << length) - 1:
        raise ValueError("invalid Huffman padding")
    return bytes(out)


class HpackDecoder:
    """RFC 7541 header block decoder (static + dynamic table, Huffman)."""

    def __init__(self, max_size: int = 4096):
        self.max_size = max_size
        self.dynamic: list = []  # newest first
        self.size = 0

    @staticmethod
    def _int(data: bytes, pos: int, prefix: int) -> tuple:
        mask = (1 << prefix) - 1
        value = data[pos] & mask
        pos += 1
        if value < mask:
            return value, pos
        shift = 0
        while True:
            b = data[pos]
            pos += 1
            value += (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value, pos

    def _str(self, data: bytes, pos: int) -> tuple:
        huffman = data[pos] & 0x80
        n, pos = self._int(data, pos, 7)
        raw = data[pos:pos + n]
        if len(raw) != n:
            raise ValueError("truncated HPACK string")
        return (huffman_decode(raw) if huffman else raw).decode("latin-1"), pos + n

    def _entry(self, index: int) -> tuple:
        if index <= 0:
            raise ValueError("HPACK index 0")
        if index <= len(HPACK_STATIC_TABLE):
            return HPACK_STATIC_TABLE[index - 1]
        return self.dynamic[index - len(HPACK_STATIC_TABLE) - 1]

    def _evict(self) -> None:
        while self.size > self.max_size and self.dynamic:
            n, v = self.dynamic.pop()
            self.size -= 32 + len(n) + len(v)

    def _add(self, name: str, value: str) -> None:
        self.dynamic.insert(0, (name, value))
        self.size += 32 + len(name) + len(value)
        self._evict()

    def decode(self, data: bytes) -> list:
        headers, pos = [], 0
        while pos < len(data):
            b = data[pos]
            if b & 0x80:  # indexed field
                index, pos = self._int(data, pos, 7)
                headers.append(self._entry(index))
            elif b & 0x40:  # literal with incremental indexing
                index, pos = self._int(data, pos, 6)
                name = self._entry(index)[0] if index else None
                if name is None:
                    name, pos = self._str(data, pos)
                value, pos = self._str(data, pos)
                headers.append((name, value))
                self._add(name, value)
            elif b & 0x20:  # dynamic table size update
                self.max_size, pos = self._int(data, pos, 5)
                self._evict()
            else:  # literal without indexing / never indexed
                index, pos = self._int(data, pos, 4)
                name = self._entry(index)[0] if index else None
                if name is None:
                    name, pos = self._str(data, pos)
                value, pos = self._str(data, pos)
                headers.append((name, value))
        return headers


def _hpack_int(value: int, prefix: int, first: int = 0) -> bytes:
    mask = (1 << prefix) - 1
    if value < mask:
        return bytes([first | value])
    out = bytearray([first | mask])
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack_literal(name: str, value: str) -> bytes:
    """Literal header field without indexing, new name, no Huffman."""
    n, v = name.encode("latin-1"), value.encode("latin-1")
    return b"\x00" + _hpack_int(len(n), 7) + n + _hpack_int(len(v), 7) + v


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_H2_DATA, _H2_HEADERS, _H2_RST, _H2_SETTINGS, _H2_PING, _H2_GOAWAY, _H2_WINDOW, _H2_CONT = (
    0, 1, 3, 4, 6, 7, 8, 9)


def _h2_frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream & 0x7FFFFFFF) + payload


def h2c_requests(host: str, port: int, requests: list, timeout: float = 10.0,
                 authority: Optional[str] = None) -> list:
    """Sends every request at once, each on its own stream of ONE h2c
    connection (HTTP/2 prior knowledge), then reads all the answers.

    ``requests``: ``[(method, path, headers, body)]`` (``headers`` a dict or
    pairs, ``body`` bytes or None). Returns ``[Response]`` in the same order;
    a stream the server reset gives ``Response(0, [("rst", code)], b"")``.
    ``elapsed`` is from the first byte sent to that stream's end.
    """
    authority = authority or f"{host}:{port}"
    streams = {}
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Windows large enough that no WINDOW_UPDATE is ever needed.
        settings = struct.pack(">HI", 0x4, 1 << 30)  # INITIAL_WINDOW_SIZE
        out = [H2_PREFACE, _h2_frame(_H2_SETTINGS, 0, 0, settings),
               _h2_frame(_H2_WINDOW, 0, 0, struct.pack(">I", (1 << 30) - 65535))]
        for i, (method, path, headers, body) in enumerate(requests):
            sid = 1 + 2 * i
            items = headers.items() if isinstance(headers, dict) else (headers or [])
            block = b"".join(_hpack_literal(k, v) for k, v in
                             [(":method", method), (":scheme", "http"), (":path", path),
                              (":authority", authority)]
                             + [(k.lower(), str(v)) for k, v in items])
            end = 0x1 if not body else 0
            out.append(_h2_frame(_H2_HEADERS, 0x4 | end, sid, block))
            if body:
                for off in range(0, len(body), 16384):
                    last = off + 16384 >= len(body)
                    out.append(_h2_frame(_H2_DATA, 0x1 if last else 0, sid,
                                         body[off:off + 16384]))
            streams[sid] = {"headers": None, "body": bytearray(), "done": None, "rst": None}
        t0 = time.monotonic()
        sock.sendall(b"".join(out))
        decoder = HpackDecoder()
        buf = b""
        pending_block, pending_sid, pending_end = None, None, False

        def read_exact(n: int) -> bytes:
            nonlocal buf
            while len(buf) < n:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("h2c connection closed by the server")
                buf += chunk
            data, buf = buf[:n], buf[n:]
            return data

        def finish(sid: int) -> None:
            if sid in streams and streams[sid]["done"] is None:
                streams[sid]["done"] = time.monotonic() - t0

        while any(s["done"] is None for s in streams.values()):
            head = read_exact(9)
            length = int.from_bytes(head[:3], "big")
            ftype, flags = head[3], head[4]
            sid = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
            payload = read_exact(length)
            if ftype in (_H2_DATA, _H2_HEADERS) and flags & 0x8:  # PADDED
                pad = payload[0]
                payload = payload[1:len(payload) - pad]
            if ftype == _H2_DATA:
                if sid in streams:
                    streams[sid]["body"] += payload
                if flags & 0x1:
                    finish(sid)
            elif ftype in (_H2_HEADERS, _H2_CONT):
                if ftype == _H2_HEADERS:
                    if flags & 0x20:  # PRIORITY
                        payload = payload[5:]
                    pending_block, pending_sid, pending_end = payload, sid, bool(flags & 0x1)
                else:
                    pending_block += payload
                if flags & 0x4:  # END_HEADERS
                    fields = decoder.decode(pending_block)
                    s = streams.get(pending_sid)
                    if s is not None and s["headers"] is None:
                        s["headers"] = fields
                    if pending_end:
                        finish(pending_sid)
            elif ftype == _H2_RST:
                if sid in streams:
                    streams[sid]["rst"] = int.from_bytes(payload[:4], "big")
                finish(sid)
            elif ftype == _H2_SETTINGS and not flags & 0x1:
                sock.sendall(_h2_frame(_H2_SETTINGS, 0x1, 0))
            elif ftype == _H2_PING and not flags & 0x1:
                sock.sendall(_h2_frame(_H2_PING, 0x1, 0, payload))
            elif ftype == _H2_GOAWAY:
                last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
                for s_id, s in streams.items():
                    if s_id > last and s["done"] is None:
                        s["rst"] = "goaway"
                        s["done"] = time.monotonic() - t0
        try:
            sock.sendall(_h2_frame(_H2_GOAWAY, 0, 0, struct.pack(">II", 0, 0)))
        except OSError:
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
        responses.append(Response(status, hdrs, bytes(s["body"]), s["done"]))
    return responses
