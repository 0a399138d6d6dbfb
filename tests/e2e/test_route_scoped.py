"""Route-scoped deployment: darklaunch in the HTTP filter chain, but Envoy
runs it only on the routes that enable it, so requests on every other route
never enter the wasm VM (issue #15).

The mechanism is Envoy's own (route-based filter chains): the HttpFilter is
declared ``disabled: true`` and a route (or virtual host) turns it on with a
``typed_per_filter_config`` entry under the filter's name holding an
``envoy.config.route.v3.FilterConfig`` whose ``config`` is an empty Any; or
the filter is on and a virtual host or route turns it off with
``FilterConfig{disabled: true}``. Each test runs in the Envoy of ENVOY_BIN,
so ``make e2e`` (1.40) and ``make e2e-compat`` (1.36) both run them.

The proof that the module never saw a request is its own ``matched``
counter: every launch here matches every path and every request is forced
(``x-dark-launch: on``, or ``users.always``), so a request that entered the
VM is counted; a control Envoy without the scoping counts them all.

Covered: envoy/route_scoped.yaml (loads, and does what its comments say),
the mechanism on a bootstrap of the harness (with the control), the two
mistakes its comments warn about (a FilterConfig without ``config``, a key
naming no filter), and examples/istio/route-scoped.yaml: its shape against
the WasmPlugin examples, and its patches applied as istiod applies them to
the inbound route configuration modelled on istiod's, with the plugin
delivered by ECDS under the name istiod gives it. Istio itself is not run.
"""

from __future__ import annotations

import copy
import json

import pytest

import harness
from harness import istio

FILTER_CONFIG = istio.FILTER_CONFIG
ENABLE = {"@type": FILTER_CONFIG, "config": {}}
DISABLE = {"@type": FILTER_CONFIG, "disabled": True}
FORCE = {"x-dark-launch": "on"}
LAUNCH = "everything"
ISTIO = harness.REPO_ROOT / "examples" / "istio"


def _json_reply(tag: str):
    def handler(req: harness.Request) -> harness.Reply:
        return harness.Reply.json({"path": req.path_only, "v": tag})
    return handler


def _every_path_launch() -> dict:
    """100%, no match rule: the launch takes every request it is given."""
    return {"name": LAUNCH, "dark_cluster": "dark", "sample": {"percent": 100},
            "compare": {"body": "json"}}


def _hcm(cfg: dict) -> dict:
    return cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]


def _scoped_bootstrap(v1, v2, scoping: str) -> tuple:
    """(admin port, listener port, bootstrap): routes ``/api/`` and
    ``/static/`` to the primary, nothing else (no catch-all route: other
    paths get Envoy's 404). ``scoping``:

    * ``off-by-default``: the filter declared ``disabled: true``, ``/api/``
      enables it (the deployment envoy/route_scoped.yaml ships);
    * ``on-by-default``: the filter on, ``/static/`` disables it;
    * ``none``: the filter on everywhere (the control);
    * ``wrong-key``: as off-by-default, but ``/api/`` enables a name no
      filter has."""
    admin, port = harness.free_port(), harness.free_port()
    cfg = harness.bootstrap(admin, port, primary_cluster=v1.address,
                            clusters={"dark": v2.address},
                            plugin_config={"launches": [_every_path_launch()]})
    hcm = _hcm(cfg)
    wasm = hcm["http_filters"][0]
    wasm["name"] = "darklaunch"
    api = {"match": {"prefix": "/api/"}, "route": {"cluster": "primary"}}
    static = {"match": {"prefix": "/static/"}, "route": {"cluster": "primary"}}
    if scoping in ("off-by-default", "wrong-key"):
        wasm["disabled"] = True
        key = "darklaunch" if scoping == "off-by-default" else "dark-launch"
        api["typed_per_filter_config"] = {key: ENABLE}
    elif scoping == "on-by-default":
        static["typed_per_filter_config"] = {"darklaunch": DISABLE}
    else:
        assert scoping == "none", scoping
    hcm["route_config"]["virtual_hosts"][0]["routes"] = [api, static]
    return admin, port, cfg


# Requests per kind of path: the enabled route, the other route, no route.
ENABLED = [f"/api/orders/{i}" for i in range(12)]
OTHER = [f"/static/app-{i}.js" for i in range(9)] + ["/static/"]
UNROUTED = ["/", "/health", "/nowhere/7"]


def _drive(env: harness.Envoy) -> None:
    with env.client() as c:
        for path in ENABLED + OTHER:
            r = c.get(path, headers=FORCE)
            assert r.status == 200 and r.json() == {"path": path, "v": "v1"}, (path, r.status)
        for path in UNROUTED:
            r = c.get(path, headers=FORCE)
            assert r.status == 404, (path, r.status)


