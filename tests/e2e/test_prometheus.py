"""darklaunch's stats in a real Prometheus, and the shipped rules.

* ``promtool`` checks examples/prometheus/prometheus.yml and rules.yaml and
  runs the rule unit tests in rules_test.yaml (input series, expected recorded
  values and alerts).
* Two Envoys ("sidecars" of one service: same plugin configuration, shared
  primary and dark upstreams) run a known mixture; a real Prometheus (Debian's
  package, scripts/install_prometheus.sh) scrapes both /stats/prometheus
  every second with rules.yaml loaded, and the labelled darklaunch_* families
  must aggregate across them through the HTTP API exactly as the Envoys'
  own counters add up.
* ``darklaunch-report --prometheus URL`` (report/) against the same kind of
  fleet: the same numbers as the Envoys' summed counters, the verdict, and
  ``--selector`` / ``--window`` narrowing it.
"""

from __future__ import annotations

import math
import re

import pytest

import harness
from harness import Reply
# darklaunch-report's hooks (the binary, its JSON against launch_stats()).
from test_report import (ROOMY_LATENCY, assert_report_matches_stats, report_json,  # noqa: F401
                         report_path, run_report, sum_stats)

EXAMPLES = harness.REPO_ROOT / "examples" / "prometheus"

ORDERS, SEARCH = "orders-v2", "search-v3"

# Per Envoy, orders-v2 requests by kind of dark answer. Envoy B gets the same
# mixture as Envoy A at half the volume, so ratios (divergence, dark error
# share) are the same on both and the fleet-wide rates give exact values
# whatever each target's scrape timing.
MIXTURE = {
    "a": {"same": 4, "price": 2, "items": 2, "fail": 2, "flag_off": 1},
    "b": {"same": 2, "price": 1, "items": 1, "fail": 1, "flag_off": 2},
}
SEARCH_USERS = {"a": [f"user-{i}" for i in range(12)], "b": [f"user-{i}" for i in range(12, 20)]}


def primary_doc(path: str) -> dict:
    return {"id": path, "price": 10, "items": [{"sku": "a", "price": 1}, {"sku": "b", "price": 2}]}


def primary(req) -> Reply:
    return Reply.json(primary_doc(req.path_only))


def dark(req) -> Reply:
    doc = primary_doc(req.path_only)
    kind = req.path_only.split("/")[3] if req.path_only.startswith("/api/orders/") else "same"
    if kind == "price":
        doc["price"] = 11
    elif kind == "items":
        for item in doc["items"]:
            item["price"] += 1
    elif kind == "fail":
        return Reply.json(doc, status=500)  # same body: only the status differs
    return Reply.json(doc)


def plugin_config() -> dict:
    return {"launches": [
        {"name": ORDERS, "dark_cluster": "dark", "match": {"path_prefix": "/api/orders"},
         "sample": {"percent": 100}},
        {"name": SEARCH, "dark_cluster": "dark", "match": {"path_prefix": "/api/search"},
         "sample": {"percent": 50, "sticky_key": ["header:x-user-id"]}},
    ]}


def drive(env: harness.Envoy, side: str) -> None:
    with env.client() as c:
        for kind, n in MIXTURE[side].items():
            for i in range(n):
                headers = {"x-dark-launch": "off"} if kind == "flag_off" else {}
                r = c.get(f"/api/orders/{kind}/{side}{i}", headers=headers)
                assert r.status == 200 and r.json() == primary_doc(f"/api/orders/{kind}/{side}{i}")
        for user in SEARCH_USERS[side]:
            assert c.get(f"/api/search?q={user}", headers={"x-user-id": user}).status == 200


