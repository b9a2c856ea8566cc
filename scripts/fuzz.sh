#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] [TARGET...]: runs the cargo-fuzz (libFuzzer) targets of fuzz/ for
# SECONDS each (default 30); all three when no target is named:
#   zmtp   the ZMTP greeting and command parsers (src/zmtp.rs)
#   core   the sans-IO core driven by arbitrary event sequences, invariants after each step
#   relay  the relay of taken-over pairs against simulated TCP with arbitrary timing
# Each run starts from the committed seeds (fuzz/seeds/<dir>/: libzmq captures for zmtp,
# event sequences for core and relay) in a fresh corpus directory, so the tree is left as it
# was. Exits non-zero when a target crashes or an invariant fails; the input that did it is
# kept in fuzz/artifacts/<target>/ (replay: cargo +nightly fuzz run <target> <file>).
#
# Needs the nightly toolchain and cargo-fuzz; installs them when missing (rustup; cargo
# install --locked, about 1 minute on 2 cores). FUZZ_TARGET_DIR sets where the fuzz build
# goes (default fuzz/target).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-30}
shift || true
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(zmtp core relay)

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "== installing the nightly toolchain (rustup)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz (cargo install --locked)"
    start=$SECONDS
    cargo install cargo-fuzz --locked
    echo "   cargo-fuzz installed in $((SECONDS - start)) s"
fi

export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}
echo "== cargo +nightly fuzz build (debug assertions on)"
cargo +nightly fuzz build --debug-assertions

declare -A SEEDS=([zmtp]=captures [core]=core [relay]=relay)
work=$(mktemp -d "${TMPDIR:-/tmp}/streamq-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
for t in "${TARGETS[@]}"; do
    [[ -n ${SEEDS[$t]:-} ]] || { echo "unknown target: $t" >&2; exit 2; }
    mkdir -p "$work/$t"
    echo "== fuzz $t for ${SECONDS_EACH} s (seeds: fuzz/seeds/${SEEDS[$t]}/)"
    if ! cargo +nightly fuzz run --debug-assertions "$t" "$work/$t" "fuzz/seeds/${SEEDS[$t]}" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -print_final_stats=1 \
        >"$work/$t.log" 2>&1; then
        tail -n 80 "$work/$t.log"
        echo "fuzz target $t FAILED; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb' "$work/$t.log" |
        sed 's/^/   /'
done
