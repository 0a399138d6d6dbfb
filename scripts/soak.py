#!/usr/bin/env python3
"""Soak: long 100% shadow load against a slow and failing dark mix; is memory flat?

Setup (all on loopback, see scripts/upstreams.py):

* an upstream Envoy (``--concurrency 1``) answering with ``direct_response``
  (C++, never the bottleneck): the primary (200, ~1 KiB JSON) and dark
  listeners that match, mismatch, time out (fault delay 5 s), answer 503
  (fault abort) or send headers and then reset the stream;
* the darklaunch Envoy, ``--concurrency 2`` by default (two workers, so two
  VMs with their own pending pairs and doorbell queues, plus the main
  thread's VM: the per-worker state is what could leak), ``FAIL_CLOSED``, with
  two launches, both at ``sample.percent`` 100 with the breaker off in effect
  so that every request is shadowed twice for the whole run:

  - ``slow``: every call times out (timeout_ms 1000, dark delay 5 s;
    ``max_in_flight`` raised to 100000 so none is skipped);
  - ``mix``: a weighted round-robin cluster over five dark listeners:
    30% 503, 20% headers-then-reset, 20% timeout (timeout_ms 250), 20% a JSON
    body that differs (mismatch, mismatch log), 10% the same answer;
    default ``max_in_flight`` (100);

* wrk ``-t1 -c8`` for the whole duration, each connection pausing
  ``--pace-ms`` after every answer (Lua ``delay()``) so that wrk and the two
  Envoys leave CPU headroom on 2 cores.

Every ``--interval`` seconds (15) it samples the darklaunch Envoy: VmRSS and
RssAnon from /proc/<pid>/status; the wasm linear memories (Envoy exposes no
wasm memory stat: the admin ``/stats?filter=wasm`` has only VM counts and
reload counters, ``/memory`` is tcmalloc's heap, which V8's wasm memories are
not part of, so their size and Rss are read from /proc/<pid>/smaps); tcmalloc
``allocated``/``heap_size`` from ``/memory``; and the launches' shadowed,
compared, in_flight and compare_skipped.

Verdict: memory is flat when the RSS of the last sample under load is at most
``max(8 MiB, 10%)`` above the RSS of the first sample after the warm-up
(60 s, or a quarter of a run shorter than 4 minutes); and, after the load stops
and the shadow calls settle, the stats invariants hold for both launches
(``matched = shadowed + Σ skipped``, ``shadowed = compared + Σ
compare_skipped``, ``compared >= mismatch + noise``, ``in_flight = 0``), the
client saw no error and no non-2xx answer, and the filter logged no crash.

Writes the report to stdout and .run/soak/result.md, the samples to
.run/soak/samples.json. Exit status 0 when all holds, 1 when not, 2 when a
prerequisite is missing. Everything it starts is stopped on exit (SIGTERM and
Ctrl-C included).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upstreams as U  # noqa: E402
from upstreams import harness  # noqa: E402

OUT = U.ROOT / ".run" / "soak"
MIB = 1024  # KiB
LAUNCHES = ("slow", "mix")
# Dark listeners of the "mix" cluster and their round-robin weights.
MIX = (("e503", 3), ("reset", 2), ("slow", 2), ("diff", 2), ("ok", 1))
CRASH_RX = re.compile(r"panicked at|Uncaught|RuntimeError|wasm trap|Plugin configured to fail closed"
                      r"|Function: proxy_on_\w+ failed", re.IGNORECASE)


def mix_cluster(up: U.UpstreamEnvoy) -> dict:
    c = U.cluster("dark_mix", up.ports["ok"])
    c["load_assignment"]["endpoints"] = [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address": {"address": U.LOOPBACK,
                                                      "port_value": up.ports[k]}}},
         "load_balancing_weight": w}
        for k, w in MIX]}]
    return c


def sample(env: harness.Envoy, t0: float, prev: dict) -> dict:
    pid = env.proc.pid
    st = U.status_kib(pid)
    wasm = U.wasm_memory_kib(pid)
    tc = U.tcmalloc(env)
    stats = env.stats("wasmcustom.darklaunch.")
    rq = env.stats("http.ingress.downstream_rq_total").get("http.ingress.downstream_rq_total", 0)
    now = time.monotonic()
    cpu = U.cpu_seconds(pid)
    s = {
        "t": now - t0,
        "rss_kib": st.get("VmRSS", 0),
        "anon_kib": st.get("RssAnon", 0),
        "hwm_kib": st.get("VmHWM", 0),
        "wasm_vms": wasm["vms"],
        "wasm_size_kib": wasm["size_kib"],
        "wasm_rss_kib": wasm["rss_kib"],
        "tc_allocated": tc.get("allocated", 0),
        "tc_heap": tc.get("heap_size", 0),
        "requests": rq,
        "cpu_s": cpu,
        "mono": now,
    }
    dt = now - prev["mono"] if prev else 0
    s["rps"] = (rq - prev["requests"]) / dt if prev and dt > 0 else 0.0
    s["cpu"] = (cpu - prev["cpu_s"]) / dt if prev and dt > 0 else 0.0
    for name in LAUNCHES:
        p = f"wasmcustom.darklaunch.{name}."
        s[name] = {
            "shadowed": stats.get(p + "shadowed", 0),
            "compared": stats.get(p + "compared", 0),
            "in_flight": stats.get(p + "in_flight", 0),
            "compare_skipped": sum(v for k, v in stats.items()
                                   if k.startswith(p + "compare_skipped.")),
            "timeout": stats.get(p + "dark_response.timeout", 0),
            "skipped": sum(v for k, v in stats.items() if k.startswith(p + "skipped.")),
        }
    return s


def invariants(name: str, s: dict) -> list:
    """The stats invariants (matched = shadowed + Σ skipped, shadowed = compared + Σ
    compare_skipped, compared ≥ mismatch + noise, in_flight = 0) for one launch's
    settled stats; the violations."""
    out = []
    skipped = harness.sum_prefix(s, "skipped.")
    cskipped = harness.sum_prefix(s, "compare_skipped.")
    if s.get("matched", 0) != s.get("shadowed", 0) + skipped:
        out.append(f"{name}: matched {s.get('matched')} != shadowed {s.get('shadowed')} "
                   f"+ skipped {skipped}")
    if s.get("shadowed", 0) != s.get("compared", 0) + cskipped:
        out.append(f"{name}: shadowed {s.get('shadowed')} != compared {s.get('compared')} "
                   f"+ compare_skipped {cskipped}")
    if s.get("compared", 0) < s.get("mismatch", 0) + s.get("noise", 0):
        out.append(f"{name}: compared {s.get('compared')} < mismatch {s.get('mismatch')} "
                   f"+ noise {s.get('noise')}")
    if s.get("in_flight", 0) != 0:
        out.append(f"{name}: in_flight {s.get('in_flight')} after settling")
    return out


def settle(env: harness.Envoy, timeout: float) -> dict:
    """Waits until every launch is settled (harness.Envoy.wait_settled); their stats."""
    out = {}
    deadline = time.monotonic() + timeout
    for name in LAUNCHES:
        try:
            out[name] = env.wait_settled(name, timeout=max(1.0, deadline - time.monotonic()),
                                         quiet=1.0)
        except TimeoutError:
            out[name] = env.launch_stats(name)
    return out


def slope_kib_per_min(samples: list) -> float:
    if len(samples) < 2:
        return 0.0
    xs = [s["t"] / 60 for s in samples]
    ys = [s["rss_kib"] for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def mib(kib: float) -> str:
    return f"{kib / MIB:.1f}"


def samples_table(samples: list, warm_idx: int) -> str:
    header = ["t (s)", "rps", "CPU", "VmRSS MiB", "RssAnon MiB", "wasm heap MiB (Rss)",
              "tcmalloc alloc MiB", "slow shadowed", "slow compared", "slow in_flight",
              "slow compare_skipped", "mix shadowed", "mix compared", "mix in_flight",
              "mix compare_skipped"]
    rows = []
    for i, s in enumerate(samples):
        mark = " (warm)" if i == warm_idx else ""
        rows.append([f"{s['t']:.0f}{mark}", f"{s['rps']:.0f}", f"{s['cpu']:.2f}",
                     mib(s["rss_kib"]), mib(s["anon_kib"]),
                     f"{mib(s['wasm_size_kib'])} ({mib(s['wasm_rss_kib'])})",
                     f"{s['tc_allocated'] / 2**20:.1f}",
                     s["slow"]["shadowed"], s["slow"]["compared"], s["slow"]["in_flight"],
                     s["slow"]["compare_skipped"],
                     s["mix"]["shadowed"], s["mix"]["compared"], s["mix"]["in_flight"],
                     s["mix"]["compare_skipped"]])
    return U.markdown_table(header, rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="load duration (10)")
    ap.add_argument("--interval", type=float, default=15.0, help="seconds between samples (15)")
    ap.add_argument("--connections", type=int, default=8, help="wrk connections (8)")
    ap.add_argument("--pace-ms", type=float, default=4.0,
                    help="pause after each answer per connection, ms; 0 = flat out (4)")
    ap.add_argument("--concurrency", type=int, default=2, help="darklaunch Envoy workers (2)")
    args = ap.parse_args(argv)
    U.install_signal_exit()
    if not shutil.which("wrk"):
        print("wrk not found: run `make tools`", file=sys.stderr)
        return 2
    if not harness.wasm_file().exists():
        print(f"module not found: {harness.wasm_file()} (make build)", file=sys.stderr)
        return 2
    seconds = int(round(args.minutes * 60))
    warmup = min(60.0, seconds / 4)
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    info = U.machine()
    cmdline = "scripts/soak.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(f"# soak: {cmdline}", flush=True)

    up = U.UpstreamEnvoy(OUT / "upstreams", concurrency=1, slow_delay_s=5.0).start()
    clusters = [U.cluster("dark_slow", up.ports["slow"]), mix_cluster(up)]
    launches = [U.launch("slow", "dark_slow", 1000),
                U.launch("mix", "dark_mix", 250, max_in_flight=100)]
    env = U.filter_envoy(OUT / "darklaunch", up.ports["primary"], clusters, launches,
                         args.concurrency)
    samples: list = []
    failures: list = []
    wrk_res: dict = {}
    settled: dict = {}
    after: dict = {}
    wrk_cmd = U.wrk_command(env.url("/api/orders/42"), 1, args.connections, seconds,
                            args.pace_ms, OUT)
    try:
        env.start(timeout=60)
        t0 = time.monotonic()
        wrk = U.Wrk(wrk_cmd)
        prev = sample(env, t0, {})
        samples.append(prev)
        next_t = t0 + args.interval
        while wrk.proc.poll() is None:
            time.sleep(max(0.0, min(next_t, t0 + seconds + 60) - time.monotonic()))
            if wrk.proc.poll() is not None:
                break
            prev = sample(env, t0, prev)
            samples.append(prev)
            s = prev
            print(f"t={s['t']:5.0f}s rps={s['rps']:5.0f} cpu={s['cpu']:.2f} "
                  f"rss={mib(s['rss_kib'])}MiB anon={mib(s['anon_kib'])}MiB "
                  f"wasm={mib(s['wasm_size_kib'])}MiB({s['wasm_vms']} vms) "
                  f"tc={s['tc_allocated'] / 2**20:.1f}MiB "
                  f"slow sh={s['slow']['shadowed']} inf={s['slow']['in_flight']} "
                  f"mix sh={s['mix']['shadowed']} cmp={s['mix']['compared']} "
                  f"inf={s['mix']['in_flight']}", flush=True)
            next_t += args.interval
        wrk_res = wrk.wait()
        print("load done; waiting for the shadow calls to settle", flush=True)
        settled = settle(env, timeout=60)
        after = sample(env, t0, samples[-1])
    except Exception as exc:  # noqa: BLE001 - reported, then everything is stopped
        failures.append(f"run aborted: {exc!r}")
    finally:
        env.stop()
        up.stop()

    # ---- verdict -------------------------------------------------------
    warm_idx = next((i for i, s in enumerate(samples) if s["t"] >= warmup - 1), None)
    flat = False
    growth = limit = 0.0
    if warm_idx is None or warm_idx >= len(samples) - 1:
        failures.append("too few samples for a memory verdict")
    else:
        warm, end = samples[warm_idx], samples[-1]
        growth = end["rss_kib"] - warm["rss_kib"]
        limit = max(8 * MIB, 0.10 * warm["rss_kib"])
        flat = growth <= limit
        if not flat:
            failures.append(f"RSS grew by {mib(growth)} MiB after the warm-up "
                            f"(limit {mib(limit)} MiB)")
    for name in LAUNCHES:
        if name in settled:
            failures += invariants(name, settled[name])
    if wrk_res:
        errs = sum(wrk_res["errors"].values())
        if errs or wrk_res["non_2xx"]:
            failures.append(f"client saw {errs} socket errors ({wrk_res['errors']}) and "
                            f"{wrk_res['non_2xx']} non-2xx answers")
    log = env.log_text()
    crashes = [line for line in log.splitlines() if CRASH_RX.search(line)]
    if crashes:
        failures.append(f"{len(crashes)} crash lines in the Envoy log, e.g. {crashes[0][:200]}")
    mismatch_lines = len(harness.parse_mismatch_lines(log))
    for i, (a, b) in enumerate(zip(samples, samples[1:])):
        if b["t"] > 0 and b["slow"]["shadowed"] <= a["slow"]["shadowed"]:
            failures.append(f"slow launch stopped shadowing between t={a['t']:.0f}s and "
                            f"t={b['t']:.0f}s")
            break

    verdict = "PASS" if not failures else "FAIL"
    post = samples[warm_idx:] if warm_idx is not None else []
    lines = [
        f"## Soak: {args.minutes:g} min of 100% shadow load against a slow and failing dark mix",
        "",
        f"**{verdict}**" + (f": RSS {mib(samples[warm_idx]['rss_kib'])} MiB after the "
                            f"{warmup:.0f} s warm-up, {mib(samples[-1]['rss_kib'])} MiB at the "
                            f"end of the load ({'+' if growth >= 0 else ''}{mib(growth)} MiB; "
                            f"limit +{mib(limit)} MiB = max(8 MiB, 10%)); "
                            f"trend after warm-up {slope_kib_per_min(post) / MIB * 60:+.1f} MiB/h"
                            if warm_idx is not None and samples else ""),
        "",
        *U.machine_lines(info),
        f"- darklaunch Envoy: `--concurrency {args.concurrency}`, FAIL_CLOSED; launches `slow` "
        "(every call times out: timeout_ms 1000, dark fault delay 5 s, max_in_flight 100000) "
        "and `mix` (timeout_ms 250, round robin over dark listeners: 30% 503, 20% headers then "
        "reset, 20% timeout, 20% differing JSON, 10% same JSON), both sample.percent 100, "
        "breaker off (min_calls 4e9); dark clusters HTTP/1.1 with circuit breakers raised",
        "- upstream Envoy: `--concurrency 1`, direct_response ~1 KiB JSON, fault filter for "
        "delay/abort, max_stream_duration 50 ms + throttled body for resets",
        f"- load: `{' '.join(wrk_cmd)}` (closed-loop, each connection pauses "
        f"{args.pace_ms:g} ms after every answer)",
        f"- command: `{cmdline}`",
        "- memory sources: VmRSS/RssAnon from /proc/<pid>/status; wasm heap = the VMs' linear "
        "memories (rw part of V8's wasm reservations in /proc/<pid>/smaps, size and Rss); "
        "tcmalloc allocated from admin /memory (Envoy's own heap, not wasm). Envoy's "
        "/stats?filter=wasm has no memory stat (only wasm_vm_count, "
        "wasm.envoy.wasm.runtime.v8.active/created, vm_reload_* and remote_load_*)",
        "",
    ]
    if samples:
        lines += [samples_table(samples, warm_idx if warm_idx is not None else -1), ""]
    if after:
        lines += [f"After settling: VmRSS {mib(after['rss_kib'])} MiB, RssAnon "
                  f"{mib(after['anon_kib'])} MiB, wasm heap {mib(after['wasm_size_kib'])} MiB "
                  f"in {after['wasm_vms']} VMs, tcmalloc allocated "
                  f"{after['tc_allocated'] / 2**20:.1f} MiB; peak VmHWM "
                  f"{mib(after['hwm_kib'])} MiB", ""]
    if wrk_res:
        lines += [f"Client (wrk, whole run): {wrk_res['requests']} requests, "
                  f"{wrk_res['rps']:.0f} req/s, latency p50 {wrk_res['p50_ms']:.2f} ms, "
                  f"p90 {wrk_res['p90_ms']:.2f} ms, p99 {wrk_res['p99_ms']:.2f} ms, "
                  f"max {wrk_res['max_ms']:.1f} ms, socket errors {wrk_res['errors']}, "
                  f"non-2xx {wrk_res['non_2xx']}", ""]
    for name in LAUNCHES:
        s = settled.get(name)
        if not s:
            continue
        nz = {k: v for k, v in s.items() if v}
        lines.append(f"Settled `{name}`: " + ", ".join(f"{k} {v}" for k, v in sorted(nz.items())))
        lines.append("")
    lines += [f"Mismatch log lines: {mismatch_lines}; crash lines in the Envoy log: "
              f"{len(crashes)}", ""]
    if settled:
        ok = not any(invariants(n, settled[n]) for n in LAUNCHES if n in settled)
        lines += [f"Stats invariants after settling: {'hold' if ok else 'VIOLATED'} "
                  "(matched = shadowed + Σ skipped; shadowed = compared + Σ compare_skipped; "
                  "compared ≥ mismatch + noise; in_flight = 0)", ""]
    if failures:
        lines += ["Failures:", ""] + [f"- {f}" for f in failures] + [""]
    text = "\n".join(lines)
    print()
    print(text)
    (OUT / "result.md").write_text(text)
    (OUT / "samples.json").write_text(json.dumps(
        {"args": vars(args), "machine": info, "verdict": verdict, "failures": failures,
         "samples": samples, "after": after, "settled": settled,
         "wrk": {k: v for k, v in wrk_res.items() if k != "raw"}}, indent=2))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
