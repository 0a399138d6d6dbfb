#!/usr/bin/env python3
"""A dark cluster that times out on every call vs. a healthy one: client latency
and what the timeout path costs the front Envoy, darklaunch vs. native mirroring.

Two criteria, both measured side by side in one run:

* latency: "Under a 100% shadow load against a dark cluster that times out
  on every call, the client's p99 latency stays within 5% of the same load
  with the dark cluster healthy" -- p99(timeout) / p99(healthy) <= 1.05;
* CPU (issue #15): "the timeout path within 30 µs per call of native
  mirroring's, over HTTP/1.1 and HTTP/2". The timeout path's cost per call
  of a configuration is the front Envoy's extra CPU per request when the dark
  side times out, per call that timed out:

      ( CPU µs/request (timing out) − CPU µs/request (healthy) )
      / ( calls that timed out per request )

  where CPU is the front Envoy process's (all threads), requests are its
  ``http.ingress.downstream_rq_completed`` over the measured seconds, and
  timed-out calls are darklaunch's ``timeout`` counter, or the dark cluster's
  ``upstream_rq_timeout`` for native mirroring. The criterion compares
  darklaunch's per-call cost with native mirroring's, per dark-cluster
  protocol: darklaunch − native <= 30 µs.

Configurations (``--configs``, all four by default, which is what ``make
fault-latency`` runs):

* ``darklaunch-h1`` / ``darklaunch-h2``: the darklaunch Envoy, one launch at
  ``sample.percent`` 100, ``timeout_ms`` 1000 (``--timeout-ms``), limits that
  do not hold it back (``max_in_flight`` 100000, breaker off in effect:
  ``min_calls`` 4e9), so every matched request is shadowed;
* ``native-h1`` / ``native-h2``: no darklaunch, Envoy's own
  ``request_mirror_policies`` at 100% to the same dark cluster. A mirrored
  request gets the route's timeout (Envoy's router gives the shadow stream
  the route's global timeout; there is no timeout in the mirror policy
  itself), and the route's timeout is set to ``--timeout-ms`` too: both
  shadows are cut off at 1 s by Envoy's async client, the primary answers in
  about a millisecond, unaffected. The report shows it: the dark cluster's
  ``upstream_rq_timeout`` per call is ~1 for every timing-out configuration
  (with the default 15 s route timeout a native shadow would wait the 5 s
  out and reuse its connection instead: a cheaper path, not the same one).

``-h1``: dark cluster over HTTP/1.1: a timed-out call resets its stream, and
Envoy closes the connection (``upstream_cx_destroy_local``), so every call
opens a new one. ``-h2``: over HTTP/2 a timed-out call resets one stream of
the shared connection; the upstream Envoy's rapid-reset guard is then
switched off, since it aborts an HTTP/2 connection when at least half of 500
streams were reset within 1-2 s, which is what timeouts under 2 s look like
to an Envoy or Istio sidecar in front of the dark service.

Setup (all on loopback):

* one upstream Envoy (scripts/upstreams.py, ``--concurrency 1``) answering
  with ``direct_response``: the primary (200, ~1 KiB JSON), a healthy dark
  listener (the same answer) and a slow dark listener whose fault filter
  delays every request by 5 s, longer than the timeout, so every shadow call
  ends as a timeout;
* the front Envoy (``--concurrency 1`` by default: one worker, so the 2 cores
  are left to wrk and the upstream Envoy and the front worker is never
  starved), Envoy's cluster circuit breakers raised on the dark cluster;
* wrk ``-t1 -cN -dS --latency`` against it. wrk is closed-loop: each
  connection sends its next request when the previous answer is in. By
  default a Lua ``delay()`` adds a fixed pause after each answer, so the
  offered rate is about ``N / (pause + latency)`` and the machine is not
  saturated; ``--pace-ms 0`` runs wrk flat out instead (throughput test).

Order: per repetition, each configuration's healthy and timing-out runs are
adjacent (healthy first for every other configuration), the configurations in
turn; the next repetition runs the whole sequence backwards (ABBA),
``--repeats`` times, with a discarded warm-up (longer than the timeout, so the
measured seconds see as many calls time out as are sent) before each measured
run. With several configurations every front Envoy (one per configuration and
dark side) is started once and kept for all repetitions, and the repetitions
are many and short (8 of 2 s warm-up + 4 s measured): other work on this
shared 2-core machine changes what a request costs by tens of percent from
one minute to the next, and short interleaved runs let every configuration
see the same mix of it (``--fresh``: a fresh front Envoy per run instead).
With one configuration, as this script always did: a fresh front Envoy per
run, 3 repetitions of 5 s warm-up + 20 s measured. A configuration's per-call
cost is the median over the repetitions of the cost computed from each
repetition's adjacent healthy and timing-out runs; the latency verdict
compares the medians of the per-run p99s. ``--baseline`` adds runs through an
Envoy without any shadowing, for context.

With more than one configuration the exit status follows the CPU criterion
(latency ratios are reported per configuration); with a single
configuration (or the legacy flags below), the latency criterion, as this
script always did.

Legacy single-configuration flags (each selects one configuration:
darklaunch or, with ``--native-mirror``, native; HTTP/1.1 or, with
``--dark-h2``, HTTP/2): ``--native-mirror``, ``--dark-h2``,
``--spec-defaults`` (darklaunch's default limits, ``max_in_flight`` 100 per
worker and the breaker 0.5/20 calls/10 s/30 s, which stop most calls to a
timing-out dark side from leaving at all), ``--breaker-off`` (the default
``max_in_flight`` but the breaker off: the in-flight limit alone).

``--profile`` also samples the front Envoy with perf during every measured
run and splits its CPU per request, and the timeout path's per call, into
the kernel, the Envoy binary (Envoy, V8's runtime, the wasm host calls: the
binary is stripped), the module's V8-compiled code and libc.
``--rerender RESULT_JSON`` measures nothing and rebuilds the report from a
result.json this script wrote.

Other work on the machine shows up as latency and as CPU per request: before
each repetition (persistent front Envoys; 30 s at most) or run (fresh ones;
300 s) the script waits (``--quiet-wait``) for the machine to be nearly idle,
and the report gives, per run, the CPU used by everything else ("others").

Writes a Markdown report to stdout and to .run/fault_latency/result.md and the
raw numbers to .run/fault_latency/result.json. Exit status 0 on PASS, 1 on
FAIL or when a run went wrong (client errors, non-2xx, calls not timing out),
2 when a prerequisite is missing.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upstreams as U  # noqa: E402
from upstreams import harness  # noqa: E402

OUT = U.ROOT / ".run" / "fault_latency"
LAUNCH = "fault"
LIMIT = 1.05
# Darklaunch's timeout path may cost at most this much more per call than native mirroring's.
PER_CALL_LIMIT_US = 30.0
# name -> (shadowing, dark cluster over HTTP/2)
CONFIGS = {
    "darklaunch-h1": ("darklaunch", False),
    "darklaunch-h2": ("darklaunch", True),
    "native-h1": ("native", False),
    "native-h2": ("native", True),
}
DARK = "cluster.dark."
REQUESTS_STAT = "http.ingress.downstream_rq_completed"
# Dark-cluster counters shown per call in the report (all of cluster.dark.* go to result.json).
DARK_COLUMNS = [
    ("upstream_rq_total", "rq"),
    ("upstream_rq_timeout", "rq timeout"),
    ("upstream_rq_tx_reset", "rq tx reset"),
    ("upstream_cx_total", "new cx"),
    ("upstream_cx_destroy_local", "cx destroy local"),
    ("upstream_cx_destroy_remote", "cx destroy remote"),
    ("upstream_cx_tx_bytes_total", "tx bytes"),
    ("upstream_cx_rx_bytes_total", "rx bytes"),
]

# --profile: perf samples of the front Envoy grouped by where the code lives.
PROFILE_HZ = 2000
PROFILE_PARTS = [
    ("kernel", "kernel (syscalls, TCP)"),
    ("envoy", "envoy binary (Envoy, V8 runtime, wasm host calls)"),
    ("wasm", "wasm code (V8-compiled module)"),
    ("libc", "libc"),
    ("other", "other"),
]


def profile_part(dso: str) -> str:
    if dso.startswith("[kernel"):
        return "kernel"
    if dso == "envoy":
        return "envoy"
    if dso.startswith("[JIT]"):
        return "wasm"
    if dso.startswith("libc"):
        return "libc"
    return "other"


class Profile:
    """``perf record`` of one process (cpu-clock samples, no call graphs) for
    ``seconds``; ``shares()``: the fraction of its samples per PROFILE_PARTS."""

    def __init__(self, pid: int, seconds: float, out: Path):
        self.out = out
        self.proc = subprocess.Popen(
            ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(PROFILE_HZ), "-p", str(pid),
             "-o", str(out), "--", "sleep", f"{seconds:g}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)

    def shares(self) -> dict:
        _, err = self.proc.communicate(timeout=60)
        rep = subprocess.run(["perf", "report", "-i", str(self.out), "--sort", "dso", "-n",
                              "--stdio", "-q", "-g", "none"],
                             capture_output=True, text=True, timeout=120)
        samples = {k: 0 for k, _ in PROFILE_PARTS}
        for line in rep.stdout.splitlines():
            m = re.match(r"\s*[\d.]+%\s+(\d+)\s+(.+?)\s*$", line)
            if m:
                samples[profile_part(m.group(2))] += int(m.group(1))
        total = sum(samples.values())
        if not total:
            raise RuntimeError(f"perf recorded nothing: {err} {rep.stderr}")
        return {k: v / total for k, v in samples.items()} | {"samples": total}


def front_envoy(config: str, kind: str, up: U.UpstreamEnvoy, args, workdir: Path):
    """The (not started) front Envoy of run ``kind`` (healthy, timeout, baseline)."""
    if kind == "baseline":
        return U.filter_envoy_plain(workdir, up.ports["primary"], args.concurrency,
                                    name=kind)
    shadowing, h2 = CONFIGS[config]
    dark = U.cluster("dark", up.ports["ok" if kind == "healthy" else "slow"], http2=h2)
    if shadowing == "native":
        return U.mirror_envoy(workdir, up.ports["primary"], dark, args.timeout_ms,
                              args.concurrency, name=kind)
    launch = U.launch(LAUNCH, "dark", args.timeout_ms)
    if args.spec_defaults:
        # The default limits: max_in_flight 100 per worker, breaker 0.5/20 calls/10 s/30 s.
        del launch["limits"], launch["breaker"]
    elif args.breaker_off:
        # The default max_in_flight (100 per worker), breaker off in effect.
        del launch["limits"]
    return U.filter_envoy(workdir, up.ports["primary"], [dark], [launch], args.concurrency,
                          name=kind)


def measure(env, config: str, kind: str, up: U.UpstreamEnvoy, args, idx: int,
            repeat: int, idle_busy: float) -> dict:
    """One measured run of the started front Envoy ``env`` of ``config`` against a
    ``kind`` dark side (or a baseline): warm-up, then the measured seconds."""
    native = kind != "baseline" and CONFIGS[config][0] == "native"

    def counts() -> dict:
        """Darklaunch's launch counters (native: the same names from the dark
        cluster's), the dark cluster's counters and the front's request count."""
        out = {"requests": env.stats(REQUESTS_STAT).get(REQUESTS_STAT, 0)}
        if kind == "baseline":
            return out
        dark = env.stats(DARK)
        out["dark"] = {k[len(DARK):]: v for k, v in dark.items()}
        out["launch"] = U.mirror_stats(env) if native else env.launch_stats(LAUNCH)
        return out

    url = env.url("/api/orders/42")
    if args.warmup > 0:
        U.run_wrk(url, 1, args.connections, args.warmup, args.pace_ms, OUT)
    before = counts()
    meter = U.CpuMeter({"front": env.proc.pid, "upstream": up.pid})
    wrk = U.Wrk(U.wrk_command(url, 1, args.connections, args.seconds, args.pace_ms, OUT))
    prof = (Profile(env.proc.pid, args.seconds, OUT / f"run{idx:02d}.perf")
            if args.profile else None)
    time.sleep(args.seconds / 2)
    mid = counts()
    res = wrk.wait()
    cpu = meter.stop()
    after = counts()
    shares = prof.shares() if prof else None
    rss = U.rss_kib(env.proc.pid)

    def delta(key):
        return after.get("launch", {}).get(key, 0) - before.get("launch", {}).get(key, 0)

    dark = {k: v - before.get("dark", {}).get(k, 0) for k, v in after.get("dark", {}).items()}
    requests = after["requests"] - before["requests"]
    cpu_front_s = cpu["front"] * cpu["seconds"]
    row = {
        "config": config,
        "kind": kind,
        "repeat": repeat,
        "rps": res["rps"],
        "requests": res["requests"],
        "p50_ms": res["p50_ms"],
        "p75_ms": res["p75_ms"],
        "p90_ms": res["p90_ms"],
        "p99_ms": res["p99_ms"],
        "max_ms": res["max_ms"],
        "errors": sum(res["errors"].values()),
        "non_2xx": res["non_2xx"],
        "matched": delta("matched"),
        "shadowed": delta("shadowed"),
        "timeouts": delta("dark_response.timeout"),
        "dark_2xx": delta("dark_response.2xx"),
        "compared": delta("compared"),
        "skipped": sum(delta(k) for k in after.get("launch", {}) if k.startswith("skipped.")),
        "in_flight_mid": mid.get("launch", {}).get("in_flight", 0),
        "dark_connections": dark.get("upstream_cx_total", 0),
        "dark": dark,
        "launch": {k: delta(k) for k in after.get("launch", {}) if delta(k)},
        "front_requests": requests,
        "cpu_front_s": cpu_front_s,
        "cpu_us_per_req": cpu_front_s / requests * 1e6 if requests else 0.0,
        "timeouts_per_req": delta("dark_response.timeout") / requests if requests else 0.0,
        "cpu_front": cpu["front"],
        "cpu_upstream": cpu["upstream"],
        "cpu_machine": cpu["machine"],
        "cpu_wrk": res["cpu_s"] / cpu["seconds"],
        "cpu_others": max(0.0, cpu["machine"] - cpu["front"] - cpu["upstream"]
                          - res["cpu_s"] / cpu["seconds"]),
        "idle_busy_before": idle_busy,
        "profile": shares,
        "rss_mib": rss / 1024,
        "wrk": res["raw"],
    }
    row["skipped_by"] = {k: v for k, v in row["launch"].items() if k.startswith("skipped.")}
    row["problems"] = problems(row, args)
    return row


