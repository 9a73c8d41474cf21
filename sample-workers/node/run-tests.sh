#!/usr/bin/env bash
# Installs dependencies if needed, then runs the Node worker SDK's unit tests
# with the built-in node:test runner. Exits non-zero when a test fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
./setup.sh
exec node --test test/*.test.js
