"""The restore drill: the newest PostgreSQL backup is restored into a throwaway
container (the source container's image), checked against the spec's tables and row
counts, and removed; scheduled by its own cron entry; its result is recorded and
shown by `reconcile backup status`. A dump missing a table and a backup with flipped
bytes both fail the drill with exit 1 and say why."""

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
    psql,
    read_cron_entry,
    reconcile,
    run_cron_command,
    start_postgres,
    write_spec,
)

DEST = "/var/backups/appdb"
DRILL_SCHEDULE = "0 4 1 * *"


def drill_containers(host: TestHost) -> str:
    return host.exec(["docker", "ps", "-aq", "--filter", "label=io.reconciler.drill"]).stdout.strip()


@pytest.mark.timeout(1200)
def test_drill_restores_checks_and_catches_bad_backups(
        fresh_host: TestHost, testbed_images: Images, tmp_path: Path) -> None:
    host = fresh_host
    start_postgres(host, testbed_images.postgres)
    psql(host, "create table items (id int primary key, label text);"
               "insert into items select g, 'item ' || g from generate_series(1, 5) g;"
               "create table audit (at timestamptz);")
    spec = write_spec(tmp_path / "spec", host, {"backups": [{
        "name": "appdb", "schedule": "0 2 * * *",
        "source": {"postgres": {"container": PG_CONTAINER, "user": PG_USER, "database": PG_DATABASE}},
        "destination": DEST, "keep": {"count": 10},
        "verify": {"schedule": DRILL_SCHEDULE, "tables": ["items", "public.audit"],
                   "min_rows": {"items": 5}}}]})
    reconcile("apply", spec)
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
    entry = read_cron_entry(host, "/etc/cron.d/reconciler-drill-appdb")
    assert entry.schedule == DRILL_SCHEDULE
    assert entry.command == "/usr/local/lib/reconciler/backup-appdb verify"

    reconcile("backup", "run", "appdb", spec)
    drill = reconcile("backup", "verify", "appdb", spec)
    assert "drill ok: appdb-" in drill.stdout and "items: 5 rows (min 5)" in drill.stdout, drill.stdout
    assert drill_containers(host) == ""
    # The scheduled drill is the same script, run as cron runs it.
    assert "drill ok" in run_cron_command(host, entry).stdout
    assert drill_containers(host) == ""
    status = reconcile("backup", "status", "appdb", spec)
    assert "last drill:   ok at" in status.stdout, status.stdout

    # A dump that lost rows: the row count check fails the drill.
    psql(host, "delete from items where id > 2")
    reconcile("backup", "run", "appdb", spec)
    short = reconcile("backup", "verify", "appdb", spec, check_code=1)
    assert "table items has 2 rows" in short.stderr and "fewer than the 5" in short.stderr, short.stderr
    assert "FAILED" in short.stderr and drill_containers(host) == ""

    # A dump missing a table.
    psql(host, "insert into items select g, 'again' from generate_series(3, 5) g; drop table audit")
    reconcile("backup", "run", "appdb", spec)
    missing = reconcile("backup", "verify", "appdb", spec, check_code=1)
    assert "table public.audit is missing" in missing.stderr, missing.stderr
    status = reconcile("backup", "status", "appdb", spec, check_code=1)
    assert "last drill:   failed at" in status.stdout and "public.audit is missing" in status.stdout

    # Flipped bytes in the newest backup: caught before anything is restored.
    newest = sorted(f for f in files_in(host, DEST) if f.endswith(".sql.gz"))[-1]
    host.exec(f"printf 'XXXX' | dd of={DEST}/{newest} bs=1 seek=40 conv=notrunc status=none")
    corrupt = reconcile("backup", "verify", "appdb", spec, check_code=1)
    assert f"{newest}: checksum mismatch" in corrupt.stderr, corrupt.stderr
    assert drill_containers(host) == ""
