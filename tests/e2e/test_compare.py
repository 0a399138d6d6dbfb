"""The comparator in real Envoy: encodings, tolerance, wildcard ignore,
unordered arrays, per-field counters and A/A noise cancellation."""

from __future__ import annotations

import gzip
import json
import random

import harness
from harness import Reply
from test_darklaunch import assert_invariants, config, launch


def json_reply(doc, headers=(), gz=False, status=200):
    body = json.dumps(doc).encode()
    hdrs = [("content-type", "application/json")] + list(headers)
    if gz:
        body = gzip.compress(body)
        hdrs.append(("content-encoding", "gzip"))
    return Reply(status=status, headers=hdrs, body=body)


def prom_families(env) -> dict:
    return {(n, tuple(sorted(lbl.items()))): float(v)
            for n, lbl, v in harness.parse_prometheus(env.prometheus())}


def test_gzip_on_one_side_is_decoded_before_comparing(upstream_factory, envoy_factory):
    doc = lambda path: {"path": path, "n": 1}  # noqa: E731
    up1 = upstream_factory(lambda r: json_reply(doc(r.path), gz=True), "v1")
    up2 = upstream_factory(lambda r: json_reply(dict(doc(r.path), n=2) if "diff" in r.path
                                                else doc(r.path)), "v2")
    env = envoy_factory(config(launch()), primary=up1, clusters={"dark": up2})
    for p in ["/same/1", "/same/2", "/diff/1"]:
        r = env.request(p)
        assert r.header("content-encoding") == "gzip", "the client still gets gzip"
        assert json.loads(gzip.decompress(r.body)) == doc(p)
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["compared"] == 3 and s["mismatch"] == 1 and s["mismatch_kind.body"] == 1
    assert [m["paths"] for m in env.mismatch_logs()] == [["/n"]]


def test_decompression_bomb_is_cut_off_and_counted(upstream_factory, envoy_factory):
    bomb = gzip.compress(b'{"a":"' + b"0" * 3_000_000 + b'"}')
    assert len(bomb) < 10_000
    up1 = upstream_factory(json_reply({"a": "0"}), "v1")
    up2 = upstream_factory(Reply(headers=[("content-type", "application/json"),
                                          ("content-encoding", "gzip")], body=bomb), "v2")
    env = envoy_factory(config(launch(max_body_bytes=65536)), primary=up1, clusters={"dark": up2})
    assert env.request("/b").json() == {"a": "0"}
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["compare_skipped.body_too_large"] == 1 and s["compared"] == 0


def test_tolerance_wildcard_ignore_and_unordered_arrays(upstream_factory, envoy_factory):
    def primary(r):
        return json_reply({"total": 100.0,
                           "items": [{"id": 1, "etag": "a", "price": 10},
                                     {"id": 2, "etag": "b", "price": 20}],
                           "tags": ["x", "y", "z"]})

    def dark(r):
        kind = r.path.rsplit("/", 1)[1]
        doc = {"total": 100.5,  # within 1%
               "items": [{"id": 1, "etag": "c", "price": 10},  # etags ignored
                         {"id": 2, "etag": "d", "price": 20}],
               "tags": ["z", "x", "y"]}  # order ignored
        if kind == "price":
            doc["items"][1]["price"] = 21
        elif kind == "total":
            doc["total"] = 102
        elif kind == "tags":
            doc["tags"] = ["z", "x", "w"]
        return json_reply(doc)

    up1, up2 = upstream_factory(primary, "v1"), upstream_factory(dark, "v2")
    compare = {"ignore": ["/items/*/etag"], "unordered_arrays": ["/tags"],
               "numeric_tolerance": 0.01}
    env = envoy_factory(config(launch(compare=compare)), primary=up1, clusters={"dark": up2})
    for kind in ["same", "same", "price", "total", "tags"]:
        assert env.request(f"/t/{kind}").status == 200
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["compared"] == 5 and s["mismatch"] == 3
    paths = sorted(p for m in env.mismatch_logs() for p in m["paths"])
    assert paths == ["/items/*/price", "/tags", "/total"]
    fam = prom_families(env)
    for p in paths:
        assert fam[("darklaunch_field_mismatch", (("launch", "l"), ("path", p)))] == 1.0
    assert fam[("darklaunch_field_mismatch", (("launch", "l"), ("path", "other")))] == 0.0


def test_big_integers_compare_exactly(upstream_factory, envoy_factory):
    """Ids past 64 bits (as 64-bit floats ...890 and ...891 are one number)
    compare digit for digit, in place and in an unordered array."""
    big = 123456789012345678901234567890

    def primary(r):
        return json_reply({"id": big, "name": "order", "ids": [big, big + 1]})

    def dark(r):
        kind = r.path.rsplit("/", 1)[1]
        if kind == "id":
            return json_reply({"id": big + 1, "name": "order", "ids": [big, big + 1]})
        if kind == "ids":
            return json_reply({"id": big, "name": "order", "ids": [big, big]})
        # The same document in other bytes: keys and the unordered array
        # reordered, so the JSON comparison (not byte equality) decides.
        return json_reply({"ids": [big + 1, big], "name": "order", "id": big})

    up1, up2 = upstream_factory(primary, "v1"), upstream_factory(dark, "v2")
    env = envoy_factory(config(launch(compare={"unordered_arrays": ["/ids"]})),
                        primary=up1, clusters={"dark": up2})
    for kind in ["same", "same", "id", "ids"]:
        r = env.request(f"/o/{kind}")
        assert r.status == 200 and r.json()["id"] == big
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["compared"] == 4 and s["mismatch"] == 2 and s["mismatch_kind.body"] == 2
    assert sorted(p for m in env.mismatch_logs() for p in m["paths"]) == ["/id", "/ids"]
    fam = prom_families(env)
    for p in ["/id", "/ids"]:
        assert fam[("darklaunch_field_mismatch", (("launch", "l"), ("path", p)))] == 1.0