@pytest.mark.parametrize("scoping", ["off-by-default", "on-by-default"])
def test_only_the_routes_that_enable_it_enter_the_vm(envoy_path, wasm_path, tmp_path,
                                                      upstream_factory, scoping):
    """A launch matching every path at 100%, every request forced: only the
    requests of routes that run the filter reach the module. The others are
    answered by the primary (or Envoy's 404) as usual, counted nowhere (no
    matched, no skipped), and nothing of them reaches the dark side. The
    control Envoy, same traffic without the scoping, counts and shadows
    every one of them: it is the route that keeps the module away, not the
    launch."""
    v1 = upstream_factory(_json_reply("v1"), "v1")
    v2 = upstream_factory(_json_reply("v1"), "v2")
    results = {}
    for label in (scoping, "none"):
        admin, port, cfg = _scoped_bootstrap(v1, v2, label)
        env = harness.Envoy(cfg, admin, port, envoy_path=envoy_path,
                            workdir=tmp_path / label, name=label)
        dark_before, primary_before = v2.count(), v1.count()
        try:
            env.start()
            # The filter is loaded and configured in both: it is in the chain.
            env.wait_log(r"darklaunch: configured 1 launch")
            _drive(env)
            routed = len(ENABLED) + len(OTHER)
            v1.wait_for_count(primary_before + routed)
            stats = env.wait_settled(LAUNCH, quiet=0.5)
            dark = [r.path_only for r in v2.requests()[dark_before:]]
            results[label] = (stats, dark, v1.count() - primary_before)
        finally:
            env.stop()

    stats, dark, primary = results[scoping]
    # Off by default, the module sees exactly the enabled route's requests.
    # On by default with /static/ turned off, it still sees every request no
    # route disables: here those matching no route at all (Envoy's 404s),
    # in a real configuration any route added later. Hence off by default.
    seen = ENABLED if scoping == "off-by-default" else ENABLED + UNROUTED
    n = len(seen)
    assert primary == len(ENABLED) + len(OTHER)  # every routed request answered, once
    assert stats["matched"] == n, stats
    assert stats["shadowed"] == n and stats["forced"] == n, stats
    # (a 404 of Envoy's against the dark side's 200 is a status mismatch)
    assert stats["compared"] == n, stats
    assert stats.get("mismatch", 0) == len(seen) - len(ENABLED), stats
    assert harness.sum_prefix(stats, "skipped.") == 0, stats
    assert sorted(dark) == sorted(seen), dark

    control, control_dark, control_primary = results["none"]
    everything = len(ENABLED) + len(OTHER) + len(UNROUTED)
    assert control_primary == primary
    assert control["matched"] == everything, control
    assert control["shadowed"] == everything and len(control_dark) == everything, control


def test_an_enabling_key_that_names_no_filter_leaves_it_off(envoy_path, wasm_path, tmp_path,
                                                            upstream_factory):
    """What the shipped comments warn about: Envoy accepts a
    typed_per_filter_config key that names no filter, and a filter declared
    disabled then stays off everywhere, silently."""
    v1 = upstream_factory(_json_reply("v1"), "v1")
    v2 = upstream_factory(_json_reply("v1"), "v2")
    admin, port, cfg = _scoped_bootstrap(v1, v2, "wrong-key")
    code, out = harness.Envoy.validate(cfg, envoy_path)
    assert code == 0, out
    env = harness.Envoy(cfg, admin, port, envoy_path=envoy_path, workdir=tmp_path / "envoy",
                        name="wrong-key")
    try:
        env.start()
        env.wait_log(r"darklaunch: configured 1 launch")
        _drive(env)
        v1.wait_for_count(len(ENABLED) + len(OTHER))
        stats = env.wait_settled(LAUNCH)
        assert stats.get("matched", 0) == 0 and v2.count() == 0, stats
    finally:
        env.stop()


def test_a_filter_config_without_config_is_refused(envoy_path, wasm_path, upstream_factory):
    """Only ``config: {}`` (an empty Any) turns a disabled filter on; a bare
    FilterConfig is a configuration error, in validate mode as at start."""
    v1 = upstream_factory(_json_reply("v1"), "v1")
    v2 = upstream_factory(_json_reply("v1"), "v2")
    _, _, cfg = _scoped_bootstrap(v1, v2, "off-by-default")
    api = _hcm(cfg)["route_config"]["virtual_hosts"][0]["routes"][0]
    api["typed_per_filter_config"]["darklaunch"] = {"@type": FILTER_CONFIG}
    code, out = harness.Envoy.validate(cfg, envoy_path)
    assert code != 0
    assert "Empty route/virtual host per filter configuration for darklaunch filter" in out, \
        out[-3000:]


# --------------------------------------------------------------------------
# envoy/route_scoped.yaml
# --------------------------------------------------------------------------