def expected() -> dict:
    """Fleet-wide totals of the mixture, per launch."""
    tot = {k: sum(MIXTURE[s][k] for s in MIXTURE) for k in MIXTURE["a"]}
    users = SEARCH_USERS["a"] + SEARCH_USERS["b"]
    sampled = sum(harness.sticky_sampled(SEARCH, u, 50) for u in users)
    orders_shadowed = tot["same"] + tot["price"] + tot["items"] + tot["fail"]
    return {
        "shadowed": {ORDERS: orders_shadowed, SEARCH: sampled},
        "matched": {ORDERS: orders_shadowed + tot["flag_off"], SEARCH: len(users)},
        "flag_off": tot["flag_off"],
        "sampled_out": len(users) - sampled,
        "body": tot["price"] + tot["items"],
        "status": tot["fail"],
        "price": tot["price"],
        "items": tot["items"],
        "fail": tot["fail"],
    }


# ---------------------------------------------------------------- promtool

def test_promtool_checks_the_example_config_and_rules(promtool_path):
    code, out = harness.promtool("check", "config", "prometheus.yml", cwd=EXAMPLES)
    assert code == 0, out
    assert "SUCCESS: 1 rule files found" in out and "rules found" in out, out
    code, out = harness.promtool("check", "rules", "rules.yaml", cwd=EXAMPLES)
    assert code == 0, out
    records = re.findall(r"^\s*- record: (\S+)", (EXAMPLES / "rules.yaml").read_text(), re.M)
    alerts = re.findall(r"^\s*- alert: (\S+)", (EXAMPLES / "rules.yaml").read_text(), re.M)
    assert f"SUCCESS: {len(records) + len(alerts)} rules found" in out, out
    assert set(alerts) == {"DarklaunchDivergenceHigh", "DarklaunchDarkErrorsHigh",
                           "DarklaunchDarkSlow", "DarklaunchBreakerOpen",
                           "DarklaunchConfigInvalid", "DarklaunchLaunchExpired"}


def test_promtool_rule_unit_tests_pass(promtool_path):
    code, out = harness.promtool("test", "rules", "rules_test.yaml", cwd=EXAMPLES)
    assert code == 0 and "SUCCESS" in out, out
    # Every alert and every recording rule is exercised by the unit tests.
    rules = (EXAMPLES / "rules.yaml").read_text()
    tests = (EXAMPLES / "rules_test.yaml").read_text()
    for alert in re.findall(r"^\s*- alert: (\S+)", rules, re.M):
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels", tests), \
            f"{alert} is never expected to fire in rules_test.yaml"
    for record in re.findall(r"^\s*- record: (\S+)", rules, re.M):
        assert f"expr: round({record}, " in tests or f"expr: {record}\n" in tests, \
            f"{record} has no promql_expr_test"


def test_istio_scrape_job_is_valid_once_uncommented(promtool_path, tmp_path):
    """The commented Istio job of prometheus.yml, uncommented, with a static
    target in place of Kubernetes discovery (not built into Debian's package)."""
    text = (EXAMPLES / "prometheus.yml").read_text()
    block = text[text.index("  # - job_name: kubernetes-pods-istio"):]
    job = "\n".join(line.replace("  # ", "  ", 1) for line in block.splitlines()
                    if line.startswith("  # "))
    assert "kubernetes_sd_configs:\n      - role: pod" in job, job
    assert "prometheus_io_port" in job and "__metrics_path__" in job
    job = job.replace("kubernetes_sd_configs:\n      - role: pod",
                      "static_configs:\n      - targets: ['10.1.2.3:8080']")
    (tmp_path / "istio.yml").write_text("scrape_configs:\n" + job + "\n")
    code, out = harness.promtool("check", "config", "istio.yml", cwd=tmp_path)
    assert code == 0, out + "\n" + job


# ---------------------------------------------------------------- live

def start_fleet(upstream_factory, envoy_factory, prometheus_factory, **prom_kwargs):
    """Two darklaunch Envoys on shared upstreams, scraped by a fresh
    Prometheus that has seen their (zero) families before any traffic."""
    up1, up2 = upstream_factory(primary, "v1"), upstream_factory(dark, "v2")
    envs = {side: envoy_factory(plugin_config(), primary=up1, clusters={"dark": up2},
                                name=f"envoy-{side}") for side in ("a", "b")}
    prom = prometheus_factory(list(envs.values()), **prom_kwargs)
    prom.wait_targets_up(2)
    # The families exist (at 0) before any traffic: the first scrape is the
    # zero from which rate() starts.
    prom.wait_query("count by (launch) (darklaunch_shadowed)",
                    lambda v: v == {ORDERS: 2, SEARCH: 2}, labels=("launch",))
    return envs, prom


