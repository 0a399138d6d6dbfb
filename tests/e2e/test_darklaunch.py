"""darklaunch end to end in real Envoy: decide, shadow, compare, count.

Every test runs the built module in a real Envoy (FAIL_CLOSED, so a crashed
VM would show as 503s) with loopback upstreams, and asserts on /stats, on
what each upstream received and on what the client got.
"""

from __future__ import annotations

import json
import socket

import harness
from harness import Reply, sum_prefix



def launch(name="l", **kw) -> dict:
    base = {"name": name, "dark_cluster": "dark", "sample": {"percent": 100}}
    base.update(kw)
    return base


def config(*launches, **top) -> dict:
    return {"launches": list(launches), **top}


def assert_invariants(s: dict) -> None:
    """The stats invariants once traffic has settled: every decision counted
    (matched = shadowed + Σ skipped), every shadow call accounted for (shadowed =
    compared + Σ compare_skipped), compared ≥ mismatch + noise, none in flight."""
    assert s["matched"] == s["shadowed"] + sum_prefix(s, "skipped."), s
    assert s["shadowed"] == s["compared"] + sum_prefix(s, "compare_skipped."), s
    assert s["compared"] >= s["mismatch"] + s["noise"], s
    assert s["in_flight"] == 0, s


def primary_doc(path: str) -> dict:
    return {"path": path, "price": 10, "tags": ["a", "b"], "meta": {"generated_at": "t1"}}


def test_known_mixture_of_differences_is_counted_exactly(upstream_factory, envoy_factory):
    """Six kinds of pairs, five of each: the counters say exactly which differ and how."""

    def primary(req):
        return Reply.json(primary_doc(req.path), headers=[("x-version", "1")])

    def dark(req):
        doc = primary_doc(req.path)
        kind = req.path.split("/")[2]
        status, headers = 200, [("x-version", "1")]
        if kind == "body":
            doc["price"] = 11
        elif kind == "ignored":
            doc["meta"]["generated_at"] = "t2"
        elif kind == "status":
            status = 500
        elif kind == "header":
            headers = [("x-version", "2")]
        elif kind == "order":
            # Same document: other key order, 10.0 for 10.
            body = ('{"tags":["a","b"],"price":10.0,"meta":{"generated_at":"t1"},"path":'
                    + json.dumps(req.path) + "}")
            return Reply(status=200, headers=[("content-type", "application/json"),
                                              ("x-version", "1")], body=body.encode())
        return Reply.json(doc, status=status, headers=headers)

    up1, up2 = upstream_factory(primary, "v1"), upstream_factory(dark, "v2")
    env = envoy_factory(
        config(launch(compare={"headers": ["X-Version"], "ignore": ["/meta/generated_at"]})),
        primary=up1, clusters={"dark": up2})
    kinds = ["same", "body", "ignored", "status", "header", "order"]
    with env.client() as c:
        for kind in kinds:
            for i in range(5):
                path = f"/api/{kind}/{i}?q={i}"
                r = c.get(path, headers={"x-request-id": f"rid-{kind}-{i}"})
                assert r.status == 200
                assert r.json() == primary_doc(path), "the client gets the primary's answer"
                assert r.header("x-version") == "1"
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["matched"] == 30 and s["shadowed"] == 30 and s["forced"] == 0
    assert s["compared"] == 30
    assert s["mismatch"] == 15
    assert s["mismatch_kind.status"] == 5
    assert s["mismatch_kind.headers"] == 5
    assert s["mismatch_kind.body"] == 5
    assert s["dark_response.2xx"] == 25 and s["dark_response.5xx"] == 5
    assert s["primary_response.2xx"] == 30
    assert sum_prefix(s, "skipped.") == 0 and sum_prefix(s, "compare_skipped.") == 0
    assert up2.count() == 30
    # The dark side got the same method and path, query included.
    assert sorted(r.path for r in up2.requests()) == sorted(r.path for r in up1.requests())

    logs = env.mismatch_logs()
    assert len(logs) == 15
    body_logs = [m for m in logs if m["kinds"] == ["body"]]
    assert len(body_logs) == 5 and all(m["paths"] == ["/price"] for m in body_logs)
    status_log = next(m for m in logs if m["kinds"] == ["status"])
    assert status_log["primary_status"] == 200 and status_log["dark_status"] == 500
    assert status_log["path"].startswith("/api/status/") and "?" not in status_log["path"]
    assert status_log["request_id"].startswith("rid-status-")
    assert status_log["method"] == "GET" and status_log["launch"] == "l"
    assert "11" not in json.dumps(body_logs), "no body values in the log"

    prom = harness.parse_prometheus(env.prometheus())
    fam = {(n, tuple(sorted(lbl.items()))): v for n, lbl, v in prom}
    assert fam[("darklaunch_shadowed", (("launch", "l"),))] == "30"
    assert fam[("darklaunch_mismatch_kind", (("kind", "body"), ("launch", "l")))] == "5"
    assert fam[("darklaunch_dark_response", (("class", "5xx"), ("launch", "l")))] == "5"
    assert fam[("darklaunch_skipped", (("launch", "l"), ("reason", "sampled_out")))] == "0"
    assert ("darklaunch_compare_skipped", (("launch", "l"), ("reason", "dark_failed"))) in fam
    assert ("darklaunch_primary_response", (("class", "2xx"), ("launch", "l"))) in fam


