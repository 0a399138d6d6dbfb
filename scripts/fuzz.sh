#!/usr/bin/env bash
# Coverage-guided fuzzing of darklaunch's pure modules (the cargo-fuzz project
# in fuzz/), bounded in time: every target runs for SECONDS_PER_TARGET
# (default 60), one after the other, one libFuzzer process at a time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (also: make fuzz)
#
# Prints one summary line per target (executions reached, coverage, result),
# writes the same table to fuzz/RESULTS.md, and exits non-zero if any target
# found a crash, a timeout (-timeout=10 s per input) or an out-of-memory
# (-rss_limit_mb=2048). Crashing inputs are kept in fuzz/artifacts/<target>/;
# replay one with the command printed next to it.
#
# Toolchain: libFuzzer instrumentation needs unstable rustc flags
# (-Zsanitizer, sanitizer-coverage passes). A nightly toolchain is used when
# rustup has one installed; otherwise the toolchain pinned in
# rust-toolchain.toml with RUSTC_BOOTSTRAP=1, which accepts the same flags and
# ships the AddressSanitizer runtime. If an ASan build or its smoke run fails
# there, the targets are rebuilt with `--sanitizer none` (panics, timeouts and
# memory blow-ups are still found; memory errors in unsafe code would not be).
# Nothing is downloaded except cargo-fuzz itself from crates.io when missing.
#
# Environment overrides:
#   FUZZ_TOOLCHAIN=<rustup toolchain>   force a toolchain (e.g. 1.95.0)
#   FUZZ_SANITIZER=address|none         force a sanitizer
#   FUZZ_ARGS="..."                     extra libFuzzer flags for every target

set -uo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-60}
shift || true
if ! [[ $SECS =~ ^[0-9]+$ ]] || ((SECS < 1)); then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi

FUZZ_DIR=fuzz
CARGO_FUZZ_VERSION=0.13.2
PINNED=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)

# Per-target input size bound (bytes): bodies up to 64 KiB, the rest smaller.
max_len() {
    case $1 in
        compare | decode) echo 65536 ;;
        config | outcome) echo 16384 ;;
        request) echo 8192 ;;
        limits) echo 4096 ;;
        *) echo 16384 ;;
    esac
}

# ---------------------------------------------------------------- toolchain
if [[ -n ${FUZZ_TOOLCHAIN:-} ]]; then
    TC=$FUZZ_TOOLCHAIN
elif rustup toolchain list 2>/dev/null | grep -q '^nightly-'; then
    TC=nightly
else
    TC=$PINNED
fi
TC_VERSION=$(rustc "+$TC" --version 2>/dev/null) || {
    echo "fuzz: toolchain '$TC' is not installed (rustup toolchain list)" >&2
    exit 2
}
if [[ $TC_VERSION == *nightly* || $TC_VERSION == *-dev* ]]; then
    TC_NOTE="$TC_VERSION"
else
    export RUSTC_BOOTSTRAP=1
    TC_NOTE="$TC_VERSION with RUSTC_BOOTSTRAP=1"
fi
CARGO=(cargo "+$TC")

if ! "${CARGO[@]}" fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    # Installed with the pinned toolchain (no unstable flags needed for that).
    (unset RUSTC_BOOTSTRAP; cargo "+$PINNED" install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION") || {
        echo "fuzz: could not install cargo-fuzz" >&2
        exit 2
    }
fi