def drive_and_scrape(envs: dict, prom: harness.Prometheus) -> dict:
    """Drives the mixture through every Envoy, waits until it settled and
    Prometheus scraped the final values; returns {side: {launch: launch_stats()}}."""
    for side, env in envs.items():
        drive(env, side)
    stats, truth = {}, {}
    for side, env in envs.items():
        stats[side] = {name: env.wait_settled(name) for name in (ORDERS, SEARCH)}
        truth[harness.envoy_target(env)] = harness.wait_series_stable(env)
    # Prometheus's latest scrape of each Envoy is what that Envoy shows now.
    harness.wait_prometheus_has(prom, truth)
    return stats


def test_two_sidecars_aggregate_in_prometheus(upstream_factory, envoy_factory,
                                              prometheus_factory):
    envs, prom = start_fleet(upstream_factory, envoy_factory, prometheus_factory,
                             rule_files=[EXAMPLES / "rules.yaml"])
    instance = {side: harness.envoy_target(env) for side, env in envs.items()}
    stats = drive_and_scrape(envs, prom)
    assert all(s["in_flight"] == 0 for per in stats.values() for s in per.values())

    exp = expected()
    assert exp["sampled_out"] > 0 and exp["shadowed"][SEARCH] > 0

    def by(expr, *labels):
        return prom.vector(expr, *labels)

    # sum by (launch) (darklaunch_shadowed) is the sum of both Envoys' counters.
    shadowed = by("sum by (launch) (darklaunch_shadowed)", "launch")
    assert shadowed == {ORDERS: exp["shadowed"][ORDERS], SEARCH: exp["shadowed"][SEARCH]}
    for name in (ORDERS, SEARCH):
        assert shadowed[name] == sum(env.stat(f"darklaunch.{name}.shadowed")
                                     for env in envs.values())
    assert by("sum by (launch) (darklaunch_matched)", "launch") == exp["matched"]
    # One series per sidecar, told apart by `instance`.
    assert by("darklaunch_shadowed", "launch", "instance") == {
        (name, instance[side]): envs[side].stat(f"darklaunch.{name}.shadowed")
        for name in (ORDERS, SEARCH) for side in envs}

    kinds = by("sum by (launch, kind) (darklaunch_mismatch_kind)", "launch", "kind")
    assert kinds == {(ORDERS, "body"): exp["body"], (ORDERS, "status"): exp["status"],
                     (ORDERS, "headers"): 0, (ORDERS, "grpc_status"): 0, (SEARCH, "body"): 0,
                     (SEARCH, "status"): 0, (SEARCH, "headers"): 0, (SEARCH, "grpc_status"): 0}

    assert by('sum by (launch) (darklaunch_skipped{reason="flag_off"})', "launch") == {
        ORDERS: exp["flag_off"], SEARCH: 0}
    assert by('sum by (launch) (darklaunch_skipped{reason="sampled_out"})', "launch") == {
        ORDERS: 0, SEARCH: exp["sampled_out"]}
    assert by('sum by (reason) (darklaunch_skipped{launch="orders-v2"}) > 0', "reason") == {
        "flag_off": exp["flag_off"]}

    assert by('sum by (launch, class) (darklaunch_dark_response) > 0', "launch", "class") == {
        (ORDERS, "2xx"): exp["shadowed"][ORDERS] - exp["fail"], (ORDERS, "5xx"): exp["fail"],
        (SEARCH, "2xx"): exp["shadowed"][SEARCH]}
    assert by('sum by (launch, class) (darklaunch_primary_response) > 0', "launch", "class") == {
        (ORDERS, "2xx"): exp["shadowed"][ORDERS], (SEARCH, "2xx"): exp["shadowed"][SEARCH]}

    fields = by('sum by (path) (darklaunch_field_mismatch{launch="orders-v2"}) > 0', "path")
    assert fields == {"/price": exp["price"], "/items/*/price": exp["items"]}

    # The stats invariants (matched = shadowed + Σ skipped, shadowed = compared
    # + Σ compare_skipped), fleet-wide, in PromQL.
    for expr in ["sum by (launch) (darklaunch_matched) - sum by (launch) (darklaunch_shadowed)"
                 " - sum by (launch) (darklaunch_skipped)",
                 "sum by (launch) (darklaunch_shadowed) - sum by (launch) (darklaunch_compared)"
                 " - sum by (launch) (darklaunch_compare_skipped)",
                 "sum by (launch) (darklaunch_in_flight)"]:
        assert by(expr, "launch") == {ORDERS: 0, SEARCH: 0}, expr

    # Histograms: every dark answer counted once, and a p95 from the buckets.
    assert by("sum by (launch) (darklaunch_dark_ms_count)", "launch") == exp["shadowed"]
    assert by("sum by (launch) (darklaunch_primary_ms_count)", "launch") == exp["shadowed"]
    p95 = by("histogram_quantile(0.95, sum by (le, launch) (rate(darklaunch_dark_ms_bucket[1m])))",
             "launch")
    assert set(p95) == {ORDERS, SEARCH}
    assert all(math.isfinite(v) and 0 < v < 1000 for v in p95.values()), p95

    # rules.yaml, evaluated every second by this Prometheus.
    div = prom.wait_query("launch:darklaunch_divergence:ratio_rate5m",
                          lambda v: set(v) == {ORDERS, SEARCH}, labels=("launch",))
    mismatching = exp["body"] + exp["status"]
    assert math.isclose(div[ORDERS], mismatching / exp["shadowed"][ORDERS], rel_tol=1e-9), div
    assert div[SEARCH] == 0
    delta = prom.wait_query("launch:darklaunch_dark_errors_delta:ratio_rate5m",
                            lambda v: set(v) == {ORDERS, SEARCH}, labels=("launch",))
    assert math.isclose(delta[ORDERS], exp["fail"] / exp["shadowed"][ORDERS], rel_tol=1e-9)
    assert delta[SEARCH] == 0
    share = prom.wait_query("launch:darklaunch_shadow_share:ratio_rate5m",
                            lambda v: set(v) == {ORDERS, SEARCH}, labels=("launch",))
    assert 0 < share[SEARCH] < 1 and 0 < share[ORDERS] < 1, share
    ratio = prom.wait_query("launch:darklaunch_p95_latency:ratio_rate5m",
                            lambda v: set(v) == {ORDERS, SEARCH}, labels=("launch",))
    assert all(math.isfinite(v) and v > 0 for v in ratio.values()), ratio
    assert prom.wait_query("launch:darklaunch_breaker_open:sum", lambda v: len(v) == 2,
                           labels=("launch",)) == {ORDERS: 0, SEARCH: 0}

    # The divergence and dark-error alerts are pending (for: 10m) for orders-v2
    # only; search-v3 answers alike and no breaker is open. (DarklaunchDarkSlow
    # depends on loopback timings within one histogram bucket: not asserted.)
    want = {("DarklaunchDivergenceHigh", ORDERS, "pending"),
            ("DarklaunchDarkErrorsHigh", ORDERS, "pending")}
    box = {}

    def alerts_pending():
        box["got"] = {(a["labels"]["alertname"], a["labels"]["launch"], a["state"])
                      for a in prom.alerts()}
        return want <= box["got"]

    harness.wait_until(alerts_pending, timeout=10, interval=0.25,
                       what=lambda: f"alerts {want} (now {box.get('got')})")
    others = {a for a in box["got"] - want if a[0] != "DarklaunchDarkSlow"}
    assert not others, others


