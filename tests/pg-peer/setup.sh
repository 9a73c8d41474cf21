#!/usr/bin/env bash
# Installs graphile-worker for bench.js from package-lock.json; quiet, and a
# no-op when node_modules already matches the lock.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.fnhost-lock
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null
cp package-lock.json "$stamp"
