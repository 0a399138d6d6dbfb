"""gRPC dark launches in real Envoy, against real grpcio services.

tests/e2e/grpc/shop.proto (``pkg.Svc``: unary ``Get``, server-streaming
``List``) is compiled at test time; a primary (v1) and a dark (v2) service
run in this process (harness/grpc_services.py) and record every call; the
dark one does what the request's ``behave`` field says (a changed field,
NOT_FOUND, DATA_LOSS after the message, too slow, the same message in other
bytes). Envoy listens with HTTP/2 and reaches the services over HTTP/2
(``dark_h2``), and also has a dark cluster over HTTP/1.1 (``dark_h1``), one
on a closed port (``dark_closed``), and two hops to the dark service:
``dark_slow`` drops grpc-timeout (so that only the launch's timeout_ms ends a
slow call, whatever margin the filter's grpc-timeout leaves past it) and
``dark_tap`` logs each request's headers.

The tests of the launch ``grpc`` share one Envoy (the module's ``shared``)
and count what each test adds; the others start their own. The first two
tests check the services and the Envoy configuration without the filter.
"""

from __future__ import annotations

import sys

import grpc
import pytest

import harness
from harness import grpc_services
from harness.grpc_services import GET, LIST, GrpcClient, GrpcService, grpc_post
from test_darklaunch import assert_invariants, config, launch

METHODS = ["pkg.Svc/Get", "pkg.Svc/List"]
METADATA = [("x-user-id", "u-1"), ("x-tenant", "acme"), ("trace-bin", b"\x00\x01\xff")]


def grpc_launch(name: str = "grpc", dark_cluster: str = "dark_h2", methods=METHODS,
                **kw) -> dict:
    return launch(name, dark_cluster=dark_cluster, match={"grpc_methods": list(methods)},
                  **{"timeout_ms": 500, **kw})


# The launch of the shared Envoy: schema-less protobuf comparison (fields by
# number), Item.delta (field 8) ignored.
SHARED = grpc_launch(compare={"grpc_status": True, "grpc_message": False, "body": "protobuf",
                              "ignore": ["/8"]})


def counted(s: dict, prefix: str) -> dict:
    """The non-zero stats under ``prefix`` ("dark_grpc."), keyed by the rest of the name."""
    return {k[len(prefix):]: v for k, v in s.items() if k.startswith(prefix) and v}


def settled(env, name: str, before: dict = None) -> dict:
    """The launch's stats once settled (invariants checked); with ``before``
    (an earlier ``launch_stats``) what was counted since (``in_flight`` as it is)."""
    s = env.wait_settled(name)
    assert_invariants(s)
    if before is None:
        return s
    out = {k: v - before.get(k, 0) for k, v in s.items()}
    out["in_flight"] = s["in_flight"]
    return out


def assert_primary_answer(protos, answer, id: int = 7) -> None:  # noqa: A002
    assert (answer.code, answer.message) == ("OK", protos.encode(protos.item(id))), answer


def primary_items(protos, count: int = 3) -> list:
    return [protos.encode(protos.item(i)) for i in range(1, count + 1)]


# --------------------------------------------------------------------------
# Fixtures: the proto and services for the module, one shared Envoy


@pytest.fixture(scope="module")
def protos(tmp_path_factory) -> grpc_services.Protos:
    return grpc_services.compile_protos(tmp_path_factory.mktemp("protos"))


@pytest.fixture(scope="module")
def v1(protos):
    with GrpcService(protos, "v1") as svc:
        yield svc


@pytest.fixture(scope="module")
def v2(protos):
    with GrpcService(protos, "v2", dark=True) as svc:
        yield svc


@pytest.fixture(autouse=True)
def fresh_services(v1, v2):
    """Each test sees only the calls it caused (shared stragglers settle first)."""
    v1.clear()
    v2.clear()


def grpc_envoy(envoy_factory, v1, v2, *launches, **kw) -> harness.Envoy:
    """An Envoy of its own for one test: the gRPC clusters and ``launches``."""
    return envoy_factory(config(*launches), primary=v1.address,
                         **grpc_services.envoy_kwargs(v2), **kw)


