#!/usr/bin/env python3
"""make bench-hostcalls: what one proxy-wasm host call costs Envoy 1.40 (V8).

The same load and front Envoy as `make bench` (scripts/bench.py): one worker
pinned to CPU 0, wrk and the upstream Envoy on CPU 1. Configuration N is the
empty filter of benches/noop-filter; each probe is that filter making
PROBE_CALLS host calls of one kind in every request-header callback. The
configurations alternate; the cost of one call is

    (median front-Envoy CPU µs/req of the probe - that of N) / PROBE_CALLS

Calls that return data (a header map, a header value, shared data) cost more
than calls that do not: the host calls back into the module to allocate the
returned buffer (`proxy_on_memory_allocate`), a second crossing.
"""

import argparse
import statistics
import sys
import time

from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench as B  # noqa: E402
import upstreams as U  # noqa: E402

PROBES = {
    "pairs": "get_header_map_pairs (request headers, 7 entries)",
    "value": "get_header_map_value (`:path`)",
    "shared": "get_shared_data (185 bytes)",
    "counter": "increment_metric (counter)",
    "histogram": "record_metric (histogram)",
    "time": "get_current_time_nanoseconds",
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    B.load_arguments(ap, seconds=8)
    ap.add_argument("--quiet-wait", type=float, default=10,
                    help="before each run, wait up to this many seconds for other processes "
                         "to leave the machine (10)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    args = ap.parse_args(argv)
    U.install_signal_exit()
    if not B.noop_wasm().exists():
        print(f"empty filter not found: {B.noop_wasm()} (make bench-hostcalls builds it)",
              file=sys.stderr)
        return 2
    kinds = ["N"] + [f"P:{p}" for p in PROBES]
    pin = B.Pinning(not args.no_pin)
    B.OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    up, ports, _ = B.upstream_envoy(B.OUT / "upstreams")
    try:
        up.start(timeout=60)
        pin.pin(up.proc.pid, pin.rest)
        deadline = time.monotonic() + 30 * 60
        for rep in range(args.repeats):
            for kind in (kinds if rep % 2 == 0 else kinds[::-1]):
                B.wait_quiet(args.quiet_wait, deadline)
                r = B.run_once(kind, rep + 1, len(rows) + 1, ports, up.proc.pid, pin, args)
                rows.append(r)
                print(f"rep {rep + 1} {kind:12s} {r['rps']:7.0f} req/s "
                      f"{r['us_per_req']:6.1f} µs/req  others {r['cpu_others']:.2f}"
                      + (f"  PROBLEMS: {r['problems']}" if r["problems"] else ""), flush=True)
    finally:
        up.stop()

    def med(kind):
        return statistics.median(r["us_per_req"] for r in rows if r["kind"] == kind)

    base = med("N")
    info = U.machine()
    print(f"\nHost call costs: Envoy {info['envoy']}, {info['nproc']} CPUs ({info['cpu']}); "
          f"{B.PROBE_CALLS} calls per request, {args.repeats} runs of {args.seconds} s each "
          f"(`make bench-hostcalls`)\n")
    print("| host call | front Envoy CPU µs/req (median) | per-run range | µs per call |")
    print("|---|---|---|---|")
    print(f"| none (N, the empty filter) | {base:.1f} | "
          f"{min(r['us_per_req'] for r in rows if r['kind'] == 'N'):.0f}–"
          f"{max(r['us_per_req'] for r in rows if r['kind'] == 'N'):.0f} | - |")
    for p, what in PROBES.items():
        k = f"P:{p}"
        us = [r["us_per_req"] for r in rows if r["kind"] == k]
        print(f"| {what} | {med(k):.1f} | {min(us):.0f}–{max(us):.0f} | "
              f"{(med(k) - base) / B.PROBE_CALLS:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
