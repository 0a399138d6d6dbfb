"""What a pair holds while it waits, in real Envoy: memory bounded by
max_in_flight whatever the primary's pace, and tunnels (WebSocket upgrades)
never shadowed nor copied.

The wasm heap is read from /proc (harness.wasm_memory_kib): V8 grows a wasm
memory page by page and never shrinks it, so its size after the load is the
most the module ever held.
"""

from __future__ import annotations

import socket
import threading
import time

import harness
from harness import Reply
from test_darklaunch import assert_invariants, config, launch


def heap_kib(env) -> int:
    return harness.wasm_memory_kib(env.proc.pid)["size_kib"]


def test_slow_primaries_against_a_fast_dark_side_hold_at_most_max_in_flight_pairs(
        upstream_factory, envoy_factory):
    """60 long-poll-like requests at once, primaries answering after 3 s, the dark
    side at once with 60 KB: a pair holds its slot until it settles, so two are
    shadowed, the other 58 are refused, and the heap does not grow with them."""
    big = {"pad": "x" * 60_000}
    up1 = upstream_factory(lambda r: Reply.json({"v": 1}, delay=3.0 if r.path != "/warm" else 0),
                           "v1")
    up2 = upstream_factory(Reply.json(big), "v2")
    env = envoy_factory(config(launch(limits={"max_in_flight": 2}, timeout_ms=5000)),
                        primary=up1, clusters={"dark": up2}, concurrency=1)
    assert env.request("/warm").json() == {"v": 1}
    env.wait_settled("l")
    before = heap_kib(env)
    assert before > 0, "no wasm memory found in /proc"

    answers = []

    def poll(i):
        with env.client(timeout=20) as c:
            answers.append(c.get(f"/poll/{i}").json())

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    # The dark side has answered the two shadowed calls; their primaries are
    # still on their way, and the slots stay taken.
    env.wait_until(lambda: up2.count() >= 3, what="the dark side answered")
    time.sleep(1.0)
    assert env.stat("darklaunch.l.in_flight") == 2
    assert env.stat("darklaunch.l.skipped.in_flight") == 58
    for t in threads:
        t.join()
    assert answers == [{"v": 1}] * 60
    s = env.wait_settled("l", timeout=20)
    assert_invariants(s)
    assert s["matched"] == 61 and s["shadowed"] == 3 and s["skipped.in_flight"] == 58, s
    assert s["compared"] == 3 and up2.count() == 3
    grown = heap_kib(env) - before
    # Two pairs of 60 KB each side; the old lifecycle held every pair whose
    # dark side had answered and grew about 2 MiB here.
    assert grown <= 512, f"wasm heap grew {grown} KiB"


class TunnelUpstream:
    """A WebSocket-like upstream: answers 101 to any request, then echoes."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((harness.LOOPBACK, 0))
        self.sock.listen(64)
        self.address = self.sock.getsockname()
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(conn,), daemon=True).start()

    def _tunnel(self, conn):
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            self.requests += 1
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                         b"connection: upgrade\r\n\r\n")
            rest = head.split(b"\r\n\r\n", 1)[1]
            if rest:
                conn.sendall(rest)
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                conn.sendall(chunk)

    def stop(self):
        self.sock.close()


def open_tunnel(env, payload: bytes) -> socket.socket:
    """A WebSocket upgrade through Envoy; sends ``payload`` and reads its echo."""
    s = socket.create_connection((harness.LOOPBACK, env.listener_port), timeout=10)
    s.sendall(b"GET /chat HTTP/1.1\r\nhost: api\r\nupgrade: websocket\r\n"
              b"connection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"sec-websocket-version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    echoed = head.split(b"\r\n\r\n", 1)[1]
    s.sendall(payload)
    while len(echoed) < len(payload):
        chunk = s.recv(65536)
        assert chunk, "tunnel closed early"
        echoed += chunk
    assert echoed == payload
    return s


def test_websocket_upgrades_are_skipped_and_their_bytes_never_copied(upstream_factory,
                                                                     envoy_factory):
    tunnels = TunnelUpstream()
    dark = upstream_factory(Reply.json({}), "v2")
    try:
        env = envoy_factory(config(launch(max_body_bytes=1 << 20)), primary=tunnels.address,
                            clusters={"dark": dark}, concurrency=1, upgrades=("websocket",))
        # One tunnel first, so that the VM's heap has settled into its size.
        payload = bytes(range(256)) * 400  # 100 KiB each way
        open_tunnel(env, payload).close()
        env.wait_until(lambda: env.stat("darklaunch.l.matched") == 1, what="1 matched")
        before = heap_kib(env)
        open_now = [open_tunnel(env, payload) for _ in range(10)]
        during = heap_kib(env)
        for s in open_now:
            s.close()
        env.wait_until(lambda: env.stat("darklaunch.l.matched") == 11, what="11 matched")
        s = env.wait_settled("l")
        assert_invariants(s)
        assert s["skipped.upgrade"] == 11, s
        assert s["skipped.dispatch_failed"] == 0, s
        assert tunnels.requests == 11
        # The old filter copied each open tunnel's bytes as a request body
        # (about 130 KiB of heap per tunnel here).
        assert during - before <= 256, f"wasm heap grew {during - before} KiB"
        assert dark.count() == s["shadowed"]
    finally:
        tunnels.stop()
