"""The Grafana dashboard examples/grafana/darklaunch.json against real data.

* Structure: schema version, the Prometheus data source variable, the
  `launch` variable, the executive / on-call / debug rows and their panels,
  every query on the data source variable and filtered by `$launch`.
* Every PromQL expression's metric names exist in a live /stats/prometheus of
  an Envoy running darklaunch with traffic that exercised each of them
  (mismatches, noise, dark 5xx and resets, an open breaker, calls in flight,
  skips; and a second Envoy with a gRPC launch, for the gRPC codes), and every
  expression runs in a real Prometheus scraping both:
  status success, data for every panel, the labels its legend uses.
"""

from __future__ import annotations

import json
import random
import re

import harness
from harness import Reply, grpc_services

DASHBOARD = harness.REPO_ROOT / "examples" / "grafana" / "darklaunch.json"
RULES = harness.REPO_ROOT / "examples" / "prometheus" / "rules.yaml"

METRIC_RX = re.compile(r"\bdarklaunch_[a-z_]+\b")
RULE_NAME_RX = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")
# Grafana's variables, as Grafana would expand them for "All" launches.
VARIABLES = {"$launch": ".*", "${launch}": ".*", "${launch:regex}": ".*"}

ORDERS, FLAKY, CATALOG = "orders-v2", "flaky-v2", "catalog-v2"


def load() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dash: dict):
    """Every panel, rows' nested panels included (a collapsed row keeps them inside)."""
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def queries(dash: dict) -> list:
    """[(panel title, target)] for every PromQL target."""
    return [(p["title"], t) for p in panels(dash) for t in p.get("targets", []) if "expr" in t]


def expand(expr: str) -> str:
    for var, value in VARIABLES.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unexpanded Grafana variable in {expr}"
    return expr


def metric_names(dash: dict) -> set:
    names = set()
    for _, t in queries(dash):
        names |= set(METRIC_RX.findall(t["expr"]))
    for var in dash["templating"]["list"]:
        names |= set(METRIC_RX.findall(var.get("definition", "")))
    return names


# ---------------------------------------------------------------- structure

