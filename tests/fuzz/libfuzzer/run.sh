#!/usr/bin/env bash
# Long run of one fuzz target under libFuzzer (coverage-guided, stable Rust):
#   bash tests/fuzz/libfuzzer/run.sh <target> [seconds]
# Needs a C++ compiler (libfuzzer-sys builds libFuzzer). Instruments with
# the flags cargo-fuzz passes with `-s none`; `--target` keeps them off build
# scripts. New inputs go to target/libfuzzer/corpus/<target> (the checked-in
# seeds are read, not written); crashes to target/libfuzzer/crashes/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../../.."
name="${1:?usage: run.sh <target> [seconds]}"
secs="${2:-180}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$root/target/libfuzzer"
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
  cargo build --release --manifest-path "$here/Cargo.toml" --target "$triple"
work="$CARGO_TARGET_DIR/corpus/$name"
crashes="$CARGO_TARGET_DIR/crashes/$name"
mkdir -p "$work" "$crashes"
seeds=("$here/../corpus/$name")
[ -d "$here/../corpus/$name/regressions" ] && seeds+=("$here/../corpus/$name/regressions")
FNHOST_FUZZ_TARGET="$name" "$CARGO_TARGET_DIR/$triple/release/fnhost-fuzz-libfuzzer" \
  -max_total_time="$secs" -max_len=4096 -print_final_stats=1 -artifact_prefix="$crashes/" \
  "$work" "${seeds[@]}"
