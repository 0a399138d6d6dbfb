"""`make demo`: Envoy + darklaunch dark-launching orders v2 behind orders v1.

Starts the two demo services (demo/services.py), starts Envoy with
envoy/demo.yaml, sends a few hundred requests from several threads and
users, waits for the shadow calls to settle and prints what the dark launch
found, read back from Envoy's admin stats.

Environment: ENVOY_BIN (default .venv/bin/envoy), DARKLAUNCH_WASM (default
target/wasm32-wasip1/release/darklaunch.wasm), DEMO_REQUESTS (default 400).
Exit status: 0 on success; 1 when Envoy failed, nothing was shadowed or a
client saw something other than v1's answer; 2 when a prerequisite is missing.
Everything it starts is stopped on exit, Ctrl-C included. Envoy's config and
log stay in .run/demo/.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "demo"))

import harness  # noqa: E402
import services  # noqa: E402

LAUNCH = "orders-v2"
PERCENT = 50.0  # envoy/demo.yaml: sample.percent
THREADS = 8
USERS = [f"user-{i:03d}" for i in range(1, 121)]


def pick_ports() -> dict:
    """The ports of envoy/demo.yaml, or free ones for those that are taken."""
    ports = {}
    for name, port in harness.DEMO_PORTS.items():
        if harness.port_is_free(port):
            ports[name] = port
        else:
            ports[name] = harness.free_port()
            print(f"note: port {port} ({name}) is busy, using {ports[name]} instead")
    return ports


def plan(n: int, seed: int = 7) -> list:
    """The requests to send: (path, user). Mostly items, some slow reports,
    some health checks (outside /api/, so not matched)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.80:
            path = f"/api/items/{rng.randint(1, 60)}"
        elif roll < 0.90:
            path = "/api/slow"
        else:
            path = "/health"
        out.append((path, rng.choice(USERS)))
    return out


STOP = threading.Event()  # set on exit: traffic threads stop at their next request


def drive(env: harness.Envoy, requests: list) -> tuple:
    """Sends ``requests`` from THREADS threads; returns (Counter of outcomes, seconds)."""
    outcomes: Counter = Counter()
    lock = threading.Lock()
    cursor = iter(requests)
    cursor_lock = threading.Lock()

    def worker():
        client = env.client(timeout=10)
        try:
            while not STOP.is_set():
                with cursor_lock:
                    item = next(cursor, None)
                if item is None:
                    return
                path, user = item
                try:
                    r = client.get(path, headers={"x-user-id": user})
                    key = f"{r.status} from {r.header('x-served-by', 'envoy')}"
                except (OSError, http.client.HTTPException) as exc:
                    key = f"error {type(exc).__name__}"
                with lock:
                    outcomes[key] += 1
        finally:
            client.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outcomes, time.monotonic() - t0


def predict(requests: list) -> dict:
    """What envoy/demo.yaml should make of ``requests`` (SPEC §3 sampling)."""
    p = Counter()
    for path, user in requests:
        if not path.startswith("/api/"):
            continue
        p["matched"] += 1
        if harness.sticky_sampled(LAUNCH, user, PERCENT):
            p["shadowed"] += 1
            if services.expected_difference(path):
                p["mismatch"] += 1
        else:
            p["skipped.sampled_out"] += 1
    return p


def wait_histograms(env: harness.Envoy, timeout: float = 8.0) -> dict:
    """Histogram quantiles of the launch, after Envoy's next stats flushes."""
    names = [f"wasmcustom.darklaunch.{LAUNCH}.{h}" for h in ("primary_ms", "dark_ms")]
    time.sleep(2.2)  # the demo Envoy flushes stats every second: two flushes
    deadline = time.monotonic() + timeout
    while True:
        hist = env.histograms(f"wasmcustom.darklaunch.{LAUNCH}.")
        ready = all(hist.get(n, {}).get("p50") is not None for n in names)
        if ready or time.monotonic() > deadline:
            return {n.rsplit(".", 1)[1]: hist.get(n, {}) for n in names}
        time.sleep(0.25)


def _fmt_ms(v) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "-"


def _breakdown(stats: dict, prefix: str) -> str:
    items = sorted((k[len(prefix):], v) for k, v in stats.items() if k.startswith(prefix) and v)
    return ", ".join(f"{k} {v}" for k, v in items) or "none"


