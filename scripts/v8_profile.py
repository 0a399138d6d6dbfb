#!/usr/bin/env python3
"""The module's comparison code under V8, without Envoy: ``make bench-v8``.

``make bench`` measures darklaunch's cost in the front Envoy, where the
module's own code is one column of a perf profile (``--profile``) and V8
compiles it to anonymous code. This runs the same comparison code in the same
engine, alone: ``benches/v8-loop`` (a WASI program linking darklaunch, built
for wasm32-wasip1 with the module's settings, names kept) runs in Node.js,
whose V8 is the engine Envoy embeds (versions differ; the native numbers of
``cargo bench --features fuzzing`` are the other reference).

Node runs V8 with ``--no-liftoff``, as Envoy's proxy-wasm host does (every
function compiled by TurboFan at load). For each mode it prints the µs per
pair (median and minimum of the rounds after the first, a warm-up), then, with
``--profile``, the functions with the most self time from V8's own sampling
profiler (``node --cpu-prof``), Rust names demangled. Modes (``--modes``):

* ``json``: ``make bench``'s E pair, two 4 KiB orders that differ only in an
  ignored timestamp (a match);
* ``json-diff``: the same order with one price changed (one difference);
* ``json-parse``: parsing the primary order only;
* ``grpc``: GD's pair, a 2.6 KiB protobuf Item whose ignored ``/7/1``
  differs, compared as protobuf.

Timings on a shared machine are noisy; compare modes or builds within one
run, never across days. ``--baseline OTHER.wasm`` (a v8-loop built from an
earlier commit) alternates the two builds, process by process, and adds
their ratio.
"""

import argparse
import collections
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOP = ROOT / "benches" / "v8-loop"
WASM = LOOP / "target" / "wasm32-wasip1" / "release" / "v8-loop.wasm"
RUNNER = LOOP / "run.mjs"
MODES = ["json", "json-diff", "json-parse", "grpc", "engine-c", "engine-f", "engine-d", "engine-e"]


def demangle(name: str) -> str:
    """A legacy-mangled Rust symbol (``_ZN…E``) as a path, hash dropped;
    anything else as it is."""
    if name.startswith("_R"):
        # v0 mangling, roughly: the identifiers of the path, crate
        # disambiguators dropped.
        body = re.sub(r"(?<=[A-Z])s[0-9A-Za-z]*_", "", name[2:])
        parts, i = [], 0
        while i < len(body):
            m = re.match(r"(\d+)_?", body[i:])
            if m and body[i + len(m.group(0)):i + len(m.group(0)) + int(m.group(1))].isidentifier():
                n = int(m.group(1))
                start = i + len(m.group(0))
                parts.append(body[start:start + n])
                i = start + n
            else:
                i += 1
        return "::".join(parts) or name
    m = re.fullmatch(r"_ZN(.*)E", name)
    if not m:
        return name or "(anonymous)"
    rest, parts = m.group(1), []
    while rest and rest[0].isdigit():
        n = re.match(r"\d+", rest).group(0)
        rest = rest[len(n):]
        parts.append(rest[: int(n)])
        rest = rest[int(n):]
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    text = "::".join(parts)
    for code, char in [("$LT$", "<"), ("$GT$", ">"), ("$RF$", "&"), ("$BP$", "*"),
                       ("$C$", ","), ("$u20$", " "), ("$u27$", "'"), ("$u5b$", "["),
                       ("$u5d$", "]"), ("$u7b$", "{"), ("$u7d$", "}"), ("$LP$", "("),
                       ("$RP$", ")"), ("..", "::")]:
        text = text.replace(code, char)
    return text


def node(args: list, **kw) -> subprocess.CompletedProcess:
    # --no-liftoff: V8 compiles every function with TurboFan at load, as
    # proxy-wasm's V8 host in Envoy does (no baseline tier).
    return subprocess.run(["node", "--no-warnings", "--no-liftoff", *args], capture_output=True,
                          text=True, check=False, **kw)


# Host calls per request of the engine modes, by kind (their last line).
CALLS = {}


