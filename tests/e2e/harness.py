"""Real-Envoy test harness for darklaunch.

Standard library only. Three pieces:

* ``Upstream``  - an in-process HTTP/1.1 server with a programmable handler
  that records every request it receives;
* ``bootstrap`` - renders an Envoy bootstrap (as JSON, which Envoy accepts as
  YAML) with an optional darklaunch wasm filter and the project's stats tags;
* ``Envoy``     - runs an Envoy process on loopback, waits for it to be LIVE,
  reads its stats and log, and stops it (process group, always).

Also used by ``demo/run.py``; ``STATS_TAGS`` here is the single source of the
tag extractors that ``envoy/demo.yaml`` carries too (a test keeps them equal).
"""

from __future__ import annotations

import atexit
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WASM = REPO_ROOT / "target" / "wasm32-wasip1" / "release" / "darklaunch.wasm"
DEFAULT_ENVOY = REPO_ROOT / ".venv" / "bin" / "envoy"
LOOPBACK = "127.0.0.1"

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
        # darklaunch.<launch>.skipped.<reason> / .compare_skipped.<reason>
        "tag_name": "reason",
        "regex": r"^wasmcustom\.darklaunch\." + LAUNCH_RE
        + r"\.(?:skipped|compare_skipped)(\.([a-z0-9_]+))$",
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
DEMO_PORTS = {"admin": 9901, "listener": 10000, "v1": 8081, "v2": 8082}
DEMO_WASM = "target/wasm32-wasip1/release/darklaunch.wasm"


def render_demo_yaml(ports: dict, wasm: Union[str, Path]) -> str:
    """envoy/demo.yaml with its ports (keys of DEMO_PORTS) and module path replaced.

    Plain text substitution, so the file Envoy reads is the shipped one.
    """
    text = DEMO_YAML.read_text()
    for name, default in DEMO_PORTS.items():
        needle = f"port_value: {default} "
        if text.count(needle) != 1:
            raise RuntimeError(f"{DEMO_YAML}: expected exactly one '{needle.strip()}'")
        text = text.replace(needle, f"port_value: {ports.get(name, default)} ")
    needle = f"filename: {DEMO_WASM}"
    if text.count(needle) != 1:
        raise RuntimeError(f"{DEMO_YAML}: expected exactly one '{needle}'")
    return text.replace(needle, f"filename: {wasm}")


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
# Sticky sampling model (SPEC §3), to predict the filter's decisions.
# --------------------------------------------------------------------------

