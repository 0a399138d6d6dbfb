"""Shared pieces of the load scripts (scripts/soak.py, scripts/fault_latency.py,
scripts/bench.py).

* ``UpstreamEnvoy``: a second Envoy process that plays every upstream with
  ``direct_response`` routes (C++, so the upstreams are never the bottleneck a
  Python server would be), one listener per behaviour:

  ============  ==============================================================
  ``primary``   200, ``application/json``, ~1 KiB body (``BODY``)
  ``ok``        the same 200 answer (a dark side that matches)
  ``diff``      200 with one JSON field changed (a dark side that mismatches)
  ``slow``      fault filter: every request delayed by ``slow_delay_s`` (longer
                than the darklaunch ``timeout_ms``, so every shadow call times out)
  ``e503``      fault filter: every request aborted with 503
  ``reset``     fault filter: headers go out at once, the body is throttled to
                1 KiB/s and the listener's ``max_stream_duration`` (50 ms) then
                resets the stream: the caller sees headers, then a reset
  ============  ==============================================================

* ``filter_bootstrap``: the darklaunch Envoy (harness.bootstrap) with dark
  clusters pointing at those listeners, the cluster circuit breakers raised so
  that thousands of shadow calls may be in flight (Envoy's default is 1024
  requests per cluster, which would turn timeouts into local 503 overflows).
* ``run_wrk`` / ``parse_wrk``: wrk, bounded by ``-d`` and by a process-group
  kill, with its ``--latency`` output parsed; an optional Lua ``delay()``
  paces every connection (think time) so that the 2-core machine is not
  saturated. wrk stays closed-loop: a connection sends its next request only
  after the previous answer (plus the pause).
* ``H2load`` / ``parse_h2load``: h2load (gRPC over h2c), bounded in time, its
  output read as it comes so that meters can start and stop with its
  measured seconds; latency percentiles from its ``--log-file``.
* ``Nghttpd``: nghttpd serving files with a ``grpc-status: 0`` trailer, i.e.
  a static unary gRPC answer (scripts/bench.py's gRPC upstreams).
* ``rss_kib``, ``wasm_memory_kib``, ``machine``: what the reports print.

Reuses tests/e2e/harness/ for bootstrap rendering and the Envoy process
wrapper (start, readiness, process-group stop at exit); run it with the
project's .venv (the harness needs h2 and mmh3 from the Makefile's PY_DEPS).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import harness  # noqa: E402

LOOPBACK = harness.LOOPBACK
wasm_memory_kib = harness.wasm_memory_kib

# ~1 KiB of JSON; the "diff" listener changes one field of it.
_ITEMS = [{"id": i, "name": f"item-{i:03d}", "price": 10 + i * 0.25, "tags": ["a", "b"]}
          for i in range(14)]
BODY = json.dumps({"service": "orders", "version": "v1", "items": _ITEMS}, separators=(",", ":"))
BODY_DIFF = BODY.replace('"version":"v1"', '"version":"v2"', 1)

LISTENERS = ("primary", "ok", "diff", "slow", "e503", "reset")

ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}
FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
HCM_TYPE = ("type.googleapis.com/envoy.extensions.filters.network."
            "http_connection_manager.v3.HttpConnectionManager")
PCT100 = {"numerator": 100, "denominator": "HUNDRED"}


def _fault(kind: str, slow_delay_s: float) -> Optional[dict]:
    if kind == "slow":
        cfg = {"delay": {"fixed_delay": f"{slow_delay_s:g}s", "percentage": PCT100}}
    elif kind == "e503":
        cfg = {"abort": {"http_status": 503, "percentage": PCT100}}
    elif kind == "reset":
        cfg = {"response_rate_limit": {"fixed_limit": {"limit_kbps": 1}, "percentage": PCT100}}
    else:
        return None
    cfg["@type"] = FAULT_TYPE
    return {"name": "envoy.filters.http.fault", "typed_config": cfg}


def _listener(kind: str, port: int, slow_delay_s: float) -> dict:
    body = BODY_DIFF if kind == "diff" else BODY
    if kind == "reset":
        # Long enough that the throttled body cannot finish before the reset.
        body = BODY * 4
    filters = [f for f in (_fault(kind, slow_delay_s),) if f] + [ROUTER]
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": f"up_{kind}",
        "codec_type": "AUTO",
        "route_config": {
            "name": kind,
            "virtual_hosts": [{
                "name": kind,
                "domains": ["*"],
                "routes": [{
                    "match": {"prefix": "/"},
                    "direct_response": {"status": 200, "body": {"inline_string": body}},
                    "response_headers_to_add": [{"header": {
                        "key": "content-type", "value": "application/json"}}],
                }],
            }],
        },
        "http_filters": filters,
    }
    if kind == "reset":
        hcm["common_http_protocol_options"] = {"max_stream_duration": "0.05s"}
        # Close at once: the default 1 s delayed close would hold the reset back.
        hcm["delayed_close_timeout"] = "0s"
    return {
        "name": kind,
        "address": {"socket_address": {"address": LOOPBACK, "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
    }


def upstream_bootstrap(admin_port: int, ports: dict, slow_delay_s: float = 5.0,
                       allow_premature_resets: bool = False) -> dict:
    """The upstream Envoy's bootstrap.

    ``allow_premature_resets`` switches off Envoy's HTTP/2 rapid-reset guard
    (runtime ``overload.premature_reset_total_stream_count``): with it on, an
    HTTP/2 connection on which at least half of 500 streams were reset by the
    caller within 1-2 s of their start is aborted, and every other call on it
    with it. Shadow calls timing out after ``timeout_ms`` < 2 s are exactly
    that, so an Envoy (or Istio sidecar) in front of an HTTP/2 dark service
    keeps dropping the connection; see scripts/fault_latency.py --dark-h2.
    """
    cfg = {
        "node": {"id": "darklaunch-upstreams", "cluster": "darklaunch-upstreams"},
        "admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": admin_port}}},
        "static_resources": {
            "listeners": [_listener(k, ports[k], slow_delay_s) for k in LISTENERS],
        },
    }
    if allow_premature_resets:
        cfg["layered_runtime"] = {"layers": [{"name": "static", "static_layer": {
            "overload.premature_reset_total_stream_count": 1_000_000_000}}]}
    return cfg


class UpstreamEnvoy:
    """The upstream Envoy with one listener per behaviour; ``ports[kind]``."""

    def __init__(self, workdir: Path, concurrency: int = 1, slow_delay_s: float = 5.0,
                 allow_premature_resets: bool = False):
        self.ports = {k: harness.free_port() for k in LISTENERS}
        admin = harness.free_port()
        cfg = upstream_bootstrap(admin, self.ports, slow_delay_s, allow_premature_resets)
        self.envoy = harness.Envoy(cfg, admin, self.ports["primary"], concurrency=concurrency,
                                   log_level="warning", component_log_level=None,
                                   workdir=workdir, name="upstreams")

    def start(self) -> "UpstreamEnvoy":
        self.envoy.start(timeout=60)
        return self

    def stop(self) -> None:
        self.envoy.stop()

    @property
    def pid(self) -> int:
        return self.envoy.proc.pid


def cluster(name: str, port: int, http2: bool = False) -> dict:
    """A STATIC cluster on 127.0.0.1:port with circuit breakers out of the way."""
    c = harness.static_cluster(name, LOOPBACK, port, http2=http2)
    big = 1_000_000
    c["circuit_breakers"] = {"thresholds": [{
        "priority": "DEFAULT", "max_connections": big, "max_pending_requests": big,
        "max_requests": big, "max_retries": big}]}
    return c


def launch(name: str, dark_cluster: str, timeout_ms: int, percent: float = 100.0,
           max_in_flight: int = 100_000) -> dict:
    """A launch at ``percent`` sampling whose limits and breaker never hold it back.

    The breaker is switched off in effect (``min_calls`` 4e9) and
    ``max_in_flight`` is raised, so that a failing or timing-out dark side is
    really called for every request, which is the load under test.
    """
    return {
        "name": name,
        "dark_cluster": dark_cluster,
        "sample": {"percent": percent},
        "timeout_ms": timeout_ms,
        "limits": {"max_in_flight": max_in_flight},
        "breaker": {"min_calls": 4_000_000_000},
        "compare": {"headers": ["content-type"]},
    }


def filter_envoy(workdir: Path, primary_port: int, clusters: list, launches: list,
                 concurrency: int, name: str = "darklaunch", wasm_path=None,
                 plugin_config=None, http2: bool = False) -> harness.Envoy:
    """The darklaunch Envoy (not started): listener -> primary, wasm filter
    (``wasm_path``: another module in darklaunch's place, ``plugin_config``:
    its configuration instead of ``{"launches": launches}``); ``http2``: the
    listener and the primary cluster speak HTTP/2 (gRPC)."""
    admin, listener = harness.free_port(), harness.free_port()
    cfg = harness.bootstrap(admin, listener, primary_cluster=(LOOPBACK, primary_port),
                            wasm_path=wasm_path,
                            clusters={c["name"]: c for c in clusters},
                            plugin_config=({"launches": launches} if plugin_config is None
                                           else plugin_config),
                            # A crashed VM then fails requests, which wrk counts.
                            failure_policy="FAIL_CLOSED",
                            primary_http2=http2, http2_downstream=http2)
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "primary":
            c.update(cluster("primary", primary_port, http2=http2))
    return harness.Envoy(cfg, admin, listener, concurrency=concurrency, log_level="info",
                         component_log_level=None, workdir=workdir, name=name)


def filter_envoy_plain(workdir: Path, primary_port: int, concurrency: int,
                       name: str = "plain", http2: bool = False) -> harness.Envoy:
    """The same Envoy without the wasm filter (a baseline)."""
    admin, listener = harness.free_port(), harness.free_port()
    cfg = harness.bootstrap(admin, listener, primary_cluster=(LOOPBACK, primary_port),
                            primary_http2=http2, http2_downstream=http2)
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "primary":
            c.update(cluster("primary", primary_port, http2=http2))
    return harness.Envoy(cfg, admin, listener, concurrency=concurrency, log_level="info",
                         component_log_level=None, workdir=workdir, name=name)


def mirror_envoy(workdir: Path, primary_port: int, dark: dict, timeout_ms: int,
                 concurrency: int, name: str = "mirror") -> harness.Envoy:
    """Envoy's own shadowing instead of darklaunch: the route mirrors every request
    (``request_mirror_policies`` at 100%) to the ``dark`` cluster, fire and forget.
    A mirrored request has the route's timeout, set to ``timeout_ms`` (the primary
    answers in about a millisecond, so it is unaffected)."""
    admin, listener = harness.free_port(), harness.free_port()
    cfg = harness.bootstrap(admin, listener, primary_cluster=(LOOPBACK, primary_port),
                            clusters={dark["name"]: dark},
                            route_timeout=f"{timeout_ms / 1000:g}s")
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "primary":
            c.update(cluster("primary", primary_port))
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    route["request_mirror_policies"] = [{
        "cluster": dark["name"],
        "runtime_fraction": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}}]
    return harness.Envoy(cfg, admin, listener, concurrency=concurrency, log_level="info",
                         component_log_level=None, workdir=workdir, name=name)


def mirror_stats(env: harness.Envoy, cluster_name: str = "dark") -> dict:
    """The dark cluster's counters under the names launch_stats() uses."""
    p = f"cluster.{cluster_name}."
    s = env.stats(p)
    total = s.get(p + "upstream_rq_total", 0)
    return {"matched": total, "shadowed": total,
            "dark_response.timeout": s.get(p + "upstream_rq_timeout", 0),
            "dark_response.2xx": s.get(p + "upstream_rq_2xx", 0),
            "in_flight": s.get(p + "upstream_rq_active", 0)}


