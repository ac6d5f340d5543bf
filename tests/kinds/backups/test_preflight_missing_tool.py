"""A backup whose tool is missing on the host (zstd is not installed on test hosts) and
not in the spec is refused by the plan (zstd is one of its prerequisites), and nothing
is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.backups.support import reconcile, write_spec


@pytest.mark.timeout(600)
def test_missing_zstd_is_a_plan_error_and_nothing_is_installed(
        fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    assert host.exec(["sh", "-c", "command -v zstd"], check=False).returncode != 0, "test host has zstd"
    spec = write_spec(tmp_path / "spec", host, {"backups": [{
        "name": "etc", "schedule": "@weekly", "source": {"paths": ["/etc"]}, "destination": "/srv/backups",
        "compression": "zstd"}]})
    proc = reconcile("apply", spec, check_code=1)
    assert ("backups:etc needs packages:zstd, which is not installed on host web and not in the spec"
            in proc.stdout)
    for path in ("/usr/local/lib/reconciler/backup-etc", "/etc/cron.d/reconciler-backup-etc"):
        assert host.exec(["test", "-e", path], check=False).returncode != 0