@pytest.fixture(scope="module")
def shared(request, envoy_path, wasm_path, tmp_path_factory, v1, v2):
    """One Envoy for the module's ``grpc`` launch tests (each counts its own
    share with ``settled(shared, "grpc", before)``); its log is printed when
    a test of the module failed."""
    failed = request.session.testsfailed
    admin_port, listener_port = harness.free_port(), harness.free_port()
    cfg = harness.bootstrap(admin_port, listener_port, primary_cluster=v1.address,
                            plugin_config=config(SHARED), wasm_path=wasm_path,
                            **grpc_services.envoy_kwargs(v2))
    env = harness.Envoy(cfg, admin_port, listener_port, envoy_path=envoy_path,
                        workdir=tmp_path_factory.mktemp("envoy-grpc"), name="envoy-grpc")
    env.start(timeout=30)
    yield env
    env.stop()
    if request.session.testsfailed > failed:
        sys.stderr.write(f"\n----- {env.name} log ({env.log_path}) -----\n")
        sys.stderr.write(harness._tail(env.log_text(), 80) + "\n")


# --------------------------------------------------------------------------
# The harness: services and Envoy configuration, no darklaunch filter


def test_services_answer_as_documented(protos, v1, v2):
    """Each behaviour of the dark service, by grpcio and on the h2 wire, and
    the hand-made encodings: other bytes, the same message."""
    p = protos
    item = p.encode(p.item(7))
    assert p.item_wire(p.item(7)) == item
    for option in ("field_order", "map_order", "unpacked"):
        other = p.item_wire(p.item(7), **{option: True})
        assert other != item and p.parse_item(other) == p.item(7), option
    with GrpcClient(v1.port) as c1, GrpcClient(v2.port) as c2:
        assert_primary_answer(p, c1.get(p.get_request(7, "price"), METADATA))
        [call] = v1.calls()
        assert (call.method, call.request) == (GET, p.get_request(7, "price"))
        assert [(k, v) for k, v in call.headers if k in dict(METADATA)] == METADATA
        assert 4 < call.deadline < 5.1 and call.replies == [item]
        changed = {"price": p.item(7, price=10.5), "tag": p.item(7, tags=[1, 2, 4]),
                   "nested": p.item(7, detail=p.pb2.Nested(note="loose", stock=5)),
                   "delta": p.item(7, delta=-8)}
        for behave in grpc_services.GET_BEHAVIOURS:
            timeout = 0.3 if behave == "slow" else 5.0
            a = c2.get(p.get_request(7, behave), timeout=timeout)
            if behave in changed:
                assert (a.code, p.parse_item(a.message)) == ("OK", changed[behave]), behave
            elif behave == "not_found":
                assert (a.code, a.message) == ("NOT_FOUND", None)
            elif behave == "data_loss":
                assert (a.code, a.message) == ("DATA_LOSS", None)  # grpcio drops it
            elif behave == "slow":
                assert a.code == "DEADLINE_EXCEEDED"
            else:
                assert (a.code, p.parse_item(a.message)) == ("OK", p.item(7)), behave
        [slow] = [c for c in v2.calls(GET) if c.behave == "slow"]
        assert 0 < slow.deadline < 0.4
        for behave, prices in (("", [10.0] * 3), ("price_2nd", [10.0, 10.5, 10.0]),
                               ("fewer", [10.0] * 2)):
            a = c2.list(p.list_request(3, behave))
            assert a.code == "OK" and [p.parse_item(m).price for m in a.messages] == prices
        assert c1.list(p.list_request(3, "fewer")).messages == primary_items(p)
    # On the wire: trailers-only NOT_FOUND; DATA_LOSS after the whole message.
    w = grpc_post(v2.port, GET, p.get_request(7, "not_found"))
    assert w.status == 200 and w.trailers_only and w.grpc_status == 5 and w.messages == []
    w = grpc_post(v2.port, GET, p.get_request(7, "data_loss"))
    assert w.status == 200 and not w.trailers_only and w.messages == [item]
    assert ("grpc-status", "15") in w.trailers
    w = grpc_post(v2.port, GET, p.get_request(7, "map_order"))
    assert w.grpc_status == 0 and w.messages == [p.item_wire(p.item(7), map_order=True)]
    w = grpc_post(v2.port, LIST, p.list_request(3, "price_2nd"))
    assert w.grpc_status == 0 and len(w.messages) == 3


