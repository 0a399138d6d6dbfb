"""Every way a configuration reaches darklaunch, with a valid and an invalid
one, under both settings of DARKLAUNCH_INVALID_CONFIG (the VM's environment):

* ``refuse`` (the default): Envoy refuses an invalid configuration, at
  start-up and in ``envoy --mode validate``; an update is rejected and the
  previous configuration keeps running;
* ``keep_last_good``: no delivery path of an invalid configuration changes a
  single client answer. The plugin logs the error (the JSON path, once for
  the process), runs the last valid configuration the process ran or passes
  everything through, and ``darklaunch.config_invalid`` is 1 meanwhile.

Paths: static bootstrap, LDS update (filesystem LDS), ECDS at start and ECDS
update (filesystem ECDS, as istiod delivers a WasmPlugin). Also here: a
configuration that is not a JSON string, and a launch's expiry.
"""

from __future__ import annotations

import re
import time

import pytest

import harness
from harness import Reply, istio
from test_darklaunch import assert_invariants, config, launch

KEEP = {"DARKLAUNCH_INVALID_CONFIG": "keep_last_good"}
GOOD = config(launch())
GOOD_TOO = config(launch("l2"))
BAD = config(launch(sample={"percent": 150}))
ERROR = "launches[0].sample.percent: must be between 0 and 100"
PRIMARY = {"v": 1}


def primary_up(upstream_factory):
    return upstream_factory(Reply.json(PRIMARY, headers=[("x-v", "1")]), "v1")


def assert_primary_answers(env, n: int, path: str = "/p") -> None:
    """n requests, each forced past sampling: every answer is the primary's."""
    with env.client() as c:
        for i in range(n):
            r = c.get(f"{path}/{i}", headers={"x-dark-launch": "on"})
            assert (r.status, r.json(), r.header("x-v")) == (200, PRIMARY, "1"), (r.status, r.body)


def error_lines(env) -> list:
    return [ln for ln in env.log_text().splitlines() if ERROR in ln and "[error]" in ln]


def gauge(env) -> int:
    return env.stat("darklaunch.config_invalid", default=-1)


# --------------------------------------------------------------------------
# Static bootstrap and envoy --mode validate


def test_refuse_still_refuses_at_start_up_and_in_validate_mode(envoy_path, wasm_path,
                                                               envoy_factory):
    cfg = harness.bootstrap(harness.free_port(), harness.free_port(), plugin_config=BAD,
                            wasm_path=wasm_path, clusters={"dark": None})
    code, out = harness.Envoy.validate(cfg, envoy_path)
    assert code != 0 and ERROR in out
    env = envoy_factory(BAD, clusters={"dark": None}, start=False)
    try:
        env.start(timeout=30)
        started = True
    except harness.EnvoyError:
        started = False
    assert not started, "refuse: Envoy must not start with a configuration darklaunch rejects"
    assert ERROR in env.log_text()
    # keep_last_good is a choice of the operator, and validate mode honours it.
    cfg = harness.bootstrap(harness.free_port(), harness.free_port(), plugin_config=BAD,
                            wasm_path=wasm_path, clusters={"dark": None}, vm_env=KEEP)
    code, out = harness.Envoy.validate(cfg, envoy_path)
    assert code == 0, out


def test_static_bootstrap_keep_last_good(upstream_factory, envoy_factory):
    up1, up2 = primary_up(upstream_factory), upstream_factory(Reply.json(PRIMARY), "v2")
    # Invalid at start, no valid configuration ever: every request passes through.
    env = envoy_factory(BAD, primary=up1, clusters={"dark": up2}, vm_env=KEEP)
    assert_primary_answers(env, 10)
    assert up1.count() == 10 and up2.count() == 0
    assert gauge(env) == 1
    assert env.stats("wasmcustom.darklaunch.l.") == {}, "the invalid launch never ran"
    lines = error_lines(env)
    assert len(lines) == 1, lines  # main thread and both workers: said once
    assert ("running no configuration: every request passes through untouched "
            "(DARKLAUNCH_INVALID_CONFIG=keep_last_good)") in lines[0]
    env.wait_log("darklaunch: no valid configuration yet: every request passes through")
    env.stop()
    # Valid at start under keep_last_good: it runs, and says what it runs, once.
    up1.clear()
    env = envoy_factory(GOOD, primary=up1, clusters={"dark": up2}, vm_env=KEEP)
    assert_primary_answers(env, 10)
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["shadowed"] == 10 and s["compared"] == 10 and up2.count() == 10
    assert gauge(env) == 0
    line = "darklaunch: configured 1 launches: l (dark cluster dark, 100%)"
    env.wait_log(re.escape(line))
    assert env.log_text().count(line) == 1