def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32."""
    m = 0xFFFFFFFF
    c1, c2 = 0xCC9E2D51, 0x1B873593

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & m

    h = seed & m
    nblocks = len(data) // 4
    for i in range(nblocks):
        k = int.from_bytes(data[4 * i: 4 * i + 4], "little")
        k = rotl((k * c1) & m, 15) * c2 & m
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & m
    tail = data[4 * nblocks:]
    k = 0
    for i in reversed(range(len(tail))):
        k = (k << 8) | tail[i]
    if tail:
        h ^= rotl((k * c1) & m, 15) * c2 & m
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & m
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & m
    return h ^ (h >> 16)


def sticky_sampled(launch: str, key_value: str, percent: float) -> bool:
    """The SPEC §3 decision for a request whose sticky key is ``key_value``."""
    if percent >= 100:
        return True
    if percent <= 0:
        return False
    return murmur3_32((launch + key_value).encode()) < percent / 100 * 4294967296.0


# --------------------------------------------------------------------------
# Process / port helpers
# --------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now (TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def envoy_bin() -> str:
    """ENVOY_BIN, else .venv/bin/envoy in the repo, else `envoy` on PATH."""
    env = os.environ.get("ENVOY_BIN")
    if env:
        return env
    if DEFAULT_ENVOY.exists():
        return str(DEFAULT_ENVOY)
    found = shutil.which("envoy")
    return found or str(DEFAULT_ENVOY)


def wasm_file() -> Path:
    """DARKLAUNCH_WASM, else target/wasm32-wasip1/release/darklaunch.wasm."""
    env = os.environ.get("DARKLAUNCH_WASM")
    return Path(env).resolve() if env else DEFAULT_WASM


_live_lock = threading.Lock()
_live: set = set()


def _register(obj) -> None:
    with _live_lock:
        _live.add(obj)


def _unregister(obj) -> None:
    with _live_lock:
        _live.discard(obj)


@atexit.register
def _stop_everything() -> None:
    with _live_lock:
        objs = list(_live)
    for obj in objs:
        try:
            obj.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def wait_until(predicate: Callable[[], object], timeout: float = 10.0,
               interval: float = 0.05, what: str = "condition"):
    """Polls ``predicate()`` until it returns something truthy; returns it.

    Raises TimeoutError naming ``what`` (a string or a callable producing one,
    evaluated at the time of failure) when ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except (OSError, http.client.HTTPException, ValueError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            desc = what() if callable(what) else what
            msg = f"timed out after {timeout}s waiting for {desc}"
            if last_exc is not None:
                msg += f" (last error: {last_exc!r})"
            raise TimeoutError(msg)
        time.sleep(interval)


# --------------------------------------------------------------------------
# HTTP client helpers
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Upstream: programmable HTTP/1.1 server
# --------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str  # with query string
    headers: list  # [(lowercased-name, value)] in arrival order
    body: bytes
    time: float  # time.monotonic() when the request was fully read

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def header_all(self, name: str) -> list:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

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


# --------------------------------------------------------------------------
# Envoy bootstrap renderer
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
                failure_policy: str = "FAIL_CLOSED") -> dict:
    """The envoy.filters.http.wasm entry running darklaunch with ``plugin_config``.

    ``plugin_config`` is a dict (serialized with json.dumps) or a raw string
    (to feed the plugin invalid JSON).
    """
    value = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "darklaunch",
                "root_id": "darklaunch",
                "vm_config": {
                    "vm_id": "darklaunch",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(wasm_path)}},
                },
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
             name: str = "ingress") -> dict:
    """The test listener: 127.0.0.1:listener_port, HCM stat_prefix ``ingress``,
    codec AUTO (HTTP/1.1 and h2c prior knowledge) or HTTP2 with
    ``http2_downstream``; route ``/`` -> cluster ``primary``; the darklaunch
    wasm filter when ``plugin_config`` is not None, then the router.
    """
    http_filters = []
    if plugin_config is not None:
        http_filters.append(wasm_filter(plugin_config, wasm_path or wasm_file(), failure_policy))
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
                    "route": {"cluster": "primary", "timeout": route_timeout},
                }],
            }],
        },
        "http_filters": http_filters,
    }
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
              lds_path: Union[str, Path, None] = None) -> dict:
    """An Envoy bootstrap as a dict (write it with json.dumps; Envoy reads JSON as YAML).

    * the ``listener(...)`` above on 127.0.0.1:listener_port, route ``/`` ->
      cluster ``primary``, the darklaunch filter when ``plugin_config`` is not None;
    * ``clusters``: extra STATIC clusters ``{name: (host, port) | port | None |
      cluster-dict}``; ``None`` gives a cluster on a closed loopback port;
    * ``stats_config.stats_tags`` = STATS_TAGS; stats flushed every second so
      histogram quantiles show up quickly in /stats;
    * ``lds_path``: the listener is not static but delivered by filesystem LDS
      from that file (its directory watched); the caller writes the file
      (``write_lds``) before starting Envoy and rewrites it to swap the
      listener. ``plugin_config`` and the listener options are then unused.
    """
    all_clusters = [static_cluster("primary", *_host_port(primary_cluster))]
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
            route_timeout)]
    else:
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


# --------------------------------------------------------------------------
# Envoy process
# --------------------------------------------------------------------------

class EnvoyError(RuntimeError):
    """Envoy exited (or never became LIVE); ``exit_code`` and ``log`` tell why."""

    def __init__(self, message: str, exit_code: Optional[int], log: str):
        super().__init__(message)
        self.exit_code = exit_code
        self.log = log


