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
        assert stats["compared"] == 4 and stats["mismatch"] == 3
        assert stats["mismatch_kind.status"] == 1
        assert stats["mismatch_kind.headers"] == 1
        assert stats["dark_response.5xx"] == 1 and stats["dark_response.2xx"] == 3

        samples = harness.parse_prometheus(env.prometheus())
        got = {(n, tuple(sorted(lab.items()))): v for n, lab, v in samples
               if n.startswith("darklaunch_")}
        L = ("launch", LAUNCH)
        assert got[("darklaunch_shadowed", (L,))] == "4"
        assert got[("darklaunch_matched", (L,))] == "4"
        assert got[("darklaunch_dark_response", (("class", "5xx"), L))] == "1"
        assert got[("darklaunch_primary_response", (("class", "2xx"), L))] == "4"
        assert got[("darklaunch_mismatch_kind", (("kind", "status"), L))] == "1"
        assert ("darklaunch_skipped", (L, ("reason", "sampled_out"))) in got
        assert ("darklaunch_compare_skipped", (L, ("reason", "dark_failed"))) in got
        assert ("darklaunch_in_flight", (L,)) in got
        assert ("darklaunch_primary_ms_count", (L,)) in got
        assert any(n == "darklaunch_dark_ms_bucket" and lab.get("launch") == LAUNCH
                   for n, lab, _ in samples)
        # every darklaunch series carries its launch as a label, never in the name
        assert all(lab.get("launch") == LAUNCH for n, lab, _ in samples
                   if n.startswith("darklaunch_"))

        logs = env.mismatch_logs()
        assert {m["path"] for m in logs} == {"/api/items/7", "/api/items/23", "/api/slow"}
    finally:
        env.stop()
        v1.stop()
        v2.stop()


def test_make_demo_script(envoy_path, wasm_path):
    env = dict(os.environ, ENVOY_BIN=envoy_path, DARKLAUNCH_WASM=str(wasm_path),
               DEMO_REQUESTS="200")
    proc = subprocess.run([sys.executable, str(DEMO_DIR / "run.py")], cwd=harness.REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "200 x 200 from v1" in out or re.search(r"\d+ x 200 from v1", out), out
    for stat in ("matched", "shadowed", "mismatch"):
        m = re.search(rf"^{stat}\s+(\d+)\s.*\(predicted (\d+)\)", out, re.MULTILINE)
        assert m, f"no {stat} line in:\n{out}"
        assert m.group(1) == m.group(2), f"{stat}: observed {m.group(1)}, predicted {m.group(2)}"
