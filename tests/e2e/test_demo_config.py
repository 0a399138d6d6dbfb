"""The shipped envoy/demo.yaml and `make demo`, with the real module."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import harness

DEMO_DIR = harness.REPO_ROOT / "demo"
sys.path.insert(0, str(DEMO_DIR))

import services  # noqa: E402

LAUNCH = "orders-v2"


def _free_ports() -> dict:
    return {name: harness.free_port() for name in harness.DEMO_PORTS}


def test_demo_yaml_validates(envoy_path, wasm_path, tmp_path):
    config = tmp_path / "demo.yaml"
    config.write_text(harness.render_demo_yaml(_free_ports(), wasm_path))
    code, out = harness.Envoy.validate(config, envoy_path)
    assert code == 0, out


def test_validate_mode_runs_the_plugin_configuration(envoy_path, wasm_path, tmp_path):
    # envoy --mode validate loads the VM and calls on_configure: a configuration
    # the filter refuses fails validation, with the JSON path in the output.
    text = harness.render_demo_yaml(_free_ports(), wasm_path)
    bad = text.replace('"percent": 50,', '"percent": 150,')
    assert bad != text
    config = tmp_path / "bad.yaml"
    config.write_text(bad)
    code, out = harness.Envoy.validate(config, envoy_path)
    assert code != 0
    assert "launches[0].sample.percent" in out
    assert "Unable to create Wasm plugin darklaunch" in out


def test_demo_yaml_serves_and_labels_stats(envoy_path, wasm_path, tmp_path):
    ports = _free_ports()
    config = tmp_path / "demo.yaml"
    config.write_text(harness.render_demo_yaml(ports, wasm_path))
    v1, v2 = services.start(ports["v1"], ports["v2"])
    env = harness.Envoy(config, ports["admin"], ports["listener"], envoy_path=envoy_path,
                        workdir=tmp_path / "envoy")
    try:
        env.start()
        with env.client() as c:
            for path in ("/api/items/7", "/api/items/23", "/api/slow", "/api/items/1"):
                r = c.get(path, headers={"x-dark-launch": "on"})
                assert r.status == 200 and r.header("x-served-by") == "v1"
            r = c.get("/health")
            assert r.status == 200
        v2.wait_for_count(4)
        stats = env.wait_settled(LAUNCH)
        assert stats["matched"] == 4 and stats["shadowed"] == 4 and stats["forced"] == 4
        # Every demo answer carries a random meta.request_token (not ignored),
        # and 4 pairs are too few for A/A learning (5 A/A pairs at least):
        # item 1 differs only there, and that is still a mismatch.
        assert stats["compared"] == 4 and stats["mismatch"] == 4
        assert stats.get("noise", 0) == 0
        # Item 23 answers 500 on the dark side: a status mismatch and nothing
        # else (its body and headers differ too, but are not counted).
        assert stats["mismatch_kind.status"] == 1
        assert stats["mismatch_kind.headers"] == 1
        assert stats["header_mismatch.content-type"] == 1
        assert stats["mismatch_kind.body"] == 3
        assert stats["dark_response.5xx"] == 1 and stats["dark_response.2xx"] == 3
        # Per-field counters: the token in the three other pairs, the price of 7.
        assert stats["field_mismatch./meta/request_token"] == 3
        assert stats["field_mismatch./price"] == 1
        assert services.expected_fields("/api/items/23") == set()
        assert not [k for k, v in stats.items() if k.startswith("field_mismatch.") and v
                    and k not in ("field_mismatch./meta/request_token",
                                  "field_mismatch./price")], stats

        samples = harness.parse_prometheus(env.prometheus())
        got = {(n, tuple(sorted(lab.items()))): v for n, lab, v in samples
               if n.startswith("darklaunch_")}
        L = ("launch", LAUNCH)
        assert got[("darklaunch_shadowed", (L,))] == "4"
        assert got[("darklaunch_matched", (L,))] == "4"
        assert got[("darklaunch_dark_response", (("class", "5xx"), L))] == "1"
        assert got[("darklaunch_primary_response", (("class", "2xx"), L))] == "4"
        assert got[("darklaunch_mismatch_kind", (("kind", "status"), L))] == "1"
        assert got[("darklaunch_field_mismatch", (L, ("path", "/price")))] == "1"
        assert got[("darklaunch_field_mismatch", (L, ("path", "/meta/request_token")))] == "3"
        assert got[("darklaunch_header_mismatch", (("header", "content-type"), L))] == "1"
        assert ("darklaunch_skipped", (L, ("reason", "sampled_out"))) in got
        assert ("darklaunch_compare_skipped", (L, ("reason", "dark_failed"))) in got
        assert ("darklaunch_in_flight", (L,)) in got
        assert ("darklaunch_primary_ms_count", (L,)) in got
        assert any(n == "darklaunch_dark_ms_bucket" and lab.get("launch") == LAUNCH
                   for n, lab, _ in samples)
        # envoy/stats_config.yaml's latency buckets (Envoy's defaults have no 2 or 20)
        bounds = {lab.get("le") for n, lab, _ in samples if n == "darklaunch_dark_ms_bucket"}
        assert {"2", "20", "60000"} <= bounds, bounds
        # every darklaunch series carries its launch as a label, never in the
        # name, but the process-wide darklaunch_config_invalid
        assert all(lab.get("launch") in (LAUNCH, "catalog-v2") for n, lab, _ in samples
                   if n.startswith("darklaunch_") and n != "darklaunch_config_invalid")
        # The gRPC launch's code families, labelled too.
        assert got[("darklaunch_dark_grpc", (("code", "ok"), ("launch", "catalog-v2")))] == "0"
        assert got[("darklaunch_config_invalid", ())] == "0"

        logs = env.mismatch_logs()
        by_path = {m["path"]: m for m in logs}
        assert set(by_path) == {"/api/items/1", "/api/items/7", "/api/items/23", "/api/slow"}
        assert by_path["/api/items/1"]["paths"] == ["/meta/request_token"]
        assert "/price" in by_path["/api/items/7"]["paths"]
    finally:
        env.stop()
        v1.stop()
        v2.stop()


def _section(out: str, title: str) -> str:
    """The lines of ``out`` from the one starting with ``title`` to the next blank line."""
    m = re.search(rf"^{re.escape(title)}.*?(?=\n\n|\Z)", out, re.MULTILINE | re.DOTALL)
    assert m, f"no {title!r} section in:\n{out}"
    return m.group(0)


def test_make_demo_script(envoy_path, wasm_path):
    env = dict(os.environ, ENVOY_BIN=envoy_path, DARKLAUNCH_WASM=str(wasm_path),
               DEMO_REQUESTS="600")
    proc = subprocess.run([sys.executable, str(DEMO_DIR / "run.py")], cwd=harness.REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "error:" not in out, out
    assert "600 x 200 from v1" in out, out

    def observed_predicted(label: str) -> tuple:
        m = re.search(rf"^{re.escape(label)}\s+(\d+)\s.*\(predicted (\d+)\)", out,
                      re.MULTILINE)
        assert m, f"no {label!r} line with a prediction in:\n{out}"
        return int(m.group(1)), int(m.group(2))

    # Exact: the sampling decisions, and mismatch + noise (every pair differs
    # somewhere: the token); which side of the learning moment a token-only
    # pair falls on is timing, so mismatch and noise are not exact each.
    for label in ("matched", "shadowed", "forced", "compared", "mismatch+noise",
                  "  status", "  content-type", "  /price"):
        got, want = observed_predicted(label)
        assert got == want, f"{label!r}: observed {got}, predicted {want}\n{out}"
    assert observed_predicted("forced") == (0, 0)
    compared = observed_predicted("compared")[0]
    # The real differences are all mismatches: at least that many.
    m = re.search(r"^mismatch\s+(\d+)\s.*\(predicted >= (\d+)", out, re.MULTILINE)
    assert m and int(m.group(1)) >= int(m.group(2)) > 0, out
    mismatch = int(m.group(1))
    m = re.search(r"^noise\s+(\d+)\s", out, re.MULTILINE)
    assert m, out
    assert mismatch + int(m.group(1)) == compared

    # Noise cancelled: pairs counted as noise, and the token learned (by at
    # least one worker; each Envoy worker learns on its own).
    noise = _section(out, "noise cancelled")
    m = re.match(r"noise cancelled\s+(\d+)\s", noise)
    assert m and int(m.group(1)) > 0, noise
    assert re.search(r"learned\s+/meta/request_token \(by [12] of 2 workers\)", noise), noise
    assert re.search(r"A/A copies\s+[1-9]\d*\s", noise), noise

    # Top diverging fields: at most 5, sorted, /price among them, with its
    # count and share of compared.
    top = _section(out, "top diverging fields").splitlines()[1:]
    assert 1 <= len(top) <= 5, top
    rows = [re.match(r"^  (/\S*)\s+(\d+)\s+(\d+\.\d)%", ln) for ln in top]
    assert all(rows), top
    counts = [int(r.group(2)) for r in rows]
    assert counts == sorted(counts, reverse=True), top
    price = {r.group(1): r for r in rows}.get("/price")
    assert price, top
    assert int(price.group(2)) == observed_predicted("  /price")[0] > 0
    assert float(price.group(3)) == round(100 * int(price.group(2)) / compared, 1)

    # Samples: captured within the minute's budget, the token's values
    # redacted, grouped by the inspector, and its HTML page written.
    m = re.search(r"^samples: (\d+) captured", out, re.MULTILINE)
    assert m and 0 < int(m.group(1)) <= 80, out  # 40 a minute; the run may span two
    view = out.split("\nsamples: ", 1)[1].split("\nrollout gate:", 1)[0]
    assert "/meta/request_token" in view and "[redacted] → [redacted]" in view, view
    assert "200 → 500" in view, view
    page = harness.REPO_ROOT / ".run" / "demo" / "samples.html"
    assert page.is_file() and f"open {page}" in view, view
    log = (harness.REPO_ROOT / ".run" / "demo" / "envoy.log").read_text()
    samples = harness.parse_sample_lines(log)
    assert len(samples) == int(m.group(1))
    for s in samples:
        for d in s["differences"]:
            if d["field"] == "/meta/request_token":
                assert d.get("redacted") is True and "primary" not in d, d
