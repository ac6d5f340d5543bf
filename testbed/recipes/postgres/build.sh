#!/bin/bash
# Build the postgres image (Debian postgresql-15 + an entrypoint compatible with
# the official image: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, PGDATA).
. /tb-common.sh

# Same ids as the official image, so bind-mounted data directories look alike.
groupadd --system --gid 999 postgres
useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql --shell /bin/bash postgres
mkdir -p /var/lib/postgresql
chown postgres:postgres /var/lib/postgresql

# No cluster at install time: the entrypoint initialises PGDATA on first start.
mkdir -p /etc/postgresql-common
echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf

tb_block_services
tb_overlay
# shellcheck disable=SC2046
tb_apt_install $(tb_packages)
tb_unblock_services

# Drop LLVM (JIT only; ~150 MB: images are loaded into test hosts often). postgres
# itself does not link it; JIT is switched off in the config template.
dpkg --purge --force-depends libllvm14 libz3-4 >/dev/null
rm -rf /usr/lib/postgresql/15/lib/llvmjit* /usr/lib/postgresql/15/lib/bitcode
echo 'jit = off' >>/usr/share/postgresql/15/postgresql.conf.sample

chmod 0755 /usr/local/bin/docker-entrypoint.sh
mkdir -p /var/lib/postgresql/data /docker-entrypoint-initdb.d
chown -R postgres:postgres /var/lib/postgresql
chmod 0700 /var/lib/postgresql/data
mkdir -p /var/run/postgresql
chown postgres:postgres /var/run/postgresql
chmod 3777 /var/run/postgresql
test -x /usr/lib/postgresql/15/bin/pg_isready

tb_cleanup
