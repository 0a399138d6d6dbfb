"""Checks of the harness itself: the upstream server, the stats tags, and
Envoy without the wasm filter (so these run before the module exists)."""

from __future__ import annotations

import http.client
import time

import pytest

import harness
from harness import Reply

# Every stat the filter publishes, with the Prometheus family and labels it must get.
DARKLAUNCH_STATS = [
    ("matched", "darklaunch.matched", {}),
    ("shadowed", "darklaunch.shadowed", {}),
    ("forced", "darklaunch.forced", {}),
    *[(f"skipped.{r}", "darklaunch.skipped", {"reason": r}) for r in (
        "expired", "sampled_out", "flag_off", "user_never", "loop", "upgrade", "unsafe_method",
        "body_too_large", "rate_limited", "in_flight", "breaker_open", "unknown_cluster",
        "dispatch_failed")],
    *[(f"dark_response.{c}", "darklaunch.dark_response", {"class": c})
      for c in ("2xx", "3xx", "4xx", "5xx", "timeout", "reset")],
    *[(f"primary_response.{c}", "darklaunch.primary_response", {"class": c})
      for c in ("2xx", "3xx", "4xx", "5xx", "reset")],
    ("compared", "darklaunch.compared", {}),
    ("mismatch", "darklaunch.mismatch", {}),
    *[(f"mismatch_kind.{k}", "darklaunch.mismatch_kind", {"kind": k})
      for k in ("status", "headers", "body")],
    ("noise", "darklaunch.noise", {}),
    *[(f"compare_skipped.{r}", "darklaunch.compare_skipped", {"reason": r})
      for r in ("dark_failed", "primary_incomplete", "body_too_large")],
    ("primary_ms", "darklaunch.primary_ms", {}),
    ("dark_ms", "darklaunch.dark_ms", {}),
    ("in_flight", "darklaunch.in_flight", {}),
    ("breaker_open", "darklaunch.breaker_open", {}),
    ("header_mismatch.content-type", "darklaunch.header_mismatch", {"header": "content-type"}),
    ("header_mismatch.x-version", "darklaunch.header_mismatch", {"header": "x-version"}),
    ("expired", "darklaunch.expired", {}),
    ("sample.captured", "darklaunch.sample.captured", {}),
    *[(f"sample.dropped.{r}", "darklaunch.sample.dropped", {"reason": r})
      for r in ("rate", "size", "sink")],
]


# ---------------------------------------------------------------- stats tags

@pytest.mark.parametrize("stat,family,labels", DARKLAUNCH_STATS)
def test_stats_tags_extract_launch_and_detail(stat, family, labels):
    for launch in ("orders-v2", "a", "0_x-y", "skipped", "mismatch_kind", "a" * 64):
        name, tags = harness.tag_extract(f"wasmcustom.darklaunch.{launch}.{stat}")
        assert name == "wasmcustom." + family
        assert tags == {"launch": launch, **labels}


def test_stats_tags_leave_other_stats_alone():
    for name in ("cluster.primary.upstream_rq_2xx", "http.ingress.downstream_rq_total",
                 "wasmcustom.other.x", "wasm.darklaunch.orders.matched"):
        assert harness.tag_extract(name) == (name, {})


@pytest.mark.parametrize("bootstrap", harness.ENVOY_BOOTSTRAPS, ids=lambda p: p.name)
def test_shipped_bootstraps_carry_the_harness_stats_tags(bootstrap):
    text = bootstrap.read_text()
    assert harness.parse_stats_tags_yaml(text) == harness.STATS_TAGS
    assert harness.stats_tags_yaml(4) in text


@pytest.mark.parametrize("bootstrap", harness.ENVOY_BOOTSTRAPS, ids=lambda p: p.name)
def test_stats_config_snippet_is_the_harness_tags_and_bootstraps_carry_it(bootstrap):
    assert harness.stats_config()["stats_config"]["stats_tags"] == harness.STATS_TAGS
    snippet = harness.STATS_CONFIG_YAML.read_text()
    block = snippet[snippet.index("stats_config:"):]
    assert block in bootstrap.read_text()


def test_every_bootstrap_in_envoy_is_listed():
    """ENVOY_BOOTSTRAPS (checked above, and loaded in Envoy by
    test_demo_config.py and test_route_scoped.py) is every complete bootstrap
    in envoy/; stats_config.yaml is the fragment they carry."""
    shipped = set((harness.REPO_ROOT / "envoy").glob("*.yaml")) - {harness.STATS_CONFIG_YAML}
    assert shipped == set(harness.ENVOY_BOOTSTRAPS)


# ---------------------------------------------------------------- sampling model

def test_murmur3_vectors():
    # Same vectors as src/murmur3.rs and flagd's fractional evaluation: mmh3,
    # called as the sampling model calls it, hashes as the filter does.
    assert harness.murmur3_32(b"") == 0
    assert harness.murmur3_32(b"hello") == 0x248BFA47
    assert harness.murmur3_32(b"hello, world") == 0x149BBB7F
    assert harness.murmur3_32(b"19 Jan 2038 at 3:14:07 AM") == 0xE31E8A70
    assert harness.murmur3_32(b"", 1) == 0x514E28B7
    assert harness.murmur3_32(b"hello", 1) == 0xBB4ABCAD
    assert harness.murmur3_32(b"fractional-flagjack") == 0x9FE843E0
    assert harness.murmur3_32(b"headerColorfoo@foo.com") == 0xCDFA6C1D


def test_sticky_sampled():
    assert harness.sticky_sampled("fractional-flag", "jack", 62.5)  # 0x9fe843e0 < 62.5%
    assert not harness.sticky_sampled("fractional-flag", "jack", 62.0)
    assert harness.sticky_sampled("x", "y", 100) and not harness.sticky_sampled("x", "y", 0)