def summary(stats: dict, hist: dict, predicted: dict, outcomes: Counter, secs: float,
            n: int, mismatches: list, prometheus: str) -> str:
    s = stats
    matched, shadowed, compared = s.get("matched", 0), s.get("shadowed", 0), s.get("compared", 0)
    mismatch = s.get("mismatch", 0)
    lines = [
        "",
        f"darklaunch demo: launch {LAUNCH!r}, primary v1 (cluster primary), dark v2 (cluster orders_v2)",
        "=" * 78,
        f"traffic        {n} requests, {THREADS} threads, {len(USERS)} users, {secs:.1f} s",
        "clients got    " + ", ".join(f"{v} x {k}" for k, v in sorted(outcomes.items())),
        "",
        f"matched        {matched:5d}   requests under /api/  (predicted {predicted['matched']})",
        f"shadowed       {shadowed:5d}   {_pct(shadowed, matched)} of matched, sticky on x-user-id"
        f"  (predicted {predicted['shadowed']})",
        f"forced         {s.get('forced', 0):5d}",
        f"skipped        {harness.sum_prefix(s, 'skipped.'):5d}   {_breakdown(s, 'skipped.')}",
        f"dark answers          {_breakdown(s, 'dark_response.')}",
        f"primary answers       {_breakdown(s, 'primary_response.')}",
        f"compared       {compared:5d}",
        f"mismatch       {mismatch:5d}   {_pct(mismatch, compared)} of compared"
        f"  (predicted {predicted['mismatch']})",
        f"  by kind             {_breakdown(s, 'mismatch_kind.')}",
        f"noise          {s.get('noise', 0):5d}",
        f"not compared   {harness.sum_prefix(s, 'compare_skipped.'):5d}   "
        f"{_breakdown(s, 'compare_skipped.')}",
        f"in flight      {s.get('in_flight', 0):5d}   breaker open: {s.get('breaker_open', 0)}",
        "",
        "latency              p50        p95        p99",
    ]
    for side in ("primary_ms", "dark_ms"):
        q = hist.get(side, {})
        lines.append(f"  {side[:-3]:<10} {_fmt_ms(q.get('p50')):>10} {_fmt_ms(q.get('p95')):>10} "
                     f"{_fmt_ms(q.get('p99')):>10}")
    lines += ["", "what v2 changed on purpose: price of items divisible by 7 (body), 500 on items",
              "divisible by 23 (status), content-type and +150 ms on /api/slow (headers);",
              "meta.generated_at always differs and is ignored by the config.", ""]
    if mismatches:
        lines.append(f"mismatch log ({len(mismatches)} lines in the Envoy log; first 5):")
        for m in mismatches[:5]:
            lines.append("  " + json.dumps(m, sort_keys=True))
        lines.append("")
    prom = [ln for ln in prometheus.splitlines()
            if ln.startswith("darklaunch_") and "_bucket{" not in ln and "_sum{" not in ln
            and not ln.endswith(" 0")]
    if prom:
        lines.append("/stats/prometheus (non-zero darklaunch series):")
        lines += ["  " + ln for ln in prom]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    envoy_path = harness.envoy_bin()
    wasm = harness.wasm_file()
    if not Path(envoy_path).exists():
        print(f"error: Envoy not found at {envoy_path}; set ENVOY_BIN or run `make demo`",
              file=sys.stderr)
        return 2
    if not wasm.is_file():
        print(f"error: module not found at {wasm}; run `make build` or set DARKLAUNCH_WASM",
              file=sys.stderr)
        return 2
    n = int(os.environ.get("DEMO_REQUESTS", "400"))
    workdir = ROOT / ".run" / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "envoy.log"
    if log.exists():
        log.unlink()

    ports = pick_ports()
    config = workdir / "envoy.yaml"
    config.write_text(harness.render_demo_yaml(ports, wasm))

    v1 = v2 = env = None
    try:
        v1, v2 = services.start(ports["v1"], ports["v2"])
        print(f"services: v1 (primary) on :{v1.port}, v2 (dark) on :{v2.port}")
        env = harness.Envoy(
            config, ports["admin"], ports["listener"], envoy_path=envoy_path, concurrency=2,
            component_log_level=None, workdir=workdir, name="demo-envoy",
            # Flush stats every second so histogram percentiles show up quickly;
            # --config-yaml is merged into envoy/demo.yaml.
            extra_args=["--config-yaml", '{"stats_flush_interval": "1s"}'])
        try:
            env.start(timeout=60)
        except harness.EnvoyError as exc:
            print(f"error: Envoy did not start (exit code {exc.exit_code}); log: {log}\n"
                  + harness._tail(exc.log, 25), file=sys.stderr)
            return 1
        print(f"envoy: listener :{env.listener_port}, admin :{env.admin_port}, log {log}")

        requests = plan(n)
        print(f"driving {n} requests ...")
        outcomes, secs = drive(env, requests)
        if not env.running():
            print(f"error: Envoy exited during the run; log: {log}", file=sys.stderr)
            return 1
        try:
            stats = env.wait_settled(LAUNCH, timeout=30)
        except TimeoutError as exc:
            print(f"warning: {exc}", file=sys.stderr)
            stats = env.launch_stats(LAUNCH)
        hist = wait_histograms(env)
        print(summary(stats, hist, predict(requests), outcomes, secs, n, env.mismatch_logs(),
                      env.prometheus()))

        problems = []
        if stats.get("shadowed", 0) == 0:
            problems.append("nothing was shadowed")
        odd = {k: v for k, v in outcomes.items() if not k.endswith("from v1")}
        if odd:
            problems.append(f"clients got answers other than v1's: {odd}")
        if not env.running():
            problems.append("Envoy exited")
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        return 1 if problems else 0
    finally:
        STOP.set()
        if env is not None:
            env.stop()
        for svc in (v1, v2):
            if svc is not None:
                svc.stop()


def _terminate(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with INT ignored
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
