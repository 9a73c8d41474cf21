#!/usr/bin/env bash
# The project's test command: builds every binary the end-to-end tests
# launch, prepares the other language workers, and runs every suite.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --bins --locked
cargo test --workspace --locked