def test_dashboard_structure():
    dash = load()
    assert dash["uid"] == "darklaunch" and dash["title"]
    assert 36 <= dash["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    launch = variables["launch"]
    assert launch["type"] == "query"
    assert launch["definition"] == "label_values(darklaunch_shadowed, launch)"
    assert launch["query"]["query"] == launch["definition"]
    assert launch["includeAll"] and launch["multi"] and launch["allValue"] == ".*"
    assert launch["datasource"] == {"type": "prometheus", "uid": "${datasource}"}

    rows = [p["title"].split(":")[0] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ["Executive", "On-call", "Debug"]
    titles = {p["title"] for p in panels(dash) if p["type"] != "row"}
    for seed in ["Divergence rate", "Shadow share", "Error rate: dark vs primary",
                 "Latency p95 / p99: dark vs primary", "Shadowed pairs in flight",
                 "Breaker open (Envoys)", "Top diverging fields", "Skip reasons / s",
                 "Compare-skipped reasons / s", "Noise cancelled", "Top mismatching headers"]:
        assert seed in titles, seed

    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells = set()
    for p in panels(dash):
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not (cells & mine), f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p.get("targets"), p["title"]
        assert p.get("description"), p["title"]

    refs = set()
    for title, t in queries(dash):
        assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        refs.add((title, t["refId"]))
        # Every selector of a darklaunch family follows the launch variable.
        for m in re.finditer(r"\bdarklaunch_[a-z_]+\b(\{[^}]*\})?", t["expr"]):
            assert m.group(1) and 'launch=~"$launch"' in m.group(1), (title, m.group(0))
    assert len(refs) == len(queries(dash))

    # Raw metrics only, so the dashboard works without rules.yaml; a recording
    # rule, if one is ever used, must be one rules.yaml defines.
    records = set(re.findall(r"^\s*- record: (\S+)", RULES.read_text(), re.M))
    for title, t in queries(dash):
        for name in RULE_NAME_RX.findall(t["expr"]):
            assert name in records, f"{title}: {name} is not a recording rule of rules.yaml"

    # The panel the issue names, verbatim.
    exprs = [t["expr"] for _, t in queries(dash)]
    assert ('topk(10, sum by (path) (rate(darklaunch_field_mismatch{launch=~"$launch"}[5m])))'
            in exprs)
    for name in ["darklaunch_mismatch", "darklaunch_compared", "darklaunch_shadowed",
                 "darklaunch_matched", "darklaunch_dark_response", "darklaunch_primary_response",
                 "darklaunch_dark_ms_bucket", "darklaunch_primary_ms_bucket",
                 "darklaunch_in_flight", "darklaunch_breaker_open", "darklaunch_field_mismatch",
                 "darklaunch_skipped", "darklaunch_compare_skipped", "darklaunch_noise",
                 "darklaunch_header_mismatch", "darklaunch_dark_grpc",
                 "darklaunch_primary_grpc"]:
        assert name in metric_names(dash), name


# ---------------------------------------------------------------- live

def doc(path: str, price: int = 10, item_price: int = 1) -> dict:
    return {"id": path, "nonce": random.random(), "price": price,
            "items": [{"sku": "a", "price": item_price}, {"sku": "b", "price": item_price}]}


def primary(req) -> Reply:
    return Reply.json(doc(req.path_only), headers=[("x-version", "1")])


def dark(req) -> Reply:
    kind = req.path_only.split("/")[3]
    v1 = [("x-version", "1")]
    if kind == "header":
        return Reply.json(doc(req.path_only), headers=[("x-version", "2")])
    if kind == "price":
        return Reply.json(doc(req.path_only, price=11), headers=v1)
    if kind == "items":
        return Reply.json(doc(req.path_only, item_price=2), headers=v1)
    if kind == "fail":
        return Reply.json(doc(req.path_only), status=500, headers=v1)
    if kind == "slow":
        return Reply.json(doc(req.path_only), delay=2.5, headers=v1)
    return Reply.json(doc(req.path_only), headers=v1)


def plugin_config() -> dict:
    return {"launches": [
        {"name": ORDERS, "dark_cluster": "dark", "match": {"path_prefix": "/api/orders"},
         "sample": {"percent": 100}, "timeout_ms": 5000, "compare": {"headers": ["x-version"]},
         "noise": {"cluster": "v1_copy", "percent": 100}},
        {"name": FLAKY, "dark_cluster": "gone", "match": {"path_prefix": "/api/flaky"},
         "sample": {"percent": 100},
         "breaker": {"failure_ratio": 1.0, "min_calls": 3, "window_s": 10, "open_s": 60}},
    ]}


def grpc_envoy(envoy_factory, g1, g2) -> harness.Envoy:
    """A second Envoy with a gRPC launch (HTTP/2 listener and clusters)."""
    return envoy_factory({"launches": [
        {"name": CATALOG, "dark_cluster": "dark_h2", "sample": {"percent": 100},
         "match": {"grpc_methods": ["pkg.Svc/Get"]}, "timeout_ms": 2000}]},
        primary=g1.address, concurrency=1, name="envoy-grpc",
        **grpc_services.envoy_kwargs(g2))


def grpc_traffic(genv: harness.Envoy, protos) -> None:
    """4 calls, one of them NOT_FOUND on the dark side, for the gRPC code panel."""
    client = grpc_services.GrpcClient(genv.listener_port)
    try:
        for i, behave in enumerate(["", "", "", "not_found"]):
            assert client.get(protos.get_request(i + 1, behave)).code == "OK"
    finally:
        client.close()
    s = genv.wait_settled(CATALOG)
    assert s["dark_grpc.ok"] == 3 and s["dark_grpc.not_found"] == 1, s


def test_dashboard_queries_run_on_live_darklaunch_stats(upstream_factory, envoy_factory,
                                                        prometheus_factory, tmp_path_factory):
    dash = load()
    up1, copy, up2 = (upstream_factory(primary, "v1"), upstream_factory(primary, "v1-copy"),
                      upstream_factory(dark, "v2"))
    env = envoy_factory(plugin_config(), primary=up1,
                        clusters={"dark": up2, "v1_copy": copy, "gone": None}, concurrency=1)
    protos = grpc_services.compile_protos(tmp_path_factory.mktemp("protos"))
    with grpc_services.GrpcService(protos, "v1") as g1, \
            grpc_services.GrpcService(protos, "v2", dark=True) as g2:
        genv = grpc_envoy(envoy_factory, g1, g2)
        prom = prometheus_factory([env, genv])
        prom.wait_targets_up(2)
        prom.wait_query("count(darklaunch_shadowed)", lambda v: list(v.values()) == [3])
        grpc_traffic(genv, protos)

    with env.client() as c:
        for i in range(8):  # A/A warm-up: /nonce is learned as noise
            c.get(f"/api/orders/same/w{i}")
            env.wait_settled(ORDERS)
        for kind, n in [("same", 3), ("price", 3), ("items", 2), ("fail", 2), ("header", 2)]:
            for i in range(n):
                assert c.get(f"/api/orders/{kind}/{i}").status == 200
        c.get("/api/orders/same/off", headers={"x-dark-launch": "off"})
        assert c.request("POST", "/api/orders/new", body=b"{}").status == 200
        for i in range(3):  # resets until the breaker opens
            c.get(f"/api/flaky/{i}")
            env.wait_settled(FLAKY)
        for i in range(3):
            c.get(f"/api/flaky/after/{i}")
        # Two shadow calls held 2.5 s by the dark side: in flight for a few scrapes.
        for i in range(2):
            c.get(f"/api/orders/slow/{i}")
    prom.wait_query("sum(darklaunch_in_flight)", lambda v: sum(v.values()) >= 1, timeout=5)
    orders, flaky = env.wait_settled(ORDERS, timeout=20), env.wait_settled(FLAKY)
    assert orders["noise"] >= 3 and orders["mismatch_kind.body"] >= 5, orders
    assert orders["dark_response.5xx"] == 2 and orders["skipped.flag_off"] == 1
    assert orders["skipped.unsafe_method"] == 1
    assert flaky["breaker_open"] == 1 and flaky["skipped.breaker_open"] == 3, flaky
    assert flaky["compare_skipped.dark_failed"] == 3 and flaky["dark_response.reset"] == 3
    truth = harness.wait_series_stable(env)
    gtruth = harness.wait_series_stable(genv)
    harness.wait_prometheus_has(prom, {harness.envoy_target(env): truth,
                                       harness.envoy_target(genv): gtruth})

    # Every metric the dashboard names is in Envoy's /stats/prometheus, and
    # the traffic moved it (gauges: at some scrape).
    live = {name for name, _ in truth} | {name for name, _ in gtruth}
    names = metric_names(dash)
    assert names, "no darklaunch metric found in the dashboard"
    assert not names - live, f"metrics not in /stats/prometheus: {sorted(names - live)}"
    for name in sorted(names):
        peak = prom.scalar(f"max(max_over_time({name}[5m]))")
        assert peak and peak > 0, f"{name} never moved in this traffic"
    fields = {dict(labels).get("path") for (name, labels), v in truth.items()
              if name == "darklaunch_field_mismatch" and v > 0}
    assert {"/price", "/items/*/price"} <= fields, fields

    # The launch variable: label_values(darklaunch_shadowed, launch).
    values = prom.api("label/launch/values", {"match[]": "darklaunch_shadowed"})
    assert set(values) == {ORDERS, FLAKY, CATALOG}

    # Every expression parses and runs, returns data, and carries the labels
    # its legend shows.
    for title, t in queries(dash):
        expr = expand(t["expr"])
        answer = prom.api_raw("query", {"query": expr})
        assert answer.get("status") == "success", (title, expr, answer)
        result = answer["data"]["result"]
        assert result, f"{title}: no data for {expr}"
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")))
        for sample in result:
            assert legend <= set(sample["metric"]), (title, legend, sample["metric"])
        if title == "Top diverging fields":
            top = {s["metric"]["path"] for s in result}
            assert {"/price", "/items/*/price"} <= top, top
        if title == "Top mismatching headers":
            assert {s["metric"]["header"] for s in result} == {"x-version"}
        if title == "gRPC codes / s":
            want = {"A": {(CATALOG, "ok"), (CATALOG, "not_found")}, "B": {(CATALOG, "ok")}}
            assert {(s["metric"]["launch"], s["metric"]["code"]) for s in result} == want[
                t["refId"]]
        if title == "Breaker open (Envoys)":
            assert {s["metric"]["launch"]: float(s["value"][1]) for s in result} == {
                ORDERS: 0, FLAKY: 1, CATALOG: 0}
        if title == "Skip reasons / s":
            assert {(s["metric"]["launch"], s["metric"]["reason"]) for s in result} == {
                (ORDERS, "flag_off"), (ORDERS, "unsafe_method"), (FLAKY, "breaker_open")}