def timings(mode: str, rounds: int, iterations: int, wasm: Path = WASM) -> list:
    """Each round's µs per pair, the first round (a warm-up) dropped."""
    r = node([str(RUNNER), str(wasm), mode, str(rounds), str(iterations)])
    if r.returncode != 0:
        sys.exit(f"v8-loop {mode} failed ({r.returncode}): {r.stderr.strip()}")
    lines = r.stdout.splitlines()
    if lines and lines[-1].startswith("calls"):
        CALLS[mode] = dict(kv.split("=") for kv in lines.pop().split()[1:])
    return [float(x) for x in lines][1:]


def self_times(mode: str, rounds: int, iterations: int) -> collections.Counter:
    """Samples of self time by function, from V8's CPU profile of one run."""
    with tempfile.TemporaryDirectory() as tmp:
        r = node(["--cpu-prof", "--cpu-prof-dir", tmp, "--cpu-prof-interval", "100",
                  str(RUNNER), str(WASM), mode, str(rounds), str(iterations)])
        if r.returncode != 0:
            sys.exit(f"v8-loop {mode} (profiled) failed: {r.stderr.strip()}")
        out = collections.Counter()
        for f in Path(tmp).glob("*.cpuprofile"):
            prof = json.loads(f.read_text())
            names = {n["id"]: n["callFrame"]["functionName"] for n in prof["nodes"]}
            for node_id, count in collections.Counter(prof["samples"]).items():
                out[demangle(names[node_id])] += count
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated, of " + ", ".join(MODES))
    ap.add_argument("--rounds", type=int, default=8, help="rounds per mode (the first is dropped)")
    ap.add_argument("--iterations", type=int, default=3000, help="pairs per round")
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                    help="also print each mode's self-time profile (default: on)")
    ap.add_argument("--top", type=int, default=12, help="functions per profile")
    ap.add_argument("--baseline", type=Path, help="another v8-loop build to compare with, alternating")
    ap.add_argument("--processes", type=int, default=3,
                    help="with --baseline: processes per build and mode, alternating")
    a = ap.parse_args()
    if not WASM.exists():
        sys.exit(f"{WASM} is missing: `make bench-v8` builds it")
    version = node(["--version"]).stdout.strip()
    v8 = node(["-p", "process.versions.v8"]).stdout.strip()
    print(f"# The module's comparison code under V8 (Node.js {version}, V8 {v8})\n")
    modes = [m for m in a.modes.split(",") if m]
    if a.baseline:
        print(f"This build against {a.baseline}, {a.processes} processes of each, alternating.\n")
        print("| mode | µs per pair, median | baseline's median | ratio | minimum | baseline's minimum |")
        print("|---|---|---|---|---|---|")
        for mode in modes:
            ours, theirs = [], []
            for _ in range(a.processes):
                theirs += timings(mode, a.rounds, a.iterations, a.baseline)
                ours += timings(mode, a.rounds, a.iterations)
            mo, mt = statistics.median(ours), statistics.median(theirs)
            print(f"| {mode} | {mo:.2f} | {mt:.2f} | {mo / mt:.3f} | {min(ours):.2f} | {min(theirs):.2f} |")
    else:
        print("| mode | µs per pair, median | minimum | rounds |")
        print("|---|---|---|---|")
        for mode in modes:
            t = timings(mode, a.rounds, a.iterations)
            print(f"| {mode} | {statistics.median(t):.2f} | {min(t):.2f} | {len(t)} × {a.iterations} |")
    if CALLS:
        kinds = sorted({k for c in CALLS.values() for k in c})
        print("\nHost calls per request made by the engine (each a crossing out of the VM in Envoy; "
              "not counted: the callbacks into it, and the glue's doorbell dequeue):\n")
        print("| mode | " + " | ".join(kinds) + " | all |")
        print("|---|" + "---|" * (len(kinds) + 1))
        for mode, c in CALLS.items():
            total = sum(float(v) for v in c.values())
            print(f"| {mode} | " + " | ".join(c.get(k, "0") for k in kinds) + f" | {total:.2f} |")
    if not a.profile:
        return
    for mode in modes:
        prof = self_times(mode, a.rounds, a.iterations)
        total = sum(prof.values()) or 1
        print(f"\n## {mode}: self time by function (V8's sampling profiler)\n")
        print("| share | function |")
        print("|---|---|")
        for name, count in prof.most_common(a.top):
            print(f"| {100 * count / total:.1f}% | `{name[:120]}` |")


if __name__ == "__main__":
    main()
