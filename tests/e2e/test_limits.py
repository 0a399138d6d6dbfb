"""Load shaping in real Envoy: max_in_flight per worker, max_rps shared by all
workers (shared data with CAS), and the circuit breaker."""

from __future__ import annotations

import threading
import time

from harness import Reply
from test_darklaunch import assert_invariants, config, launch


def test_max_in_flight_is_per_worker(upstream_factory, envoy_factory):
    up1 = upstream_factory(Reply.json({"v": 1}), "v1")
    up2 = upstream_factory(lambda r: Reply.json({"v": 1}, delay=1.5), "v2")
    env = envoy_factory(config(launch(timeout_ms=5000, limits={"max_in_flight": 2})),
                        primary=up1, clusters={"dark": up2}, concurrency=1)
    with env.client() as c:
        for i in range(6):
            r = c.get(f"/f/{i}", headers={"x-dark-launch": "on"})
            assert r.json() == {"v": 1} and r.elapsed < 1.0
    env.wait_until(lambda: env.stat("darklaunch.l.in_flight") == 2, what="2 calls in flight")
    s = env.wait_settled("l", timeout=20)
    assert_invariants(s)
    assert s["shadowed"] == 2 and s["forced"] == 2 and s["skipped.in_flight"] == 4
    assert s["compared"] == 2 and up2.count() == 2


def _worker_connections(env) -> list:
    stats = env.stats(prefix="listener.")
    return [v for k, v in stats.items() if ".worker_" in k and k.endswith("downstream_cx_total")]


def test_max_rps_is_shared_by_every_worker(upstream_factory, envoy_factory):
    up1, up2 = upstream_factory(Reply.json({}), "v1"), upstream_factory(Reply.json({}), "v2")
    # 0% sampling: every shadow is forced by the flag header, and forced
    # requests count against the limits all the same.
    env = envoy_factory(config(launch(sample={"percent": 0}, limits={"max_rps": 1})),
                        primary=up1, clusters={"dark": up2}, concurrency=2)

    def burst():
        with env.client() as c:
            for i in range(3):
                assert c.get(f"/r/{i}", headers={"x-dark-launch": "on"}).status == 200

    # 16 connections: the kernel spreads them over the two workers' sockets
    # (SO_REUSEPORT) at random; all on one worker is a 1-in-32768 event.
    t0 = time.monotonic()
    threads = [threading.Thread(target=burst) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    s = env.wait_settled("l")
    assert_invariants(s)
    workers = _worker_connections(env)
    assert len(workers) == 2 and all(n > 0 for n in workers), f"both workers served: {workers}"
    assert s["matched"] == 48
    # One bucket for the process: a burst of 1 plus 1 token per second.
    # (A bucket per worker would let at least 2 through.)
    assert 1 <= s["shadowed"] <= 1 + int(elapsed), (s, elapsed)
    assert s["skipped.rate_limited"] == 48 - s["shadowed"]
    assert up2.count() == s["shadowed"]


def test_breaker_opens_on_failures_then_half_opens_and_closes(upstream_factory, envoy_factory):
    up1 = upstream_factory(Reply.json({"v": 1}), "v1")
    up2 = upstream_factory(Reply.json({"err": 1}, status=503), "v2")
    breaker = {"failure_ratio": 0.5, "min_calls": 4, "window_s": 10, "open_s": 2}
    env = envoy_factory(config(launch(breaker=breaker)), primary=up1, clusters={"dark": up2})

    def send(n):
        for _ in range(n):
            assert env.request("/b").json() == {"v": 1}
        return env.wait_settled("l")

    s = send(4)
    assert s["dark_response.5xx"] == 4 and s["shadowed"] == 4
    assert s["breaker_open"] == 1
    s = send(3)
    assert s["skipped.breaker_open"] == 3 and s["shadowed"] == 4 and up2.count() == 4

    time.sleep(2.2)  # open_s passed: one trial call, which fails again
    s = send(2)
    assert s["shadowed"] == 5 and s["skipped.breaker_open"] == 4 and s["breaker_open"] == 1

    up2.handler = Reply.json({"v": 1})
    time.sleep(2.2)  # the next trial succeeds and closes the breaker
    s = send(1)
    assert s["shadowed"] == 6 and s["breaker_open"] == 0
    s = send(3)
    assert_invariants(s)
    assert s["shadowed"] == 9 and s["skipped.breaker_open"] == 4
    assert s["compared"] == 9 and up2.count() == 9


def test_breaker_stops_shadowing_a_dead_dark_cluster(upstream_factory, envoy_factory):
    up1 = upstream_factory(Reply.json({"v": 1}), "v1")
    breaker = {"failure_ratio": 1.0, "min_calls": 3, "window_s": 10, "open_s": 60}
    env = envoy_factory(config(launch(breaker=breaker, dark_cluster="gone")),
                        primary=up1, clusters={"gone": None})
    for _ in range(3):
        assert env.request("/d").json() == {"v": 1}
    env.wait_settled("l")
    for _ in range(10):
        assert env.request("/d").json() == {"v": 1}
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["dark_response.reset"] == 3 and s["skipped.breaker_open"] == 10
    assert s["breaker_open"] == 1