# --------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _dur_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS_S[m.group(2)] * 1000.0


def parse_wrk(out: str) -> dict:
    """The numbers of a ``wrk --latency`` report.

    Returns requests, seconds, rps, latency percentiles p50/p75/p90/p99 in ms,
    avg/stdev/max in ms, errors (connect/read/write/timeout), non_2xx.
    """
    res: dict = {"raw": out}
    m = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.MULTILINE)
    if m:
        res["avg_ms"], res["stdev_ms"], res["max_ms"] = (_dur_ms(x) for x in m.groups())
    for pct, val in re.findall(r"^\s*(50|75|90|99)%\s+(\S+)\s*$", out, re.MULTILINE):
        res[f"p{pct}_ms"] = _dur_ms(val)
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out)
    if m:
        res["requests"] = int(m.group(1))
        res["seconds"] = _dur_ms(m.group(2) + m.group(3)) / 1000.0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["errors"] = dict(zip(("connect", "read", "write", "timeout"),
                             (int(x) for x in m.groups()))) if m else {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    for key in ("p50_ms", "p99_ms", "rps", "requests"):
        if key not in res:
            raise ValueError(f"wrk output without {key}:\n{out}")
    return res


PACE_LUA = """-- written by scripts/upstreams.py: a pause after every answer
local pause = {pause}
function delay()
  return pause
end
"""


def wrk_command(url: str, threads: int, connections: int, seconds: float,
                pace_ms: float = 0.0, workdir: Optional[Path] = None) -> list:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(round(seconds))}s",
           "--latency", "--timeout", "5s"]
    if pace_ms > 0:
        d = Path(workdir or tempfile.mkdtemp(prefix="darklaunch-wrk-"))
        d.mkdir(parents=True, exist_ok=True)
        script = d / f"pace-{pace_ms:g}ms.lua"
        script.write_text(PACE_LUA.format(pause=int(round(pace_ms))))
        cmd += ["-s", str(script)]
    return cmd + [url]


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _kill_group(runner) -> None:
    """Stop a load generator run (``runner.proc``, started in its own process
    group) and forget it."""
    if runner.proc.poll() is None:
        try:
            os.killpg(runner.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        runner.proc.wait(10)
    harness._unregister(runner)


class Wrk:
    """One wrk run in its own process group; always bounded in time."""

    def __init__(self, cmd: list):
        self.cmd = cmd
        self.seconds = float(re.search(r"-d(\d+)s", " ".join(cmd)).group(1))
        self._ru0 = _children_cpu()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True, text=True)
        harness._register(self)

    def wait(self) -> dict:
        try:
            out, _ = self.proc.communicate(timeout=self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"wrk did not stop by itself: {' '.join(self.cmd)}")
        finally:
            harness._unregister(self)
        if self.proc.returncode != 0:
            raise RuntimeError(f"wrk exited {self.proc.returncode}: {out}")
        res = parse_wrk(out)
        # wrk was reaped just now: its CPU time is in RUSAGE_CHILDREN.
        res["cpu_s"] = _children_cpu() - self._ru0
        return res

    def stop(self) -> None:
        _kill_group(self)


