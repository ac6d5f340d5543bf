#!/bin/bash
# A small entrypoint that behaves like the official postgres image's:
#  - initialises $PGDATA (default /var/lib/postgresql/data) when it is empty,
#    with superuser $POSTGRES_USER (default postgres), password $POSTGRES_PASSWORD
#    and database $POSTGRES_DB (default $POSTGRES_USER);
#  - runs /docker-entrypoint-initdb.d/*.sh and *.sql once, after initialisation;
#  - listens on 0.0.0.0:5432; local socket connections are trusted, TCP ones need
#    the password (scram-sha-256) unless POSTGRES_HOST_AUTH_METHOD says otherwise;
#  - fixes ownership of $PGDATA (also when bind-mounted from the host) and runs
#    postgres as the postgres user, in the foreground.
set -Eeuo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

# `docker run IMAGE -c foo=bar` means `postgres -c foo=bar`.
if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" != 'postgres' ]; then
    exec "$@"
fi

if [ "$(id -u)" = '0' ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA" || true
    chown -R postgres:postgres "$PGDATA" 2>/dev/null || chown postgres:postgres "$PGDATA"
    chown postgres:postgres /var/run/postgresql
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$(readlink -f "${BASH_SOURCE[0]}")" "$@"
fi

POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
        echo >&2 'error: database is uninitialized and superuser password is not specified.'
        echo >&2 '  Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust, not recommended).'
        exit 1
    fi
    echo "initialising database in $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --auth-host="$POSTGRES_HOST_AUTH_METHOD" --encoding=UTF8 --locale=C.UTF-8 \
        ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA" >/dev/null
    rm -f "$pwfile"
    {
        echo
        echo "host all all all $POSTGRES_HOST_AUTH_METHOD"
    } >>"$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.auto.conf"

    # Temporary server on the unix socket only, for database creation and init scripts.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start >/dev/null
    psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [ "$POSTGRES_DB" != 'postgres' ]; then
        echo 'CREATE DATABASE :"db" ;' | "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" >/dev/null
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "running $f"; . "$f" ;;
            *.sql) echo "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) echo "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
            *) ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
