#!/usr/bin/env bash
# Two fnhost hosts sharing asynchronous invocations through one PostgreSQL,
# all on this machine: a throw-away database on a Unix socket (no TCP port)
# and the Rust sample app on ports 7071 and 7072. Ctrl-C stops everything
# and removes the database.
#
#   cargo build --workspace --bins
#   bash deploy/several-hosts.sh [APP_DIR]
#
# Then, with the admin key it prints:
#   curl -s -H "x-functions-key: $KEY" localhost:7071/admin/functions/sleep/invoke-async -d 2000
#   curl -s -H "x-functions-key: $KEY" localhost:7072/admin/async-events      # the same event
#   curl -s -H "x-functions-key: $KEY" localhost:7072/admin/host/status       # .cluster.hosts
#
# PG_BIN selects PostgreSQL's binaries (default /usr/lib/postgresql/15/bin);
# FNHOST selects the host binary (default target/debug/fnhost).
set -euo pipefail
cd "$(dirname "$0")/.."

APP=${1:-sample-workers/rust-app}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
FNHOST=${FNHOST:-target/debug/fnhost}
[ -x "$FNHOST" ] || { echo "no $FNHOST: run cargo build --workspace --bins first" >&2; exit 2; }
[ -x "$PG_BIN/initdb" ] || { echo "no PostgreSQL in $PG_BIN (set PG_BIN)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/fnhost-hosts-XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/db" "$WORK/sock"
# initdb refuses to run as root: run the database as `nobody` then.
AS=()
if [ "$(id -u)" = 0 ]; then
    chown nobody "$WORK/db" "$WORK/sock"
    AS=(runuser -u nobody --)
fi

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

"${AS[@]}" "$PG_BIN/initdb" -A trust -U postgres -E UTF8 --locale=C -D "$WORK/db" >/dev/null
"${AS[@]}" "$PG_BIN/postgres" -D "$WORK/db" -k "$WORK/sock" -c listen_addresses='' \
    >"$WORK/postgres.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    "$PG_BIN/pg_isready" -q -h "$WORK/sock" && break
    sleep 0.1
done
"$PG_BIN/psql" -q -h "$WORK/sock" -U postgres -c 'CREATE DATABASE fnhost' >/dev/null

export FNHOST_EVENT_STORE="postgresql:///fnhost?host=$WORK/sock&user=postgres"
export FNHOST_ADMIN_KEY=${FNHOST_ADMIN_KEY:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}
echo "admin key: $FNHOST_ADMIN_KEY"
echo "event store: $FNHOST_EVENT_STORE"
"$FNHOST" start "$APP" --port 7071 --data-dir "$WORK/host-a" &
pids+=($!)
"$FNHOST" start "$APP" --port 7072 --data-dir "$WORK/host-b" &
pids+=($!)
wait -n "${pids[@]}"