def run_wrk(url: str, threads: int, connections: int, seconds: float, pace_ms: float = 0.0,
            workdir: Optional[Path] = None) -> dict:
    res = Wrk(wrk_command(url, threads, connections, seconds, pace_ms, workdir)).wait()
    return res


# --------------------------------------------------------------------------
# h2load (gRPC over h2c) and nghttpd (a static gRPC answer)
# --------------------------------------------------------------------------

H2LOAD_MAIN_STARTED = "Main benchmark duration is started"
H2LOAD_MAIN_OVER = "Main benchmark duration is over"


def h2load_command(url: str, clients: int, seconds: int, warmup_s: int, data: Path,
                   headers: list, log_file: Path) -> list:
    """h2load (one thread) POSTing ``data`` on every request: ``clients``
    connections with one stream in flight each (closed loop, flat out),
    ``warmup_s`` seconds of h2load's own warm-up, then ``seconds`` measured;
    one line per measured request in ``log_file``."""
    cmd = ["h2load", "-t1", f"-c{clients}", "-m1", "-D", str(int(seconds))]
    if warmup_s > 0:
        cmd += ["--warm-up-time", str(int(warmup_s))]
    cmd += ["--log-file", str(log_file), "-d", str(data)]
    for h in headers:
        cmd += ["-H", h]
    return cmd + [url]