def test_services_and_dark_clusters_through_envoy_without_the_filter(envoy_factory, protos,
                                                                     v1, v2):
    """Envoy's gRPC configuration alone: the primary route, each dark cluster
    reached by a listener of its own (``route_listener``), what Envoy answers
    for the failing ones, and what the two hops do."""
    p = protos
    ports = {name: harness.free_port() for name in grpc_services.GRPC_CLUSTERS}
    kwargs = grpc_services.envoy_kwargs(v2)
    kwargs["extra_listeners"] += [grpc_services.route_listener(port, name, f"to_{name}")
                                  for name, port in ports.items()]
    env = envoy_factory(None, primary=v1.address, **kwargs)
    item = p.encode(p.item(7))
    with GrpcClient(env.listener_port) as c:
        assert_primary_answer(p, c.get(p.get_request(7, "price"), METADATA))
        assert c.list(p.list_request(3)).messages == primary_items(p)
    [get, lst] = v1.calls()
    assert get.request == p.get_request(7, "price") and get.header("x-user-id") == "u-1"
    assert get.header("trace-bin") == b"\x00\x01\xff" and lst.method == LIST
    assert v2.calls() == []

    h2 = ports["dark_h2"]
    with GrpcClient(h2) as c:
        assert c.get(p.get_request(7, "not_found")).code == "NOT_FOUND"
        assert c.get(p.get_request(7, "price")).message == p.encode(p.item(7, price=10.5))
    w = grpc_post(h2, GET, p.get_request(7, "not_found"))
    assert w.status == 200 and w.trailers_only and w.grpc_status == 5
    w = grpc_post(h2, GET, p.get_request(7, "data_loss"))
    assert w.messages == [item] and ("grpc-status", "15") in w.trailers
    w = grpc_post(h2, GET, p.get_request(7, "unpacked"))
    assert w.messages == [p.item_wire(p.item(7), unpacked=True)] and w.grpc_status == 0
    assert len(v2.calls()) == 5
    v2.clear()

    # HTTP/1.1 to a gRPC server, and a closed port: Envoy's own answer,
    # HTTP 200 with grpc-status 14 (UNAVAILABLE); the service saw nothing.
    for name in ("dark_h1", "dark_closed"):
        with GrpcClient(ports[name]) as c:
            assert c.get(p.get_request(7)).code == "UNAVAILABLE", name
        w = grpc_post(ports[name], GET, p.get_request(7))
        assert (w.status, w.trailers_only, w.grpc_status, w.messages) == (200, True, 14, []), name
    assert v2.calls() == []

    # dark_slow: the service gets the call without its deadline.
    with GrpcClient(ports["dark_slow"]) as c:
        assert c.get(p.get_request(7, "slow"), timeout=0.3).code == "DEADLINE_EXCEEDED"
        assert c.get(p.get_request(8), timeout=5).code == "OK"
    [slow, fast] = v2.wait_for_count(2)
    assert slow.behave == "slow" and slow.deadline is None and fast.deadline is None
    v2.clear()

    # dark_tap: the request's headers logged, the call passed on as it was.
    with GrpcClient(ports["dark_tap"]) as c:
        assert c.get(p.get_request(7), METADATA, timeout=5,
                     compression=grpc.Compression.Gzip).code == "OK"
    [call] = v2.calls()
    assert call.request == p.get_request(7) and 4 < call.deadline < 5.1
    [tap] = env.wait_until(lambda: grpc_services.tap_lines(env), what="the tap's log line")
    assert tap["path"] == GET and tap["method"] == "POST" and tap["te"] == "trailers"
    assert tap["content-type"] == "application/grpc" and tap["grpc-encoding"] == "gzip"
    assert "gzip" in tap["grpc-accept-encoding"] and tap["x-user-id"] == "u-1"
    assert 4 < grpc_services.grpc_timeout_seconds(tap["grpc-timeout"]) <= 5
    assert tap["authority"] == f"127.0.0.1:{ports['dark_tap']}"
    assert tap["x-darklaunch-shadow"] is None and tap["grpc_status"] == "0"


# --------------------------------------------------------------------------
# The filter


