#!/bin/sh
# What the official image's entrypoint does, as far as docker-compose.yml relies on it: on an empty
# volume, create the cluster with POSTGRES_USER as superuser (password auth over the network) and
# the POSTGRES_DB database; then run the server in the foreground.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password_file=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$password_file"
    # UTF-8, as the official image: a minbase system has no locales, and initdb's default there
    # (SQL_ASCII) makes psycopg hand back bytes where SQLAlchemy expects text.
    initdb --username="$POSTGRES_USER" --pwfile="$password_file" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8
    rm -f "$password_file"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "CREATE DATABASE \"$POSTGRES_DB\"" | postgres --single -D "$PGDATA" postgres >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