def report_run(rows: list, r: dict) -> None:
    print(f"run {len(rows)}: {r['config']:13} {r['kind']:8} rps {r['rps']:.0f} "
          f"p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms shadowed "
          f"{r['shadowed']} timeouts {r['timeouts']} in-flight {r['in_flight_mid']} "
          f"new dark cx {r['dark_connections']} front cpu {r['cpu_front']:.2f} "
          f"= {r['cpu_us_per_req']:.0f} µs/req others {r['cpu_others']:.2f}"
          + (f" PROBLEMS: {r['problems']}" if r["problems"] else ""), flush=True)


def order_of(configs: list, i: int, baseline: bool) -> list:
    """Repetition ``i``'s runs: each configuration's two dark sides adjacent, healthy
    first for every other configuration; odd repetitions run the sequence backwards."""
    seq = [(c, k) for j, c in enumerate(configs)
           for k in (("healthy", "timeout") if j % 2 == 0 else ("timeout", "healthy"))]
    if i % 2:
        seq.reverse()
    if baseline:
        seq.append(("baseline", "baseline"))
    return seq


def run_fresh(configs: list, up: U.UpstreamEnvoy, args) -> list:
    """One fresh front Envoy per run, waiting for a quiet machine before each."""
    rows = []
    for i in range(args.repeats):
        for config, kind in order_of(configs, i, args.baseline):
            idle_busy = U.wait_quiet(args.quiet_wait)
            workdir = OUT / f"run{len(rows) + 1:02d}-{config}-{kind}"
            shutil.rmtree(workdir, ignore_errors=True)
            env = front_envoy(config, kind, up, args, workdir)
            env.start(timeout=60)
            try:
                r = measure(env, config, kind, up, args, len(rows) + 1, i, idle_busy)
            finally:
                env.stop()
            rows.append(r)
            report_run(rows, r)
    return rows