def _h2load_dur_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"not an h2load duration: {text!r}")
    return float(m.group(1)) * _UNITS_S[m.group(2)] * 1000.0


def parse_h2load(out: str) -> dict:
    """The numbers of an h2load report: requests (done in the measured
    seconds), rps, succeeded/failed/errored/timeout, 2xx and other statuses,
    mean and max request time (ms)."""
    res: dict = {"raw": out}
    m = re.search(r"^finished in ([\d.]+)s, ([\d.]+) req/s", out, re.MULTILINE)
    if m:
        res["rps"] = float(m.group(2))
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out, re.MULTILINE)
    if m:
        (res["total"], res["started"], res["requests"], res["succeeded"], res["failed"],
         res["errored"], res["timeout"]) = (int(x) for x in m.groups())
    m = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out,
                  re.MULTILINE)
    if m:
        res["status_2xx"] = int(m.group(1))
        res["non_2xx"] = sum(int(x) for x in m.groups()[1:])
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out, re.MULTILINE)
    if m:
        res["min_ms"], res["max_ms"], res["avg_ms"] = (_h2load_dur_ms(x) for x in m.groups())
    for key in ("rps", "requests", "non_2xx"):
        if key not in res:
            raise ValueError(f"h2load output without {key}:\n{out}")
    return res