def test_slower_dark_is_compared_after_the_client_has_its_answer(upstream_factory, envoy_factory):
    up1 = upstream_factory(Reply.json({"v": 1}), "v1")
    up2 = upstream_factory(lambda req: Reply.json({"v": 2}, delay=1.5), "v2")
    env = envoy_factory(config(launch(timeout_ms=5000)), primary=up1, clusters={"dark": up2})
    for _ in range(3):
        r = env.request("/slow")
        assert r.status == 200 and r.json() == {"v": 1}
        assert r.elapsed < 1.0, "the client never waits for the dark side"
    assert env.stat("darklaunch.l.compared") == 0
    s = env.wait_settled("l", timeout=20)
    assert_invariants(s)
    assert s["compared"] == 3 and s["mismatch"] == 3 and s["mismatch_kind.body"] == 3
    hist = env.wait_until(lambda: (env.histograms().get("wasmcustom.darklaunch.l.dark_ms") or {})
                          .get("p50"), timeout=10, what="dark_ms histogram")
    assert hist >= 1400


def test_dark_timeout_counts_as_dark_failure(upstream_factory, envoy_factory):
    up1 = upstream_factory(Reply.json({"v": 1}), "v1")
    up2 = upstream_factory(lambda req: Reply.json({"v": 1}, delay=2.0), "v2")
    env = envoy_factory(config(launch(timeout_ms=200)), primary=up1, clusters={"dark": up2})
    for _ in range(4):
        assert env.request("/t").json() == {"v": 1}
    s = env.wait_settled("l", timeout=20)
    assert_invariants(s)
    assert s["dark_response.timeout"] == 4
    assert s["compare_skipped.dark_failed"] == 4
    assert s["compared"] == 0


def test_sticky_sampling_is_exact_per_user(upstream_factory, envoy_factory):
    up1 = upstream_factory(Reply.json({"ok": True}), "v1")
    up2 = upstream_factory(Reply.json({"ok": True}), "v2")
    sample = {"percent": 30, "sticky_key": ["header:x-user-id", "cookie:session"]}
    env = envoy_factory(config(launch("checkout-v2", sample=sample)),
                        primary=up1, clusters={"dark": up2})
    users = [f"user-{i}" for i in range(150)]
    expected = {u for u in users if harness.sticky_sampled("checkout-v2", u, 30)}
    assert 20 < len(expected) < 70
    with env.client() as c:
        for rnd in range(2):  # the same user gets the same decision every time
            for u in users:
                headers = {"x-user-id": u} if rnd == 0 else {"cookie": f"a=1; session={u}"}
                assert c.get(f"/u/{u}", headers=headers).status == 200
    s = env.wait_settled("checkout-v2")
    assert_invariants(s)
    got = [r.path.rsplit("/", 1)[1] for r in up2.requests()]
    assert sorted(got) == sorted(list(expected) * 2)
    assert s["shadowed"] == 2 * len(expected)
    assert s["skipped.sampled_out"] == 2 * (len(users) - len(expected))