def _ports() -> dict:
    return {name: harness.free_port() for name in harness.ROUTE_SCOPED_PORTS}


SHIPPED_MATCH = '"match": { "path_prefix": "/api/items/", "methods": ["GET"] },'


def test_route_scoped_yaml_validates(envoy_path, wasm_path, tmp_path):
    config = tmp_path / "route_scoped.yaml"
    config.write_text(harness.render_route_scoped_yaml(_ports(), wasm_path))
    code, out = harness.Envoy.validate(config, envoy_path)
    assert code == 0, out


def test_route_scoped_yaml_keeps_darklaunch_off_other_routes(envoy_path, wasm_path, tmp_path,
                                                              upstream_factory):
    """The shipped file, its launch widened to every path (so that only the
    routes decide): requests under /api/ are shadowed, the others never reach
    the module. Then the shipped launch itself: on /api/ its own match still
    decides (a GET under /api/items/ is shadowed, a POST there and a GET of
    /api/carts/ are not)."""
    ports = _ports()
    v1 = upstream_factory(_json_reply("v1"), "v1")
    v2 = upstream_factory(_json_reply("v1"), "v2")
    ports.update(v1=v1.address[1], v2=v2.address[1])
    shipped = harness.render_route_scoped_yaml(ports, wasm_path)
    assert shipped.count(SHIPPED_MATCH) == 1
    widened = shipped.replace(SHIPPED_MATCH, '"match": { "path_prefix": "/" },')
    launch = "orders-v2"

    for label, text in (("widened", widened), ("shipped", shipped)):
        config = tmp_path / f"{label}.yaml"
        config.write_text(text)
        env = harness.Envoy(config, ports["admin"], ports["listener"], envoy_path=envoy_path,
                            workdir=tmp_path / label, name=label)
        dark_before = v2.count()
        try:
            env.start()
            env.wait_log(r"darklaunch: configured 1 launch")
            with env.client() as c:
                for path in ("/api/items/7", "/api/carts/1", "/health", "/", "/static/app.js"):
                    r = c.get(path, headers=FORCE)
                    assert r.status == 200 and r.json()["v"] == "v1", (path, r.status)
                r = c.request("POST", "/api/items/7", headers=FORCE, body=b"{}")
                assert r.status == 200 and r.json()["v"] == "v1"
            stats = env.wait_settled(launch)
            dark = [r.path_only for r in v2.requests()[dark_before:]]
        finally:
            env.stop()
        if label == "widened":
            # /api/items/7, /api/carts/1 and the POST (which the launch takes,
            # but does not shadow: not a safe method); nothing of the rest.
            assert stats["matched"] == 3 and stats["shadowed"] == 2, stats
            assert stats["skipped.unsafe_method"] == 1, stats
            assert sorted(dark) == ["/api/carts/1", "/api/items/7"]
        else:
            assert stats["matched"] == 1 and stats["shadowed"] == 1, stats
            assert harness.sum_prefix(stats, "skipped.") == 0, stats
            assert dark == ["/api/items/7"]


# --------------------------------------------------------------------------
# examples/istio/route-scoped.yaml
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def istio_docs() -> dict:
    """{file name: [documents]} of examples/istio."""
    return {p.name: istio.load_docs(p) for p in istio.example_files(ISTIO)}


def _only(docs: list, kind: str) -> dict:
    (found,) = [d for d in docs if d.get("kind") == kind]
    return found


def _patches(envoy_filter: dict) -> dict:
    by_target = {}
    for p in envoy_filter["spec"]["configPatches"]:
        by_target.setdefault(p["applyTo"], []).append(p)
    return by_target


