"""``reconcile backup run|list|restore`` on a path backup: run uses the installed script,
list shows size, time and checksum status, restore picks by --at and refuses a
backup whose checksum does not match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.backups.support import files_in, reconcile, write_spec

DEST = "/srv/backups/conf"


@pytest.mark.timeout(600)
def test_backup_cli_run_list_restore(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    host.exec("mkdir -p /srv/conf && echo v1 > /srv/conf/app.ini")
    spec = write_spec(tmp_path / "spec", host, {"backups": [{
        "name": "conf", "schedule": "@daily", "source": {"paths": ["/srv/conf"]}, "destination": DEST}]})

    not_installed = reconcile("backup", "run", "conf", spec, check_code=1)
    assert "not installed on host web" in not_installed.stderr
    unknown = reconcile("backup", "list", "nope", spec, check_code=1)
    assert "no backup named 'nope'" in unknown.stderr and "conf" in unknown.stderr

    reconcile("apply", spec)
    first = reconcile("backup", "run", "conf", spec)
    assert "wrote /srv/backups/conf/conf-" in first.stdout
    [old] = [f for f in files_in(host, DEST) if f.endswith(".tar.gz")]
    host.exec(f"touch -d '2024-05-01 02:00:00 UTC' {DEST}/{old}")
    host.exec("echo v2 > /srv/conf/app.ini")
    reconcile("backup", "run", "conf", spec)

    listing = json.loads(reconcile("backup", "list", "conf", spec, "--output", "json").stdout)
    [web] = listing["hosts"]
    assert [b["checksum"] for b in web["backups"]] == ["ok", "ok"]
    newest, oldest = web["backups"]
    assert oldest["file"] == old and oldest["time"] == "2024-05-01 02:00:00Z"
    sizes = host.exec(f"stat -c '%n %s' {DEST}/*.tar.gz").stdout
    assert f"{DEST}/{newest['file']} {newest['size']}" in sizes

    # --at picks the newest backup at or before the time: the old one, with v1.
    reconcile("backup", "restore", "conf", spec, "--at", "2024-06-01", "--into", "/tmp/restore-a")
    assert host.exec(["cat", "/tmp/restore-a/srv/conf/app.ini"]).stdout == "v1\n"
    too_early = reconcile("backup", "restore", "conf", spec, "--at", "2020-01-01", check_code=1)
    assert "no backup was made at or before 2020-01-01" in too_early.stderr

    # A corrupted backup shows as a mismatch and is refused; nothing is extracted.
    host.exec(f"echo garbage >> {DEST}/{newest['file']}")
    text = reconcile("backup", "list", "conf", spec).stdout
    assert "mismatch" in text and newest["file"] in text
    refused = reconcile("backup", "restore", "conf", spec, "--into", "/tmp/restore-b", check_code=1)
    assert "checksum mismatch" in refused.stderr
    assert host.exec(["test", "-e", "/tmp/restore-b"], check=False).returncode != 0
