"""`make demo`: Envoy + darklaunch dark-launching orders v2 behind orders v1,
and a gRPC catalog v2 behind catalog v1 (demo/grpc_services.py).

Starts the two demo services (demo/services.py), starts Envoy with
envoy/demo.yaml, sends a few hundred requests from several threads and
users, waits for the shadow calls to settle and prints what the dark launch
found, read back from Envoy's admin stats and log: the counters, the
mismatch samples grouped by `darklaunch-report samples` (and its HTML page,
.run/demo/samples.html), and the rollout gate's verdict.

Every answer of both versions carries a random meta.request_token that the
config does not ignore, so every compared pair differs somewhere. The launch's
A/A noise cancellation (30% of the shadowed requests go to v1 a second time)
learns that field as noise, per Envoy worker, after 5 A/A pairs; from then on
a pair whose only difference is the token counts as `noise`, not `mismatch`.
Which pairs land before or after that moment depends on timing, so the demo
predicts `mismatch + noise` (every pair) rather than each; the differences v2
makes on purpose (status, content-type, fields) are predicted exactly, and
every one of them must count as a mismatch, never as noise.

Environment: ENVOY_BIN (default .venv/bin/envoy), DARKLAUNCH_WASM (default
target/module/darklaunch.wasm), DEMO_REQUESTS (default 600).
Exit status: 0 on success; 1 when Envoy failed, nothing was shadowed, a
client saw something other than v1's answer or an exact prediction failed;
2 when a prerequisite is missing.
Everything it starts is stopped on exit, Ctrl-C included. Envoy's config and
log stay in .run/demo/.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "demo"))

import grpc  # noqa: E402
import grpc_services  # noqa: E402
import harness  # noqa: E402
import services  # noqa: E402

LAUNCH = "orders-v2"
PERCENT = 50.0  # envoy/demo.yaml: sample.percent
NOISE_PERCENT = 30.0  # envoy/demo.yaml: noise.percent (random, so not predicted)
SHADOW_HEADER = "x-darklaunch-shadow"  # the filter's default shadow_header
CONCURRENCY = 2  # Envoy workers; each learns noise on its own
THREADS = 8
TOP_FIELDS = 5
USERS = [f"user-{i:03d}" for i in range(1, 121)]
GRPC_LAUNCH = "catalog-v2"
GRPC_ITEMS = range(1, 67)  # one GetItem call each, all shadowed


def drive_grpc(env: harness.Envoy) -> Counter:
    """One shop.Catalog/GetItem call per item through Envoy (h2c); returns
    the clients' outcomes ("OK from v1" when the answer is v1's, byte for byte)."""
    outcomes: Counter = Counter()
    with grpc.insecure_channel(f"127.0.0.1:{env.listener_port}") as channel:
        get = channel.unary_unary(grpc_services.METHOD)
        for item in GRPC_ITEMS:
            try:
                answer = get(grpc_services.request(item), timeout=10)
                same = answer == grpc_services.item_message(item, "v1")
                outcomes["OK from v1" if same else "OK, not v1's answer"] += 1
            except grpc.RpcError as exc:
                outcomes[f"error {exc.code().name}"] += 1
    return outcomes


def grpc_predict() -> dict:
    kinds = Counter(grpc_services.expected_difference(i) for i in GRPC_ITEMS)
    n = len(GRPC_ITEMS)
    return {"shadowed": n, "compared": n, "mismatch": kinds["grpc_status"] + kinds["body"],
            "mismatch_kind.grpc_status": kinds["grpc_status"],
            "field_mismatch./3": kinds["body"], "dark_grpc.not_found": kinds["grpc_status"],
            "dark_grpc.ok": n - kinds["grpc_status"], "primary_grpc.ok": n}


def grpc_summary(stats: dict, predicted: dict, outcomes: Counter) -> tuple:
    """The gRPC launch's section, and its problems."""
    s = stats
    lines = [f"gRPC launch {GRPC_LAUNCH!r}: shop.Catalog/GetItem, primary catalog v1, dark"
             " catalog v2 (HTTP/2 clusters)",
             "=" * 78,
             f"traffic        {len(GRPC_ITEMS)} calls; clients got "
             + ", ".join(f"{v} x {k}" for k, v in sorted(outcomes.items())),
             f"dark codes            {_breakdown(s, 'dark_grpc.')}",
             f"primary codes         {_breakdown(s, 'primary_grpc.')}"]
    rows = [("shadowed", "shadowed", ""), ("compared", "compared", ""),
            ("mismatch", "mismatch", ""),
            ("  grpc_status", "mismatch_kind.grpc_status", "NOT_FOUND for ids divisible by 11"),
            ("  /3", "field_mismatch./3", "field 3 (price) for ids divisible by 5")]
    for label, key, note in rows:
        lines.append(f"{label:<14} {s.get(key, 0):5d}   {note}  (predicted {predicted[key]})"
                     .replace("     (", "  ("))
    lines.append("")
    problems = [f"{GRPC_LAUNCH} {key}: observed {s.get(key, 0)}, predicted {want}"
                for key, want in predicted.items() if s.get(key, 0) != want]
    if set(outcomes) != {"OK from v1"}:
        problems.append(f"gRPC clients got answers other than v1's: {dict(outcomes)}")
    return "\n".join(lines), problems


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
    """What envoy/demo.yaml should make of ``requests`` (sticky sampling:
    murmur3_x86_32(launch name + key) < percent/100 × 2^32).

    Keys are launch stats (``matched``, ``mismatch_kind.status``,
    ``field_mismatch./price``, ...) plus ``differ`` (pairs that differ
    anywhere: mismatch + noise) and ``real`` (pairs with a difference v2
    makes on purpose: a lower bound of mismatch).
    """
    p = Counter(forced=0)
    for path, user in requests:
        if not path.startswith("/api/"):
            continue
        p["matched"] += 1
        if not harness.sticky_sampled(LAUNCH, user, PERCENT):
            p["skipped.sampled_out"] += 1
            continue
        p["shadowed"] += 1
        p["compared"] += 1
        if services.answers_differ(path):
            p["differ"] += 1
        kinds = services.expected_difference(path)
        if kinds:
            p["real"] += 1
        for kind in kinds - {"body"}:  # body differences are checked field by field
            p[f"mismatch_kind.{kind}"] += 1
        for field in services.expected_fields(path):
            p[f"field_mismatch.{field}"] += 1
    return p


