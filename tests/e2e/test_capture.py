"""Mismatch samples (`capture`) in real Envoy: what a sample shows, the
minute's budget and its room for rare shapes, truncation, the OTLP export
parsed with the official OpenTelemetry protobuf definitions, and what never
leaves the proxy."""

from __future__ import annotations

import json
import subprocess
import time

import harness
from harness import Reply, chromium
from test_darklaunch import assert_invariants, config, launch
from test_inspector import assert_self_contained, inspect
from test_report import report_path  # noqa: F401

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest


def json_reply(doc, status=200, headers=()):
    return Reply(status=status, headers=[("content-type", "application/json"), *headers],
                 body=json.dumps(doc).encode())


def away_from_a_minute_boundary(margin: float = 20.0) -> None:
    """The budget is per wall-clock minute: start a test that counts it well
    inside one."""
    left = 60.0 - time.time() % 60.0
    if left < margin:
        time.sleep(left + 0.5)


def stats_of(env, name="l") -> dict:
    s = env.wait_settled(name)
    assert_invariants(s)
    return s


def test_a_sample_shows_each_difference_with_both_values(upstream_factory, envoy_factory):
    def primary(r):
        return json_reply({"id": 7, "price": 10.0, "currency": "EUR",
                           "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]},
                          headers=[("x-version", "v1")])

    def dark(r):
        return json_reply({"id": 7, "price": 10.5,
                           "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 3}],
                           "extra": True}, headers=[("x-version", "v2")])

    up1, up2 = upstream_factory(primary, "v1"), upstream_factory(dark, "v2")
    cfg = launch(compare={"headers": ["x-version"]},
                 capture={"per_minute": 10, "request_headers": ["x-tenant"]})
    env = envoy_factory(config(cfg), primary=up1, clusters={"dark": up2})
    r = env.request("/orders/7?page=2", headers={"x-tenant": "acme"})
    assert r.status == 200 and r.json()["price"] == 10.0, "the client gets the primary"
    s = stats_of(env)
    assert s["mismatch"] == 1 and s["sample.captured"] == 1
    [sample] = env.samples()
    assert sample["v"] == 1 and sample["launch"] == "l"
    assert (sample["method"], sample["path"], sample["query"]) == ("GET", "/orders/7", "page=REDACTED")
    assert sample["request_id"], "Envoy's x-request-id"
    assert sample["request_headers"] == {"x-tenant": "acme"}
    assert sample["kinds"] == ["headers", "body"]
    assert sample["headers"] == ["x-version"]
    assert (sample["primary"]["headers"], sample["dark"]["headers"]) == \
        ({"x-version": "v1"}, {"x-version": "v2"})
    assert (sample["primary"]["status"], sample["dark"]["status"]) == (200, 200)
    diffs = {d["pointer"]: d for d in sample["differences"]}
    assert diffs["/price"] == {"pointer": "/price", "field": "/price", "kind": "value",
                               "primary": "10.0", "dark": "10.5"}
    assert diffs["/items/1/qty"]["field"] == "/items/*/qty"
    assert (diffs["/items/1/qty"]["primary"], diffs["/items/1/qty"]["dark"]) == ("2", "3")
    assert diffs["/currency"]["kind"] == "missing" and diffs["/currency"]["primary"] == '"EUR"'
    assert "dark" not in diffs["/currency"]
    assert diffs["/extra"]["kind"] == "extra" and diffs["/extra"]["dark"] == "true"
    assert sorted(sample["fields"]) == ["/currency", "/extra", "/items/*/qty", "/price"]
    # The mismatch log names the same request.
    [m] = env.mismatch_logs()
    assert m["request_id"] == sample["request_id"]


def test_a_rare_shape_is_sampled_while_a_frequent_one_saturates(upstream_factory, envoy_factory):
    def dark(r):
        if r.path_only == "/rare":
            return json_reply({"price": 10, "tax": 2})
        return json_reply({"price": 11})

    up1 = upstream_factory(lambda r: json_reply({"price": 10}), "v1")
    up2 = upstream_factory(dark, "v2")
    env = envoy_factory(config(launch(capture={"per_minute": 6})), primary=up1,
                        clusters={"dark": up2})
    away_from_a_minute_boundary()
    for _ in range(30):
        env.request("/frequent")
    env.request("/rare")
    for _ in range(10):
        env.request("/frequent")
    s = stats_of(env)
    assert s["mismatch"] == 41
    # 6 a minute: the frequent shape takes 3 (half, rounded up), the rare
    # one its first; the other 37 are over the rate.
    assert (s["sample.captured"], s["sample.dropped.rate"]) == (4, 37)
    shapes = [(x["path"], tuple(x["fields"])) for x in env.samples()]
    assert shapes.count(("/frequent", ("/price",))) == 3
    assert shapes.count(("/rare", ("/tax",))) == 1
    # Prometheus sees them labelled.
    fams = {(n, tuple(sorted(lbl.items()))): float(v)
            for n, lbl, v in harness.parse_prometheus(env.prometheus())}
    assert fams[("darklaunch_sample_captured", (("launch", "l"),))] == 4
    assert fams[("darklaunch_sample_dropped", (("launch", "l"), ("reason", "rate")))] == 37


def test_long_values_are_truncated_and_a_sample_that_cannot_fit_is_dropped(
        upstream_factory, envoy_factory):
    up1 = upstream_factory(lambda r: json_reply({"text": "short"}), "v1")
    long_text = json.dumps({"text": "é" * 20_000}, ensure_ascii=False).encode()
    up2 = upstream_factory(lambda r: Reply(headers=[("content-type", "application/json")],
                                           body=long_text), "v2")
    env = envoy_factory(config(launch(capture={"per_minute": 10, "max_bytes": 1024})),
                        primary=up1, clusters={"dark": up2})
    env.request("/t")
    env.request("/" + "p" * 3000)
    s = stats_of(env)
    assert s["mismatch"] == 2
    assert (s["sample.captured"], s["sample.dropped.size"]) == (1, 1)
    line = next(x for x in env.log_text().splitlines() if harness.SAMPLE_MARK in x)
    text = line.split(harness.SAMPLE_MARK, 1)[1]
    assert len(text.encode()) <= 1024
    [sample] = env.samples()
    assert sample["truncated"] is True
    dark = sample["differences"][0]["dark"]
    assert dark.startswith('"éé') and "…[truncated " in dark
    cut = int(dark.rsplit("…[truncated ", 1)[1].removesuffix(" bytes]"))
    kept = dark.rsplit("…[truncated ", 1)[0]
    assert len(kept.encode()) + cut == len(json.dumps("é" * 20_000, ensure_ascii=False).encode())


def test_samples_reach_an_otlp_collector_as_log_records(upstream_factory, envoy_factory):
    up1 = upstream_factory(lambda r: json_reply({"n": 1}), "v1")
    up2 = upstream_factory(lambda r: json_reply({"n": 2}), "v2")
    otel = upstream_factory(lambda r: json_reply({}), "otel")
    cfg = launch(capture={"per_minute": 10, "cluster": "otel"})
    env = envoy_factory(config(cfg), primary=up1, clusters={"dark": up2, "otel": otel})
    for i in range(3):
        env.request(f"/o/{i}")
    s = stats_of(env)
    assert s["sample.captured"] == 3
    posts = otel.wait_for_count(3)
    logged = {x["request_id"]: x for x in env.samples()}
    for post in posts:
        assert (post.method, post.path) == ("POST", "/v1/logs")
        assert post.header("content-type") == "application/json"
        # The official definitions accept it (unknown fields are errors).
        msg = json_format.Parse(post.body.decode(), ExportLogsServiceRequest())
        [rl] = msg.resource_logs
        assert {a.key: a.value.string_value for a in rl.resource.attributes} == \
            {"service.name": "darklaunch"}
        [sl] = rl.scope_logs
        assert sl.scope.name == "darklaunch"
        [rec] = sl.log_records
        assert rec.event_name == "darklaunch.sample" and rec.severity_text == "INFO"
        assert rec.time_unix_nano > 1_700_000_000 * 10**9
        sample = json.loads(rec.body.string_value)
        attrs = {a.key: a.value.string_value for a in rec.attributes}
        assert attrs == {"darklaunch.launch": "l", "darklaunch.request_id": sample["request_id"],
                         "darklaunch.shape": sample["shape"]}
        assert sample == logged[sample["request_id"]]
    time.sleep(0.5)
    assert otel.count() == 3
    assert env.stats().get("wasmcustom.darklaunch.l.sample.dropped.sink", 0) == 0


def test_a_failing_collector_is_counted_and_never_retried(upstream_factory, envoy_factory):
    up1 = upstream_factory(lambda r: json_reply({"n": 1}), "v1")
    up2 = upstream_factory(lambda r: json_reply({"n": 2}), "v2")
    otel = upstream_factory(lambda r: Reply(status=503, body=b"busy"), "otel")
    cfg = [launch(capture={"per_minute": 10, "cluster": "otel"}),
           launch("m", capture={"per_minute": 10, "cluster": "no-such-cluster"})]
    env = envoy_factory(config(*cfg), primary=up1, clusters={"dark": up2, "otel": otel})
    for i in range(4):
        r = env.request(f"/f/{i}")
        assert r.status == 200 and r.json() == {"n": 1}
    otel.wait_for_count(4)
    harness.wait_until(lambda: env.stats().get("wasmcustom.darklaunch.l.sample.dropped.sink") == 4,
                       timeout=10, what="sink drops")
    harness.wait_until(lambda: env.stats().get("wasmcustom.darklaunch.m.sample.dropped.sink") == 4,
                       timeout=10, what="sink drops of the unknown cluster")
    time.sleep(0.5)
    assert otel.count() == 4, "no retry"
    s, m = stats_of(env, "l"), stats_of(env, "m")
    assert s["sample.captured"] == 4 and m["sample.captured"] == 4, "the log lines were written"
    assert "no cluster 'no-such-cluster'" in env.log_text()


SECRETS = {
    "redacted pointer": "SECRET-SSN-1234",
    "redacted pointer (dark)": "SECRET-SSN-5678",
    "authorization": "SECRET-BEARER-TOKEN",
    "cookie": "SECRET-SESSION-ID",
    "header not allowed": "SECRET-INTERNAL-HEADER",
    "query value": "SECRET-QUERY-VALUE",
}


def secret_traffic(upstream_factory, envoy_factory, capture_extra=None):
    """An Envoy whose launch captures everything it may (bodies, an allowed
    header, an OTLP collector) from requests carrying every secret."""
    def primary(r):
        return json_reply({"user": {"ssn": SECRETS["redacted pointer"], "name": "Ann"},
                           "price": 10})

    def dark(r):
        return json_reply({"user": {"ssn": SECRETS["redacted pointer (dark)"], "name": "Ann"},
                           "price": 11})

    up1, up2 = upstream_factory(primary, "v1"), upstream_factory(dark, "v2")
    otel = upstream_factory(lambda r: json_reply({}), "otel")
    capture = {"per_minute": 100, "bodies": True, "redact": ["/user/ssn"],
               "request_headers": ["x-tenant"], "cluster": "otel", **(capture_extra or {})}
    env = envoy_factory(config(launch(capture=capture)), primary=up1,
                        clusters={"dark": up2, "otel": otel})
    headers = {"authorization": f"Bearer {SECRETS['authorization']}",
               "cookie": f"sid={SECRETS['cookie']}",
               "x-internal": SECRETS["header not allowed"], "x-tenant": "acme"}
    for i in range(3):
        r = env.request(f"/u/{i}?token={SECRETS['query value']}&page=1", headers=headers)
        assert r.json()["user"]["ssn"] == SECRETS["redacted pointer"], "the client is untouched"
    s = stats_of(env)
    assert s["sample.captured"] == 3
    otel.wait_for_count(3)
    return env, otel


def assert_no_secret(text: str, where: str) -> None:
    for what, secret in SECRETS.items():
        assert secret not in text, f"{what} leaked into {where}"


def run_samples(report, *args, stdin=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(report), "samples", *args], input=stdin, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_secrets_never_leave_the_proxy(report_path, upstream_factory,  # noqa: F811
                                       envoy_factory, tmp_path):
    env, otel = secret_traffic(upstream_factory, envoy_factory)
    samples = env.samples()
    assert len(samples) == 3
    for sample in samples:
        assert sample["request_headers"] == {"x-tenant": "acme"}
        assert sample["query"] == "token=REDACTED&page=REDACTED"
        [ssn] = [d for d in sample["differences"] if d["pointer"] == "/user/ssn"]
        assert ssn == {"pointer": "/user/ssn", "field": "/user/ssn", "kind": "value",
                       "redacted": True}
        assert json.loads(sample["primary"]["body"])["user"]["ssn"] == "[redacted]"
    # The whole log (every component, debug included) and every OTLP body.
    assert_no_secret(env.log_text(), "the Envoy log")
    for post in otel.requests():
        assert_no_secret(post.body.decode(), "the OTLP sink")
    # Nor the inspector's views of them: text, JSON, the HTML page.
    log = tmp_path / "envoy.log"
    log.write_text(env.log_text())
    text = run_samples(report_path, str(log)).stdout
    assert "/user/ssn" in text and "[redacted]" in text
    assert_no_secret(text, "the inspector's text")
    view = run_samples(report_path, "--json", str(log)).stdout
    assert json.loads(view)["summary"]["samples"] == 3
    assert_no_secret(view, "the inspector's JSON")
    page, _ = inspect(report_path, tmp_path, log)
    assert_no_secret(page.read_text(), "the HTML page")


def differing_launch(upstream_factory, envoy_factory, **extra):
    """A launch whose dark side differs in a price, a header and, for
    /boom, the status."""
    def primary(r):
        return json_reply({"id": 1, "price": 10.0, "items": [{"sku": "a"}, {"sku": "b"}]},
                          headers=[("x-version", "v1")])

    def dark(r):
        if r.path_only == "/boom":
            return json_reply({"error": "boom"}, status=500, headers=[("x-version", "v2")])
        return json_reply({"id": 1, "price": 10.5, "items": [{"sku": "a"}, {"sku": "B"}]},
                          headers=[("x-version", "v2")])

    up1, up2 = upstream_factory(primary, "v1"), upstream_factory(dark, "v2")
    cfg = launch(compare={"headers": ["x-version"]}, capture={"per_minute": 50}, **extra)
    env = envoy_factory(config(cfg), primary=up1, clusters={"dark": up2})
    for p in ["/a", "/b", "/boom"]:
        env.request(p)
    s = stats_of(env)
    assert (s["mismatch"], s["sample.captured"]) == (3, 3)
    return env


def test_the_inspector_groups_samples_logged_by_envoy(report_path,  # noqa: F811
                                                       upstream_factory, envoy_factory, tmp_path):
    env = differing_launch(upstream_factory, envoy_factory)
    log = tmp_path / "envoy.log"
    log.write_text(env.log_text())
    # kubectl logs output on stdin reads the same.
    text = run_samples(report_path, stdin=env.log_text()).stdout
    assert text == run_samples(report_path, str(log)).stdout.replace(str(log), "-")
    lines = text.splitlines()
    price = next(x for x in lines if x.strip().startswith("/price"))
    assert "2 samples" in price and "10.0 → 10.5" in price
    sku = next(x for x in lines if x.strip().startswith("/items/*/sku"))
    assert '/items/1/sku' in sku and '"b" → "B"' in sku
    assert any("x-version" in x and "v1 → v2" in x for x in lines)
    status = next(x for x in lines if "200 → 500" in x)
    assert "1 sample" in status
    assert any('/error' in x and '"boom"' in x for x in lines)
    assert lines[-1].startswith("3 samples read (l 3)")

    page, view = inspect(report_path, tmp_path, log)
    assert [f["field"] for f in view["fields"]] == ["/items/*/sku", "/price"]
    assert view["statuses"][0]["primary"] == 200 and view["statuses"][0]["dark"] == 500
    dom = chromium.dump_dom(page)
    els = chromium.elements(dom)
    assert_self_contained(els)
    fields = {e.get("data-field") for e in els if e.has_class("group") and e.get("data-field")}
    assert {"/price", "/items/*/sku"} <= fields, fields
    png = chromium.screenshot(page, tmp_path / "samples.png")
    assert png.stat().st_size > 10_000


def test_the_inspector_is_an_otlp_receiver_for_the_filter(report_path,  # noqa: F811
                                                          upstream_factory, envoy_factory,
                                                          tmp_path):
    port = harness.free_port()
    saved = tmp_path / "received.log"
    receiver = subprocess.Popen(
        [str(report_path), "samples", "--listen", f"127.0.0.1:{port}", "--count", "3",
         "--duration", "60", "--json", "--save", str(saved)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        up1 = upstream_factory(lambda r: json_reply({"price": 10.0}), "v1")
        up2 = upstream_factory(lambda r: json_reply({"price": 10.5}), "v2")
        cfg = launch(capture={"per_minute": 10, "cluster": "otel"})
        env = envoy_factory(config(cfg), primary=up1,
                            clusters={"dark": up2, "otel": (harness.LOOPBACK, port)})
        for i in range(3):
            env.request(f"/p/{i}")
        out, err = receiver.communicate(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
    assert receiver.returncode == 0, err
    view = json.loads(out)
    assert view["summary"]["samples"] == 3
    [field] = view["fields"]
    assert field["field"] == "/price" and field["samples"] == 3
    assert (field["examples"][0]["primary"], field["examples"][0]["dark"]) == ("10.0", "10.5")
    s = stats_of(env)
    assert s["sample.captured"] == 3 and s.get("sample.dropped.sink", 0) == 0
    # What it saved is what the Envoy logged.
    assert sorted(harness.parse_sample_lines(saved.read_text()), key=lambda x: x["path"]) == \
        sorted(env.samples(), key=lambda x: x["path"])


def test_replay_reproduces_a_difference_seen_in_envoy(report_path,  # noqa: F811
                                                      upstream_factory, envoy_factory, tmp_path):
    def primary(r):
        return json_reply({"id": 1, "price": 10.0, "t": r.query.get("t", "")})

    def dark(r):
        return json_reply({"id": 1, "price": 10.5, "t": r.query.get("t", "") + "-dark"})

    up1, up2 = upstream_factory(primary, "v1"), upstream_factory(dark, "v2")
    cfg = config(launch(compare={"ignore": ["/t"]},
                        capture={"per_minute": 10, "request_headers": ["x-tenant"]}))
    env = envoy_factory(cfg, primary=up1, clusters={"dark": up2})
    env.request("/orders/1?t=abc", headers={"x-tenant": "acme"})
    assert stats_of(env)["sample.captured"] == 1
    log = tmp_path / "envoy.log"
    log.write_text(env.log_text())
    conf = tmp_path / "darklaunch.json"
    conf.write_text(json.dumps(cfg))
    up1.clear()
    up2.clear()

    proc = subprocess.run([str(report_path), "replay", str(log), "--primary", up1.url(),
                           "--dark", up2.url(), "--config", str(conf)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "GET /orders/1?t=REDACTED" in out and "--query sends real ones" in out
    assert "compared with the rules of launch l in" in out
    assert any(x.split() == ["/price", "value", "10.0", "→", "10.5"] for x in out.splitlines()), out
    assert not any(x.split()[:1] == ["/t"] for x in out.splitlines()), \
        "the launch's ignore rules apply"
    assert "reproduced /price; only in the sample -; new -" in out
    # Both versions got the sampled request, allowlisted header included.
    for up in (up1, up2):
        [req] = up.requests()
        assert (req.method, req.path) == ("GET", "/orders/1?t=REDACTED")
        assert req.header("x-tenant") == "acme"

    # --query and --json; the same version on both sides matches (exit 0).
    proc = subprocess.run([str(report_path), "replay", str(log), "--primary", up1.url(),
                           "--dark", up1.url(), "--query", "t=abc", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["match"] is True and doc["differences"] == []
    assert doc["request"]["target"] == "/orders/1?t=abc"
    assert doc["reproduced"]["only_in_sample"] == ["/price"]
    # A dark side that is down: an error, exit 4.
    proc = subprocess.run([str(report_path), "replay", str(log), "--primary", up1.url(),
                           "--dark", f"http://{harness.LOOPBACK}:{harness.free_port()}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4 and "GET http://" in proc.stderr, proc.stderr