def run_persistent(configs: list, up: U.UpstreamEnvoy, args) -> list:
    """Every front Envoy started once and kept; the repetitions cycle through them,
    waiting for a quiet machine before each repetition."""
    rows = []
    envs = {}
    try:
        for config, kind in order_of(configs, 0, args.baseline):
            workdir = OUT / f"front-{config}-{kind}"
            shutil.rmtree(workdir, ignore_errors=True)
            envs[config, kind] = front_envoy(config, kind, up, args, workdir)
            envs[config, kind].start(timeout=60)
        for i in range(args.repeats):
            idle_busy = U.wait_quiet(args.quiet_wait)
            for config, kind in order_of(configs, i, args.baseline):
                r = measure(envs[config, kind], config, kind, up, args, len(rows) + 1, i,
                            idle_busy)
                rows.append(r)
                report_run(rows, r)
    finally:
        for env in envs.values():
            env.stop()
    return rows


def problems(r: dict, args) -> list:
    """What went wrong in run ``r``: client errors, calls skipped or not timing out."""
    limited = args.spec_defaults or args.breaker_off
    out = []
    if r["errors"] or r["non_2xx"]:
        out.append(f"client saw {r['errors']} socket errors and {r['non_2xx']} non-2xx answers")
    if r["kind"] == "baseline":
        return out
    if limited:
        return out  # limits and breaker skip calls on purpose
    if r["skipped"]:
        out.append(f"{r['skipped']} matched requests were not shadowed")
    if r["matched"] == 0:
        out.append("nothing matched")
    # The calls timing out during the measured seconds are those sent from one
    # timeout before them to one timeout before their end: as many as were sent
    # in them at a steady rate, but the rate moves (other work on the machine),
    # by up to the share of the run one timeout is, plus a margin.
    least = 1 - args.timeout_ms / (args.seconds * 1000) - 0.05
    if r["kind"] == "timeout" and r["timeouts"] < least * r["shadowed"]:
        out.append(f"only {r['timeouts']} of {r['shadowed']} shadow calls timed out")
    if r["kind"] == "timeout" and r["dark_2xx"]:
        out.append(f"{r['dark_2xx']} dark calls answered 2xx")
    if r["kind"] == "healthy" and r["dark_2xx"] < 0.99 * r["shadowed"]:
        out.append(f"only {r['dark_2xx']} of {r['shadowed']} dark calls answered 2xx")
    return out


