#!/usr/bin/env bash
# Prepares the SDK if needed (setup.sh), runs its unit tests with the built-in
# node:test runner, then type-checks the TypeScript sample in types-test/
# against the package's declarations. Exits non-zero when either fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
./setup.sh
node --test test/*.test.js
# tsc also fails when an `@ts-expect-error` line (a deliberately wrong use)
# type-checks, so the declarations are held to rejecting it.
node_modules/.bin/tsc -p types-test
echo "run-tests.sh: types-test type-checks against types/index.d.ts"
