"""A PostgreSQL backup, taken by the exact command line of its cron entry, restores
into a fresh database with the same rows; the entry's schedule is the spec's."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from tests.kinds.backups.support import (
    PG_CONTAINER,
    PG_DATABASE,
    PG_USER,
    files_in,
    plan_changes,
    psql,
    read_cron_entry,
    reconcile,
    run_cron_command,
    start_postgres,
    write_spec,
)

SCHEDULE = "15 3 * * *"
DEST = "/var/backups/appdb"
ROWS = [(1, "alpha"), (2, "beta with 'quotes'"), (3, "gamma; -- not a comment")]


@pytest.mark.timeout(900)
def test_cron_command_backup_restores_into_fresh_database(
        fresh_host: TestHost, testbed_images: Images, tmp_path: Path) -> None:
    host = fresh_host
    start_postgres(host, testbed_images.postgres)
    psql(host, "create table items (id int primary key, label text not null);"
         + "".join(f"insert into items values ({i}, '{label.replace(chr(39), chr(39) * 2)}');"
                   for i, label in ROWS))
    spec = write_spec(tmp_path / "spec", host, {"backups": [{
        "name": "appdb", "schedule": SCHEDULE,
        "source": {"postgres": {"container": PG_CONTAINER, "user": PG_USER, "database": PG_DATABASE}},
        "destination": DEST, "keep": {"days": 7, "count": 10}}]})

    reconcile("apply", spec)
    assert plan_changes(spec) == {}, "a second plan must be empty"

    entry = read_cron_entry(host, "/etc/cron.d/reconciler-backup-appdb")
    assert entry.schedule == SCHEDULE
    assert entry.command == "/usr/local/lib/reconciler/backup-appdb"
    cron_file = host.exec(["stat", "-c", "%U %a", "/etc/cron.d/reconciler-backup-appdb"]).stdout
    assert cron_file.strip() == "root 644"

    run = run_cron_command(host, entry)
    assert "wrote /var/backups/appdb/appdb-" in run.stdout

    [backup, checksum] = files_in(host, DEST)
    assert backup.startswith("appdb-") and backup.endswith(".sql.gz")
    assert checksum == backup + ".sha256"
    host.exec(f"cd {DEST} && sha256sum --quiet -c {checksum}")
    dump = host.exec(f"gzip -dc {DEST}/{backup}").stdout
    assert "PostgreSQL database dump complete" in dump

    listed = reconcile("backup", "list", "appdb", spec).stdout
    assert backup in listed and " ok " in listed

    restored = reconcile("backup", "restore", "appdb", spec, "--into", "restored")
    assert "created database restored" in restored.stdout
    rows = psql(host, "select id, label from items order by id", database="restored")
    assert rows.splitlines() == [f"{i}|{label}" for i, label in ROWS]
    # The source database is untouched by a restore elsewhere.
    assert psql(host, "select count(*) from items") == str(len(ROWS))

    # Restoring over the live database (the default target) conflicts with its tables:
    # refused in one transaction, so nothing changes.
    psql(host, "insert into items values (4, 'added after the backup')")
    refused = reconcile("backup", "restore", "appdb", spec, check_code=1)
    assert "already exists" in refused.stderr and "rolled back" in refused.stderr
    assert psql(host, "select count(*) from items") == str(len(ROWS) + 1)