def checks(stats: dict, predicted: dict) -> list:
    """The exact predictions: [(label, observed, predicted)]; all must be equal."""
    s = stats
    out = [(k, s.get(k, 0), predicted[k]) for k in ("matched", "shadowed", "forced", "compared")]
    out.append(("mismatch+noise", s.get("mismatch", 0) + s.get("noise", 0), predicted["differ"]))
    # A real difference is never noise: every pair showing one is a mismatch,
    # so these counters (which only count mismatching pairs) see all of them.
    for k in ("mismatch_kind.status", "mismatch_kind.headers"):
        out.append((k, s.get(k, 0), predicted[k]))
    fields = {k for k in predicted if k.startswith("field_mismatch.")}
    fields |= {k for k in s if k.startswith("field_mismatch.")
               and k[len("field_mismatch."):] not in services.NOISE_FIELDS}
    for k in sorted(fields):
        out.append((k, s.get(k, 0), predicted[k]))
    return out


NOISE_MARK = "darklaunch noise learned "


def noise_learned(log_text: str) -> Counter:
    """{pointer: number of workers that announced it} from the
    ``darklaunch noise learned {...}`` log lines of the launch (each worker
    logs a pointer once)."""
    out: Counter = Counter()
    for line in log_text.splitlines():
        i = line.find(NOISE_MARK)
        if i < 0:
            continue
        try:
            obj, _ = json.JSONDecoder().raw_decode(line[i + len(NOISE_MARK):].lstrip())
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("launch") == LAUNCH and "path" in obj:
            out[obj["path"]] += 1
    return out


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


def top_fields(stats: dict, n: int = TOP_FIELDS) -> list:
    """[(pointer, count)] of the field_mismatch counters, largest first."""
    prefix = "field_mismatch."
    fields = [(k[len(prefix):], v) for k, v in stats.items() if k.startswith(prefix) and v]
    return sorted(fields, key=lambda kv: (-kv[1], kv[0]))[:n]


def _sample_logs(mismatches: list, n: int = 5) -> list:
    """Up to ``n`` mismatch log lines, the first of each (kinds, paths) shape."""
    out, seen = [], set()
    for m in mismatches:
        shape = (tuple(m.get("kinds", [])), tuple(m.get("paths", [])))
        if shape not in seen:
            seen.add(shape)
            out.append(m)
    return out[:n]


def _fields_line(stats: dict, predicted: dict) -> str:
    """The field_mismatch counters v2's 500 answers must move, besides /price."""
    want = {k[len("field_mismatch."):]: v for k, v in predicted.items()
            if k.startswith("field_mismatch.") and k != "field_mismatch./price"}
    got = {f: stats.get("field_mismatch." + f, 0) for f in want}
    if not want:
        return "none"
    names = " ".join(sorted(want))
    if len(set(want.values())) == 1 and len(set(got.values())) == 1:
        return f"{names}: {next(iter(got.values()))} each  (predicted {next(iter(want.values()))})"
    return ", ".join(f"{f} {got[f]} (predicted {want[f]})" for f in sorted(want))