# --------------------------------------------------------------------------
# LDS


def test_lds_update_to_an_invalid_config(upstream_factory, envoy_factory):
    up1, up2 = primary_up(upstream_factory), upstream_factory(Reply.json(PRIMARY), "v2")
    for policy in ("refuse", "keep_last_good"):
        vm_env = {"DARKLAUNCH_INVALID_CONFIG": policy}
        env = envoy_factory(GOOD, primary=up1, clusters={"dark": up2}, lds=True, vm_env=vm_env,
                            name=f"lds-{policy}")
        env.wait_until(lambda: env.lds_counters().get("update_success", 0) == 1,
                       what="first LDS version")
        up2.clear()
        assert_primary_answers(env, 5)
        env.set_plugin_config(BAD)
        if policy == "refuse":
            env.wait_until(lambda: env.lds_counters().get("update_rejected", 0) == 1,
                           what="the invalid listener rejected")
            assert gauge(env) == 0
        else:
            env.wait_until(lambda: env.lds_counters().get("update_success", 0) == 2,
                           what="the listener with the invalid config accepted")
            env.wait_until(lambda: gauge(env) == 1, what="config_invalid")
            assert len(error_lines(env)) == 1
            env.wait_log("running the last valid configuration")
        # Either way the previous configuration keeps shadowing, untouched answers.
        assert_primary_answers(env, 5, "/after")
        s = env.wait_settled("l")
        assert_invariants(s)
        assert s["shadowed"] == 10 and up2.count() == 10, (policy, s)
        # A valid update runs, and the gauge comes down.
        env.set_plugin_config(GOOD_TOO)
        env.wait_until(lambda: env.lds_counters().get("update_success", 0) >= 2,
                       what="the valid listener")
        env.wait_until(lambda: gauge(env) == 0, what="config_invalid back to 0")
        env.wait_until(lambda: _serves_new_listener(env), what="the new listener serving")
        assert env.launch_stats("l2")["shadowed"] >= 1
        env.stop()
        up1.clear()


def _serves_new_listener(env) -> bool:
    assert_primary_answers(env, 1, "/probe")
    return env.stat("darklaunch.l2.shadowed") > 0


# --------------------------------------------------------------------------
# ECDS, as istiod delivers a WasmPlugin


def _plugin(plugin_config: dict, policy: str = "keep_last_good") -> dict:
    return {
        "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "darklaunch", "namespace": "shop"},
        "spec": {"url": "file:///darklaunch.wasm", "pluginName": "darklaunch",
                 "failStrategy": "FAIL_OPEN", "pluginConfig": plugin_config,
                 "vmConfig": {"env": [{"name": "DARKLAUNCH_INVALID_CONFIG", "value": policy}]}},
    }


@pytest.mark.parametrize("first", ["invalid", "valid"])
def test_ecds_at_start_and_updates_with_keep_last_good(first, upstream_factory, envoy_path,
                                                        wasm_path, tmp_path):
    """The case that took a listener down: the first configuration a new pod
    gets is invalid. With keep_last_good every request is still the primary's.
    Then updates: valid (runs), invalid (the last valid one keeps running)."""
    up1, up2 = primary_up(upstream_factory), upstream_factory(Reply.json(PRIMARY), "v2")
    good, bad = _plugin(GOOD), _plugin(BAD)
    ecds = tmp_path / "ecds" / "darklaunch.json"
    ecds.parent.mkdir()
    istio.write_ecds(ecds, bad if first == "invalid" else good, wasm_path, "1")
    admin, listener = harness.free_port(), harness.free_port()
    cfg = istio.istio_bootstrap(good, wasm_path, admin, listener, primary=up1,
                                clusters={"dark": up2})
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    hcm["typed_config"]["http_filters"][0] = istio.ecds_http_filter(good, ecds)
    env = harness.Envoy(cfg, admin, listener, envoy_path=envoy_path,
                        workdir=tmp_path / "envoy", name=f"ecds-keep-{first}")
    prefix = "extension_config_discovery.http_filter.shop.darklaunch."

    def updates(kind: str) -> int:
        return env.stats(prefix + "update_").get(prefix + "update_" + kind, 0)

    try:
        env.start()
        env.wait_until(lambda: updates("success") == 1, what="ECDS config 1 accepted")
        assert updates("rejected") == 0
        assert_primary_answers(env, 10)  # not a single 500
        assert up1.count() == 10
        if first == "invalid":
            assert up2.count() == 0
            assert gauge(env) == 1
            assert len(error_lines(env)) == 1
        else:
            env.wait_until(lambda: up2.count() == 10, what="shadowed by config 1")
            assert gauge(env) == 0

        istio.write_ecds(ecds, good, wasm_path, "2")
        env.wait_until(lambda: updates("success") == 2, timeout=15, what="ECDS update 2")
        env.wait_until(lambda: gauge(env) == 0, what="config_invalid 0")
        shadowed = up2.count()
        assert_primary_answers(env, 5)
        env.wait_until(lambda: up2.count() == shadowed + 5, what="shadowed by config 2")

        istio.write_ecds(ecds, bad, wasm_path, "3")
        env.wait_until(lambda: updates("success") == 3, timeout=15, what="ECDS update 3")
        env.wait_until(lambda: gauge(env) == 1, what="config_invalid 1")
        assert_primary_answers(env, 5, "/after")
        env.wait_until(lambda: up2.count() == shadowed + 10,
                       what="the last valid configuration still shadows")
        s = env.wait_settled("l")
        assert_invariants(s)
        assert s["shadowed"] == shadowed + 10 and s["compared"] == s["shadowed"]
        assert up1.count() == 20
    finally:
        env.stop()


