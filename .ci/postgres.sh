#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on loopback for the service's PostgreSQL tests.
# Installs Debian's postgresql package when missing (needs root), starts a cluster in
# $PG_DIR (default /tmp/tian-pg) on port $PG_PORT (default 54329), creates database "tian_test"
# and prints the line to export, e.g.:
#     eval "$(.ci/postgres.sh)"   # sets TIAN_TEST_PG_URL
# Stop it again with: .ci/postgres.sh stop
set -euo pipefail
PG_DIR=${PG_DIR:-/tmp/tian-pg}
PG_PORT=${PG_PORT:-54329}
PG_USER=${PG_USER:-postgres}

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing postgresql (Debian package)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
BIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")

# PostgreSQL refuses to run as root: run it as the postgres user when we are root.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

if [ "${1:-}" = stop ]; then
    as_pg "$BIN/pg_ctl" -D "$PG_DIR/data" stop -m fast >&2 || true
    exit 0
fi

if [ "$(id -u)" != 0 ]; then PG_USER=$(id -un); fi
mkdir -p "$PG_DIR"
[ "$(id -u)" = 0 ] && chown "$PG_USER" "$PG_DIR"
if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    as_pg "$BIN/initdb" -D "$PG_DIR/data" -U tian --auth=trust -E UTF8 --locale=C.UTF-8 >&2
fi
if ! as_pg "$BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    as_pg "$BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -k $PG_DIR" start >&2
fi
as_pg "$BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U tian -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='tian_test'" | grep -q 1 \
    || as_pg "$BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U tian tian_test
echo "export TIAN_TEST_PG_URL=postgresql+psycopg://tian@127.0.0.1:$PG_PORT/tian_test"