def test_istio_envoyfilter_names_the_wasmplugins_filter(istio_docs):
    """The EnvoyFilter is consistent with the WasmPlugin examples: same
    namespace and pods, the port they match, the filter name istiod gives
    them, the launch's path, and an inserted route that goes where istiod's
    default inbound route goes."""
    ef = _only(istio_docs["route-scoped.yaml"], "EnvoyFilter")
    assert ef["apiVersion"] == istio.ENVOYFILTER_API
    plugins = [_only(istio_docs[f], "WasmPlugin")
               for f in ("wasmplugin.yaml", "wasmplugin-file.yaml")]
    names = {istio.plugin_filter_name(p) for p in plugins}
    assert names == {"shop.darklaunch"}, names
    plugin = plugins[0]
    spec = plugin["spec"]
    assert ef["metadata"]["namespace"] == plugin["metadata"]["namespace"]
    assert ef["spec"]["workloadSelector"]["labels"] == spec["selector"]["matchLabels"]
    (port,) = [p["number"] for m in spec["match"] for p in m["ports"]]
    assert {m["mode"] for m in spec["match"]} == {"SERVER"}

    patches = _patches(ef)
    assert set(patches) == {"VIRTUAL_HOST", "HTTP_ROUTE"}
    for p in ef["spec"]["configPatches"]:
        match = p["match"]
        assert match["context"] == "SIDECAR_INBOUND"
        assert match["routeConfiguration"]["portNumber"] == port
        assert match["routeConfiguration"]["vhost"]["name"] == f"inbound|http|{port}"
    (off,) = patches["VIRTUAL_HOST"]
    assert off["patch"]["operation"] == "MERGE"
    assert off["patch"]["value"] == {"typed_per_filter_config": {"shop.darklaunch": DISABLE}}
    (on,) = patches["HTTP_ROUTE"]
    assert on["patch"]["operation"] == "INSERT_BEFORE"
    assert on["match"]["routeConfiguration"]["vhost"]["route"] == {"name": "default"}
    route = on["patch"]["value"]
    assert route["typed_per_filter_config"] == {"shop.darklaunch": ENABLE}
    # The launch's paths, and istiod's default inbound route's destination and settings.
    (launch,) = spec["pluginConfig"]["launches"]
    assert route["match"] == {"prefix": launch["match"]["path_prefix"]}
    default = istio.inbound_route_config(port, "orders.shop.svc.cluster.local")[
        "virtual_hosts"][0]["routes"][0]
    assert route["route"] == default["route"]
    assert route["decorator"] == default["decorator"]
    assert route["name"] != default["name"]


def test_istio_envoyfilter_keeps_other_paths_out_of_the_vm(istio_docs, envoy_path, wasm_path,
                                                           tmp_path, upstream_factory):
    """The Envoy configuration the EnvoyFilter makes of a v1 pod's inbound
    port: the WasmPlugin's filter by ECDS as istiod delivers it (named
    shop.darklaunch), the inbound route configuration as istiod builds it,
    and the EnvoyFilter's patches applied as istiod applies them. Its launch
    widened to every path and forced (users.always): /api/orders requests
    are shadowed, /health and the rest never reach the module."""
    ef = _only(istio_docs["route-scoped.yaml"], "EnvoyFilter")
    plugin = copy.deepcopy(_only(istio_docs["wasmplugin.yaml"], "WasmPlugin"))
    launch = plugin["spec"]["pluginConfig"]["launches"][0]
    launch.pop("match")  # every path, every method
    v1 = upstream_factory(_json_reply("v1"), "v1")
    v2 = upstream_factory(_json_reply("v1"), "v2")
    inbound = "inbound|8080||"
    ecds = tmp_path / "ecds" / "darklaunch.json"
    ecds.parent.mkdir()
    istio.write_ecds(ecds, plugin, wasm_path, "1")
    admin, listener = harness.free_port(), harness.free_port()
    cfg = istio.istio_bootstrap(plugin, wasm_path, admin, listener, primary=v1,
                                clusters={inbound: v1, launch["dark_cluster"]: v2,
                                          launch["noise"]["cluster"]: None})
    hcm = _hcm(cfg)
    hcm["http_filters"][0] = istio.ecds_http_filter(plugin, ecds)
    assert hcm["http_filters"][0]["name"] == "shop.darklaunch"
    hcm["route_config"] = istio.apply_route_patches(
        ef, "SIDECAR_INBOUND", istio.inbound_route_config(8080, "orders.shop.svc.cluster.local"))
    code, out = harness.Envoy.validate(cfg, envoy_path)
    assert code == 0, out
    env = harness.Envoy(cfg, admin, listener, envoy_path=envoy_path, workdir=tmp_path / "envoy",
                        name="istio-route-scoped")
    forced = {"x-user-id": "qa-1"}  # users.always
    name = launch["name"]
    try:
        env.start()
        env.wait_log(r"darklaunch: configured 1 launch")
        with env.client() as c:
            for path in ("/api/orders/1", "/api/orders/2", "/health", "/", "/api/users/7"):
                r = c.get(path, headers=forced)
                assert r.status == 200 and r.json() == {"path": path, "v": "v1"}, path
        v1.wait_for_count(5)
        v2.wait_for_count(2)
        stats = env.wait_settled(name)
        assert stats["matched"] == 2 and stats["shadowed"] == 2 and stats["forced"] == 2, stats
        assert harness.sum_prefix(stats, "skipped.") == 0, stats
        assert sorted(r.path_only for r in v2.requests()) == ["/api/orders/1", "/api/orders/2"]
        # the route names the request took, as istiod named them
        routes = [r["name"] for r in hcm["route_config"]["virtual_hosts"][0]["routes"]]
        assert routes == ["darklaunch-orders-api", "default"]
        dumped = json.dumps(env.config_dump())
        assert '"shop.darklaunch"' in dumped
    finally:
        env.stop()