def test_report_judges_the_fleet_from_prometheus(report_path, upstream_factory, envoy_factory,
                                                 prometheus_factory):
    envs, prom = start_fleet(upstream_factory, envoy_factory, prometheus_factory)
    stats = drive_and_scrape(envs, prom)
    exp = expected()

    code, rep = report_json("--prometheus", prom.url, "--min-compared", "5", *ROOMY_LATENCY)
    assert rep["source"]["kind"] == "prometheus"
    assert rep["source"]["window"] is None and rep["source"]["selector"] is None
    launches = {lr["launch"]: lr for lr in rep["launches"]}
    assert set(launches) == {ORDERS, SEARCH}
    for name, lr in launches.items():
        # The report's numbers from Prometheus are the Envoys' counters summed.
        assert_report_matches_stats(lr, sum_stats(stats["a"][name], stats["b"][name]))
    orders = launches[ORDERS]
    assert orders["compared"] == exp["shadowed"][ORDERS]
    assert {f["path"]: f["count"] for f in orders["fields"]} == {
        "/price": exp["price"], "/items/*/price": exp["items"]}
    # Quantiles: histogram_quantile over the fleet's cumulative buckets.
    for side in ("primary", "dark"):
        want = prom.scalar(f"histogram_quantile(0.95, sum by (launch, le) "
                           f'(darklaunch_{side}_ms_bucket{{launch="{ORDERS}"}}))')
        assert orders["latency_ms"][side]["p95"] == pytest.approx(want), side
    # 6 of 15 pairs differ and 3 of 15 dark answers are 5xx: FAIL, exit 2.
    assert orders["verdict"] == "FAIL" and orders["divergence"]["check"] == "fail"
    assert orders["errors"]["check"] == "fail"
    assert launches[SEARCH]["mismatch"] == 0 and launches[SEARCH]["verdict"] != "FAIL"
    assert (code, rep["verdict"]) == (2, "FAIL")

    # --selector narrows to one sidecar.
    a = harness.envoy_target(envs["a"])
    code, rep = report_json("--prometheus", prom.url, "--selector", f'instance="{a}"',
                            "--launch", ORDERS, "--min-compared", "5", *ROOMY_LATENCY)
    assert rep["source"]["selector"] == f'instance="{a}"'
    assert [lr["launch"] for lr in rep["launches"]] == [ORDERS]
    assert_report_matches_stats(rep["launches"][0], stats["a"][ORDERS])

    # --window: counters as increase() over the range (extrapolated by
    # Prometheus, rounded by the report), same verdict.
    code, rep = report_json("--prometheus", prom.url, "--window", "5m", "--launch", ORDERS,
                            "--min-compared", "5", *ROOMY_LATENCY)
    assert rep["source"]["window"] == "5m"
    lr = rep["launches"][0]
    assert exp["shadowed"][ORDERS] <= lr["compared"] <= 1.25 * exp["shadowed"][ORDERS], lr
    assert (code, lr["verdict"]) == (2, "FAIL")