def test_shadow_gets_the_same_message_and_metadata_and_the_client_the_primary_answer(
        envoy_factory, protos, v1, v2):
    p = protos
    env = grpc_envoy(envoy_factory, v1, v2, grpc_launch("tap", "dark_tap"))
    with GrpcClient(env.listener_port) as c:
        assert_primary_answer(p, c.get(p.get_request(7), METADATA))
        assert_primary_answer(p, c.get(p.get_request(8), METADATA,
                                       compression=grpc.Compression.Gzip), 8)
    s = settled(env, "tap")
    assert s["matched"] == 2 and s["shadowed"] == 2 and s["compared"] == 2
    assert s["mismatch"] == 0 and s["dark_response.2xx"] == 2 and s["primary_response.2xx"] == 2
    assert counted(s, "dark_grpc.") == {"ok": 2} and counted(s, "primary_grpc.") == {"ok": 2}
    requests = sorted([p.get_request(7), p.get_request(8)])
    assert sorted(c.request for c in v1.calls()) == requests
    dark = sorted(v2.calls(), key=lambda c: c.request)
    assert [c.request for c in dark] == requests, "the same message bytes, decompressed"
    for call in dark:
        assert call.method == GET and call.header("x-darklaunch-shadow") == "tap"
        assert [(k, v) for k, v in call.headers if k in dict(METADATA)] == METADATA
        # grpc-timeout: timeout_ms (500) plus a fifth and 50 ms.
        assert call.deadline is not None and 0.5 < call.deadline < 0.66, call.deadline
    assert all(c.header("x-darklaunch-shadow") is None for c in v1.calls())
    taps = env.wait_until(lambda: len(grpc_services.tap_lines(env)) == 2 and
                          grpc_services.tap_lines(env), what="the tap's two log lines")
    taps.sort(key=lambda t: str(t["grpc-encoding"]))
    assert [t["grpc-encoding"] for t in taps] == [None, "gzip"]
    for t in taps:
        assert (t["path"], t["method"], t["te"], t["content-type"]) == (
            GET, "POST", "trailers", "application/grpc")
        assert t["authority"] == f"127.0.0.1-shadow:{env.listener_port}"
        assert "gzip" in t["grpc-accept-encoding"] and t["x-user-id"] == "u-1"
        assert t["x-darklaunch-shadow"] == "tap" and t["grpc_status"] == "0"
        assert grpc_services.grpc_timeout_seconds(t["grpc-timeout"]) == pytest.approx(0.65)


def test_a_changed_field_is_a_body_mismatch_named_by_its_number(shared, protos, v2):
    p = protos
    before = shared.launch_stats("grpc")
    behaviours = ["", "price", "tag", "nested", "delta"]
    with GrpcClient(shared.listener_port) as c:
        for behave in behaviours:
            assert_primary_answer(p, c.get(p.get_request(7, behave)))
    s = settled(shared, "grpc", before)
    assert s["matched"] == 5 and s["shadowed"] == 5 and s["compared"] == 5
    assert s["mismatch"] == 3 and s["mismatch_kind.body"] == 3
    # The tags are packed on both sides (one length-delimited field 4 each):
    # without a descriptor that is one value, /4, not a list.
    assert counted(s, "field_mismatch.") == {"/3": 1, "/4": 1, "/6/1": 1}, \
        "price, the tags, detail.note; delta (/8) is ignored"
    assert counted(s, "mismatch_kind.") == {"body": 3}
    assert counted(s, "dark_grpc.") == {"ok": 5} and counted(s, "primary_grpc.") == {"ok": 5}
    assert sorted(c.behave for c in v2.calls()) == sorted(behaviours)


def test_not_found_trailers_only_is_a_grpc_status_mismatch(shared, protos, v2):
    p = protos
    before = shared.launch_stats("grpc")
    with GrpcClient(shared.listener_port) as c:
        assert_primary_answer(p, c.get(p.get_request(7, "not_found")))
    s = settled(shared, "grpc", before)
    assert s["compared"] == 1 and s["mismatch"] == 1
    assert counted(s, "mismatch_kind.") == {"grpc_status": 1}, "both HTTP 200: not `status`"
    assert counted(s, "dark_grpc.") == {"not_found": 1}
    assert counted(s, "primary_grpc.") == {"ok": 1}
    assert counted(s, "field_mismatch.") == {}
    assert s["dark_response.2xx"] == 1, "the dark service's own answer, HTTP 200"
    assert [c.code for c in v2.calls()] == ["NOT_FOUND"]