def fmt_rows(rows: list) -> str:
    header = ["run", "config", "dark side", "rps", "p50 ms", "p90 ms", "p99 ms", "max ms",
              "shadowed", "skipped", "dark timeouts", "in flight (mid-run)", "new dark conns",
              "front CPU µs/req", "CPU front", "CPU upstream", "CPU wrk", "CPU others",
              "errors"]
    body = []
    for i, r in enumerate(rows, 1):
        base = r["kind"] == "baseline"
        body.append([i, "-" if base else r["config"], r["kind"], f"{r['rps']:.0f}",
                     f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}", f"{r['p99_ms']:.2f}",
                     f"{r['max_ms']:.1f}",
                     "-" if base else r["shadowed"],
                     "-" if base else
                     (", ".join(f"{k[8:]} {v}" for k, v in r["skipped_by"].items()) or 0),
                     "-" if base else r["timeouts"],
                     "-" if base else r["in_flight_mid"],
                     "-" if base else r["dark_connections"],
                     f"{r['cpu_us_per_req']:.0f}",
                     f"{r['cpu_front']:.2f}", f"{r['cpu_upstream']:.2f}",
                     f"{r['cpu_wrk']:.2f}", f"{r['cpu_others']:.2f}",
                     r["errors"] + r["non_2xx"]])
    return U.markdown_table(header, body)


def _med(rows: list, key: str) -> float:
    return statistics.median(r[key] for r in rows) if rows else float("nan")


def per_call_costs(rows: list, config: str) -> list:
    """The timeout path's extra front-Envoy CPU per timed-out call, µs, from each
    repetition's adjacent healthy and timing-out runs of ``config``."""
    out = []
    for rep in sorted({r["repeat"] for r in rows if r["config"] == config}):
        h = [r for r in rows if r["config"] == config and r["repeat"] == rep
             and r["kind"] == "healthy"]
        t = [r for r in rows if r["config"] == config and r["repeat"] == rep
             and r["kind"] == "timeout"]
        if h and t and t[0]["timeouts_per_req"] > 0:
            out.append((t[0]["cpu_us_per_req"] - h[0]["cpu_us_per_req"])
                       / t[0]["timeouts_per_req"])
    return out