def test_per_field_counters_are_bounded_per_launch(upstream_factory, envoy_factory):
    up1 = upstream_factory(json_reply({}), "v1")
    up2 = upstream_factory(lambda r: json_reply({f"k{r.path.rsplit('/', 1)[1]}": 1}), "v2")
    env = envoy_factory(config(launch()), primary=up1, clusters={"dark": up2}, concurrency=2)
    clients = [env.client(), env.client()]  # two connections: both workers learn fields
    for i in range(40):
        clients[i % 2].get(f"/k/{i}")
    for c in clients:
        c.close()
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["mismatch"] == 40
    fields = {k: v for k, v in env.stats("wasmcustom.darklaunch.l.field_mismatch.").items()}
    own = {k: v for k, v in fields.items() if not k.endswith(".other")}
    assert len(own) == 32, "32 pointers get a counter of their own, process-wide"
    assert sum(own.values()) == 32
    assert fields["wasmcustom.darklaunch.l.field_mismatch.other"] == 8


def test_noise_is_learned_from_the_aa_copy_then_cancelled(upstream_factory, envoy_factory):
    def v1(r):
        return json_reply({"id": r.path, "nonce": random.random(), "price": 10})

    def v2(r):
        return json_reply({"id": r.path, "nonce": random.random(),
                           "price": 11 if "real" in r.path else 10})

    up1, copy, up2 = upstream_factory(v1, "v1"), upstream_factory(v1, "v1-copy"), upstream_factory(v2, "v2")
    cfg = config(launch(noise={"cluster": "v1_copy", "percent": 100}))
    env = envoy_factory(cfg, primary=up1, clusters={"dark": up2, "v1_copy": copy}, concurrency=1)
    with env.client() as c:
        for i in range(8):  # warm-up: the model needs a few A/A pairs
            c.get(f"/warm/{i}")
            env.wait_settled("l")
        warm = env.wait_settled("l")
        for i in range(10):
            c.get(f"/n/{i}")
        for i in range(3):
            c.get(f"/real/{i}")
    s = env.wait_settled("l")
    assert_invariants(s)
    assert copy.count() == 21, "every shadowed request also went to the A/A copy"
    assert all(r.header("x-darklaunch-shadow") == "l" for r in copy.requests())
    assert s["compared"] == 21
    assert s["mismatch"] + s["noise"] == 21, "every pair differs at /nonce"
    assert s["noise"] - warm["noise"] == 10, "once learned, /nonce alone is noise"
    assert s["mismatch"] - warm["mismatch"] == 3, "a real difference is still a mismatch"
    assert warm["mismatch"] >= 1, "before learning, /nonce counted as a mismatch"
    fields = env.stats("wasmcustom.darklaunch.l.field_mismatch.")
    assert fields.get("wasmcustom.darklaunch.l.field_mismatch./price") == 3
    # The noise field stops being counted as a diverging field once learned.
    assert fields.get("wasmcustom.darklaunch.l.field_mismatch./nonce", 0) == warm["mismatch"]
    assert "darklaunch noise learned" in env.log_text()
    assert '"path":"/nonce"' in env.log_text()


def test_header_mismatches_are_named_and_a_status_mismatch_counts_once(upstream_factory,
                                                                       envoy_factory):
    """A differing compared header is named (stat, label, log line); a dark
    error page differs from the primary's item everywhere, but counts as a
    status mismatch only: its fields and headers would bury the real causes."""
    item = {"id": 1, "name": "x", "price": 10, "tags": ["a"]}
    up1 = upstream_factory(lambda r: json_reply(item, [("x-version", "1")]), "v1")

    def dark(r):
        kind = r.path.split("/")[1]
        if kind == "header":
            return json_reply(item, [("x-version", "2")])
        if kind == "status":
            return json_reply({"error": "boom"}, [("x-version", "2")], status=500)
        if kind == "price":
            return json_reply(dict(item, price=11), [("x-version", "1")])
        return json_reply(item, [("x-version", "1")])

    up2 = upstream_factory(dark, "v2")
    env = envoy_factory(config(launch(compare={"headers": ["x-version", "content-type"]})),
                        primary=up1, clusters={"dark": up2})
    for kind, n in (("header", 3), ("status", 2), ("price", 1), ("same", 1)):
        for i in range(n):
            assert env.request(f"/{kind}/{i}").json() == item
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["compared"] == 7 and s["mismatch"] == 6
    assert s["mismatch_kind.headers"] == 3 and s["header_mismatch.x-version"] == 3
    assert s["header_mismatch.content-type"] == 0
    assert s["mismatch_kind.status"] == 2 and s["mismatch_kind.body"] == 1
    fields = {k: v for k, v in s.items() if k.startswith("field_mismatch.") and v}
    assert fields == {"field_mismatch./price": 1}, fields
    lines = {ln["path"].split("/")[1]: ln for ln in env.mismatch_logs()}
    assert lines["header"]["headers"] == ["x-version"] and lines["header"]["kinds"] == ["headers"]
    assert (lines["status"]["kinds"], lines["status"]["paths"], lines["status"]["headers"]) == (
        ["status"], [], [])
    assert lines["price"]["paths"] == ["/price"] and lines["price"]["headers"] == []
    fam = prom_families(env)
    assert fam[("darklaunch_header_mismatch", (("header", "x-version"), ("launch", "l")))] == 3