# ---------------------------------------------------------------- upstream

def _conn(up):
    return http.client.HTTPConnection(up.host, up.port, timeout=5)


def test_upstream_records_requests_and_keeps_alive(upstream_factory):
    up = upstream_factory(lambda req: Reply.text(f"{req.method} {req.path} {len(req.body)}"))
    conn = _conn(up)
    conn.request("GET", "/a?x=1", headers={"X-Thing": "v"})
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"GET /a?x=1 0")
    conn.request("POST", "/b", body=b"hello")
    r = conn.getresponse()
    assert r.read() == b"POST /b 5"
    conn.request("PUT", "/c", body=iter([b"ab", b"", b"cde"]), encode_chunked=True)
    r = conn.getresponse()
    assert r.read() == b"PUT /c 5"
    conn.request("HEAD", "/d")
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("content-length") == str(len(b"HEAD /d 0"))
    assert r.read() == b""
    conn.request("DELETE", "/e")  # same connection still usable after HEAD
    assert conn.getresponse().read() == b"DELETE /e 0"
    conn.close()

    reqs = up.wait_for_count(5)
    assert [r.method for r in reqs] == ["GET", "POST", "PUT", "HEAD", "DELETE"]
    assert reqs[0].path == "/a?x=1" and reqs[0].path_only == "/a" and reqs[0].query == {"x": "1"}
    assert reqs[0].header("x-thing") == "v" and ("x-thing", "v") in reqs[0].headers
    assert reqs[1].body == b"hello"
    assert reqs[2].body == b"abcde"
    assert up.count() == 5
    with pytest.raises(TimeoutError):
        up.wait_for_count(6, timeout=0.2)


def test_upstream_delay_chunks_and_statuses(upstream_factory):
    up = upstream_factory(Reply(status=201, headers=[("x-a", "1")], body=b"x", delay=0.3))
    t0 = time.monotonic()
    r = harness.http_request(up.url("/"))
    assert time.monotonic() - t0 >= 0.3
    assert (r.status, r.header("x-a"), r.body) == (201, "1", b"x")

    up.handler = Reply(chunks=[b"one,", b"two"], chunk_delay=0.05)
    r = harness.http_request(up.url("/"))
    assert r.header("transfer-encoding") == "chunked" and r.body == b"one,two"

    up.handler = Reply(status=204)
    assert harness.http_request(up.url("/")).status == 204

    up.handler = lambda req: 1 / 0  # a broken handler answers 500
    assert harness.http_request(up.url("/")).status == 500


def test_upstream_reset(upstream_factory):
    up = upstream_factory(Reply(reset=True))
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        harness.http_request(up.url("/"))

    up.handler = Reply(body=b"0123456789", reset=True, reset_after_headers=True,
                       reset_after_bytes=4)
    conn = _conn(up)
    conn.request("GET", "/")
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("content-length") == "10"
    with pytest.raises((ConnectionError, http.client.IncompleteRead)):
        r.read()
    conn.close()
    assert up.count() == 2


# ---------------------------------------------------------------- envoy

def test_envoy_without_wasm_proxies_and_reports(upstream_factory, envoy_factory):
    up = upstream_factory(name="v1")
    env = envoy_factory(primary=up, clusters={"dark_closed": None, "dark": up})
    r = env.request("/hello?q=1", headers={"x-user-id": "u1"})
    assert r.status == 200
    assert r.json() == {"upstream": "v1", "method": "GET", "path": "/hello?q=1"}
    (req,) = up.wait_for_count(1)
    assert req.header("x-user-id") == "u1" and req.header("x-request-id")

    with env.client() as c:  # keep-alive client
        for _ in range(3):
            assert c.get("/again").status == 200
    assert up.count() == 4

    assert env.stats() == {}  # no wasm filter, no wasmcustom stats
    http_stats = env.stats("http.ingress.")
    assert http_stats["http.ingress.downstream_rq_total"] >= 4
    env.wait_until(lambda: env.stats("cluster.primary.")["cluster.primary.upstream_rq_200"] >= 4,
                   what="upstream_rq_200")
    assert env.stat("darklaunch.none.matched") == 0
    assert "envoy_http_downstream_rq_total" in env.prometheus()
    env.wait_until(lambda: env.histograms("cluster.primary.").get(
        "cluster.primary.upstream_rq_time", {}).get("p50") is not None,
        what="upstream_rq_time histogram after a flush")
    assert "starting main dispatch loop" in env.log_text()

    code = env.stop()
    assert code == 0 and not env.running()
    assert harness.port_is_free(env.listener_port) and harness.port_is_free(env.admin_port)


def test_envoy_primary_reset_is_a_503(upstream_factory, envoy_factory):
    up = upstream_factory(Reply(reset=True))
    env = envoy_factory(primary=up)
    r = env.request("/")
    assert r.status == 503
    up.wait_for_count(1)


def test_envoy_validate(envoy_path):
    good = harness.bootstrap(harness.free_port(), harness.free_port(),
                             clusters={"dark": None})
    code, out = harness.Envoy.validate(good)
    assert code == 0, out
    assert "OK" in out

    bad = harness.bootstrap(harness.free_port(), harness.free_port())
    bad["static_resources"]["clusters"].append(dict(bad["static_resources"]["clusters"][0]))
    code, out = harness.Envoy.validate(bad)
    assert code != 0
    assert "primary" in out


def test_envoy_start_failure_raises(envoy_factory):
    env = envoy_factory(start=False, route_timeout="not-a-duration")
    with pytest.raises(harness.EnvoyError) as info:
        env.start(timeout=20)
    assert info.value.exit_code not in (None, 0)
    assert not env.running()