def test_report_warns_when_an_envoy_lacks_the_stats_tags(report_path, upstream_factory,
                                                         envoy_factory, prometheus_factory):
    """An Envoy whose bootstrap lacks darklaunch's stats_tags: its series are
    darklaunch_orders_v2_shadowed and so on, without a launch label. The report
    cannot read them, and says so instead of waiting for traffic."""
    up1, up2 = upstream_factory(primary, "v1"), upstream_factory(dark, "v2")
    env = envoy_factory(plugin_config(), primary=up1, clusters={"dark": up2}, stats_tags=[],
                        name="envoy-untagged")
    prom = prometheus_factory([env])
    prom.wait_targets_up(1)
    prom.wait_query('count({__name__="darklaunch_orders_v2_shadowed"})', lambda v: len(v) == 1,
                    what="the untagged series scraped")
    code, rep = report_json("--prometheus", prom.url)
    assert (code, rep["verdict"], rep["launches"]) == (3, "INCONCLUSIVE", [])
    assert len(rep["warnings"]) == 1
    warning = rep["warnings"][0]
    assert warning.startswith("Prometheus has darklaunch series without a launch label (darklaunch_")
    assert "envoy/stats_config.yaml" in warning
    proc = run_report("--prometheus", prom.url)
    assert f"WARNING: {warning}" in proc.stdout
