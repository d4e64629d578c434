#!/bin/bash
# Makes the cluster on the first start (the official image's POSTGRES_* variables), then runs
# the server in the foreground, listening on every address with password authentication.
set -euo pipefail
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
    printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        postgres --single -D "$PGDATA" postgres <<< "CREATE DATABASE \"$database\" OWNER \"$user\";" >/dev/null
    fi
fi
exec postgres -c listen_addresses='*'
