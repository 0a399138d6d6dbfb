#!/usr/bin/env python3
"""Client latency with a dark cluster that times out on every call vs. a healthy one.

The acceptance criterion: "Under a 100% shadow load against a dark cluster
that times out on every call, the client's p99 latency stays within 5% of the
same load with the dark cluster healthy, measured side by side in one run."

Setup (all on loopback):

* one upstream Envoy (scripts/upstreams.py, ``--concurrency 1``) answering
  with ``direct_response``: the primary (200, ~1 KiB JSON), a healthy dark
  listener (the same answer) and a slow dark listener whose fault filter
  delays every request by 5 s, longer than the launch's ``timeout_ms``
  (1000 ms, the default), so every shadow call ends as a timeout;
* the darklaunch Envoy (``--concurrency 1`` by default: one worker, so the 2
  cores are left to wrk and the upstream Envoy and the filter's worker is never
  starved), one launch at ``sample.percent`` 100 whose limits do not hold it
  back (``max_in_flight`` 100000, breaker off in effect), dark cluster over
  HTTP/1.1 with Envoy's cluster circuit breakers raised;
* wrk ``-t1 -cN -dS --latency`` against it. wrk is closed-loop: each
  connection sends its next request when the previous answer is in. By
  default a Lua ``delay()`` adds a fixed pause after each answer, so the
  offered rate is about ``N / (pause + latency)`` and the machine is not
  saturated; ``--pace-ms 0`` runs wrk flat out instead (throughput test).

The two configurations alternate, healthy/timeout then timeout/healthy
(ABBA), ``--repeats`` times each, with a fresh darklaunch Envoy for every run
and a discarded warm-up before each measured run. The verdict compares the
medians of the per-run p99s: PASS when p99(timeout) / p99(healthy) <= 1.05.
``--baseline`` adds runs through an Envoy without the filter, for context.

Variants: ``--dark-h2`` talks HTTP/2 to the dark cluster (a timed-out call
then resets one stream; over HTTP/1.1 Envoy must close the connection, so
every timed-out shadow call costs a new TCP connection); the upstream Envoy's
rapid-reset guard is switched off for it, since it aborts an HTTP/2
connection when at least half of 500 streams were reset within 1-2 s, which
is what timeouts under 2 s look like to an Envoy or Istio sidecar in front of
the dark service. ``--spec-defaults`` keeps the default limits,
``max_in_flight`` (100 per worker) and the breaker (0.5/20 calls/10 s/30 s),
which stop most calls to a timing-out dark side from leaving at all.
``--breaker-off`` keeps the default ``max_in_flight`` but switches the
breaker off (the in-flight limit alone). ``--native-mirror`` replaces
darklaunch with Envoy's own ``request_mirror_policies`` (route timeout =
``--timeout-ms``): what a timing-out dark side costs Envoy itself, to tell the
filter's share from Envoy's.

Other work on the machine shows up as latency: before each run the script
waits (``--quiet-wait``, 300 s) for the machine to be nearly idle, and the
report gives, per run, the CPU used by everything else ("others").

Writes a Markdown report to stdout and to .run/fault_latency/result.md and the
raw numbers to .run/fault_latency/result.json. Exit status 0 on PASS, 1 on
FAIL or when a run went wrong (client errors, non-2xx, calls not timing out),
2 when a prerequisite is missing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upstreams as U  # noqa: E402
from upstreams import harness  # noqa: E402

OUT = U.ROOT / ".run" / "fault_latency"
LAUNCH = "fault"
LIMIT = 1.05


def run_once(kind: str, up: U.UpstreamEnvoy, args, idx: int) -> dict:
    """One measured run of configuration ``kind`` (healthy, timeout or baseline)."""
    idle_busy = U.wait_quiet(args.quiet_wait)
    workdir = OUT / f"run{idx:02d}-{kind}"
    shutil.rmtree(workdir, ignore_errors=True)
    if kind == "baseline":
        env = U.filter_envoy_plain(workdir, up.ports["primary"], args.concurrency, name=kind)
    elif args.native_mirror:
        dark = up.ports["ok" if kind == "healthy" else "slow"]
        env = U.mirror_envoy(workdir, up.ports["primary"],
                             U.cluster("dark", dark, http2=args.dark_h2), args.timeout_ms,
                             args.concurrency, name=kind)
    else:
        dark = up.ports["ok" if kind == "healthy" else "slow"]
        launch = U.launch(LAUNCH, "dark", args.timeout_ms)
        if args.spec_defaults:
            # The default limits: max_in_flight 100 per worker, breaker 0.5/20 calls/10 s/30 s.
            del launch["limits"], launch["breaker"]
        elif args.breaker_off:
            # The default max_in_flight (100 per worker), breaker off in effect.
            del launch["limits"]
        env = U.filter_envoy(workdir, up.ports["primary"],
                             [U.cluster("dark", dark, http2=args.dark_h2)],
                             [launch], args.concurrency, name=kind)
    env.start(timeout=60)

    def counts() -> dict:
        if kind == "baseline":
            return {}
        return U.mirror_stats(env) if args.native_mirror else env.launch_stats(LAUNCH)

    try:
        url = env.url("/api/orders/42")
        if args.warmup > 0:
            U.run_wrk(url, 1, args.connections, args.warmup, args.pace_ms, OUT)
        before = counts()
        cx0 = env.stats("cluster.dark.upstream_cx_total").get("cluster.dark.upstream_cx_total", 0)
        meter = U.CpuMeter({"filter": env.proc.pid, "upstream": up.pid})
        wrk = U.Wrk(U.wrk_command(url, 1, args.connections, args.seconds, args.pace_ms, OUT))
        time.sleep(args.seconds / 2)
        mid = counts()
        res = wrk.wait()
        cpu = meter.stop()
        after = counts()
        cx1 = env.stats("cluster.dark.upstream_cx_total").get("cluster.dark.upstream_cx_total", 0)
        rss = U.rss_kib(env.proc.pid)
    finally:
        env.stop()

    def delta(key):
        return after.get(key, 0) - before.get(key, 0)

    row = {
        "kind": kind,
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
        "skipped": sum(delta(k) for k in after if k.startswith("skipped.")),
        "in_flight_mid": mid.get("in_flight", 0),
        "dark_connections": cx1 - cx0,
        "cpu_filter": cpu["filter"],
        "cpu_upstream": cpu["upstream"],
        "cpu_machine": cpu["machine"],
        "cpu_wrk": res["cpu_s"] / cpu["seconds"],
        "cpu_others": max(0.0, cpu["machine"] - cpu["filter"] - cpu["upstream"]
                          - res["cpu_s"] / cpu["seconds"]),
        "idle_busy_before": idle_busy,
        "rss_mib": rss / 1024,
        "wrk": res["raw"],
    }
    row["skipped_by"] = {k: delta(k) for k in after if k.startswith("skipped.") and delta(k)}
    row["problems"] = problems(row, args.spec_defaults or args.breaker_off)
    return row


def problems(r: dict, spec_defaults: bool = False) -> list:
    out = []
    if r["errors"] or r["non_2xx"]:
        out.append(f"client saw {r['errors']} socket errors and {r['non_2xx']} non-2xx answers")
    if r["kind"] == "baseline":
        return out
    if spec_defaults:
        return out  # limits and breaker skip calls on purpose
    if r["skipped"]:
        out.append(f"{r['skipped']} matched requests were not shadowed")
    if r["matched"] == 0:
        out.append("nothing matched")
    # Calls dispatched in the last timeout_ms of the run are still in flight.
    if r["kind"] == "timeout" and r["timeouts"] < 0.9 * r["shadowed"]:
        out.append(f"only {r['timeouts']} of {r['shadowed']} shadow calls timed out")
    if r["kind"] == "timeout" and r["dark_2xx"]:
        out.append(f"{r['dark_2xx']} dark calls answered 2xx")
    if r["kind"] == "healthy" and r["dark_2xx"] < 0.99 * r["shadowed"]:
        out.append(f"only {r['dark_2xx']} of {r['shadowed']} dark calls answered 2xx")
    return out


def fmt_rows(rows: list) -> str:
    header = ["run", "config", "rps", "p50 ms", "p75 ms", "p90 ms", "p99 ms", "max ms",
              "shadowed", "skipped", "dark timeouts", "in flight (mid-run)", "new dark conns",
              "CPU filter", "CPU upstream", "CPU wrk", "CPU others", "errors"]
    body = []
    for i, r in enumerate(rows, 1):
        body.append([i, r["kind"], f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p75_ms']:.2f}",
                     f"{r['p90_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['max_ms']:.1f}",
                     r["shadowed"] if r["kind"] != "baseline" else "-",
                     (", ".join(f"{k[8:]} {v}" for k, v in r["skipped_by"].items()) or 0)
                     if r["kind"] != "baseline" else "-",
                     r["timeouts"] if r["kind"] != "baseline" else "-",
                     r["in_flight_mid"] if r["kind"] != "baseline" else "-",
                     r["dark_connections"] if r["kind"] != "baseline" else "-",
                     f"{r['cpu_filter']:.2f}", f"{r['cpu_upstream']:.2f}",
                     f"{r['cpu_wrk']:.2f}", f"{r['cpu_others']:.2f}",
                     r["errors"] + r["non_2xx"]])
    return U.markdown_table(header, body)


def summary(rows: list) -> tuple:
    kinds = [k for k in ("healthy", "timeout", "baseline") if any(r["kind"] == k for r in rows)]
    med = {}
    table = []
    for k in kinds:
        rs = [r for r in rows if r["kind"] == k]
        m = {x: statistics.median(r[x] for r in rs)
             for x in ("rps", "p50_ms", "p90_ms", "p99_ms", "cpu_filter")}
        med[k] = m
        table.append([k, len(rs), f"{m['rps']:.0f}", f"{m['p50_ms']:.2f}", f"{m['p90_ms']:.2f}",
                      f"{m['p99_ms']:.2f}",
                      f"{min(r['p99_ms'] for r in rs):.2f}–{max(r['p99_ms'] for r in rs):.2f}",
                      f"{m['cpu_filter']:.2f}",
                      f"{m['cpu_filter'] / m['rps'] * 1e6:.0f}" if m["rps"] else "-"])
    text = U.markdown_table(["config", "runs", "median rps", "median p50 ms", "median p90 ms",
                             "median p99 ms", "p99 range ms", "median CPU filter (cores)",
                             "filter CPU µs/request"], table)
    return med, text


def setup_line(args) -> str:
    proto = ("dark cluster HTTP/2 (upstream Envoy's premature-reset guard off)" if args.dark_h2
             else "dark cluster HTTP/1.1 (a timed-out call closes its connection)")
    if args.native_mirror:
        return (f"- shadowing Envoy: `--concurrency {args.concurrency}`, NO darklaunch: Envoy's "
                "own request_mirror_policies at 100% to the dark cluster (fire and forget), "
                f"route timeout {args.timeout_ms} ms, {proto}, circuit breakers raised")
    limits = ("default limits and breaker (max_in_flight 100 per worker, breaker "
              "0.5/20 calls/10 s/30 s)" if args.spec_defaults else
              "default max_in_flight (100 per worker), breaker off (min_calls 4e9)"
              if args.breaker_off else
              "max_in_flight 100000, breaker off (min_calls 4e9)")
    return (f"- darklaunch Envoy: `--concurrency {args.concurrency}`, FAIL_CLOSED, one launch, "
            f"sample.percent 100, timeout_ms {args.timeout_ms}, {limits}, {proto}, circuit "
            "breakers raised")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs of each configuration (3)")
    ap.add_argument("--seconds", type=int, default=20, help="measured seconds per run (20)")
    ap.add_argument("--warmup", type=int, default=5, help="discarded warm-up seconds per run (5)")
    ap.add_argument("--connections", type=int, default=8, help="wrk connections (8)")
    ap.add_argument("--pace-ms", type=float, default=4.0,
                    help="pause after each answer per connection, ms; 0 = flat out (4)")
    ap.add_argument("--concurrency", type=int, default=1, help="darklaunch Envoy workers (1)")
    ap.add_argument("--timeout-ms", type=int, default=1000, help="launch timeout_ms (1000)")
    ap.add_argument("--quiet-wait", type=float, default=300,
                    help="before each run, wait up to this many seconds for other processes "
                         "to leave the machine idle (300)")
    ap.add_argument("--dark-h2", action="store_true",
                    help="dark cluster over HTTP/2 (a timed-out call resets a stream instead of "
                         "closing a connection); the upstream Envoy's rapid-reset guard is "
                         "switched off, as it would otherwise abort the connection")
    ap.add_argument("--spec-defaults", action="store_true",
                    help="keep the default limits.max_in_flight (100) and breaker instead "
                         "of switching them off (then most timing-out calls are never sent)")
    ap.add_argument("--breaker-off", action="store_true",
                    help="keep the default limits.max_in_flight (100 per worker) but switch "
                         "the breaker off: what the in-flight limit alone does")
    ap.add_argument("--native-mirror", action="store_true",
                    help="shadow with Envoy's own request_mirror_policies (fire and forget, "
                         "route timeout = --timeout-ms) instead of darklaunch: what a timing-out "
                         "dark side costs Envoy itself")
    ap.add_argument("--baseline", action="store_true",
                    help="also run an Envoy without the filter, for context")
    args = ap.parse_args(argv)
    U.install_signal_exit()
    for tool in ("wrk",):
        if not shutil.which(tool):
            print(f"{tool} not found: run `make tools`", file=sys.stderr)
            return 2
    if not harness.wasm_file().exists():
        print(f"module not found: {harness.wasm_file()} (make build)", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    info = U.machine()
    cmdline = "scripts/fault_latency.py " + " ".join(shlex.quote(a) for a in
                                                      (argv if argv is not None else sys.argv[1:]))
    wrk_cmd = " ".join(U.wrk_command("http://127.0.0.1:PORT/api/orders/42", 1, args.connections,
                                     args.seconds, args.pace_ms, OUT))
    print(f"# fault latency: {cmdline}", flush=True)
    rows = []
    up = U.UpstreamEnvoy(OUT / "upstreams", concurrency=1,
                         slow_delay_s=max(5.0, args.timeout_ms / 1000 * 5),
                         allow_premature_resets=args.dark_h2).start()
    t_start = time.time()
    try:
        for i in range(args.repeats):
            order = ["healthy", "timeout"] if i % 2 == 0 else ["timeout", "healthy"]
            if args.baseline:
                order.append("baseline")
            for kind in order:
                r = run_once(kind, up, args, len(rows) + 1)
                rows.append(r)
                print(f"run {len(rows)}: {kind:8} rps {r['rps']:.0f} p50 {r['p50_ms']:.2f} ms "
                      f"p99 {r['p99_ms']:.2f} ms shadowed {r['shadowed']} timeouts "
                      f"{r['timeouts']} in-flight {r['in_flight_mid']} "
                      f"cpu filter {r['cpu_filter']:.2f} others {r['cpu_others']:.2f}"
                      + (f" PROBLEMS: {r['problems']}" if r["problems"] else ""), flush=True)
    finally:
        up.stop()
    elapsed = time.time() - t_start

    med, med_text = summary(rows)
    ratio = med["timeout"]["p99_ms"] / med["healthy"]["p99_ms"]
    bad = [(i, r["kind"], p) for i, r in enumerate(rows, 1) for p in r["problems"]]
    verdict = "PASS" if ratio <= LIMIT and not bad else "FAIL"
    mode = (f"paced: each connection pauses {args.pace_ms:g} ms after every answer (wrk Lua "
            "`delay()`), so the offered rate is fixed by the pause and the latency; still "
            "closed-loop" if args.pace_ms > 0 else
            "flat out: closed-loop, each connection sends its next request as soon as the "
            "previous answer is in (the machine is saturated)")
    lines = [
        "## Fault latency: dark cluster timing out vs. healthy",
        "",
        f"Criterion: p99(timeout) / p99(healthy) <= {LIMIT}, medians of {args.repeats} runs each.",
        "",
        f"**{verdict}**: median p99 timeout {med['timeout']['p99_ms']:.2f} ms / healthy "
        f"{med['healthy']['p99_ms']:.2f} ms = **{ratio:.3f}**"
        f" (p50 ratio {med['timeout']['p50_ms'] / med['healthy']['p50_ms']:.3f}, p90 ratio "
        f"{med['timeout']['p90_ms'] / med['healthy']['p90_ms']:.3f}, rps ratio "
        f"{med['timeout']['rps'] / med['healthy']['rps']:.3f})",
        "",
        *U.machine_lines(info),
        setup_line(args),
        "- upstream Envoy: `--concurrency 1`, direct_response ~1 KiB JSON; slow listener: fault "
        "filter fixed_delay "
        f"{max(5.0, args.timeout_ms / 1000 * 5):g} s at 100%",
        f"- load: `{wrk_cmd}`, {mode}; {args.warmup} s warm-up discarded per run; fresh "
        "darklaunch Envoy per run; order ABBA",
        f"- command: `{cmdline}` ({elapsed / 60:.1f} min)",
        "- CPU columns: cores used during the measured run by the darklaunch Envoy, the upstream "
        "Envoy, wrk, and everything else on the machine (others: should be near 0; each run "
        f"waited up to {args.quiet_wait:g} s for an idle machine first)",
        "",
        med_text,
        "",
        fmt_rows(rows),
        "",
    ]
    noisy = [i for i, r in enumerate(rows, 1) if r["cpu_others"] > 0.2]
    if noisy:
        lines += [f"Note: other processes used more than 0.2 cores during runs {noisy}; "
                  "those numbers include their interference.", ""]
    if bad:
        lines += ["Problems:", ""] + [f"- run {i} ({k}): {p}" for i, k, p in bad] + [""]
    text = "\n".join(lines)
    print()
    print(text)
    (OUT / "result.md").write_text(text)
    (OUT / "result.json").write_text(json.dumps(
        {"args": vars(args), "machine": info, "ratio": ratio, "verdict": verdict,
         "medians": med, "runs": rows}, indent=2))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