def test_flag_header_off_on_and_launch_name(upstream_factory, envoy_factory):
    up1 = upstream_factory(Reply.json({"ok": True}), "v1")
    dark_a = upstream_factory(Reply.json({"ok": True}), "a")
    dark_b = upstream_factory(Reply.json({"ok": True}), "b")
    env = envoy_factory(
        config(launch("a", dark_cluster="dark_a", sample={"percent": 0}),
               launch("b", dark_cluster="dark_b", sample={"percent": 100})),
        primary=up1, clusters={"dark_a": dark_a, "dark_b": dark_b})
    send = lambda flag: env.request("/x", headers={"x-dark-launch": flag} if flag else {})  # noqa: E731
    for flag in [None, "off", "OFF", "on", "A", "b", "other"]:
        assert send(flag).status == 200
    a, b = env.wait_settled("a"), env.wait_settled("b")
    assert_invariants(a)
    assert_invariants(b)
    # a (0%): sampled out unless forced by "on" or its own name.
    assert a["matched"] == 7 and a["skipped.flag_off"] == 2 and a["skipped.sampled_out"] == 3
    assert a["shadowed"] == 2 and a["forced"] == 2 and dark_a.count() == 2
    # b (100%): only "off" stops it; "on" and "b" force it; "A" and "other" leave it to sampling.
    assert b["matched"] == 7 and b["skipped.flag_off"] == 2
    assert b["shadowed"] == 5 and b["forced"] == 2 and dark_b.count() == 5
    assert all(r.header("x-darklaunch-shadow") == "b" for r in dark_b.requests())


def test_users_always_and_never(upstream_factory, envoy_factory):
    up1, up2 = upstream_factory(Reply.json({}), "v1"), upstream_factory(Reply.json({}), "v2")
    users = {"key": "query:user", "always": ["qa-1"], "never": ["vip-7"]}
    env = envoy_factory(config(launch(sample={"percent": 0}, users=users)),
                        primary=up1, clusters={"dark": up2})
    for u in ["qa-1", "vip-7", "other"]:
        env.request(f"/x?user={u}")
    env.request("/x?user=vip-7", headers={"x-dark-launch": "on"})
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["shadowed"] == 1 and s["forced"] == 1
    assert s["skipped.user_never"] == 2 and s["skipped.sampled_out"] == 1
    assert [r.path for r in up2.requests()] == ["/x?user=qa-1"]


def test_loop_prevention(upstream_factory, envoy_factory):
    up1, up2 = upstream_factory(Reply.json({}), "v1"), upstream_factory(Reply.json({}), "v2")
    env = envoy_factory(config(launch()), primary=up1, clusters={"dark": up2})
    r = env.request("/x", headers={"x-darklaunch-shadow": "other", "x-dark-launch": "on"})
    assert r.status == 200
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["skipped.loop"] == 1 and s["shadowed"] == 0 and up2.count() == 0
    assert up1.count() == 1


