"""A failing pg_dump (wrong database name, or the container stopped) leaves no new
file, not even a partial one, keeps the earlier backups and exits non-zero."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
CRON = "/etc/cron.d/reconciler-backup-appdb"


def backup_spec(database: str) -> dict[str, Any]:
    return {"backups": [{
        "name": "appdb", "schedule": "0 2 * * *",
        "source": {"postgres": {"container": PG_CONTAINER, "user": PG_USER, "database": database}},
        "destination": DEST, "keep": {"count": 1}}]}


@pytest.mark.timeout(900)
def test_failed_pg_dump_writes_nothing_and_keeps_old_backups(
        fresh_host: TestHost, testbed_images: Images, tmp_path: Path) -> None:
    host = fresh_host
    start_postgres(host, testbed_images.postgres)
    psql(host, "create table t (x int); insert into t values (42);")
    spec = write_spec(tmp_path / "spec", host, backup_spec(PG_DATABASE))
    reconcile("apply", spec)
    run_cron_command(host, read_cron_entry(host, CRON))
    good = files_in(host, DEST)
    assert len(good) == 2  # the backup and its checksum
    good_sum = host.exec(f"cd {DEST} && sha256sum {good[0]}").stdout

    # keep.count is 1: a failed run that went on to prune would remove the old backup.
    write_spec(tmp_path / "spec", host, backup_spec("no_such_database"))
    reconcile("apply", spec)
    wrong_db = run_cron_command(host, read_cron_entry(host, CRON), check=False)
    assert wrong_db.returncode != 0
    assert 'database "no_such_database" does not exist' in wrong_db.stderr
    assert "pg_dump exited" in wrong_db.stderr and "no backup was written" in wrong_db.stderr
    assert files_in(host, DEST) == good

    write_spec(tmp_path / "spec", host, backup_spec(PG_DATABASE))
    reconcile("apply", spec)
    host.exec(["docker", "stop", PG_CONTAINER])
    stopped = run_cron_command(host, read_cron_entry(host, CRON), check=False)
    assert stopped.returncode != 0
    assert "is not running" in stopped.stderr
    assert files_in(host, DEST) == good
    assert host.exec(f"cd {DEST} && sha256sum {good[0]}").stdout == good_sum

    # `reconcile backup run` reports the same failure as an error exit, without a traceback.
    via_cli = reconcile("backup", "run", "appdb", spec, check_code=1)
    assert "failed" in via_cli.stderr
    assert files_in(host, DEST) == good