def config_summary(rows: list, configs: list) -> tuple:
    """Per configuration: medians of both kinds, the p99 ratio and the per-call cost."""
    out = {}
    table = []
    for c in configs:
        h = [r for r in rows if r["config"] == c and r["kind"] == "healthy"]
        t = [r for r in rows if r["config"] == c and r["kind"] == "timeout"]
        costs = per_call_costs(rows, c)
        s = {
            "runs": len(h) + len(t),
            "rps_healthy": _med(h, "rps"), "rps_timeout": _med(t, "rps"),
            "p50_healthy": _med(h, "p50_ms"), "p50_timeout": _med(t, "p50_ms"),
            "p90_healthy": _med(h, "p90_ms"), "p90_timeout": _med(t, "p90_ms"),
            "p99_healthy": _med(h, "p99_ms"), "p99_timeout": _med(t, "p99_ms"),
            "cpu_us_healthy": _med(h, "cpu_us_per_req"), "cpu_us_timeout": _med(t, "cpu_us_per_req"),
            "timeouts_per_req": _med(t, "timeouts_per_req"),
            "per_call_us": statistics.median(costs) if costs else float("nan"),
            "per_call_us_all": costs,
        }
        s["p99_ratio"] = s["p99_timeout"] / s["p99_healthy"]
        out[c] = s
        table.append([
            f"`{c}`", f"{len(h)} + {len(t)}",
            f"{s['rps_healthy']:.0f} / {s['rps_timeout']:.0f}",
            f"{s['p99_healthy']:.2f} / {s['p99_timeout']:.2f}",
            f"{s['p99_ratio']:.3f} {'PASS' if s['p99_ratio'] <= LIMIT else 'FAIL'}",
            f"{s['cpu_us_healthy']:.0f} / {s['cpu_us_timeout']:.0f}",
            f"{s['timeouts_per_req']:.3f}",
            f"**{s['per_call_us']:.0f}**",
            " / ".join(f"{x:.0f}" for x in costs),
        ])
    text = U.markdown_table(
        ["config", "runs (healthy + timing out)", "median rps healthy / timing out",
         "median p99 ms healthy / timing out", f"p99 ratio (≤ {LIMIT})",
         "front CPU µs/req healthy / timing out", "timed-out calls per request",
         "timeout path µs per call (median)", "per repetition"], table)
    return out, text


def comparison(summ: dict) -> tuple:
    """Darklaunch − native per call, per protocol present for both; (rows, verdict, text)."""
    rows = []
    for proto, h2 in (("HTTP/1.1", False), ("HTTP/2", True)):
        dl = next((c for c, v in CONFIGS.items() if v == ("darklaunch", h2) and c in summ), None)
        nat = next((c for c, v in CONFIGS.items() if v == ("native", h2) and c in summ), None)
        if not (dl and nat):
            continue
        d, n = summ[dl]["per_call_us"], summ[nat]["per_call_us"]
        pairs = [a - b for a, b in zip(summ[dl]["per_call_us_all"], summ[nat]["per_call_us_all"])]
        mean = statistics.mean(pairs) if pairs else float("nan")
        se = statistics.stdev(pairs) / len(pairs) ** 0.5 if len(pairs) > 1 else float("nan")
        rows.append({"protocol": proto, "darklaunch": d, "native": n, "diff": d - n,
                     "diff_by_repeat": pairs, "diff_mean": mean, "diff_se": se,
                     "pass": d - n <= PER_CALL_LIMIT_US})
    if not rows:
        return rows, None, ""
    verdict = "PASS" if all(r["pass"] for r in rows) else "FAIL"
    text = U.markdown_table(
        ["dark cluster", "darklaunch µs per timed-out call", "native µs per timed-out call",
         f"darklaunch − native (≤ {PER_CALL_LIMIT_US:g})", "by repetition",
         "mean of repetitions ± 2 SE", "verdict"],
        [[r["protocol"], f"{r['darklaunch']:.0f}", f"{r['native']:.0f}", f"**{r['diff']:+.0f}**",
          " / ".join(f"{x:+.0f}" for x in r["diff_by_repeat"]),
          f"{r['diff_mean']:+.0f} ± {2 * r['diff_se']:.0f}",
          "PASS" if r["pass"] else "FAIL"] for r in rows])
    return rows, verdict, text


def dark_counters(rows: list, configs: list) -> str:
    """Per configuration and dark side: the dark cluster's counters per front request (medians)."""
    body = []
    for c in configs:
        for kind in ("healthy", "timeout"):
            rs = [r for r in rows if r["config"] == c and r["kind"] == kind]
            if not rs:
                continue
            cells = []
            for key, _ in DARK_COLUMNS:
                v = statistics.median(r["dark"].get(key, 0) / max(1, r["front_requests"])
                                      for r in rs)
                cells.append(f"{v:.0f}" if key.endswith("bytes_total") else f"{v:.3f}")
            body.append([f"`{c}`", kind, *cells,
                         f"{statistics.median(r['in_flight_mid'] for r in rs):.0f}"])
    return U.markdown_table(["config", "dark side", *(label for _, label in DARK_COLUMNS),
                             "in flight (mid-run)"], body)


def part_us(r: dict, part: str) -> float:
    """Front CPU µs/request spent in ``part`` (PROFILE_PARTS) in run ``r``."""
    return r["cpu_us_per_req"] * r["profile"][part]