def test_unsafe_methods_skipped_by_default_and_shadowed_with_identical_body_when_allowed(
        upstream_factory, envoy_factory):
    up1, up2 = upstream_factory(Reply.json({"ok": 1}), "v1"), upstream_factory(Reply.json({"ok": 1}), "v2")
    env = envoy_factory(
        config(launch("safe", match={"path_prefix": "/safe"}),
               launch("writes", match={"path_prefix": "/writes"}, unsafe_methods=True,
                      max_body_bytes=1 << 20)),
        primary=up1, clusters={"dark": up2})
    small = b'{"order": 1}'
    big = bytes(range(256)) * 1200  # 300 KiB, arrives in several chunks
    assert env.request("/safe/o", method="POST", body=small).status == 200
    assert env.request("/safe/o", method="DELETE").status == 200
    assert env.request("/writes/o", method="POST", body=small).status == 200
    assert env.request("/writes/big", method="PUT", body=big).status == 200
    assert env.request("/writes/o", method="GET").status == 200
    safe, writes = env.wait_settled("safe"), env.wait_settled("writes")
    assert_invariants(safe)
    assert_invariants(writes)
    assert safe["skipped.unsafe_method"] == 2 and safe["shadowed"] == 0
    assert writes["shadowed"] == 3
    got = {(r.method, r.path): r.body for r in up2.requests()}
    assert got == {("POST", "/writes/o"): small, ("PUT", "/writes/big"): big, ("GET", "/writes/o"): b""}
    assert up1.requests()[3].body == big


def test_request_headers_remove_set_authority_and_shadow_header(upstream_factory, envoy_factory):
    up1, up2 = upstream_factory(Reply.json({}), "v1"), upstream_factory(Reply.json({}), "v2")
    env = envoy_factory(
        config(launch("hdr", request_headers={"remove": ["Authorization"],
                                              "set": {"x-env": "dark", "x-tenant": "dark-tenant"}}),
               launch("auth", dark_authority="orders-v2.internal")),
        primary=up1, clusters={"dark": up2})
    env.request("/h?x=1", headers={"authorization": "Bearer secret", "x-tenant": "acme",
                                   "x-request-id": "req-42", "traceparent": "00-abc-def-01"})
    env.wait_settled("hdr")
    env.wait_settled("auth")
    primary = up1.requests()[0]
    assert primary.header("authorization") == "Bearer secret"
    assert primary.header("x-tenant") == "acme" and primary.header("x-env") is None
    assert primary.header("x-darklaunch-shadow") is None
    by_launch = {r.header("x-darklaunch-shadow"): r for r in up2.requests()}
    hdr, auth = by_launch["hdr"], by_launch["auth"]
    assert hdr.header("authorization") is None
    assert hdr.header("x-env") == "dark" and hdr.header_all("x-tenant") == ["dark-tenant"]
    # Envoy's own mirroring rule: "-shadow" after the host part of :authority.
    assert hdr.header("host") == f"127.0.0.1-shadow:{env.listener_port}"
    assert hdr.header("x-request-id") == "req-42" and hdr.header("traceparent") == "00-abc-def-01"
    assert hdr.path == "/h?x=1"
    assert auth.header("host") == "orders-v2.internal"
    assert auth.header("authorization") == "Bearer secret"