def h2load_latencies(log_file: Path) -> dict:
    """p50/p90/p99 (ms) of the request times in an h2load ``--log-file``
    (start µs, status, µs until the end of the response, tab-separated)."""
    times = []
    for line in log_file.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            times.append(int(parts[2]))
    times.sort()
    out = {"logged": len(times)}
    if times:
        for q, key in ((0.5, "p50_ms"), (0.9, "p90_ms"), (0.99, "p99_ms")):
            i = min(len(times) - 1, max(0, int(round(q * len(times) + 0.5)) - 1))
            out[key] = times[i] / 1000.0
    return out


class H2load:
    """One h2load run in its own process group; always bounded in time.

    ``wait(on_main_start, on_main_over)`` reads h2load's output as it comes
    and calls the two hooks when h2load says its measured seconds start and
    end (after its own warm-up), so that meters can cover exactly the
    requests h2load counts."""

    def __init__(self, cmd: list, seconds: float, log_file: Path):
        self.cmd = cmd
        self.seconds = seconds
        self.log_file = log_file
        self._ru0 = _children_cpu()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     text=True, bufsize=1)
        harness._register(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, on_main_start=None, on_main_over=None) -> dict:
        import threading
        timer = threading.Timer(self.seconds + 30, self.stop)
        timer.start()
        lines = []
        started = over = False
        try:
            for line in self.proc.stdout:
                lines.append(line)
                if not started and H2LOAD_MAIN_STARTED in line:
                    started = True
                    if on_main_start:
                        on_main_start()
                elif started and not over and H2LOAD_MAIN_OVER in line:
                    over = True
                    if on_main_over:
                        on_main_over()
            self.proc.wait(10)
        except BaseException:
            self.stop()
            raise
        finally:
            timer.cancel()
            harness._unregister(self)
        out = "".join(lines)
        if self.proc.returncode != 0:
            raise RuntimeError(f"h2load exited {self.proc.returncode}: {out}")
        if not (started and over):
            raise RuntimeError(f"h2load never said its measured seconds started and ended: {out}")
        res = parse_h2load(out)
        res.update(h2load_latencies(self.log_file))
        res["cpu_s"] = _children_cpu() - self._ru0
        return res

    def stop(self) -> None:
        _kill_group(self)


class Nghttpd(harness.ManagedProcess):
    """nghttpd (Debian nghttp2-server) on 127.0.0.1:``port`` serving the files
    of ``docroot`` over h2c, every answer followed by the trailer
    ``grpc-status: 0``: a file holding a gRPC frame is then a real unary gRPC
    answer (HEADERS, DATA, trailing HEADERS) to a POST of the path
    ``/package.Service/Method``. One thread; it answers once the whole
    request is in. It sends no ``content-type``: it sets one from a file name
    extension, and a gRPC path has none."""

    program = "nghttpd"
    missing_hint = "(Debian nghttp2-server: `make tools`)"

    def __init__(self, name: str, docroot: Path, workdir: Path):
        super().__init__(shutil.which("nghttpd") or "nghttpd", name, f"{name}.log", workdir)
        self.docroot = docroot
        self.port = harness.free_port()

    def command(self) -> list:
        return [self.binary, "--no-tls", "-a", LOOPBACK, "-d", str(self.docroot),
                "--trailer", "grpc-status: 0", str(self.port)]

    def is_ready(self) -> bool:
        import socket
        with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
            return True