# --------------------------------------------------------------------------
# What Envoy hands over when the configuration is not a StringValue


def _bootstrap_with_configuration(wasm_path, configuration) -> dict:
    cfg = harness.bootstrap(harness.free_port(), harness.free_port(), plugin_config=GOOD,
                            wasm_path=wasm_path, clusters={"dark": None})
    wasm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["http_filters"][0]["typed_config"]["config"]
    if configuration is None:
        del wasm["configuration"]
    else:
        wasm["configuration"] = configuration
    return cfg


def test_a_configuration_that_is_not_a_json_string_says_what_it_must_be(envoy_path, wasm_path):
    must = ("the plugin `configuration` must be a google.protobuf.StringValue whose value is "
            "the JSON configuration")
    # Porting an Istio pluginConfig to plain Envoy: a Struct. Envoy hands the
    # module the Struct's serialized bytes.
    struct = {"@type": "type.googleapis.com/google.protobuf.Struct",
              "value": {"launches": [{"name": "l", "dark_cluster": "dark",
                                      "sample": {"percent": 5}}]}}
    code, out = harness.Envoy.validate(_bootstrap_with_configuration(wasm_path, struct),
                                       envoy_path)
    assert code != 0
    assert re.search(r"the configuration is \d+ bytes of binary data \(a serialized "
                     r"google\.protobuf\.Struct or other message\?\): " + re.escape(must), out), out
    # No configuration at all.
    code, out = harness.Envoy.validate(_bootstrap_with_configuration(wasm_path, None), envoy_path)
    assert code != 0
    assert f"the configuration is empty: {must}" in out, out


# --------------------------------------------------------------------------
# Expiry


def test_a_launch_stops_shadowing_at_its_expiry(upstream_factory, envoy_factory):
    up1, up2 = primary_up(upstream_factory), upstream_factory(Reply.json(PRIMARY), "v2")
    soon = time.time() + 3
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(soon))
    past = config(launch("old", expires="2020-01-01T00:00:00Z"), launch(expires=expires))
    env = envoy_factory(past, primary=up1, clusters={"dark": up2})
    assert_primary_answers(env, 3)
    s = env.wait_settled("l")
    assert s["shadowed"] == 3 and s["expired"] == 0
    old = env.wait_settled("old")
    assert old["matched"] == 3 and old["skipped.expired"] == 3 and old["shadowed"] == 0
    env.wait_until(lambda: env.stat("darklaunch.old.expired") == 1, what="old expired")
    env.wait_log(r"\[warning\].*darklaunch: launch 'old' expired at 2020-01-01T00:00:00Z: it no "
                 r"longer shadows; remove it from the configuration")
    # Past its time the other one stops too, whatever forces it.
    time.sleep(max(0.0, soon - time.time()) + 0.5)
    assert_primary_answers(env, 3, "/later")
    s = env.wait_settled("l")
    assert_invariants(s)
    assert s["shadowed"] == 3 and s["skipped.expired"] == 3
    env.wait_until(lambda: env.stat("darklaunch.l.expired") == 1, what="l expired")
    assert up2.count() == 3 and up1.count() == 6