def _chunked_post(env, path: str, chunks: list) -> int:
    """A POST without content-length (chunked): the size is known only at the end."""
    with socket.create_connection((harness.LOOPBACK, env.listener_port), timeout=10) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
                  "connection: close\r\n\r\n".encode())
        for c in chunks:
            s.sendall(b"%x\r\n%s\r\n" % (len(c), c))
        s.sendall(b"0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_bodies_over_the_limit(upstream_factory, envoy_factory):
    big_answer = Reply.json({"blob": "x" * 500})
    up1 = upstream_factory(lambda r: big_answer if r.path == "/big-answer" else Reply.json({"ok": 1}), "v1")
    up2 = upstream_factory(lambda r: big_answer if r.path == "/big-answer" else Reply.json({"ok": 1}), "v2")
    env = envoy_factory(config(launch(unsafe_methods=True, max_body_bytes=100)),
                        primary=up1, clusters={"dark": up2})
    assert env.request("/declared", method="POST", body=b"y" * 101).status == 200
    assert _chunked_post(env, "/streamed", [b"z" * 60, b"z" * 60]) == 200
    assert _chunked_post(env, "/small", [b"z" * 40, b"z" * 40]) == 200
    assert env.request("/big-answer").json() == {"blob": "x" * 500}
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["skipped.body_too_large"] == 2
    assert s["shadowed"] == 2
    assert s["compare_skipped.body_too_large"] == 1 and s["compared"] == 1
    assert sorted((r.path, r.body) for r in up2.requests()) == [("/big-answer", b""), ("/small", b"z" * 80)]
    assert len(up1.requests()) == 4, "the primary got every request"


def test_dead_dark_cluster_leaves_every_client_answer_untouched(upstream_factory, envoy_factory):
    up1 = upstream_factory(Reply.json({"v": 1}, headers=[("x-v", "1")]), "v1")
    env = envoy_factory(
        config(launch("closed", dark_cluster="closed_port"),
               launch("absent", dark_cluster="no_such_cluster")),
        primary=up1, clusters={"closed_port": None}, failure_policy="FAIL_CLOSED")
    with env.client() as c:
        for i in range(20):
            r = c.get(f"/x/{i}", headers={"x-dark-launch": "on"})
            assert (r.status, r.json(), r.header("x-v")) == (200, {"v": 1}, "1")
    closed, absent = env.wait_settled("closed"), env.wait_settled("absent")
    assert_invariants(closed)
    assert_invariants(absent)
    assert closed["shadowed"] == 20 and closed["dark_response.reset"] == 20
    assert closed["compare_skipped.dark_failed"] == 20
    assert absent["shadowed"] == 0 and absent["skipped.unknown_cluster"] == 20
    assert up1.count() == 20


def test_match_rules_in_envoy(upstream_factory, envoy_factory):
    up1, up2 = upstream_factory(Reply.json({}), "v1"), upstream_factory(Reply.json({}), "v2")
    m = {"path_template": "/users/{id}/orders", "methods": ["GET"],
         "headers": [{"name": "x-tenant", "exact": "acme"}]}
    env = envoy_factory(config(launch(match=m)), primary=up1, clusters={"dark": up2})
    env.request("/users/7/orders?page=2", headers={"x-tenant": "acme"})
    env.request("/users/7/orders", headers={"x-tenant": "other"})
    env.request("/users/7/orders/9", headers={"x-tenant": "acme"})
    env.request("/users/7/orders", method="HEAD", headers={"x-tenant": "acme"})
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["matched"] == 1 and s["shadowed"] == 1
    assert [r.path for r in up2.requests()] == ["/users/7/orders?page=2"]
    assert up1.count() == 4


def test_mismatch_log_is_rate_limited(upstream_factory, envoy_factory):
    up1 = upstream_factory(Reply.json({"v": 1}), "v1")
    up2 = upstream_factory(Reply.json({"v": 2}), "v2")
    env = envoy_factory(config(launch(), mismatch_log_per_minute=3), primary=up1,
                        clusters={"dark": up2}, concurrency=1)
    for _ in range(8):
        env.request("/m")
    s = env.wait_settled("l")
    assert s["mismatch"] == 8
    assert len(env.mismatch_logs()) == 3


def test_bad_configuration_is_rejected_with_the_field_named(envoy_factory, wasm_path, upstream_factory):
    up1 = upstream_factory(Reply.json({}), "v1")
    bad = config(launch(), launch("two", sample={"percent": 101}))
    env = envoy_factory(bad, primary=up1, clusters={"dark": None}, start=False)
    try:
        env.start(timeout=30)
        started = True
    except harness.EnvoyError:
        started = False
    assert not started, "Envoy must refuse a configuration darklaunch rejects"
    assert "launches[1].sample.percent: must be between 0 and 100" in env.log_text()

    code, out = harness.Envoy.validate(
        harness.bootstrap(harness.free_port(), harness.free_port(), primary_cluster=up1.address,
                          clusters={"dark": None}, wasm_path=wasm_path,
                          plugin_config=config(launch(bogus=1))))
    assert code != 0
    assert "launches[0].bogus: unknown field `bogus`" in out