def summary(stats: dict, hist: dict, predicted: dict, outcomes: Counter, secs: float,
            n: int, mismatches: list, prometheus: str, learned: Counter, aa_copies: int) -> str:
    s = stats
    matched, shadowed, compared = s.get("matched", 0), s.get("shadowed", 0), s.get("compared", 0)
    mismatch, noise = s.get("mismatch", 0), s.get("noise", 0)
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
        f"forced         {s.get('forced', 0):5d}   (predicted {predicted['forced']})",
        f"skipped        {harness.sum_prefix(s, 'skipped.'):5d}   {_breakdown(s, 'skipped.')}",
        f"dark answers          {_breakdown(s, 'dark_response.')}",
        f"primary answers       {_breakdown(s, 'primary_response.')}",
        f"compared       {compared:5d}   (predicted {predicted['compared']})",
        f"mismatch       {mismatch:5d}   {_pct(mismatch, compared)} of compared"
        f"  (predicted >= {predicted['real']}, the pairs v2 changed on purpose)",
        f"  by kind             {_breakdown(s, 'mismatch_kind.')}",
        f"noise          {noise:5d}   {_pct(noise, compared)} of compared",
        f"mismatch+noise {mismatch + noise:5d}   every pair differs somewhere"
        f" (meta.request_token)  (predicted {predicted['differ']})",
        f"not compared   {harness.sum_prefix(s, 'compare_skipped.'):5d}   "
        f"{_breakdown(s, 'compare_skipped.')}",
        f"in flight      {s.get('in_flight', 0):5d}   breaker open: {s.get('breaker_open', 0)}",
        "",
        "real differences (v2's changes on purpose: always mismatch, never noise)",
        f"  status       {s.get('mismatch_kind.status', 0):5d}   v2's 500s on items divisible"
        f" by 23  (predicted {predicted['mismatch_kind.status']})",
        f"  content-type {s.get('mismatch_kind.headers', 0):5d}   /api/slow"
        f"  (predicted {predicted['mismatch_kind.headers']})",
        f"  /price       {s.get('field_mismatch./price', 0):5d}   items divisible by 7,"
        f" and the 500s  (predicted {predicted['field_mismatch./price']})",
        f"  500 bodies          {_fields_line(s, predicted)}",
        "",
    ]
    learned_txt = ", ".join(f"{p} (by {w} of {CONCURRENCY} workers)"
                            for p, w in sorted(learned.items())) or "nothing yet"
    lines += [
        f"noise cancelled {noise:4d}   {_pct(noise, compared)} of compared: pairs whose only"
        " differences are learned noise",
        f"  learned             {learned_txt}",
        f"  A/A copies   {aa_copies:5d}   to cluster primary (v1 again), {_pct(aa_copies, shadowed)}"
        f" of shadowed (noise.percent {NOISE_PERCENT:g})",
        "",
        "top diverging fields (field_mismatch: mismatching pairs, share of compared)",
    ]
    top = top_fields(s)
    width = max([len(p) for p, _ in top] + [20])
    for p, v in top:
        note = "  learned noise, counted until then" if p in learned else ""
        lines.append(f"  {p:<{width}} {v:5d}  {_pct(v, compared):>6}{note}")
    if not top:
        lines.append("  none")
    lines += [
        "",
        "latency              p50        p95        p99",
    ]
    for side in ("primary_ms", "dark_ms"):
        q = hist.get(side, {})
        lines.append(f"  {side[:-3]:<10} {_fmt_ms(q.get('p50')):>10} {_fmt_ms(q.get('p95')):>10} "
                     f"{_fmt_ms(q.get('p99')):>10}")
    lines += ["", "what v2 changed on purpose: price of items divisible by 7 (body), 500 on items",
              "divisible by 23 (status), content-type and +150 ms on /api/slow (headers).",
              "Never real: meta.generated_at (ignored by the config) and meta.request_token",
              "(random in v1 too: learned as noise from the A/A copies).", ""]
    if mismatches:
        sample = _sample_logs(mismatches)
        lines.append(f"mismatch log ({len(mismatches)} lines in the Envoy log;"
                     f" the first of each shape, {len(sample)}):")
        for m in sample:
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


def report_binary() -> Path:
    return Path(os.environ.get("DARKLAUNCH_REPORT")
                or ROOT / "target" / "debug" / "darklaunch-report")