def _quantile_key(q: float) -> str:
    return "p" + (str(int(q)) if float(q).is_integer() else str(q))


class Envoy:
    """One Envoy process on loopback.

    ``config`` is a bootstrap dict (see ``bootstrap``) or a path to a config
    file; ``admin_port`` / ``listener_port`` must match it. ``start()`` waits
    until the admin ``/ready`` says LIVE and raises EnvoyError if Envoy exits
    first.
    """

    def __init__(self, config: Union[dict, str, Path], admin_port: int, listener_port: int, *,
                 envoy_path: Optional[str] = None, concurrency: int = 2,
                 log_level: str = "info", component_log_level: Optional[str] = "wasm:debug",
                 cwd: Union[str, Path, None] = None, extra_args: Iterable[str] = (),
                 workdir: Union[str, Path, None] = None, name: str = "envoy"):
        self.admin_port = admin_port
        self.listener_port = listener_port
        self.envoy_path = envoy_path or envoy_bin()
        self.concurrency = concurrency
        self.log_level = log_level
        self.component_log_level = component_log_level
        self.cwd = str(cwd or REPO_ROOT)
        self.extra_args = list(extra_args)
        self.name = name
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"darklaunch-{name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Envoy logs to stderr, which goes straight to this file: unlike
        # --log-path (flushed every 10 s), lines are readable at once.
        self.log_path = self.workdir / "envoy.log"
        if isinstance(config, dict):
            self.config = config
            self.config_path = self.workdir / "envoy.json"
            self.config_path.write_text(json.dumps(config, indent=2))
        else:
            self.config = None
            self.config_path = Path(config).resolve()
        self.proc: Optional[subprocess.Popen] = None
        self._stdout = None
        # Filesystem LDS (see ``enable_lds``): the file Envoy watches, the
        # ``listener(...)`` keyword arguments of the current listener and
        # the version of the last file written.
        self.lds_path: Optional[Path] = None
        self.listener_kwargs: dict = {}
        self.lds_version = 0

    @classmethod
    def launch(cls, *, concurrency: int = 2, log_level: str = "info",
               component_log_level: Optional[str] = "wasm:debug",
               extra_args: Iterable[str] = (), name: str = "envoy",
               start_timeout: float = 30.0, **bootstrap_kwargs) -> "Envoy":
        """Free ports + ``bootstrap(**bootstrap_kwargs)`` + ``start()``."""
        admin_port, listener_port = free_port(), free_port()
        cfg = bootstrap(admin_port, listener_port, **bootstrap_kwargs)
        env = cls(cfg, admin_port, listener_port, concurrency=concurrency, log_level=log_level,
                  component_log_level=component_log_level, extra_args=extra_args, name=name)
        env.start(timeout=start_timeout)
        return env

    def command(self) -> list:
        cmd = [self.envoy_path, "-c", str(self.config_path),
               "--concurrency", str(self.concurrency),
               "--log-level", self.log_level,
               "--disable-hot-restart"]
        if self.component_log_level:
            cmd += ["--component-log-level", self.component_log_level]
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0, wait: bool = True) -> "Envoy":
        if not Path(self.envoy_path).exists() and not shutil.which(self.envoy_path):
            raise EnvoyError(f"Envoy binary not found: {self.envoy_path} (set ENVOY_BIN)", None, "")
        self._stdout = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(), cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=self._stdout,
            stderr=subprocess.STDOUT, start_new_session=True)
        _register(self)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.stop()  # closes the log file, forgets the process
                log = self.log_text()
                raise EnvoyError(
                    f"{self.name} exited with code {code} before becoming ready:\n"
                    + _tail(log, 40), code, log)
            try:
                status, body = self.admin_get("/ready", timeout=1.0)
                if status == 200 and body.strip() == b"LIVE":
                    return
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() >= deadline:
                log = self.log_text()
                self.stop()
                raise EnvoyError(f"{self.name} not LIVE after {timeout}s:\n" + _tail(log, 40),
                                 None, log)
            time.sleep(0.05)

    def wait_exit(self, timeout: float = 30.0) -> Optional[int]:
        """Waits for the process to exit on its own; its code, or None if still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM to Envoy's process group, SIGKILL after ``timeout``; the exit code."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                _signal_group(self.proc, signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.proc, signal.SIGKILL)
                    self.proc.wait(timeout)
            code = self.proc.returncode
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None
        _unregister(self)
        return code

    def cleanup(self) -> None:
        """stop() and remove the temp directory (if the harness created it)."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- filesystem LDS ----------------------------------------------------
    @staticmethod
    def lds_file(workdir: Union[str, Path]) -> Path:
        """Where a harness Envoy in ``workdir`` keeps its LDS file (its own directory)."""
        d = Path(workdir) / "lds"
        d.mkdir(parents=True, exist_ok=True)
        return d / "listeners.json"

    def enable_lds(self, lds_path: Union[str, Path], **listener_kwargs) -> None:
        """Before start(): the bootstrap reads the listener from ``lds_path``
        (``bootstrap(lds_path=...)``); writes the first listener there, built by
        ``listener(self.listener_port, **listener_kwargs)``."""
        self.lds_path = Path(lds_path)
        self.set_listener(**listener_kwargs)

    def set_listener(self, **listener_kwargs) -> int:
        """Rewrites the LDS file (atomically) with ``listener(self.listener_port,
        **listener_kwargs)``; returns the new version. Envoy validates the new
        listener and drains/replaces the old one, or rejects it
        (``listener_manager.lds.update_rejected``) and keeps the old one."""
        if self.lds_path is None:
            raise RuntimeError("this Envoy has no filesystem LDS (enable_lds)")
        self.listener_kwargs = dict(listener_kwargs)
        self.lds_version += 1
        write_lds(self.lds_path, [listener(self.listener_port, **listener_kwargs)],
                  version=str(self.lds_version))
        return self.lds_version

    def set_plugin_config(self, plugin_config: Union[dict, str]) -> int:
        """The current LDS listener with another darklaunch ``plugin_config``."""
        return self.set_listener(**dict(self.listener_kwargs, plugin_config=plugin_config))

    def lds_counters(self) -> dict:
        """``listener_manager.lds.*`` counters keyed by short name (update_success, ...)."""
        prefix = "listener_manager.lds."
        return {k[len(prefix):]: v for k, v in self.stats(prefix).items()}

    # -- addresses ---------------------------------------------------------
    def url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.listener_port}{path}"

    def admin_url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.admin_port}{path}"

    def client(self, timeout: float = 10.0) -> Client:
        return Client(LOOPBACK, self.listener_port, timeout)

    def request(self, path: str = "/", method: str = "GET", headers=None, body=None,
                timeout: float = 10.0) -> Response:
        return http_request(self.url(path), method, headers, body, timeout)

    def admin_get(self, path: str, timeout: float = 5.0) -> tuple:
        """(status, body) of an admin GET."""
        return self._admin("GET", path, timeout)

    def admin_post(self, path: str, timeout: float = 5.0) -> tuple:
        """(status, body) of an admin POST (e.g. /reset_counters, /logging?wasm=debug)."""
        return self._admin("POST", path, timeout)

    def _admin(self, method: str, path: str, timeout: float) -> tuple:
        conn = http.client.HTTPConnection(LOOPBACK, self.admin_port, timeout=timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    # -- stats -------------------------------------------------------------
    def _stats_json(self, prefix: str) -> dict:
        query = "format=json"
        if prefix:
            query += "&filter=" + urllib.parse.quote("^" + re.escape(prefix))
        status, body = self.admin_get("/stats?" + query)
        if status != 200:
            raise RuntimeError(f"/stats answered {status}: {body[:200]!r}")
        return json.loads(body)

    def stats(self, prefix: str = "wasmcustom.") -> dict:
        """Counters and gauges whose name starts with ``prefix``: {name: int}."""
        out = {}
        for entry in self._stats_json(prefix).get("stats", []):
            if "name" in entry and "value" in entry and entry["name"].startswith(prefix):
                out[entry["name"]] = int(entry["value"])
        return out

    def histograms(self, prefix: str = "wasmcustom.") -> dict:
        """Cumulative histogram quantiles: {name: {"p50": ms, "p95": ms, ...}}.

        Envoy merges histograms at each stats flush (every second with the
        harness's bootstrap), so fresh samples show up after a flush; a
        histogram without samples has None values.
        """
        out = {}
        for entry in self._stats_json(prefix).get("stats", []):
            hist = entry.get("histograms")
            if not hist:
                continue
            qs = hist.get("supported_quantiles", [])
            for h in hist.get("computed_quantiles", []):
                if not h["name"].startswith(prefix):
                    continue
                out[h["name"]] = {
                    _quantile_key(q): v.get("cumulative") for q, v in zip(qs, h.get("values", []))
                }
        return out

    def stat(self, name: str, default: int = 0) -> int:
        """One wasm stat; ``darklaunch.L.x`` and ``wasmcustom.darklaunch.L.x`` both work."""
        full = name if name.startswith("wasmcustom.") else "wasmcustom." + name
        return self.stats(full).get(full, default)

    def launch_stats(self, launch: str) -> dict:
        """The counters and gauges of one launch keyed by short name (``skipped.loop``)."""
        prefix = f"wasmcustom.darklaunch.{launch}."
        return {k[len(prefix):]: v for k, v in self.stats(prefix).items()}

    def wait_stat(self, name: str, value: int, timeout: float = 10.0) -> int:
        """Waits until ``stat(name) == value``."""
        wait_until(lambda: self.stat(name) == value, timeout,
                   what=lambda: f"{name} == {value} (now {self.stat(name)})")
        return value

    def wait_stats(self, predicate: Callable[[dict], bool], timeout: float = 10.0,
                   what: str = "stats predicate") -> dict:
        """Waits until ``predicate(stats())`` holds; returns those stats."""
        box = {}

        def check():
            box["stats"] = self.stats()
            return predicate(box["stats"])

        wait_until(check, timeout, what=lambda: f"{what}; stats: {box.get('stats')}")
        return box["stats"]

    def wait_until(self, predicate: Callable[[], object], timeout: float = 10.0,
                   what: str = "condition"):
        return wait_until(predicate, timeout, what=what)

    def wait_settled(self, launch: str, timeout: float = 15.0, quiet: float = 0.3) -> dict:
        """Waits until the launch's traffic has settled; returns its launch_stats().

        Settled: both SPEC §5 invariants hold (``matched == shadowed + Σ
        skipped``: every decision is counted; ``shadowed == compared + Σ
        compare_skipped``: every shadow call is accounted for), no shadow call
        is in flight, and nothing changed for ``quiet`` seconds.
        """
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while True:
            s = self.launch_stats(launch)
            done = (s.get("matched", 0) == s.get("shadowed", 0) + sum_prefix(s, "skipped.")
                    and s.get("shadowed", 0)
                    == s.get("compared", 0) + sum_prefix(s, "compare_skipped.")
                    and s.get("in_flight", 0) == 0)
            if s != last:
                last, since = s, time.monotonic()
            elif done and time.monotonic() - since >= quiet:
                return s
            if time.monotonic() >= deadline:
                raise TimeoutError(f"launch {launch} not settled after {timeout}s: {s}")
            time.sleep(0.05)

    def prometheus(self) -> str:
        status, body = self.admin_get("/stats/prometheus")
        if status != 200:
            raise RuntimeError(f"/stats/prometheus answered {status}")
        return body.decode()

    def config_dump(self) -> dict:
        status, body = self.admin_get("/config_dump")
        return json.loads(body)

    # -- log ---------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern: str, timeout: float = 10.0) -> re.Match:
        """Waits until the log matches the regex ``pattern``; returns the match."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log_text()), timeout,
                          what=f"log line matching {pattern!r}")

    def mismatch_logs(self) -> list:
        """The JSON objects of the ``darklaunch mismatch {...}`` log lines."""
        return parse_mismatch_lines(self.log_text())

    # -- validate mode -----------------------------------------------------
    @staticmethod
    def validate(config: Union[dict, str, Path], envoy_path: Optional[str] = None,
                 cwd: Union[str, Path, None] = None, timeout: float = 120.0) -> tuple:
        """``envoy --mode validate -c config``: (exit code, stdout+stderr)."""
        with tempfile.TemporaryDirectory(prefix="darklaunch-validate-") as tmp:
            if isinstance(config, dict):
                path = Path(tmp) / "envoy.json"
                path.write_text(json.dumps(config, indent=2))
            else:
                path = Path(config).resolve()
            cmd = [envoy_path or envoy_bin(), "--mode", "validate", "-c", str(path),
                   "--log-level", "info", "--disable-hot-restart"]
            proc = subprocess.Popen(cmd, cwd=str(cwd or REPO_ROOT), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                out, _ = proc.communicate()
            return proc.returncode, out.decode(errors="replace")


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session: the group id is the pid
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def _tail(text: str, n: int) -> str:
    return "\n".join(text.splitlines()[-n:])


def sum_prefix(stats: dict, prefix: str) -> int:
    """Sum of the values whose key starts with ``prefix`` (e.g. ``skipped.``)."""
    return sum(v for k, v in stats.items() if k.startswith(prefix))


MISMATCH_MARK = "darklaunch mismatch "


def parse_mismatch_lines(text: str) -> list:
    out = []
    for line in text.splitlines():
        i = line.find(MISMATCH_MARK)
        if i < 0:
            continue
        try:
            obj, _ = json.JSONDecoder().raw_decode(line[i + len(MISMATCH_MARK):].lstrip())
        except ValueError:
            continue
        out.append(obj)
    return out


def parse_prometheus(text: str) -> list:
    """[(metric_name, {label: value}, value_str)] for every sample line."""
    out = []
    rx = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
    lab = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = rx.match(line)
        if m:
            out.append((m.group(1), dict(lab.findall(m.group(2) or "")), m.group(3)))
    return out


# --------------------------------------------------------------------------
# Prometheus process (Debian's `prometheus` package; scripts/install_prometheus.sh)
# --------------------------------------------------------------------------

def prometheus_bin() -> str:
    """PROMETHEUS_BIN, else `prometheus` on PATH, else /usr/bin/prometheus."""
    return os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus") or "/usr/bin/prometheus"


def promtool_bin() -> str:
    """PROMTOOL_BIN, else `promtool` on PATH, else /usr/bin/promtool."""
    return os.environ.get("PROMTOOL_BIN") or shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args: str, cwd: Union[str, Path, None] = None, timeout: float = 60.0) -> tuple:
    """``promtool args...``: (exit code, stdout+stderr)."""
    proc = subprocess.run([promtool_bin(), *args], cwd=str(cwd or REPO_ROOT),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
    return proc.returncode, proc.stdout.decode(errors="replace")


class PrometheusError(RuntimeError):
    """A Prometheus API call that did not answer ``status: success``."""

    def __init__(self, message: str, answer: Optional[dict] = None):
        super().__init__(message)
        self.answer = answer or {}


def envoy_target(envoy: Union["Envoy", tuple, str]) -> str:
    """``host:port`` of an Envoy's admin listener (where /stats/prometheus is)."""
    if isinstance(envoy, Envoy):
        return f"{LOOPBACK}:{envoy.admin_port}"
    if isinstance(envoy, tuple):
        return f"{envoy[0]}:{envoy[1]}"
    return envoy


class Prometheus:
    """One Prometheus server on loopback, scraping Envoy admin endpoints.

    ``targets``: Envoys (or ``host:port`` strings) scraped at ``metrics_path``
    (``/stats/prometheus``) every ``scrape_interval`` in job ``job``;
    ``rule_files``: recording/alerting rule files, evaluated every
    ``evaluation_interval``; ``scrape_configs`` replaces the generated job
    entirely. The configuration is written as JSON (which is YAML) with a
    fresh TSDB under ``workdir``; the server listens on a free 127.0.0.1 port.
    """

    def __init__(self, targets: Iterable = (), *, metrics_path: str = "/stats/prometheus",
                 job: str = "envoy", scrape_interval: str = "1s",
                 evaluation_interval: str = "1s", rule_files: Iterable = (),
                 scrape_configs: Optional[list] = None,
                 workdir: Union[str, Path, None] = None, name: str = "prometheus",
                 prometheus_path: Optional[str] = None, port: Optional[int] = None):
        self.name = name
        self.prometheus_path = prometheus_path or prometheus_bin()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"darklaunch-{name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = self.workdir / "prometheus.log"
        self.config_path = self.workdir / "prometheus.yml"
        if scrape_configs is None:
            scrape_configs = [{
                "job_name": job,
                "metrics_path": metrics_path,
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [{"targets": [envoy_target(t) for t in targets]}],
            }]
        self.config = {
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                       "evaluation_interval": evaluation_interval},
            "rule_files": [str(Path(p).resolve()) for p in rule_files],
            "scrape_configs": scrape_configs,
        }
        self.config_path.write_text(json.dumps(self.config, indent=2))
        self.proc: Optional[subprocess.Popen] = None
        self._stdout = None

    def command(self) -> list:
        return [self.prometheus_path,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--log.level=info"]

    def start(self, timeout: float = 30.0) -> "Prometheus":
        if not Path(self.prometheus_path).exists() and not shutil.which(self.prometheus_path):
            raise RuntimeError(f"prometheus not found: {self.prometheus_path} "
                               "(scripts/install_prometheus.sh, or set PROMETHEUS_BIN)")
        self._stdout = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), cwd=str(self.workdir),
                                     stdin=subprocess.DEVNULL, stdout=self._stdout,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        _register(self)
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited with code {code}:\n"
                                   + _tail(self.log_text(), 40))
            try:
                status, _ = self._get("/-/ready", timeout=1.0)
                if status == 200:
                    return self
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not ready after {timeout}s:\n"
                                   + _tail(self.log_text(), 40))
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM to the process group, SIGKILL after ``timeout``; the exit code."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                _signal_group(self.proc, signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.proc, signal.SIGKILL)
                    self.proc.wait(timeout)
            code = self.proc.returncode
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None
        _unregister(self)
        return code

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # -- HTTP API ----------------------------------------------------------
    def _get(self, path: str, params=None, timeout: float = 5.0) -> tuple:
        if params:
            path += "?" + urllib.parse.urlencode(params, doseq=True)
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def api_raw(self, path: str, params=None) -> dict:
        """The decoded JSON answer of ``/api/v1/<path>`` whatever its status."""
        _, body = self._get("/api/v1/" + path.lstrip("/"), params)
        return json.loads(body)

    def api(self, path: str, params=None):
        """``data`` of a successful ``/api/v1/<path>``; PrometheusError otherwise."""
        answer = self.api_raw(path, params)
        if answer.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {answer.get('errorType')}: "
                                  f"{answer.get('error')}", answer)
        return answer["data"]

    def query(self, expr: str) -> list:
        """Instant query: the ``result`` list ({metric: {...}, value: [t, "v"]})."""
        data = self.api("query", {"query": expr})
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def vector(self, expr: str, *labels: str) -> dict:
        """Instant query as {label values tuple (or the one value): float}.

        ``labels`` name the labels forming the key (in that order); without
        them the key is the frozenset of all label pairs.
        """
        out = {}
        for sample in self.query(expr):
            metric = sample["metric"]
            if labels:
                key = tuple(metric.get(n, "") for n in labels)
                key = key[0] if len(key) == 1 else key
            else:
                key = frozenset(metric.items())
            out[key] = float(sample["value"][1])
        return out

    def scalar(self, expr: str) -> Optional[float]:
        """The value of a query returning one sample (None when it returns nothing)."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) != 1:
            raise PrometheusError(f"{expr}: {len(result)} samples, expected one")
        return float(result[0]["value"][1])

    def targets(self) -> list:
        return self.api("targets", {"state": "active"})["activeTargets"]

    def wait_targets_up(self, count: int, timeout: float = 15.0) -> list:
        """Waits until ``count`` active targets were scraped successfully."""
        box = {}

        def up():
            box["t"] = self.targets()
            return len([t for t in box["t"] if t.get("health") == "up"]) >= count

        def what():
            seen = [(t.get("scrapeUrl"), t.get("health"), t.get("lastError"))
                    for t in box.get("t", [])]
            return f"{count} targets up: {seen}"

        wait_until(up, timeout, interval=0.2, what=what)
        return box["t"]

    def wait_query(self, expr: str, predicate: Callable[[dict], bool], timeout: float = 15.0,
                   labels: Iterable[str] = (), what: Optional[str] = None) -> dict:
        """Polls ``vector(expr, *labels)`` until ``predicate`` holds; returns it."""
        box = {}

        def check():
            box["v"] = self.vector(expr, *labels)
            return predicate(box["v"])

        wait_until(check, timeout, interval=0.25,
                   what=lambda: f"{what or expr} (last: {box.get('v')})")
        return box["v"]

    def rules(self) -> list:
        """Rule groups as loaded (``/api/v1/rules``)."""
        return self.api("rules")["groups"]

    def alerts(self) -> list:
        return self.api("alerts")["alerts"]


def darklaunch_series(envoy: "Envoy", prefix: str = "darklaunch_") -> dict:
    """An Envoy's ``/stats/prometheus`` samples whose name starts with ``prefix``:
    {(name, frozenset(labels.items())): float}."""
    return {(name, frozenset(labels.items())): float(value)
            for name, labels, value in parse_prometheus(envoy.prometheus())
            if name.startswith(prefix)}


def wait_series_stable(envoy: "Envoy", quiet: float = 1.3, timeout: float = 15.0,
                       prefix: str = "darklaunch_") -> dict:
    """Waits until ``darklaunch_series(envoy)`` stays the same for ``quiet``
    seconds, longer than the harness's 1 s stats flush (histograms in
    /stats/prometheus change only at a flush); returns it."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        now = darklaunch_series(envoy, prefix)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{envoy.name}: {prefix}* still changing after {timeout}s")
        time.sleep(0.1)


