"""Pruning by ``keep``: nine daily backups with ``keep: {days: 7}`` leave seven and the
newest; ``count`` and ``days`` both hold; the newest good backup is never pruned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.hosts import TestHost
from tests.kinds.backups.support import files_in, read_cron_entry, reconcile, run_cron_command, write_spec

DEST = "/srv/backups/site"
CRON = "/etc/cron.d/reconciler-backup-site"


def spec_with(keep: dict[str, int]) -> dict[str, Any]:
    return {"backups": [{"name": "site", "schedule": "30 1 * * *", "source": {"paths": ["/srv/site"]},
                         "destination": DEST, "keep": keep}]}


def backups(host: TestHost) -> list[str]:
    return [f for f in files_in(host, DEST) if not f.endswith(".sha256")]


def seed_old_backups(host: TestHost, ages_in_days: range) -> list[str]:
    """Copies of a real backup named and dated as if taken ``age`` days ago (the test sets
    the timestamps with ``touch -d``), each with a matching checksum file."""
    [template] = backups(host)
    names = []
    for age in ages_in_days:
        stamp = host.exec(["date", "-u", "-d", f"{age} days ago", "+%Y%m%dT%H%M%SZ"]).stdout.strip()
        name = f"site-{stamp}.tar.gz"
        host.exec(f"cd {DEST} && cp {template} {name} && sha256sum {name} > {name}.sha256 "
                  f"&& touch -d '{age} days ago' {name} {name}.sha256")
        names.append(name)
    host.exec(f"rm -f {DEST}/{template} {DEST}/{template}.sha256")
    return names


@pytest.mark.timeout(600)
def test_keep_days_leaves_seven_of_nine_daily_backups(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    host.exec("mkdir -p /srv/site && echo hello > /srv/site/index.html")
    spec = write_spec(tmp_path / "spec", host, spec_with({"days": 7}))
    reconcile("apply", spec)
    entry = read_cron_entry(host, CRON)
    run_cron_command(host, entry)
    old = seed_old_backups(host, range(1, 9))  # 1..8 days old
    # Something that merely looks similar is never touched.
    host.exec(f"touch -d '30 days ago' {DEST}/site-notes.txt {DEST}/other-20200101T000000Z.tar.gz")

    run = run_cron_command(host, entry)  # the ninth, newest backup
    remaining = backups(host)
    assert len(remaining) == 7 + 2, remaining  # seven backups plus the two look-alikes
    newest = max(b for b in remaining if b.startswith("site-2"))
    assert newest not in old, "the backup just taken is kept"
    assert set(old[:6]) <= set(remaining), "backups 1..6 days old are kept"
    assert old[6] not in remaining and old[7] not in remaining, "7 and 8 days old are pruned"
    assert "site-notes.txt" in remaining and "other-20200101T000000Z.tar.gz" in remaining
    assert not [f for f in files_in(host, DEST) if f.endswith(".sha256") and f[:-7] not in remaining]
    assert run.stdout.count("pruned ") == 2


@pytest.mark.timeout(600)
def test_count_and_days_both_hold_and_only_successful_runs_prune(
        fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    host.exec("mkdir -p /srv/site && echo hello > /srv/site/index.html")
    spec = write_spec(tmp_path / "spec", host, spec_with({"days": 7, "count": 3}))
    reconcile("apply", spec)
    entry = read_cron_entry(host, CRON)
    run_cron_command(host, entry)
    old = seed_old_backups(host, range(1, 6))  # 1..5 days old: days allows them all, count does not

    run_cron_command(host, entry)
    remaining = backups(host)
    assert len(remaining) == 3
    assert set(old[:2]) <= set(remaining), "the newest three are kept: this run's, 1 and 2 days old"

    # Every backup now looks 40 days old and the next run fails: nothing is pruned.
    for name in remaining:
        host.exec(f"touch -d '40 days ago' {DEST}/{name}")
    host.exec("rm -rf /srv/site")
    failed = run_cron_command(host, entry, check=False)
    assert failed.returncode != 0
    assert backups(host) == remaining

    # A successful run prunes them by age (count alone would keep them) and keeps its own.
    host.exec("mkdir -p /srv/site && echo again > /srv/site/index.html")
    run_cron_command(host, entry)
    [newest] = backups(host)
    assert newest not in remaining
    host.exec(f"cd {DEST} && sha256sum --quiet -c {newest}.sha256")
