"""Retention on a schedule: the exact command of the owned cron entry enforces the
limits on the host; removing the rule from the spec removes its entry and script and
deletes no file."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.backups.support import (
    files_in,
    plan_changes,
    read_cron_entry,
    reconcile,
    run_cron_command,
    write_spec,
)

DIR = "/var/backups/dumps"
CRON = "/etc/cron.d/reconciler-retention-dumps"
SCRIPT = "/usr/local/lib/reconciler/retention-dumps"


@pytest.mark.timeout(600)
def test_cron_entry_enforces_limits_and_prune_keeps_files(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", host, {"retention": [
        {"name": "dumps", "path": DIR, "glob": "*.sql.gz", "max_count": 3, "max_total_size": "10K"}]})
    reconcile("apply", spec)  # the directory does not exist yet: nothing to do but install
    entry = read_cron_entry(host, CRON)
    assert entry.schedule == "@daily" and entry.command == SCRIPT

    host.exec(f"mkdir -p {DIR}")
    for day in range(1, 7):  # six dumps of 3 KiB, one a day; and a big file outside the glob
        dump = f"{DIR}/d{day}.sql.gz"
        host.exec(f"head -c 3072 /dev/zero > {dump} && touch -d '{day} days ago' {dump}")
    host.exec(f"head -c 50000 /dev/zero > {DIR}/README && touch -d '99 days ago' {DIR}/README")

    run = run_cron_command(host, entry)
    assert "deleted 3 file(s)" in run.stderr
    # count allows 3 (d1..d3) and 3 x 3 KiB fits in 10 KiB: the three newest stay.
    assert files_in(host, DIR) == ["README", "d1.sql.gz", "d2.sql.gz", "d3.sql.gz"]
    assert plan_changes(spec) == {}

    write_spec(tmp_path / "spec", host, {})
    assert plan_changes(spec)["retention:dumps"]["action"] == "delete"
    reconcile("apply", spec)
    for path in (CRON, SCRIPT):
        assert host.exec(["test", "-e", path], check=False).returncode != 0
    assert files_in(host, DIR) == ["README", "d1.sql.gz", "d2.sql.gz", "d3.sql.gz"]
    assert plan_changes(spec) == {}
