#!/usr/bin/env bash
# The project's test command: prepares the other language workers (Python
# and Node SDKs, the published Python worker, the SCF SDK client, Azure's
# interop workers), builds every binary the end-to-end tests launch, and
# runs every suite.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== worker environments"
bash sample-workers/python/setup.sh
bash sample-workers/published-python/setup.sh
bash sample-workers/node/setup.sh
if [ -f tests/scf-sdk/setup.sh ]; then bash tests/scf-sdk/setup.sh; fi
bash tests/prometheus/setup.sh
bash tests/schemathesis/setup.sh
bash tests/console/setup.sh
# Azure's own workers from ../shared/interop (skips with a message when absent).
bash tests/interop/setup.sh

echo "== Python SDK unit tests"
bash sample-workers/python/run-tests.sh

echo "== Node SDK unit tests"
bash sample-workers/node/run-tests.sh

echo "== Rust: build, unit and end-to-end tests"
cargo build --workspace --bins --locked
cargo test --workspace --locked --exclude fnhost-fuzz

# Each target about 8 s (FNHOST_FUZZ_SECONDS), from a fixed seed; a debug
# build, so that arithmetic overflow panics. Long runs: tests/fuzz/README.md.
echo "== Fuzz targets (short runs)"
cargo test -p fnhost-fuzz --locked -- --nocapture
