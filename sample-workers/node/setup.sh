#!/usr/bin/env bash
# Prepares the Node worker SDK (the fnhost-worker package) and its sample app:
# copies the repository's proto/protos into the package's protos/ (what the
# SDK loads and `npm pack` ships), installs the SDK's pinned dependencies
# (package-lock.json), then the sample app's (../node-app), which links the
# SDK as `fnhost-worker`. Idempotent and quick when nothing changed: the copy
# writes only files that differ, and each `npm ci` runs only when its
# node_modules is missing or older than its lock file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v npm >/dev/null 2>&1; then
  echo "setup.sh: npm not found; install Node.js 18+ (with npm) first" >&2
  exit 1
fi

node scripts/copy-protos.js

# npm ci touches node_modules/.package-lock.json when it finishes, so that
# file's age says whether the last install completed after the lock changed.
install() {
  local dir=$1 marker=$1/node_modules/.package-lock.json
  if [[ -f "$marker" && ! "$dir/package-lock.json" -nt "$marker" ]]; then
    return 0
  fi
  echo "setup.sh: installing $2 (npm ci in $dir)" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
  touch "$marker"
}

# The SDK first: the app's link to it needs nothing installed into the SDK.
install . "the Node worker SDK's dependencies"
install ../node-app "the Node sample app's link to the SDK"