def test_data_loss_after_an_identical_message_is_a_grpc_status_mismatch(shared, protos, v2):
    p = protos
    before = shared.launch_stats("grpc")
    with GrpcClient(shared.listener_port) as c:
        assert_primary_answer(p, c.get(p.get_request(7, "data_loss")))
    s = settled(shared, "grpc", before)
    assert s["compared"] == 1 and s["mismatch"] == 1
    assert counted(s, "mismatch_kind.") == {"grpc_status": 1}
    assert counted(s, "dark_grpc.") == {"data_loss": 1}
    assert counted(s, "primary_grpc.") == {"ok": 1}
    assert counted(s, "field_mismatch.") == {}
    [call] = v2.calls()
    assert call.code == "DATA_LOSS" and call.replies == [p.encode(p.item(7))]


def test_the_same_message_in_other_bytes_is_equal(shared, protos, v2):
    """Map entries in another order, the repeated int32 unpacked, fields
    last to first: other bytes, the same message."""
    p = protos
    before = shared.launch_stats("grpc")
    behaviours = ["map_order", "unpacked", "field_order"]
    with GrpcClient(shared.listener_port) as c:
        for behave in behaviours:
            assert_primary_answer(p, c.get(p.get_request(7, behave)))
    s = settled(shared, "grpc", before)
    assert s["compared"] == 3 and s["mismatch"] == 0 and s["noise"] == 0
    assert counted(s, "field_mismatch.") == {} and counted(s, "mismatch_kind.") == {}
    assert counted(s, "dark_grpc.") == {"ok": 3}
    sent = {c.behave: c.replies for c in v2.calls()}
    assert sorted(sent) == sorted(behaviours)
    assert all(r != [p.encode(p.item(7))] for r in sent.values()), "the bytes did differ"


def test_a_server_stream_is_compared_message_by_message(shared, protos, v1, v2):
    p = protos
    before = shared.launch_stats("grpc")
    with GrpcClient(shared.listener_port) as c:
        for behave in ("", "price_2nd", "fewer"):
            a = c.list(p.list_request(3, behave))
            assert (a.code, a.messages) == ("OK", primary_items(p)), behave
    s = settled(shared, "grpc", before)
    assert s["matched"] == 3 and s["shadowed"] == 3 and s["compared"] == 3
    assert s["mismatch"] == 2 and counted(s, "mismatch_kind.") == {"body": 2}
    assert s.get("field_mismatch./*/3", 0) == 1, "the 2nd message's price"
    assert counted(s, "dark_grpc.") == {"ok": 3} and counted(s, "primary_grpc.") == {"ok": 3}
    assert sorted(c.request for c in v2.calls(LIST)) == sorted(c.request for c in v1.calls(LIST))
    assert sorted(len(c.replies) for c in v2.calls()) == [2, 3, 3]


def test_dark_timeout_closed_port_and_http1_are_failures_never_2xx(envoy_factory, protos, v1, v2):
    p = protos
    env = grpc_envoy(envoy_factory, v1, v2,
                     grpc_launch("slow", "dark_slow", timeout_ms=300),
                     grpc_launch("closed", "dark_closed"),
                     grpc_launch("h1", "dark_h1"))
    with GrpcClient(env.listener_port) as c:
        for i in (7, 8):
            assert_primary_answer(p, c.get(p.get_request(i, "slow")), i)
    for name, failure in (("slow", "timeout"), ("closed", "reset"), ("h1", "reset")):
        s = settled(env, name)
        assert s["shadowed"] == 2 and s[f"dark_response.{failure}"] == 2, (name, s)
        assert s["dark_response.2xx"] == 0, (name, s)
        assert counted(s, "dark_grpc.") == {}, (name, s)
        assert s["compared"] == 0 and s["compare_skipped.dark_failed"] == 2, (name, s)
    calls = v2.calls()
    assert len(calls) == 2, "only the hop of dark_slow reached the service"
    assert all(c.header("x-darklaunch-shadow") == "slow" and c.behave == "slow" for c in calls)


