#!/usr/bin/env bash
# Installs the Node worker SDK's pinned dependencies (package-lock.json) into
# sample-workers/node/node_modules. Idempotent: does nothing when node_modules
# exists and is newer than the lock file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v npm >/dev/null 2>&1; then
  echo "setup.sh: npm not found; install Node.js 18+ (with npm) first" >&2
  exit 1
fi

# npm ci touches node_modules/.package-lock.json when it finishes, so that
# file's age says whether the last install completed after the lock changed.
marker=node_modules/.package-lock.json
if [[ -f "$marker" && ! package-lock.json -nt "$marker" ]]; then
  exit 0
fi

echo "setup.sh: installing Node worker SDK dependencies (npm ci)" >&2
npm ci --no-audit --no-fund --loglevel=error
touch "$marker"