def profile_tables(rows: list, configs: list) -> str:
    """--profile: front CPU µs/request by where the code lives, per configuration
    and dark side, and the timeout path's per-call cost split the same way."""
    parts = [k for k, _ in PROFILE_PARTS]
    body = []
    for c in configs:
        for kind in ("healthy", "timeout"):
            rs = [r for r in rows if r["config"] == c and r["kind"] == kind and r["profile"]]
            if rs:
                body.append([f"`{c}`", kind, *(f"{statistics.median(part_us(r, k) for r in rs):.0f}"
                                               for k in parts),
                             f"{_med(rs, 'cpu_us_per_req'):.0f}"])
    per_call = {}
    for c in configs:
        costs = {k: [] for k in parts}
        for rep in sorted({r["repeat"] for r in rows if r["config"] == c}):
            h = [r for r in rows if r["config"] == c and r["repeat"] == rep
                 and r["kind"] == "healthy" and r["profile"]]
            t = [r for r in rows if r["config"] == c and r["repeat"] == rep
                 and r["kind"] == "timeout" and r["profile"]]
            if h and t and t[0]["timeouts_per_req"] > 0:
                for k in parts:
                    costs[k].append((part_us(t[0], k) - part_us(h[0], k))
                                    / t[0]["timeouts_per_req"])
        if costs[parts[0]]:
            per_call[c] = {k: statistics.median(v) for k, v in costs.items()}
    calls = [[f"`{c}`", *(f"{v[k]:+.0f}" for k in parts), f"{sum(v.values()):+.0f}"]
             for c, v in per_call.items()]
    for proto, h2 in (("HTTP/1.1", False), ("HTTP/2", True)):
        dl = next((c for c in per_call if CONFIGS[c] == ("darklaunch", h2)), None)
        nat = next((c for c in per_call if CONFIGS[c] == ("native", h2)), None)
        if dl and nat:
            d = {k: per_call[dl][k] - per_call[nat][k] for k in parts}
            calls.append([f"darklaunch − native, {proto}", *(f"**{d[k]:+.0f}**" for k in parts),
                          f"**{sum(d.values()):+.0f}**"])
    labels = [label for _, label in PROFILE_PARTS]
    return "\n".join([
        "Where the front Envoy's CPU goes (`--profile`: perf cpu-clock samples at "
        f"{PROFILE_HZ} Hz during each measured run, the run's front CPU µs/request split by "
        "the samples' share; medians):",
        "",
        U.markdown_table(["config", "dark side", *labels, "total µs/req"], body),
        "",
        "The timeout path's µs per timed-out call split the same way (medians over the "
        "repetitions, so the parts need not add up to the total above exactly):",
        "",
        U.markdown_table(["config", *labels, "sum"], calls),
    ])