# --------------------------------------------------------------------------
# Memory and machine
# --------------------------------------------------------------------------

def rss_kib(pid: int) -> int:
    """VmRSS of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def status_kib(pid: int) -> dict:
    """VmRSS, RssAnon, RssFile, VmHWM, VmSize of a process, KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM", "VmSize"):
            out[key] = int(line.split()[1])
    return out


def tcmalloc(env: harness.Envoy) -> dict:
    """The admin /memory numbers (Envoy's own heap; wasm memory is not in it), bytes."""
    status, body = env.admin_get("/memory")
    if status != 200:
        return {}
    return {k: int(v) for k, v in json.loads(body).items() if str(v).isdigit()}


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    except OSError:
        pass
    try:
        envoy = subprocess.run([harness.envoy_bin(), "--version"], capture_output=True,
                               text=True, timeout=30).stdout.strip().split("version:")[-1].strip()
    except (OSError, subprocess.TimeoutExpired):
        envoy = "?"
    try:
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        wrk = "?"
    wasm = harness.wasm_file()
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit = head + (" (src/ has uncommitted changes)" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory": mem,
        "kernel": platform.release(),
        "envoy": envoy,
        "wrk": wrk.split(" Copyright")[0],
        "wasm": f"{wasm} ({wasm.stat().st_size if wasm.exists() else '?'} bytes, sha256 "
                f"{hashlib.sha256(wasm.read_bytes()).hexdigest()[:12] if wasm.exists() else '?'}, built "
                f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(wasm.stat().st_mtime)) if wasm.exists() else '?'})",
        "commit": commit,
    }


def machine_lines(info: dict) -> list:
    return [f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, "
            f"Linux {info['kernel']}, loopback only",
            f"- Envoy: {info['envoy']}",
            f"- load generator: {info['wrk']}",
            f"- module: {info['wasm']}; repository at {info['commit']}"]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def install_signal_exit() -> None:
    """SIGTERM/SIGHUP raise SystemExit, so finally blocks and atexit stop everything."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def markdown_table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(lines)


def cpu_totals() -> tuple:
    """(busy, total) jiffies of the whole machine from /proc/stat (steal counts as busy)."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)  # idle + iowait
    total = sum(f[:8])  # guest time is already inside user
    return total - idle, total


class CpuMeter:
    """CPU used between start() and stop(): per pid (cores) and the whole machine."""

    def __init__(self, pids: dict):
        self.pids = pids
        self.t0 = time.monotonic()
        self.p0 = {k: cpu_seconds(p) for k, p in pids.items()}
        self.m0 = cpu_totals()

    def stop(self) -> dict:
        dt = time.monotonic() - self.t0
        out = {k: (cpu_seconds(p) - self.p0[k]) / dt for k, p in self.pids.items()}
        busy, total = cpu_totals()
        ncpu = os.cpu_count() or 1
        out["machine"] = (busy - self.m0[0]) / max(1, total - self.m0[1]) * ncpu
        out["seconds"] = dt
        return out


def machine_busy(seconds: float = 2.0) -> float:
    """Cores busy on the whole machine over the next ``seconds``."""
    b0, t0 = cpu_totals()
    time.sleep(seconds)
    b1, t1 = cpu_totals()
    return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


def wait_quiet(max_wait_s: float, threshold: float = 0.25, log=print) -> float:
    """Waits (up to ``max_wait_s``) until the machine is nearly idle; the last busy reading.

    Other work on the machine (builds, tests) competes for the 2 cores and
    would show up as latency; this only waits, it never stops anything.
    """
    deadline = time.monotonic() + max_wait_s
    busy = machine_busy()
    warned = False
    while busy > threshold and time.monotonic() < deadline:
        if not warned:
            log(f"  machine busy ({busy:.2f} cores used by other processes), waiting up to "
                f"{max_wait_s:.0f} s for it to quiet down", flush=True)
            warned = True
        busy = machine_busy(5.0)
    return busy
