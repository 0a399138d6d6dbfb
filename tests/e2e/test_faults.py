"""Fault injection in real Envoy: whatever the dark side (or the client, or the
operator) does, the client gets the primary's answer, untouched and on time,
and the stats account for every pair.

Every test runs the built module with ``failure_policy: FAIL_CLOSED`` (a
crashed VM would turn every answer into a 503) and checks four things:

(a) every client answer is byte for byte the primary's: status, body and the
    primary's own headers (``x-v``); Envoy adds only date, server and
    x-envoy-upstream-service-time;
(b) the client never waits for the dark side: each answer arrives well before
    the dark side's delay or timeout (no tight thresholds);
(c) the right stats move, exactly, once settled, and the stats invariants
    hold (matched = shadowed + Σ skipped, shadowed = compared + Σ
    compare_skipped, compared ≥ mismatch + noise, in_flight = 0);
(d) Envoy is healthy afterwards: a normal request is shadowed and compared.

The dark upstreams misbehave only for requests carrying ``?fault=1`` (the
match rules ignore the query), so the same launch can be checked healthy at
the end.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

import harness
from harness import Reply, sum_prefix
from test_darklaunch import assert_invariants, config, launch

# --------------------------------------------------------------------------
# helpers


def nonzero(s: dict) -> dict:
    return {k: v for k, v in s.items() if v}


def primary_reply(path: str) -> Reply:
    """What the primary answers for ``path`` (the path with its query)."""
    return Reply.json({"v": 1, "path": path}, headers=[("x-v", "1")])


def primary(req: harness.Request) -> Reply:
    return primary_reply(req.path)


def dark(fault=None):
    """A dark handler: the primary's answer (a perfect candidate), except for
    requests with ``?fault=1``, which get ``fault(req)``."""

    def handler(req: harness.Request) -> Reply:
        if fault is not None and req.query.get("fault") == "1":
            return fault(req)
        return primary_reply(req.path)

    return handler


def _raw(status_line: bytes, headers: list, body: bytes) -> bytes:
    """A verbatim HTTP/1.1 answer. It says ``connection: close`` (the upstream
    closes after a raw answer): otherwise Envoy could pool the connection and
    send the next call into the closing socket, a reset of its own."""
    headers = list(headers) + [(b"connection", b"close")]
    head = status_line + b"\r\n" + b"".join(b"%s: %s\r\n" % (k, v) for k, v in headers)
    return head + b"\r\n" + body


# Headers Envoy adds to every proxied answer; everything else is the primary's.
ENVOY_ADDED = {"date", "server", "x-envoy-upstream-service-time"}


def assert_primary_answer(r: harness.Response, path: str, within: float = 1.0,
                          reply: Reply = None) -> None:
    """(a) and (b): ``r`` is exactly what the primary sent for ``path``, and it
    came back ``within`` seconds (well before any dark delay or timeout)."""
    reply = reply or primary_reply(path)
    assert r.status == reply.status, (r.status, r.body[:200])
    assert r.body == reply.body, "the client gets the primary's body, byte for byte"
    # Envoy 1.36 (not 1.40) closes a kept-alive connection after a listener
    # update with `connection: close`, filter or not: not the primary's answer.
    got = sorted((k, v) for k, v in r.headers
                 if k not in ENVOY_ADDED and (k, v) != ("connection", "close"))
    want = sorted([(k.lower(), v) for k, v in reply.headers]
                  + [("content-length", str(len(reply.body)))])
    assert got == want, "the client gets the primary's headers, and only them"
    assert r.elapsed < within, (
        f"the client waited {r.elapsed:.3f}s: it must never wait for the dark side")


def send(env, path: str, within: float = 1.0, client=None, **kw) -> harness.Response:
    r = client.request("GET", path, kw.get("headers")) if client else env.request(path, **kw)
    assert_primary_answer(r, path, within)
    return r


def final_check(env, name: str, path: str, dark_up: harness.Upstream = None) -> dict:
    """(d): one normal request after the faults is shadowed and compared as a match."""
    before = env.wait_settled(name)
    n_dark = dark_up.count() if dark_up else 0
    send(env, path)
    after = env.wait_settled(name)
    assert_invariants(after)
    assert after["matched"] == before["matched"] + 1, (before, after)
    assert after["shadowed"] == before["shadowed"] + 1, (before, after)
    assert after["compared"] == before["compared"] + 1, (before, after)
    assert after["mismatch"] == before["mismatch"], (before, after)
    assert after["dark_response.2xx"] == before["dark_response.2xx"] + 1, (before, after)
    assert after["primary_response.2xx"] == before["primary_response.2xx"] + 1, (before, after)
    if dark_up is not None:
        dark_up.wait_for_count(n_dark + 1)
    return after


def expect(s: dict, **want) -> None:
    """Exact values for the given stats (``dark_response__reset=3`` for ``dark_response.reset``),
    and zero for every other outcome counter of the same family."""
    for k, v in want.items():
        key = k.replace("__", ".")
        assert s.get(key, 0) == v, f"{key} = {s.get(key)} != {v}: {nonzero(s)}"
    keys = {k.replace("__", ".") for k in want}
    for fam in ("dark_response.", "compare_skipped.", "skipped.", "mismatch_kind."):
        if any(k.startswith(fam) for k in keys):
            extra = {k: v for k, v in s.items() if k.startswith(fam) and k not in keys and v}
            assert not extra, f"unexpected {fam}*: {extra}"


# --------------------------------------------------------------------------
# 1. dark cluster absent from Envoy's config, beside healthy launches


def test_absent_dark_cluster_beside_a_healthy_launch(upstream_factory, envoy_factory):
    up1 = upstream_factory(primary, "v1")
    dk = upstream_factory(dark(), "v2")
    env = envoy_factory(
        config(launch("healthy"),
               launch("absent", dark_cluster="no_such_cluster"),
               launch("also-absent", dark_cluster="missing_too", match={"path_prefix": "/a"}),
               launch("unmatched", match={"path_prefix": "/never"})),
        primary=up1, clusters={"dark": dk})
    with env.client() as c:
        for i in range(6):
            send(env, f"/a/{i}", client=c)
            send(env, f"/b/{i}", client=c, headers={"x-dark-launch": "on"})
    healthy, absent = env.wait_settled("healthy"), env.wait_settled("absent")
    also, unmatched = env.wait_settled("also-absent"), env.wait_settled("unmatched")
    for s in (healthy, absent, also, unmatched):
        assert_invariants(s)
    expect(healthy, matched=12, shadowed=12, forced=6, compared=12, mismatch=0,
           dark_response__2xx=12, primary_response__2xx=12, skipped__sampled_out=0)
    expect(absent, matched=12, shadowed=0, skipped__unknown_cluster=12, compared=0)
    expect(also, matched=6, shadowed=0, skipped__unknown_cluster=6)
    assert unmatched["matched"] == 0
    # Named where the user looks: one warning per missing cluster for the
    # whole process (two workers), not one per request.
    for launch_name, cluster in (("absent", "no_such_cluster"), ("also-absent", "missing_too")):
        warning = (f"darklaunch: launch '{launch_name}': Envoy has no cluster '{cluster}': "
                   "no shadow call can leave (skipped.unknown_cluster)")
        lines = [ln for ln in env.log_text().splitlines() if warning in ln]
        assert len(lines) == 1 and "[warning]" in lines[0], lines
    assert up1.count() == 12
    assert [r.header("x-darklaunch-shadow") for r in dk.requests()] == ["healthy"] * 12
    final_check(env, "healthy", "/a/final", dk)
    assert env.launch_stats("absent")["skipped.unknown_cluster"] == 13


# --------------------------------------------------------------------------
# 2. dark port closed (connection refused): reset; then the dark comes up


def test_dark_port_closed_then_opened(upstream_factory, envoy_factory):
    up1 = upstream_factory(primary, "v1")
    port = harness.free_port()  # nothing listens there yet
    env = envoy_factory(config(launch(timeout_ms=1000)), primary=up1,
                        clusters={"dark": (harness.LOOPBACK, port)})
    with env.client() as c:
        for i in range(8):
            send(env, f"/closed/{i}", client=c)
    s = env.wait_settled("l")
    assert_invariants(s)
    expect(s, matched=8, shadowed=8, compared=0, dark_response__reset=8,
           compare_skipped__dark_failed=8, primary_response__2xx=8)
    # The dark service comes up on that port: the next pair is compared.
    dk = harness.Upstream(dark(), "v2", port=port)
    try:
        final_check(env, "l", "/closed/final", dk)
    finally:
        dk.stop()


# --------------------------------------------------------------------------
# 3. dark slower than the timeout


def test_dark_slower_than_timeout(upstream_factory, envoy_factory):
    up1 = upstream_factory(primary, "v1")
    dk = upstream_factory(dark(lambda req: Reply.json({"late": True}, delay=2.5)), "v2")
    env = envoy_factory(config(launch(timeout_ms=1000)), primary=up1, clusters={"dark": dk})
    with env.client() as c:
        for i in range(6):
            # Well before the timeout (1 s), let alone the dark's 2.5 s.
            send(env, f"/slow/{i}?fault=1", within=1.0, client=c)
    s = env.wait_settled("l", timeout=20)
    assert_invariants(s)
    expect(s, matched=6, shadowed=6, compared=0, dark_response__timeout=6,
           compare_skipped__dark_failed=6, primary_response__2xx=6)
    final_check(env, "l", "/slow/final")


# --------------------------------------------------------------------------
# 4. dark resetting before headers, after headers, mid-body


def _chunked_then_reset(req):
    return Reply(reset=True, raw=_raw(b"HTTP/1.1 200 OK", [
        (b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        b"5\r\n{\"v\":\r\n"))


RESETS = {
    "before": lambda req: Reply(reset=True),
    "headers": lambda req: Reply(reset=True, reset_after_headers=True, body=b"x" * 1000),
    "mid": lambda req: Reply(reset=True, reset_after_headers=True,
                             reset_after_bytes=300, body=primary_reply(req.path).body * 20),
    "chunked": _chunked_then_reset,
}


def test_dark_resets(upstream_factory, envoy_factory):
    up1 = upstream_factory(primary, "v1")
    dk = upstream_factory(dark(lambda req: RESETS[req.path_only.split("/")[1]](req)), "v2")
    env = envoy_factory(
        config(*[launch(k, match={"path_prefix": f"/{k}/"}, timeout_ms=3000) for k in RESETS]),
        primary=up1, clusters={"dark": dk})
    with env.client() as c:
        for k in RESETS:
            for i in range(3):
                send(env, f"/{k}/{i}?fault=1", client=c)
    for k in RESETS:
        s = env.wait_settled(k)
        assert_invariants(s)
        expect(s, matched=3, shadowed=3, compared=0, dark_response__reset=3,
               compare_skipped__dark_failed=3, primary_response__2xx=3)
    assert dk.count() == 3 * len(RESETS)
    for k in RESETS:
        final_check(env, k, f"/{k}/final")


# --------------------------------------------------------------------------
# 5. dark answering garbage


GARBAGE = {
    # Invalid JSON under a JSON content type: compared as bytes.
    "badjson": lambda req: Reply(headers=[("content-type", "application/json")],
                                 body=primary_reply(req.path).body[:-3]),
    # Not even UTF-8, still declared JSON.
    "nonutf8": lambda req: Reply(headers=[("content-type", "application/json")],
                                 body=b"\xff\xfe{\"v\": \x80\xc3\x28}\x00"),
    # Declares 1000 bytes, sends 10, closes: the dark answer never completes.
    "clmore": lambda req: Reply(raw=_raw(b"HTTP/1.1 200 OK", [
        (b"content-type", b"application/json"), (b"content-length", b"1000")],
        primary_reply(req.path).body[:10])),
    # Declares 5 bytes, sends the whole document: Envoy takes 5 bytes.
    "clless": lambda req: Reply(raw=_raw(b"HTTP/1.1 200 OK", [
        (b"content-type", b"application/json"), (b"content-length", b"5")],
        primary_reply(req.path).body)),
}


def test_dark_garbage_bodies(upstream_factory, envoy_factory):
    up1 = upstream_factory(primary, "v1")
    dk = upstream_factory(dark(lambda req: GARBAGE[req.path_only.split("/")[1]](req)), "v2")
    env = envoy_factory(
        config(*[launch(k, match={"path_prefix": f"/{k}/"}, timeout_ms=3000) for k in GARBAGE]),
        primary=up1, clusters={"dark": dk})
    with env.client() as c:
        for k in GARBAGE:
            for i in range(3):
                send(env, f"/{k}/{i}?fault=1", client=c)
    stats = {k: env.wait_settled(k) for k in GARBAGE}
    for s in stats.values():
        assert_invariants(s)
    for k in ("badjson", "nonutf8", "clless"):
        expect(stats[k], matched=3, shadowed=3, compared=3, mismatch=3, mismatch_kind__body=3,
               dark_response__2xx=3, primary_response__2xx=3)
    expect(stats["clmore"], matched=3, shadowed=3, compared=0, dark_response__reset=3,
           compare_skipped__dark_failed=3)
    logs = [m for m in env.mismatch_logs() if m["launch"] == "nonutf8"]
    assert len(logs) == 3 and all(m["kinds"] == ["body"] for m in logs)
    for k in GARBAGE:
        final_check(env, k, f"/{k}/final")


def test_dark_one_megabyte_body(upstream_factory, envoy_factory):
    """A 1 MiB dark body: over the default max_body_bytes it is not compared;
    under max_body_bytes 2 MiB it is (equal, or a body mismatch)."""
    mib = bytes(range(256)) * 4096
    big = Reply(headers=[("content-type", "application/octet-stream"), ("x-v", "1")], body=mib)

    def prim(req):
        return big if req.path_only.startswith("/both") else primary(req)

    def dark_side(req):
        if req.query.get("fault") == "1":
            return big
        return primary_reply(req.path)

    up1 = upstream_factory(prim, "v1")
    dk = upstream_factory(dark_side, "v2")
    env = envoy_factory(config(launch("small"), launch("large", max_body_bytes=2 << 20)),
                        primary=up1, clusters={"dark": dk})
    with env.client() as c:
        for i in range(2):
            # primary and dark both 1 MiB, identical
            r = c.get(f"/both/{i}?fault=1")
            assert_primary_answer(r, f"/both/{i}?fault=1", within=2.0, reply=big)
            # primary small, dark 1 MiB
            send(env, f"/dark/{i}?fault=1", client=c)
    small, large = env.wait_settled("small"), env.wait_settled("large")
    assert_invariants(small)
    assert_invariants(large)
    expect(small, matched=4, shadowed=4, compared=0, compare_skipped__body_too_large=4,
           dark_response__2xx=4, primary_response__2xx=4)
    expect(large, matched=4, shadowed=4, compared=4, mismatch=2, mismatch_kind__body=2,
           dark_response__2xx=4, primary_response__2xx=4)
    final_check(env, "small", "/final")
    final_check(env, "large", "/final2")


ODD_HEADS = {
    # An interim 100 Continue before the real answer: Envoy swallows it.
    "continue": lambda req: Reply(raw=b"HTTP/1.1 100 Continue\r\n\r\n" + _raw(
        b"HTTP/1.1 200 OK", [(b"content-type", b"application/json"),
                             (b"content-length", b"%d" % len(primary_reply(req.path).body))],
        primary_reply(req.path).body)),
    # A status no one uses, with the right body.
    "s299": lambda req: Reply(raw=_raw(b"HTTP/1.1 299 Odd", [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(primary_reply(req.path).body))],
        primary_reply(req.path).body)),
    # 90 extra headers: under Envoy's default limit of 100.
    "hdrs90": lambda req: Reply(headers=[("content-type", "application/json")]
                                + [(f"x-h{i}", "v" * 50) for i in range(90)],
                                body=primary_reply(req.path).body),
}

# Answers Envoy refuses to parse (upstream protocol error): 150 headers (over
# the default limit of 100) and a status line that is not one.
PROTOCOL_ERRORS = {
    "hdrs150": lambda req: Reply(headers=[("content-type", "application/json")]
                                 + [(f"x-h{i}", "v") for i in range(150)],
                                 body=primary_reply(req.path).body),
    "badstatus": lambda req: Reply(raw=_raw(b"HTTP/1.1 abc Nonsense", [
        (b"content-length", b"2")], b"{}")),
}


def test_dark_odd_heads(upstream_factory, envoy_factory):
    faults = {**ODD_HEADS, **PROTOCOL_ERRORS}
    up1 = upstream_factory(primary, "v1")
    dk = upstream_factory(dark(lambda req: faults[req.path_only.split("/")[1]](req)), "v2")
    env = envoy_factory(
        config(*[launch(k, match={"path_prefix": f"/{k}/"}, timeout_ms=3000) for k in faults]),
        primary=up1, clusters={"dark": dk})
    with env.client() as c:
        for k in faults:
            for i in range(3):
                send(env, f"/{k}/{i}?fault=1", client=c)
    stats = {k: env.wait_settled(k) for k in faults}
    for s in stats.values():
        assert_invariants(s)
        assert s["matched"] == 3 and s["shadowed"] == 3, s
        assert sum_prefix(s, "dark_response.") == 3 and s["primary_response.2xx"] == 3, s
    expect(stats["continue"], compared=3, mismatch=0, dark_response__2xx=3)
    expect(stats["hdrs90"], compared=3, mismatch=0, dark_response__2xx=3)
    expect(stats["s299"], compared=3, mismatch=3, mismatch_kind__status=3, mismatch_kind__body=0,
           dark_response__2xx=3)
    # How protocol errors are counted is checked (strictly) in the test below.
    for k in faults:
        final_check(env, k, f"/{k}/final")


def test_dark_protocol_error_counts_as_reset(upstream_factory, envoy_factory):
    up1 = upstream_factory(primary, "v1")
    dk = upstream_factory(dark(lambda req: PROTOCOL_ERRORS[req.path_only.split("/")[1]](req)),
                          "v2")
    env = envoy_factory(
        config(*[launch(k, match={"path_prefix": f"/{k}/"}, timeout_ms=3000)
                 for k in PROTOCOL_ERRORS]),
        primary=up1, clusters={"dark": dk})
    for k in PROTOCOL_ERRORS:
        for i in range(2):
            send(env, f"/{k}/{i}?fault=1")
    for k in PROTOCOL_ERRORS:
        s = env.wait_settled(k)
        assert_invariants(s)
        expect(s, shadowed=2, compared=0, mismatch=0, dark_response__reset=2,
               compare_skipped__dark_failed=2)


# --------------------------------------------------------------------------
# 6. client disconnecting before the primary answers


def test_client_disconnects_before_the_primary_answers(upstream_factory, envoy_factory):
    def prim(req):
        reply = primary(req)
        if req.query.get("slow") == "1":
            reply.delay = 1.0
        return reply

    up1 = upstream_factory(prim, "v1")
    dk = upstream_factory(dark(), "v2")
    env = envoy_factory(config(launch(timeout_ms=3000)), primary=up1, clusters={"dark": dk})
    for i in range(3):
        with socket.create_connection((harness.LOOPBACK, env.listener_port), timeout=5) as s:
            s.sendall(f"GET /gone/{i}?slow=1 HTTP/1.1\r\nhost: x\r\n\r\n".encode())
            up1.wait_for_count(i + 1)  # the primary has it and is thinking
            dk.wait_for_count(i + 1)   # the shadow call has left
        # socket closed here, before the primary's answer
    s = env.wait_settled("l", timeout=20)
    assert_invariants(s)
    expect(s, matched=3, shadowed=3, compared=0, primary_response__reset=3,
           primary_response__2xx=0, compare_skipped__primary_incomplete=3,
           dark_response__2xx=3)
    cx = env.stats("http.ingress.downstream_cx_destroy_remote_active_rq")
    assert cx == {"http.ingress.downstream_cx_destroy_remote_active_rq": 3}, cx
    time.sleep(1.2)  # the primary's late answers go nowhere
    final_check(env, "l", "/gone/final", dk)


# --------------------------------------------------------------------------
# 7. request bodies at and over the limit


def _post_chunked(env, path: str, chunks: list) -> harness.Response:
    conn = http.client.HTTPConnection(harness.LOOPBACK, env.listener_port, timeout=10)
    try:
        t0 = time.monotonic()
        conn.request("POST", path, body=iter(chunks), encode_chunked=True,
                     headers={"transfer-encoding": "chunked"})
        resp = conn.getresponse()
        body = resp.read()
        return harness.Response(resp.status, [(k.lower(), v) for k, v in resp.getheaders()],
                                body, time.monotonic() - t0)
    finally:
        conn.close()


def test_request_body_exactly_at_and_one_byte_over_the_limit(upstream_factory, envoy_factory):
    up1 = upstream_factory(primary, "v1")
    dk = upstream_factory(dark(), "v2")
    env = envoy_factory(config(launch(unsafe_methods=True, max_body_bytes=100)),
                        primary=up1, clusters={"dark": dk})
    at, over = bytes(range(100)), bytes(range(101))
    assert_primary_answer(env.request("/declared/at", method="POST", body=at), "/declared/at")
    assert_primary_answer(env.request("/declared/over", method="POST", body=over),
                          "/declared/over")
    assert_primary_answer(_post_chunked(env, "/chunked/at", [at[:60], at[60:]]), "/chunked/at")
    assert_primary_answer(_post_chunked(env, "/chunked/over", [over[:60], over[60:]]),
                          "/chunked/over")
    s = env.wait_settled("l")
    assert_invariants(s)
    expect(s, matched=4, shadowed=2, skipped__body_too_large=2, compared=2, mismatch=0)
    assert sorted((r.method, r.path, r.body) for r in dk.requests()) == [
        ("POST", "/chunked/at", at), ("POST", "/declared/at", at)]
    assert {r.path: r.body for r in up1.requests()} == {
        "/declared/at": at, "/declared/over": over, "/chunked/at": at, "/chunked/over": over}
    final_check(env, "l", "/final", dk)


# --------------------------------------------------------------------------
# 8. HTTP/2 downstream: concurrent streams on one connection


def test_http2_downstream_concurrent_streams(upstream_factory, envoy_factory):
    n = 6
    # The primary holds each request until all n are there: the streams are
    # concurrent, or they time out at the barrier and answer 500.
    barrier = threading.Barrier(n, timeout=10)

    def prim(req):
        if req.path_only.startswith("/h2/"):
            barrier.wait()
        return primary(req)

    up1 = upstream_factory(prim, "v1")
    dk = upstream_factory(dark(lambda req: Reply.json({"v": 2}, headers=[("x-v", "2")])), "v2")
    env = envoy_factory(config(launch(compare={"headers": ["x-v"]}, unsafe_methods=True)),
                        primary=up1, clusters={"dark": dk}, http2_downstream=True)
    paths = [f"/h2/{i}?fault={i % 2}" for i in range(n)]
    reqs = [("GET", p, {"x-request-id": f"h2-{i}"}, None) for i, p in enumerate(paths)]
    reqs[-1] = ("POST", paths[-1], {"x-request-id": "h2-post", "content-type": "application/json"},
               b'{"n": 5}')
    responses = harness.h2c_requests(harness.LOOPBACK, env.listener_port, reqs)
    for p, r in zip(paths, responses):
        assert_primary_answer(r, p, within=5.0)
    h = env.stats("http.ingress.")
    assert h["http.ingress.downstream_cx_http2_total"] == 1, h
    assert h["http.ingress.downstream_rq_http2_total"] == n, h
    s = env.wait_settled("l")
    assert_invariants(s)
    expect(s, matched=n, shadowed=n, compared=n, mismatch=n // 2, mismatch_kind__headers=n // 2,
           mismatch_kind__body=n // 2, mismatch_kind__status=0, dark_response__2xx=n,
           primary_response__2xx=n)
    got = {(r.method, r.path): (r.header("x-request-id"), r.body) for r in dk.requests()}
    want = {(m, p): (h.get("x-request-id"), b or b"") for m, p, h, b in reqs}
    assert got == want
    # (d) again over h2: one more stream on a new connection.
    (r,) = harness.h2c_requests(harness.LOOPBACK, env.listener_port,
                                [("GET", "/final", None, None)])
    assert_primary_answer(r, "/final")
    after = env.wait_settled("l")
    assert after["compared"] == s["compared"] + 1 and after["mismatch"] == s["mismatch"]


# --------------------------------------------------------------------------
# 9. configuration swapped (filesystem LDS) while traffic flows


class Traffic:
    """Background clients (one keep-alive, one connection per request) that
    record every answer and every error until stopped."""

    def __init__(self, env, prefix: str, pause: float = 0.01):
        self.env, self.prefix, self.pause = env, prefix, pause
        self.answers: list = []  # (path, Response)
        self.errors: list = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(keep,), daemon=True)
                         for keep in (True, False)]
        self._n = 0

    def _next(self) -> str:
        with self._lock:
            self._n += 1
            return f"{self.prefix}/{self._n}"

    def _run(self, keep_alive: bool) -> None:
        client = self.env.client() if keep_alive else None
        while not self._stop.is_set():
            path = self._next()
            try:
                r = client.get(path) if client else self.env.request(path)
                with self._lock:
                    self.answers.append((path, r))
            except Exception as exc:  # noqa: BLE001 - every error is a finding
                with self._lock:
                    self.errors.append((path, repr(exc)))
            time.sleep(self.pause)
        if client:
            client.close()

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(15)


def test_configuration_swap_while_traffic_flows(upstream_factory, envoy_factory):
    up1 = upstream_factory(primary, "v1")
    # Shadow calls of the first launch are held by the dark side until the
    # swap is done, so pairs are in flight across it.
    gate = threading.Event()

    def dark_side(req):
        if req.header("x-darklaunch-shadow") == "before":
            gate.wait(10)
        return primary_reply(req.path)

    dk = upstream_factory(dark_side, "v2")
    env = envoy_factory(config(launch("before", timeout_ms=8000)), primary=up1,
                        clusters={"dark": dk}, lds=True, extra_args=["--drain-time-s", "3"])
    assert env.lds_counters()["update_success"] == 1

    def lds_success(n):
        env.wait_until(lambda: env.lds_counters().get("update_success") == n, timeout=15,
                       what=lambda: f"LDS update_success == {n}: {env.lds_counters()}")

    with Traffic(env, "/swap") as traffic:
        env.wait_until(lambda: env.stat("darklaunch.before.in_flight") >= 5, timeout=10,
                       what="shadow calls of 'before' in flight")
        # 1. rename the launch: the new listener runs "after"
        env.set_plugin_config(config(launch("after", timeout_ms=8000)))
        lds_success(2)
        in_flight_at_swap = env.stat("darklaunch.before.in_flight")
        assert in_flight_at_swap > 0
        env.wait_until(lambda: env.stat("darklaunch.after.compared") >= 5, timeout=10,
                       what="the new launch compares")
        gate.set()  # the pairs of the old launch finish after the swap
        # 2. sample 100 -> 0
        env.set_plugin_config(config(launch("after", timeout_ms=8000, sample={"percent": 0})))
        lds_success(3)
        time.sleep(0.2)  # let the new listener take the next connections
        base = env.launch_stats("after")
        n = traffic.count()
        env.wait_until(lambda: traffic.count() >= n + 20, timeout=10, what="more traffic")
        now = env.launch_stats("after")
        assert now["skipped.sampled_out"] > base["skipped.sampled_out"]
        # 3. an invalid configuration: rejected, the old one keeps serving
        rejected = env.lds_counters().get("update_rejected", 0)
        env.set_plugin_config(config(launch("after", sample={"percent": 101})))
        env.wait_until(lambda: env.lds_counters().get("update_rejected", 0) == rejected + 1,
                       timeout=15, what=lambda: f"LDS update rejected: {env.lds_counters()}")
        env.wait_log(r"launches\[0\]\.sample\.percent: must be between 0 and 100")
        n, sampled_out = traffic.count(), env.stat("darklaunch.after.skipped.sampled_out")
        env.wait_until(lambda: traffic.count() >= n + 10, timeout=10, what="more traffic")
        assert env.stat("darklaunch.after.skipped.sampled_out") > sampled_out

    assert not traffic.errors, traffic.errors[:5]
    assert len(traffic.answers) > 50
    for path, r in traffic.answers:
        assert_primary_answer(r, path, within=5.0)
    assert env.lds_counters()["update_success"] == 3
    before, after = env.wait_settled("before", timeout=20), env.wait_settled("after", timeout=20)
    assert_invariants(before)
    assert_invariants(after)
    assert before["shadowed"] >= in_flight_at_swap
    expect(before, compared=before["shadowed"], mismatch=0,
           dark_response__2xx=before["shadowed"])
    expect(after, compared=after["shadowed"], mismatch=0, dark_response__2xx=after["shadowed"])
    assert after["shadowed"] >= 5 and after["skipped.sampled_out"] > 0
    # Every request reached the primary; each shadowed one reached the dark once.
    assert up1.count() == len(traffic.answers)
    assert dk.count() == before["shadowed"] + after["shadowed"]
    # (d) the current config (0 %) still runs: force one request through it.
    n_dark = dk.count()
    send(env, "/final", headers={"x-dark-launch": "on"})
    s = env.wait_settled("after")
    assert s["forced"] == after["forced"] + 1 and s["compared"] == after["compared"] + 1
    assert s["mismatch"] == after["mismatch"]
    dk.wait_for_count(n_dark + 1)


def test_pairs_pending_when_the_old_config_is_torn_down_still_settle(
        upstream_factory, envoy_factory):
    up1 = upstream_factory(primary, "v1")
    gate = threading.Event()

    def dark_side(req):
        if req.header("x-darklaunch-shadow") == "old":
            gate.wait(10)
        return primary_reply(req.path)

    dk = upstream_factory(dark_side, "v2")
    env = envoy_factory(config(launch("old", timeout_ms=8000)), primary=up1,
                        clusters={"dark": dk}, lds=True, extra_args=["--drain-time-s", "1"])
    try:
        for i in range(4):
            send(env, f"/old/{i}")
        dk.wait_for_count(4)
        assert env.stat("darklaunch.old.in_flight") == 4
        env.set_plugin_config(config(launch("new")))
        env.wait_until(lambda: env.lds_counters().get("update_success") == 2, timeout=15,
                       what="LDS update")
        send(env, "/new/0")
        # The old filter chain drains (1 s) and its plugin goes away while the
        # four dark answers are still held back.
        draining = ("listener_manager.total_filter_chains_draining",
                    "listener_manager.total_listeners_draining")
        env.wait_until(lambda: sum(env.stats("listener_manager.").get(k, 0)
                                   for k in draining) == 0, timeout=10, what="drain done")
        time.sleep(1.0)
    finally:
        gate.set()
    new = env.wait_settled("new")
    assert_invariants(new)
    assert new["compared"] == 1
    old = env.wait_settled("old", timeout=4)
    assert_invariants(old)
    assert old["shadowed"] == 4


# --------------------------------------------------------------------------
# 10. dark answering 5xx on every call


def test_dark_answers_5xx_every_time(upstream_factory, envoy_factory):
    up1 = upstream_factory(primary, "v1")

    def fault(req):
        reply = primary_reply(req.path)  # same body and headers, 5xx status
        reply.status = 500 if req.path_only.endswith(("0", "2", "4")) else 503
        return reply

    dk = upstream_factory(dark(fault), "v2")
    # 6 failures stay under the breaker's default min_calls (20).
    env = envoy_factory(config(launch(compare={"headers": ["x-v"]})), primary=up1,
                        clusters={"dark": dk})
    with env.client() as c:
        for i in range(6):
            send(env, f"/five/{i}?fault=1", client=c)
    s = env.wait_settled("l")
    assert_invariants(s)
    expect(s, matched=6, shadowed=6, compared=6, mismatch=6, mismatch_kind__status=6,
           mismatch_kind__headers=0, mismatch_kind__body=0, dark_response__5xx=6,
           primary_response__2xx=6)
    logs = env.mismatch_logs()
    assert sorted(m["dark_status"] for m in logs) == [500, 500, 500, 503, 503, 503]
    assert all(m["primary_status"] == 200 and m["kinds"] == ["status"] for m in logs)
    final_check(env, "l", "/five/final", dk)