def test_grpc_calls_are_shadowed_only_by_a_launch_naming_their_method(envoy_factory, protos,
                                                                      v1, v2):
    p = protos
    env = grpc_envoy(envoy_factory, v1, v2,
                     grpc_launch("other", methods=["pkg.Svc/Other"]),
                     launch("plain", dark_cluster="dark_h2", unsafe_methods=True))
    with GrpcClient(env.listener_port) as c:
        for i in (7, 8):
            assert_primary_answer(p, c.get(p.get_request(i)), i)
        assert c.list(p.list_request(3)).messages == primary_items(p)
    other, plain = settled(env, "other"), settled(env, "plain")
    for s in (other, plain):
        assert s["matched"] == 0 and s["shadowed"] == 0 and harness.sum_prefix(s, "skipped.") == 0
    assert v2.calls() == [] and len(v1.calls()) == 3
    # `plain` is alive: a POST that is not gRPC is shadowed (to a path no
    # gRPC handler serves, so the dark service records nothing either).
    [r] = harness.h2c_requests(harness.LOOPBACK, env.listener_port, [
        ("POST", "/plain/1", {"content-type": "application/json"}, b'{"a":1}')])
    assert r.status != 0
    plain = settled(env, "plain")
    assert plain["matched"] == 1 and plain["shadowed"] == 1
    assert settled(env, "other")["matched"] == 0
    assert v2.calls() == []


def test_a_descriptor_names_the_fields(envoy_factory, protos, v1, v2):
    """compare.proto_descriptor (a FileDescriptorSet, base64): pointers by
    field name; ``pkg.Svc/*`` names every method of the service."""
    p = protos
    compare = {"proto_descriptor": p.descriptor_b64, "ignore": ["/delta"]}
    env = grpc_envoy(envoy_factory, v1, v2,
                     grpc_launch("named", methods=["pkg.Svc/*"], compare=compare))
    with GrpcClient(env.listener_port) as c:
        for behave in ("price", "nested", "delta", ""):
            assert_primary_answer(p, c.get(p.get_request(7, behave)))
        assert c.list(p.list_request(3)).messages == primary_items(p)
    s = settled(env, "named")
    assert s["matched"] == 5 and s["shadowed"] == 5 and s["compared"] == 5
    assert s["mismatch"] == 2 and counted(s, "mismatch_kind.") == {"body": 2}
    assert counted(s, "field_mismatch.") == {"/price": 1, "/detail/note": 1}
    assert len(v2.calls(LIST)) == 1


def test_grpc_methods_with_a_path_rule_is_refused(envoy_factory, v1, v2):
    bad = launch("bad", dark_cluster="dark_h2",
                 match={"grpc_methods": ["pkg.Svc/Get"], "path_prefix": "/pkg.Svc/"})
    env = grpc_envoy(envoy_factory, v1, v2, bad, start=False)
    with pytest.raises(harness.EnvoyError):
        env.start(timeout=30)
    errors = [ln for ln in env.log_text().splitlines()
              if "launches[0].match" in ln and "grpc_methods" in ln]
    assert errors, "the error names the launch's match and grpc_methods"


def test_the_readme_grpc_example_is_valid(envoy_path, tmp_path):
    """The README's gRPC section: its launch passes the filter's own parser,
    and its HTTP/2 cluster snippet is one Envoy accepts."""
    import re
    import yaml
    from test_examples import _run_validate

    readme = (harness.REPO_ROOT / "README.md").read_text()
    section = readme.split("## gRPC services", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(json|yaml)\n(.*?)```", section, re.S)
    config_json = next(text for kind, text in blocks if kind == "json")
    proc = _run_validate("-", stdin=config_json)
    assert proc.returncode == 0 and "ok (1 launch)" in proc.stdout, proc.stdout + proc.stderr
    clusters = next(yaml.safe_load(text) for kind, text in blocks
                    if kind == "yaml" and text.startswith("clusters:"))["clusters"]
    admin_port = harness.free_port()
    boot = {"admin": {"address": {"socket_address": {"address": "127.0.0.1",
                                                      "port_value": admin_port}}},
            "static_resources": {"clusters": clusters}}
    path = tmp_path / "readme-grpc.yaml"
    path.write_text(yaml.safe_dump(boot))
    code, out = harness.Envoy.validate(path, envoy_path)
    assert code == 0, out