def prometheus_series(prom: "Prometheus", prefix: str = "darklaunch_") -> dict:
    """Prometheus's latest samples of every ``prefix``* series, by scrape target:
    {instance: {(name, frozenset(labels without instance/job)): float}}."""
    out: dict = {}
    for sample in prom.query('{__name__=~"' + re.escape(prefix) + '.+"}'):
        metric = dict(sample["metric"])
        name = metric.pop("__name__")
        instance = metric.pop("instance", "")
        metric.pop("job", None)
        out.setdefault(instance, {})[(name, frozenset(metric.items()))] = \
            float(sample["value"][1])
    return out


def _same_series(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key, va in a.items():
        vb = b[key]
        if not (va == vb or abs(va - vb) <= 1e-9 * max(abs(va), abs(vb))):
            return False
    return True


def wait_prometheus_has(prom: "Prometheus", truth: dict, timeout: float = 15.0,
                        prefix: str = "darklaunch_") -> dict:
    """Waits until Prometheus's latest samples of ``prefix``* equal ``truth``
    ({instance ``host:port``: darklaunch_series(...)}) for every target; returns
    ``prometheus_series(prom)``."""
    box: dict = {}

    def check():
        box["got"] = prometheus_series(prom, prefix)
        return all(_same_series(box["got"].get(inst, {}), series)
                   for inst, series in truth.items())

    def what():
        got = box.get("got", {})
        diffs = []
        for inst, series in truth.items():
            mine = got.get(inst, {})
            for key in sorted(set(series) | set(mine), key=str):
                if series.get(key) != mine.get(key):
                    diffs.append(f"{inst} {key[0]}{dict(key[1])}: envoy {series.get(key)} "
                                 f"prometheus {mine.get(key)}")
        return "Prometheus to hold the Envoys' last values; differences: " + "; ".join(diffs[:10])

    wait_until(check, timeout, interval=0.25, what=what)
    return box["got"]