def samples_view(log: Path, stats: dict, lines: int = 24) -> None:
    """What the samples (capture) show: `darklaunch-report samples` on the
    Envoy log, its first lines, and the HTML page it writes next to the log."""
    binary = report_binary()
    captured = stats.get("sample.captured", 0)
    dropped = {k.removeprefix("sample.dropped."): v for k, v in stats.items()
               if k.startswith("sample.dropped.") and v}
    print(f"\nsamples: {captured} captured" + (f", dropped {dropped}" if dropped else "")
          + " (capture.per_minute 40; /meta/request_token redacted)")
    if not binary.is_file():
        print(f"note: {binary} not built; `make report` builds the inspector")
        return
    page = log.parent / "samples.html"
    print(f"darklaunch-report samples --html {page.relative_to(ROOT)} "
          f"{log.relative_to(ROOT)}")
    proc = subprocess.run([str(binary), "samples", "--html", str(page), str(log)],
                          capture_output=True, text=True, timeout=60)
    out = proc.stdout.rstrip().splitlines()
    for line in out[1:lines]:
        print(line[:150])
    if len(out) > lines:
        print(f"  … ({len(out) - lines} more lines; the whole view: the command above)")
    if proc.returncode != 0 or not page.is_file():
        print(f"error: the inspector failed: {proc.stderr.strip()}", file=sys.stderr)
        return
    print(f"side-by-side diffs of every sample: open {page} in a browser")


def gate_report(env) -> None:
    """End with the rollout gate's view of the launch: `darklaunch-report`
    against this Envoy's admin endpoint (its verdict is informative here: the
    demo's v2 is meant to diverge). Skipped with a note when the CLI is not
    built (`make demo` builds it)."""
    binary = str(report_binary())
    if not Path(binary).is_file():
        print(f"note: {binary} not built; `make report` builds the rollout gate")
        return
    print("\nrollout gate: darklaunch-report --envoy " + env.admin_url("").rstrip("/"))
    proc = subprocess.run([binary, "--envoy", env.admin_url("").rstrip("/")],
                          capture_output=True, text=True, timeout=60)
    print(proc.stdout.rstrip())
    if proc.stderr.strip():
        print(proc.stderr.rstrip(), file=sys.stderr)


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
    n = int(os.environ.get("DEMO_REQUESTS", "600"))
    workdir = ROOT / ".run" / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "envoy.log"
    if log.exists():
        log.unlink()

    ports = pick_ports()
    config = workdir / "envoy.yaml"
    config.write_text(harness.render_demo_yaml(ports, wasm))

    v1 = v2 = c1 = c2 = env = None
    try:
        v1, v2 = services.start(ports["v1"], ports["v2"])
        print(f"services: v1 (primary) on :{v1.port}, v2 (dark) on :{v2.port}")
        c1, c2 = grpc_services.start(ports["catalog_v1"], ports["catalog_v2"])
        print(f"gRPC services: catalog v1 (primary) on :{c1.port}, v2 (dark) on :{c2.port}")
        env = harness.Envoy(
            config, ports["admin"], ports["listener"], envoy_path=envoy_path,
            concurrency=CONCURRENCY,
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
        predicted = predict(requests)
        learned = noise_learned(env.log_text())
        aa_copies = sum(1 for r in v1.requests() if r.header(SHADOW_HEADER) == LAUNCH)
        print(summary(stats, hist, predicted, outcomes, secs, n, env.mismatch_logs(),
                      env.prometheus(), learned, aa_copies))

        problems = [f"{label}: observed {got}, predicted {want}"
                    for label, got, want in checks(stats, predicted) if got != want]
        if stats.get("mismatch", 0) < predicted["real"]:
            problems.append(f"mismatch: observed {stats.get('mismatch', 0)}, predicted at least "
                            f"{predicted['real']} (the pairs with a real difference)")
        if stats.get("noise", 0) == 0 or not learned:
            print("note: no noise learned yet (each Envoy worker needs 5 A/A pairs first); "
                  "send more requests (DEMO_REQUESTS)")
        if stats.get("shadowed", 0) == 0:
            problems.append("nothing was shadowed")
        odd = {k: v for k, v in outcomes.items() if not k.endswith("from v1")}
        if odd:
            problems.append(f"clients got answers other than v1's: {odd}")
        if not env.running():
            problems.append("Envoy exited")
        grpc_outcomes = drive_grpc(env)
        try:
            grpc_stats = env.wait_settled(GRPC_LAUNCH, timeout=30)
        except TimeoutError as exc:
            print(f"warning: {exc}", file=sys.stderr)
            grpc_stats = env.launch_stats(GRPC_LAUNCH)
        text, grpc_problems = grpc_summary(grpc_stats, grpc_predict(), grpc_outcomes)
        print(text)
        problems += grpc_problems
        samples_view(log, stats)
        if stats.get("sample.captured", 0) == 0:
            problems.append("no sample captured")
        gate_report(env)
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        return 1 if problems else 0
    finally:
        STOP.set()
        if env is not None:
            env.stop()
        for svc in (v1, v2, c1, c2):
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