def setup_lines(args, configs: list) -> list:
    lines = []
    if any(CONFIGS[c][0] == "darklaunch" for c in configs):
        limits = ("default limits and breaker (max_in_flight 100 per worker, breaker "
                  "0.5/20 calls/10 s/30 s)" if args.spec_defaults else
                  "default max_in_flight (100 per worker), breaker off (min_calls 4e9)"
                  if args.breaker_off else
                  "max_in_flight 100000, breaker off (min_calls 4e9): every request shadowed")
        lines.append(f"- darklaunch front Envoy: `--concurrency {args.concurrency}`, FAIL_CLOSED, "
                     f"one launch, sample.percent 100, timeout_ms {args.timeout_ms}, {limits}, "
                     "dark cluster's circuit breakers raised")
    if any(CONFIGS[c][0] == "native" for c in configs):
        lines.append(f"- native front Envoy: `--concurrency {args.concurrency}`, no darklaunch: "
                     "Envoy's own request_mirror_policies at 100% to the dark cluster (fire and "
                     f"forget), route timeout {args.timeout_ms} ms (the mirrored request's "
                     "timeout), dark cluster's circuit breakers raised")
    protos = {CONFIGS[c][1] for c in configs}
    if False in protos:
        lines.append("- `-h1`: dark cluster over HTTP/1.1 (a timed-out call closes its connection)")
    if True in protos:
        lines.append("- `-h2`: dark cluster over HTTP/2 (a timed-out call resets its stream); the "
                     "upstream Envoy's premature-reset guard off")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default=None,
                    help="comma-separated configurations to run, of " + ", ".join(CONFIGS)
                         + " (all)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="runs of each configuration and dark side (8 with persistent front "
                         "Envoys, 3 with fresh ones)")
    ap.add_argument("--seconds", type=int, default=None,
                    help="measured seconds per run (4 with persistent front Envoys, 20 with "
                         "fresh ones)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="discarded warm-up seconds per run, more than the timeout (2 with "
                         "persistent front Envoys, 5 with fresh ones)")
    ap.add_argument("--connections", type=int, default=8, help="wrk connections (8)")
    ap.add_argument("--pace-ms", type=float, default=4.0,
                    help="pause after each answer per connection, ms; 0 = flat out (4)")
    ap.add_argument("--concurrency", type=int, default=1, help="front Envoy workers (1)")
    ap.add_argument("--timeout-ms", type=int, default=1000,
                    help="launch timeout_ms and native route timeout (1000)")
    ap.add_argument("--quiet-wait", type=float, default=None,
                    help="wait up to this many seconds for other processes to leave the "
                         "machine idle: before each repetition with persistent front Envoys "
                         "(30), before each run with fresh ones (300)")
    ap.add_argument("--dark-h2", action="store_true",
                    help="one configuration, dark cluster over HTTP/2 (darklaunch-h2, or "
                         "native-h2 with --native-mirror)")
    ap.add_argument("--native-mirror", action="store_true",
                    help="one configuration, Envoy's own request_mirror_policies instead of "
                         "darklaunch (native-h1, or native-h2 with --dark-h2)")
    ap.add_argument("--spec-defaults", action="store_true",
                    help="one darklaunch configuration with the default limits.max_in_flight "
                         "(100) and breaker instead of switching them off (then most "
                         "timing-out calls are never sent)")
    ap.add_argument("--breaker-off", action="store_true",
                    help="one darklaunch configuration with the default limits.max_in_flight "
                         "(100 per worker) but the breaker off: what the in-flight limit alone "
                         "does")
    ap.add_argument("--fresh", action="store_true",
                    help="a fresh front Envoy for every run, as with a single configuration, "
                         "instead of one per configuration and dark side kept for all "
                         "repetitions")
    ap.add_argument("--profile", action="store_true",
                    help="perf-record the front Envoy during each measured run and split its "
                         "CPU per request (and the timeout path's per call) into kernel, "
                         "envoy binary, wasm code and libc")
    ap.add_argument("--baseline", action="store_true",
                    help="also run an Envoy without any shadowing, once per repetition")
    ap.add_argument("--rerender", metavar="RESULT_JSON",
                    help="measure nothing: rebuild the report (and the problem checks) from a "
                         "result.json this script wrote, into .run/fault_latency/")
    args = ap.parse_args(argv)
    if args.rerender:
        return rerender(Path(args.rerender))
    legacy = args.dark_h2 or args.native_mirror or args.spec_defaults or args.breaker_off
    if legacy and args.configs:
        ap.error("--configs cannot be combined with --dark-h2, --native-mirror, "
                 "--spec-defaults or --breaker-off (each of those selects one configuration)")
    if args.native_mirror and (args.spec_defaults or args.breaker_off):
        ap.error("--spec-defaults and --breaker-off are darklaunch's limits, not native's")
    if legacy:
        configs = [("native" if args.native_mirror else "darklaunch")
                   + ("-h2" if args.dark_h2 else "-h1")]
    else:
        configs = [c.strip() for c in (args.configs or ",".join(CONFIGS)).split(",") if c.strip()]
        unknown = [c for c in configs if c not in CONFIGS]
        if unknown or not configs:
            ap.error(f"unknown configurations {unknown}; known: {', '.join(CONFIGS)}")
    persistent = len(configs) > 1 and not args.fresh
    for key, if_persistent, if_fresh in (("repeats", 8, 3), ("seconds", 4, 20), ("warmup", 2, 5),
                                         ("quiet_wait", 30.0, 300.0)):
        if getattr(args, key) is None:
            setattr(args, key, if_persistent if persistent else if_fresh)
    if args.warmup * 1000 <= args.timeout_ms:
        print(f"note: a warm-up of {args.warmup} s is not longer than the timeout: the first "
              "measured second sees fewer calls time out than are sent", file=sys.stderr)
    U.install_signal_exit()
    for tool in ("wrk",) + (("perf",) if args.profile else ()):
        if not shutil.which(tool):
            print(f"{tool} not found: run `make tools`", file=sys.stderr)
            return 2
    if any(CONFIGS[c][0] == "darklaunch" for c in configs) and not harness.wasm_file().exists():
        print(f"module not found: {harness.wasm_file()} (make build)", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    info = U.machine()
    cmdline = "scripts/fault_latency.py " + " ".join(shlex.quote(a) for a in
                                                      (argv if argv is not None else sys.argv[1:]))
    print(f"# fault latency: {cmdline}", flush=True)
    slow_delay_s = max(5.0, args.timeout_ms / 1000 * 5)
    up = U.UpstreamEnvoy(OUT / "upstreams", concurrency=1, slow_delay_s=slow_delay_s,
                         allow_premature_resets=any(CONFIGS[c][1] for c in configs)).start()
    t_start = time.time()
    try:
        rows = (run_persistent if persistent else run_fresh)(configs, up, args)
    finally:
        up.stop()
    elapsed = time.time() - t_start

    text, verdict = render(args, configs, persistent, info, rows, elapsed, cmdline)
    print()
    print(text)
    save(args, configs, info, rows, elapsed, cmdline, text, verdict)
    return 0 if verdict == "PASS" else 1


def rerender(path: Path) -> int:
    """The report of a finished run rebuilt from its result.json."""
    saved = json.loads(path.read_text())
    args = argparse.Namespace(**{"profile": False, "fresh": False, **saved["args"]})
    configs = saved["configs"]
    rows = saved["runs"]
    for r in rows:
        r["problems"] = problems(r, args)
    persistent = len(configs) > 1 and not args.fresh
    cmdline = saved.get("command", "?")
    text, verdict = render(args, configs, persistent, saved["machine"], rows,
                           saved.get("elapsed_s"), cmdline)
    text += f"\n(Report rebuilt from {path} by `scripts/fault_latency.py --rerender`.)\n"
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    save(args, configs, saved["machine"], rows, saved.get("elapsed_s"), cmdline, text, verdict)
    return 0 if verdict == "PASS" else 1


def save(args, configs, info, rows, elapsed, cmdline, text, verdict) -> None:
    summ, _ = config_summary(rows, configs)
    comp, _, _ = comparison(summ)
    (OUT / "result.md").write_text(text)
    (OUT / "result.json").write_text(json.dumps(
        {"args": vars(args), "configs": configs, "machine": info, "command": cmdline,
         "elapsed_s": elapsed, "verdict": verdict, "summary": summ, "comparison": comp,
         "runs": rows}, indent=2))


def render(args, configs, persistent, info, rows, elapsed, cmdline) -> tuple:
    """The Markdown report and the verdict."""
    wrk_cmd = " ".join(U.wrk_command("http://127.0.0.1:PORT/api/orders/42", 1, args.connections,
                                     args.seconds, args.pace_ms, OUT))
    slow_delay_s = max(5.0, args.timeout_ms / 1000 * 5)
    summ, summ_text = config_summary(rows, configs)
    comp, comp_verdict, comp_text = comparison(summ)
    bad = [(i, r["config"], r["kind"], p) for i, r in enumerate(rows, 1) for p in r["problems"]]
    mode = (f"paced: each connection pauses {args.pace_ms:g} ms after every answer (wrk Lua "
            "`delay()`), so the offered rate is fixed by the pause and the latency; still "
            "closed-loop" if args.pace_ms > 0 else
            "flat out: closed-loop, each connection sends its next request as soon as the "
            "previous answer is in (the machine is saturated)")
    if comp_verdict is not None:
        verdict = "PASS" if comp_verdict == "PASS" and not bad else "FAIL"
        head = [
            "## Fault latency: the timeout path's CPU per call, darklaunch vs. native mirroring",
            "",
            f"Criterion (issue #15): the front Envoy's timeout path costs darklaunch at most "
            f"{PER_CALL_LIMIT_US:g} µs per call more than native mirroring, over HTTP/1.1 and "
            "HTTP/2. Per configuration: (front CPU µs/request timing out − healthy) / timed-out "
            f"calls per request, median over {args.repeats} repetitions of adjacent runs. The "
            "per-repetition differences show the noise: their mean ± 2 standard errors is "
            "roughly what the data allow.",
            "",
            f"**{verdict}**: " + "; ".join(
                f"{r['protocol']} darklaunch {r['darklaunch']:.0f} − native {r['native']:.0f} "
                f"= **{r['diff']:+.0f} µs** per call" for r in comp)
            + (" (and runs went wrong, see Problems)" if bad else ""),
            "",
            comp_text,
            "",
        ]
    else:
        c = configs[0]
        s = summ[c]
        ratio = s["p99_ratio"]
        verdict = "PASS" if ratio <= LIMIT and not bad else "FAIL"
        head = [
            f"## Fault latency: dark cluster timing out vs. healthy (`{c}`)",
            "",
            f"Criterion: p99(timeout) / p99(healthy) <= {LIMIT}, medians of {args.repeats} "
            "runs each.",
            "",
            f"**{verdict}**: median p99 timeout {s['p99_timeout']:.2f} ms / healthy "
            f"{s['p99_healthy']:.2f} ms = **{ratio:.3f}**"
            f" (p50 ratio {s['p50_timeout'] / s['p50_healthy']:.3f}, p90 ratio "
            f"{s['p90_timeout'] / s['p90_healthy']:.3f}, rps ratio "
            f"{s['rps_timeout'] / s['rps_healthy']:.3f})",
            "",
        ]
    lines = head + [
        *U.machine_lines(info),
        *setup_lines(args, configs),
        "- upstream Envoy: `--concurrency 1`, direct_response ~1 KiB JSON; slow listener: fault "
        f"filter fixed_delay {slow_delay_s:g} s at 100%",
        f"- load: `{wrk_cmd}`, {mode}; {args.warmup} s warm-up discarded per run; "
        + ("one front Envoy per configuration and dark side, started once and kept for all "
           f"{args.repeats} repetitions" if persistent else "fresh front Envoy per run")
        + "; each configuration's healthy and timing-out runs adjacent, order ABBA over the "
        "repetitions",
        f"- command: `{cmdline}`"
        + (f" ({elapsed / 60:.1f} min)" if elapsed is not None else ""),
        "- front CPU µs/req: the front Envoy process's CPU time (all threads) over the measured "
        f"seconds / its `{REQUESTS_STAT}` over the same span. CPU columns: cores used during "
        "the measured run by the front Envoy, the upstream Envoy, wrk, and everything else on "
        "the machine (others: should be near 0; each "
        + ("repetition" if persistent else "run")
        + f" waited up to {args.quiet_wait:g} s for an idle machine first)",
        "",
        "Per configuration (medians):",
        "",
        summ_text,
        "",
        "The dark cluster's counters per front request (medians; `new cx`: connections "
        "opened, `cx destroy local`: closed by the front Envoy):",
        "",
        dark_counters(rows, configs),
        "",
        *([profile_tables(rows, configs), ""] if args.profile else []),
        "All runs:",
        "",
        fmt_rows(rows),
        "",
    ]
    noisy = [i for i, r in enumerate(rows, 1) if r["cpu_others"] > 0.2]
    if noisy:
        lines += [f"Note: other processes used more than 0.2 cores during runs {noisy}; "
                  "those numbers include their interference.", ""]
    if bad:
        lines += ["Problems:", ""] + [f"- run {i} ({c}, {k}): {p}" for i, c, k, p in bad] + [""]
    return "\n".join(lines), verdict


if __name__ == "__main__":
    sys.exit(main())