if (($# > 0)); then
    TARGETS=("$@")
else
    TARGETS=()
    for f in "$FUZZ_DIR"/fuzz_targets/*.rs; do
        TARGETS+=("$(basename "$f" .rs)")
    done
fi

TRIPLE=$(rustc "+$TC" -vV | sed -n 's/^host: //p')
BIN_DIR=$FUZZ_DIR/target/$TRIPLE/release

# ---------------------------------------------------------------- build
build() {
    echo "fuzz: building the fuzz targets with $TC_NOTE, sanitizer $1"
    "${CARGO[@]}" fuzz build --fuzz-dir "$FUZZ_DIR" --sanitizer "$1" 2>&1 | tail -n 30
    return "${PIPESTATUS[0]}"
}

# The first target must start and run one input: catches an ASan runtime that
# links but cannot start.
smoke() {
    ASAN_OPTIONS=detect_odr_violation=0 "$BIN_DIR/${TARGETS[0]}" -runs=1 >/dev/null 2>&1 </dev/null
}

SAN=${FUZZ_SANITIZER:-address}
if ! { build "$SAN" && smoke; }; then
    if [[ $SAN == address && -z ${FUZZ_SANITIZER:-} ]]; then
        echo "fuzz: AddressSanitizer build or start failed on $TC_NOTE; falling back to --sanitizer none" >&2
        SAN=none
        if ! { build "$SAN" && smoke; }; then
            echo "fuzz: build failed" >&2
            exit 2
        fi
    else
        echo "fuzz: build failed" >&2
        exit 2
    fi
fi

# ---------------------------------------------------------------- run
LOG_DIR=$FUZZ_DIR/logs
mkdir -p "$LOG_DIR"
declare -A EXECS COV CORPUS RESULT ARTIFACT
FAILED=0
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)

for t in "${TARGETS[@]}"; do
    corpus=$FUZZ_DIR/corpus/$t
    seeds=$FUZZ_DIR/seeds/$t
    mkdir -p "$corpus" "$FUZZ_DIR/artifacts/$t"
    dirs=("$corpus")
    [[ -d $seeds ]] && dirs+=("$seeds")
    args=(
        -max_total_time="$SECS"
        -rss_limit_mb=2048
        -malloc_limit_mb=2048
        -timeout=10
        -max_len="$(max_len "$t")"
        -print_final_stats=1
    )
    [[ -f $FUZZ_DIR/dicts/$t.dict ]] && args+=(-dict="$FUZZ_DIR/dicts/$t.dict")
    # shellcheck disable=SC2206
    [[ -n ${FUZZ_ARGS:-} ]] && args+=($FUZZ_ARGS)
    log=$LOG_DIR/$t.log
    echo "fuzz: $t for ${SECS}s (log: $log)"
    # The binary built above is run directly (as `cargo fuzz run` would, with
    # its artifact prefix), so that the sources changing meanwhile neither
    # rebuild nor change what is measured. New inputs go to the first
    # directory (the scratch corpus, git-ignored); the committed seeds are
    # only read. The outer timeout is a guard only.
    ASAN_OPTIONS=detect_odr_violation=0 timeout -s INT -k 30 $((SECS + 300)) \
        "$BIN_DIR/$t" -artifact_prefix="$FUZZ_DIR/artifacts/$t/" "${args[@]}" "${dirs[@]}" \
        >"$log" 2>&1 </dev/null
    rc=$?

    n=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    if [[ -z $n ]]; then
        n=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    fi
    EXECS[$t]=${n:-0}
    COV[$t]=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+')
    COV[$t]=${COV[$t]:--}
    CORPUS[$t]=$(find "$corpus" -type f | wc -l)
    art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    ARTIFACT[$t]=$art
    if ((rc == 0)) && [[ -z $art ]]; then
        RESULT[$t]=ok
    else
        FAILED=1
        case $(basename "${art:-none}") in
            crash-*) RESULT[$t]=crash ;;
            timeout-*) RESULT[$t]=timeout ;;
            oom-*) RESULT[$t]=oom ;;
            leak-*) RESULT[$t]=leak ;;
            slow-unit-*) RESULT[$t]=slow ;;
            *) RESULT[$t]="failed (exit $rc)" ;;
        esac
        echo "fuzz: $t: ${RESULT[$t]}; last lines of $log:" >&2
        grep -E "panicked at|ERROR: libFuzzer|SUMMARY|deadly signal|==ERROR" "$log" | head -n 5 >&2
        if [[ -n $art ]]; then
            echo "fuzz:   reproduce: $BIN_DIR/$t $art" >&2
            echo "fuzz:   or: ${RUSTC_BOOTSTRAP:+RUSTC_BOOTSTRAP=1 }cargo +$TC fuzz run --sanitizer $SAN $t $art" >&2
        fi
    fi
done

# ---------------------------------------------------------------- report
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src 2>/dev/null || commit="$commit+local changes"
{
    echo "# Fuzzing results"
    echo
    echo "Written by \`scripts/fuzz.sh $SECS\` (\`make fuzz\`); re-run to refresh."
    echo
    echo "- date: $STARTED"
    echo "- toolchain: $TC_NOTE"
    echo "- sanitizer: $SAN"
    echo "- source: $commit"
    echo "- limits per target: ${SECS}s, -timeout=10, -rss_limit_mb=2048, one process"
    echo
    echo "| target | seconds | executions | coverage | corpus | crashes | result |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    for t in "${TARGETS[@]}"; do
        crashes=0
        [[ ${RESULT[$t]} != ok ]] && crashes=1
        echo "| $t | $SECS | ${EXECS[$t]} | ${COV[$t]} | ${CORPUS[$t]} | $crashes | ${RESULT[$t]}${ARTIFACT[$t]:+ (\`${ARTIFACT[$t]}\`)} |"
    done
} >"$FUZZ_DIR/RESULTS.md"

echo
echo "fuzz summary ($TC_NOTE, sanitizer $SAN, ${SECS}s per target):"
for t in "${TARGETS[@]}"; do
    printf '  %-8s %12s executions  cov %6s  corpus %5s  %s\n' \
        "$t" "${EXECS[$t]}" "${COV[$t]}" "${CORPUS[$t]}" "${RESULT[$t]}"
done
echo "(table in $FUZZ_DIR/RESULTS.md)"
exit "$FAILED"
