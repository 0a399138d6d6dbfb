"""darklaunch-report against real Envoys running the filter.

Each test drives a known mixture through Envoy (FAIL_CLOSED, loopback
upstreams), waits until the launch has settled and the latency histograms
have been flushed, runs the built ``darklaunch-report`` binary and checks
that its JSON carries exactly the numbers of Envoy's own /stats, the verdict
and the exit code (0 PASS, 1 MARGINAL, 2 FAIL, 3 INCONCLUSIVE, 4 error).

The binary: DARKLAUNCH_REPORT, else ``cargo build -p darklaunch-report`` once
per session (a no-op when up to date; ``make e2e`` builds it first) and
``target/debug/darklaunch-report``.

Hooks for a Prometheus end-to-end test: ``run_report("--prometheus", url,
"--json", ...)`` runs the binary, and ``assert_report_matches_stats(
launch_report, stats)`` checks one launch of the JSON against summed
``Envoy.launch_stats()`` dicts, e.g.::

    code, rep = report_json("--prometheus", prom.url, "--launch", "orders-v2")
    assert_report_matches_stats(rep["launches"][0], sum_stats(a.launch_stats(L), b.launch_stats(L)))
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import harness
from harness import Reply, sum_prefix

BIN_ENV = "DARKLAUNCH_REPORT"
Z95 = 1.959963984540054


# --------------------------------------------------------------------------
# Running the binary
# --------------------------------------------------------------------------

def report_bin() -> Path:
    env = os.environ.get(BIN_ENV)
    if env:
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR", harness.REPO_ROOT / "target"))
    return target / "debug" / "darklaunch-report"


@pytest.fixture(scope="session")
def report_path() -> Path:
    if not os.environ.get(BIN_ENV):
        proc = subprocess.run(["cargo", "build", "--quiet", "-p", "darklaunch-report"],
                              cwd=harness.REPO_ROOT, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail("cargo build -p darklaunch-report failed:\n" + proc.stderr[-3000:],
                        pytrace=False)
    path = report_bin()
    if not path.is_file():
        pytest.fail(f"darklaunch-report not found at {path}: cargo build -p darklaunch-report "
                    f"or set {BIN_ENV}", pytrace=False)
    return path


def run_report(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Runs darklaunch-report with ``args``; never raises on a non-zero exit."""
    return subprocess.run([str(report_bin()), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=harness.REPO_ROOT)


def report_json(*args: str) -> tuple[int, dict]:
    """(exit code, parsed JSON) of ``darklaunch-report --json args...``."""
    proc = run_report("--json", *args)
    assert proc.returncode in (0, 1, 2, 3), (proc.returncode, proc.stderr)
    return proc.returncode, json.loads(proc.stdout)


# --------------------------------------------------------------------------
# Expected numbers
# --------------------------------------------------------------------------

def wilson(x: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval, computed independently of the Rust code."""
    p = x / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z / d * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (0.0 if x == 0 else max(0.0, c - h)), (1.0 if x == n else min(1.0, c + h))


def sum_stats(*stats: dict) -> dict:
    """Adds several ``launch_stats()`` dicts key by key."""
    total: Counter = Counter()
    for s in stats:
        total.update(s)
    return dict(total)


def family(stats: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in stats.items() if k.startswith(prefix)}


def assert_report_matches_stats(rep: dict, s: dict) -> None:
    """One launch of the report's JSON against a ``launch_stats()`` dict (or
    a sum of several): every counter and the derived rates."""
    for key in ("matched", "shadowed", "forced", "compared", "mismatch", "noise", "in_flight",
                "breaker_open"):
        assert rep[key] == s.get(key, 0), (key, rep[key], s.get(key))
    for fam, key in (("skipped.", "skipped"), ("compare_skipped.", "compare_skipped"),
                     ("dark_response.", "dark_response"),
                     ("primary_response.", "primary_response"),
                     ("mismatch_kind.", "mismatch_kinds")):
        assert rep[key] == family(s, fam), key
    fields = {k: v for k, v in family(s, "field_mismatch.").items() if v}
    assert {f["path"]: f["count"] for f in rep["fields"]} == fields
    counts = [f["count"] for f in rep["fields"]]
    assert counts == sorted(counts, reverse=True), "fields largest first"
    compared, mismatch = s.get("compared", 0), s.get("mismatch", 0)
    div = rep["divergence"]
    assert (div["mismatch"], div["compared"]) == (mismatch, compared)
    if compared:
        low, high = wilson(mismatch, compared)
        assert div["rate"] == pytest.approx(mismatch / compared, abs=1e-12)
        assert div["low"] == pytest.approx(low, abs=1e-9)
        assert div["high"] == pytest.approx(high, abs=1e-9)
    dark = family(s, "dark_response.")
    primary = family(s, "primary_response.")
    dark_err = dark.get("5xx", 0) + dark.get("timeout", 0) + dark.get("reset", 0)
    primary_err = primary.get("5xx", 0) + primary.get("reset", 0)
    errors = rep["errors"]
    assert (errors["dark"]["count"], errors["dark"]["total"]) == (dark_err, sum(dark.values()))
    assert ((errors["primary"]["count"], errors["primary"]["total"])
            == (primary_err, sum(primary.values())))
    if sum(dark.values()) and sum(primary.values()):
        assert errors["delta"] == pytest.approx(
            dark_err / sum(dark.values()) - primary_err / sum(primary.values()), abs=1e-12)


def assert_latency_matches(rep: dict, hists: dict, launch: str) -> None:
    for side in ("primary", "dark"):
        h = hists[f"wasmcustom.darklaunch.{launch}.{side}_ms"]
        for q in ("p50", "p95", "p99"):
            assert rep["latency_ms"][side][q] == pytest.approx(h[q]), (side, q)


def wait_latency(env: harness.Envoy, launch: str) -> dict:
    """Waits until both histograms of the launch have quantiles, then one
    more stats flush so the report reads the same values."""
    def ready():
        h = env.histograms()
        return all((h.get(f"wasmcustom.darklaunch.{launch}.{side}_ms") or {}).get("p95")
                   is not None for side in ("primary", "dark"))
    env.wait_until(ready, timeout=15, what=f"{launch} latency quantiles")
    time.sleep(1.2)  # the harness flushes every second: quantiles final
    return env.histograms()


def launch_cfg(name: str = "l", **kw) -> dict:
    base = {"name": name, "dark_cluster": "dark", "sample": {"percent": 100},
            "compare": {"body": "json"}}
    base.update(kw)
    return {"launches": [base]}


def doc(path: str) -> dict:
    return {"path": path, "price": 10, "items": [{"sku": "a", "qty": 1}]}


def primary_handler(req) -> Reply:
    return Reply.json(doc(req.path))


def mixed_dark(req) -> Reply:
    """By the path's kind: same answer, another /price, another
    /items/*/sku, or a 500."""
    kind = req.path.split("/")[2]
    d = doc(req.path)
    if kind == "price":
        d["price"] = 11
    elif kind == "sku":
        d["items"][0]["sku"] = "b"
    elif kind == "fail":
        return Reply.json(d, status=500)
    return Reply.json(d)


def drive(env: harness.Envoy, mixture: dict) -> int:
    n = 0
    with env.client() as c:
        for kind, count in mixture.items():
            for i in range(count):
                path = f"/api/{kind}/{i}"
                r = c.get(path)
                assert r.status == 200 and r.json() == doc(path)
                n += 1
    return n


# Loopback latencies are ~1 ms but the machine may be busy (other suites,
# fuzzers): the e2e checks the latency rule in its own test with a dark side
# that is slower on purpose, and gives the others room.
ROOMY_LATENCY = ("--p95-slack-ms", "50")


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def test_clean_launch_pass_marginal_inconclusive(report_path, upstream_factory, envoy_factory):
    up1 = upstream_factory(primary_handler, "v1")
    up2 = upstream_factory(primary_handler, "v2")
    env = envoy_factory(launch_cfg(), primary=up1, clusters={"dark": up2})
    assert drive(env, {"same": 120}) == 120
    s = env.wait_settled("l")
    assert s["compared"] == 120 and s["mismatch"] == 0
    hists = wait_latency(env, "l")
    admin = env.admin_url().rstrip("/")

    # 0/120: Wilson [0, 3.10%] is under 5%: PASS.
    code, rep = report_json("--envoy", admin, "--max-divergence", "0.05", *ROOMY_LATENCY)
    assert (code, rep["verdict"], rep["exit_code"]) == (0, "PASS", 0)
    assert rep["schema"] == "darklaunch-report/v1"
    assert rep["source"] == {"kind": "envoy", "endpoints": [admin], "window": None,
                             "selector": None}
    assert rep["thresholds"]["max_divergence"] == 0.05
    assert [l["launch"] for l in rep["launches"]] == ["l"]
    lr = rep["launches"][0]
    assert lr["verdict"] == "PASS" and lr["reasons"] == []
    assert_report_matches_stats(lr, s)
    assert_latency_matches(lr, hists, "l")
    assert lr["divergence"]["high"] == pytest.approx(wilson(0, 120)[1]) and lr["divergence"]["high"] < 0.05
    assert lr["errors"]["delta"] == 0 and lr["errors"]["check"] == "pass"
    assert lr["latency_ms"]["check"] == "pass"

    # Default 1%: the interval [0, 3.10%] contains it: MARGINAL, exit 1.
    code, rep = report_json("--envoy", admin, *ROOMY_LATENCY)
    assert (code, rep["verdict"]) == (1, "MARGINAL")
    assert rep["launches"][0]["divergence"]["check"] == "marginal"

    # Fewer pairs than --min-compared withhold a PASS: INCONCLUSIVE, exit 3.
    code, rep = report_json("--envoy", admin, "--min-compared", "121", "--max-divergence", "0.05",
                            *ROOMY_LATENCY)
    assert (code, rep["verdict"]) == (3, "INCONCLUSIVE")
    assert rep["launches"][0]["reasons"] == ["120 compared pairs, fewer than min-compared 121"]
    code, rep = report_json("--envoy", admin, "--min-compared", "120", "--max-divergence", "0.05",
                            *ROOMY_LATENCY)
    assert code == 0, "exactly min-compared pairs are judged"

    # A launch the Envoy does not have: reported, INCONCLUSIVE.
    code, rep = report_json("--envoy", admin, "--launch", "nope")
    assert code == 3 and rep["launches"][0]["launch"] == "nope"
    assert rep["launches"][0]["compared"] == 0

    # The table says the same, with the exit code.
    proc = run_report("--envoy", admin, "--max-divergence", "0.05", *ROOMY_LATENCY)
    assert proc.returncode == 0, proc.stderr
    assert "launch l " in proc.stdout and "verdict PASS (exit 0)" in proc.stdout
    assert "0.00% (0 of 120)" in proc.stdout


def test_diverging_launch_fails_with_fields_kinds_and_errors(report_path, upstream_factory,
                                                             envoy_factory):
    up1 = upstream_factory(primary_handler, "v1")
    up2 = upstream_factory(mixed_dark, "v2")
    env = envoy_factory(launch_cfg(), primary=up1, clusters={"dark": up2})
    mixture = {"same": 90, "price": 12, "sku": 5, "fail": 3}
    drive(env, mixture)
    s = env.wait_settled("l")
    assert s["compared"] == 110 and s["mismatch"] == 20
    hists = wait_latency(env, "l")
    admin = env.admin_url()

    code, rep = report_json("--envoy", admin, *ROOMY_LATENCY)
    assert (code, rep["verdict"], rep["exit_code"]) == (2, "FAIL", 2)
    lr = rep["launches"][0]
    assert_report_matches_stats(lr, s)
    assert_latency_matches(lr, hists, "l")
    # 20/110 = 18.2%, Wilson low 12.1% > 1%.
    assert lr["divergence"]["check"] == "fail"
    assert lr["divergence"]["low"] == pytest.approx(wilson(20, 110)[0]) and lr["divergence"]["low"] > 0.01
    assert lr["mismatch_kinds"] == {"status": 3, "headers": 0, "body": 17, "grpc_status": 0}
    assert [(f["path"], f["count"]) for f in lr["fields"]] == [("/price", 12), ("/items/*/sku", 5)]
    assert lr["fields"][0]["share"] == pytest.approx(12 / 20)
    # Dark 3 × 5xx of 110 vs primary 0: +2.73 pp > 0.5 pp.
    assert lr["errors"]["dark"]["count"] == 3 and lr["errors"]["dark"]["total"] == 110
    assert lr["errors"]["delta"] == pytest.approx(3 / 110) and lr["errors"]["check"] == "fail"
    assert any("lower bound exceeds" in r for r in lr["reasons"])
    assert any("+2.73 pp" in r for r in lr["reasons"])

    # Lenient thresholds turn the same numbers into a PASS: 20/110 has
    # Wilson high 26.2% < 30%, error delta 2.7 pp < 5 pp.
    code, rep = report_json("--envoy", admin, "--max-divergence", "0.30", "--max-error-delta",
                            "0.05", *ROOMY_LATENCY)
    assert (code, rep["verdict"]) == (0, "PASS")
    # 20% sits inside [12.1%, 26.2%]: MARGINAL.
    code, rep = report_json("--envoy", admin, "--max-divergence", "0.20", "--max-error-delta",
                            "0.05", *ROOMY_LATENCY)
    assert (code, rep["verdict"]) == (1, "MARGINAL")

    proc = run_report("--envoy", admin, "--top", "1")
    assert proc.returncode == 2
    assert "/price" in proc.stdout and "/items/*/sku" not in proc.stdout
    assert "verdict FAIL (exit 2)" in proc.stdout


def test_two_envoys_are_summed(report_path, upstream_factory, envoy_factory):
    up1 = upstream_factory(primary_handler, "v1")
    up2 = upstream_factory(mixed_dark, "v2")
    a = envoy_factory(launch_cfg(), primary=up1, clusters={"dark": up2}, name="envoy-a")
    b = envoy_factory(launch_cfg(), primary=up1, clusters={"dark": up2}, name="envoy-b")
    drive(a, {"same": 60, "price": 4, "fail": 1})
    drive(b, {"same": 40, "sku": 3, "price": 1})
    sa, sb = a.wait_settled("l"), b.wait_settled("l")
    ha, hb = wait_latency(a, "l"), wait_latency(b, "l")
    total = sum_stats(sa, sb)
    assert total["compared"] == 109 and total["mismatch"] == 9

    code, rep = report_json("--envoy", a.admin_url(), "--envoy", b.admin_url(),
                            "--min-compared", "100", *ROOMY_LATENCY)
    lr = rep["launches"][0]
    assert_report_matches_stats(lr, total)
    assert [(f["path"], f["count"]) for f in lr["fields"]] == [("/price", 5), ("/items/*/sku", 3)]
    # Quantiles across Envoys: the larger of the two.
    for side in ("primary", "dark"):
        for q in ("p50", "p95", "p99"):
            name = f"wasmcustom.darklaunch.l.{side}_ms"
            assert lr["latency_ms"][side][q] == pytest.approx(max(ha[name][q], hb[name][q]))
    # 9/109 = 8.3%: Wilson low 4.4% > 1%: FAIL, although Envoy B alone
    # (4/44, low 3.6%) and A alone would each fail too; the sum is judged.
    assert (code, rep["verdict"]) == (2, "FAIL")
    assert rep["source"]["endpoints"] == [a.admin_url(), b.admin_url()]
    # One Envoy alone has fewer than 100 pairs, but 4/44 is over 1% with 95%
    # confidence already: --min-compared only withholds a PASS, so FAIL.
    code, rep = report_json("--envoy", b.admin_url(), "--min-compared", "100", *ROOMY_LATENCY)
    assert rep["launches"][0]["compared"] == sb["compared"] == 44
    assert (code, rep["verdict"]) == (2, "FAIL")
    assert not any("min-compared" in r for r in rep["launches"][0]["reasons"])


def test_slower_dark_fails_the_latency_check(report_path, upstream_factory, envoy_factory):
    up1 = upstream_factory(primary_handler, "v1")
    up2 = upstream_factory(lambda req: Reply.json(doc(req.path), delay=0.15), "v2")
    env = envoy_factory(launch_cfg(timeout_ms=5000), primary=up1, clusters={"dark": up2})
    drive(env, {"same": 30})
    env.wait_settled("l", timeout=30)
    wait_latency(env, "l")
    admin = env.admin_url()
    code, rep = report_json("--envoy", admin, "--min-compared", "30", "--max-divergence", "0.2")
    lr = rep["launches"][0]
    assert lr["latency_ms"]["dark"]["p95"] >= 140
    assert (code, lr["latency_ms"]["check"]) == (2, "fail")
    assert any("dark p95" in r for r in lr["reasons"])
    # `--max-p95-ratio inf` turns the check off.
    code, rep = report_json("--envoy", admin, "--min-compared", "30", "--max-divergence", "0.2",
                            "--max-p95-ratio", "inf")
    assert (code, rep["launches"][0]["latency_ms"]["check"]) == (0, "skipped")
    assert rep["thresholds"]["max_p95_ratio"] is None


def test_watch_serve_and_errors(report_path, upstream_factory, envoy_factory):
    up1 = upstream_factory(primary_handler, "v1")
    up2 = upstream_factory(mixed_dark, "v2")
    env = envoy_factory(launch_cfg(), primary=up1, clusters={"dark": up2})
    drive(env, {"same": 8, "price": 2})
    env.wait_settled("l")
    admin = env.admin_url()

    # --watch: the table twice, each after clearing the screen; the exit code
    # is the last refresh's (2 of 10 pairs differ: FAIL despite 10 < 100).
    proc = run_report("--envoy", admin, "--watch", "0.2", "--watch-count", "2")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.count("\x1b[H\x1b[2J") == 2
    assert proc.stdout.count("launch l ") == 2 and "refresh #2" in proc.stdout
    # --watch --json: one JSON document per line.
    proc = run_report("--envoy", admin, "--json", "--watch", "0.1", "--watch-count", "3",
                      "--min-compared", "10")
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 3
    assert all(json.loads(line)["verdict"] == "FAIL" for line in lines)

    # --serve: /report always 200 (Argo web metric), /gate 200/503 (Flagger).
    port = harness.free_port()
    server = subprocess.Popen([str(report_path), "--envoy", admin, "--serve",
                               f"127.0.0.1:{port}", "--min-compared", "10"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        harness.wait_until(lambda: harness.http_request(
            f"http://127.0.0.1:{port}/healthz").status == 200, timeout=10, what="--serve")
        r = harness.http_request(f"http://127.0.0.1:{port}/report")
        assert r.status == 200 and r.json()["verdict"] == "FAIL"
        assert r.json()["launches"][0]["compared"] == 10
        r = harness.http_request(f"http://127.0.0.1:{port}/gate", method="POST",
                                 body=b'{"name":"podinfo","phase":"Progressing"}')
        assert r.status == 503 and r.json()["verdict"] == "FAIL"
        r = harness.http_request(f"http://127.0.0.1:{port}/gate?launch=l")
        assert r.status == 503
    finally:
        server.terminate()
        server.wait(10)
    assert "serving on http://127.0.0.1:" in server.stderr.read()

    # Unreachable Envoy, bad arguments: exit 4 and a message.
    proc = run_report("--envoy", f"http://127.0.0.1:{harness.free_port()}", "--timeout", "2")
    assert proc.returncode == 4 and "connect" in proc.stderr
    proc = run_report("--envoy", admin, "--max-divergence", "5")
    assert proc.returncode == 4 and "between 0 and 1" in proc.stderr
