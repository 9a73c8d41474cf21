#!/usr/bin/env bash
# Installs the console tests' pinned playwright-core (package-lock.json)
# when node_modules is missing or older than the lock file. The browser is
# Debian's chromium (.ci/run installs it); playwright downloads none.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if ! command -v npm >/dev/null 2>&1; then
  echo "tests/console/setup.sh: npm not found; install Node.js 18+ first" >&2
  exit 1
fi
marker=node_modules/.package-lock.json
if [[ ! -f "$marker" || package-lock.json -nt "$marker" ]]; then
  echo "tests/console/setup.sh: installing playwright-core (npm ci)" >&2
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --prefer-offline --loglevel=error
  touch "$marker"
fi
if [[ ! -x /usr/bin/chromium ]]; then
  echo "tests/console/setup.sh: /usr/bin/chromium is missing (apt-get install -y chromium); the console tests will fail" >&2
fi
