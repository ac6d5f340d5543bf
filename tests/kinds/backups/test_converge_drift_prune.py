"""The backups provider converges (script + cron entry), plans nothing the second time,
touches nothing on plan, shows and repairs drift, and on prune removes its script and
entry but never the backups taken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

SCRIPT = "/usr/local/lib/reconciler/backup-site"
CRON = "/etc/cron.d/reconciler-backup-site"
DEST = "/srv/backups/site"


def backup(**overrides: Any) -> dict[str, Any]:
    return {"name": "site", "schedule": "0 2 * * *", "source": {"paths": ["/srv/site", "/etc/hostname"]},
            "destination": DEST, "keep": {"count": 5}, **overrides}


def exists(host: TestHost, path: str) -> bool:
    return host.exec(["test", "-e", path], check=False).returncode == 0


@pytest.mark.timeout(600)
def test_backups_converge_drift_and_prune(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    host.exec("mkdir -p /srv/site && echo hello > /srv/site/index.html")
    # An unowned neighbour in the same places: never touched.
    host.exec("echo '0 5 * * * root true' > /etc/cron.d/reconciler-backup-other && "
              "mkdir -p /usr/local/lib/reconciler && "
              "echo '#!/bin/sh' > /usr/local/lib/reconciler/backup-other")
    spec = write_spec(tmp_path / "spec", host, {"backups": [backup()]})

    planned = plan_changes(spec)
    assert planned["backups:site"]["action"] == "create"
    assert not exists(host, SCRIPT) and not exists(host, CRON), "plan changed the host"

    reconcile("apply", spec)
    assert host.exec(["stat", "-c", "%U %a", SCRIPT]).stdout.strip() == "root 755"
    assert "# Managed by reconciler (backups:site)" in host.exec(["head", "-n", "3", CRON]).stdout
    assert read_cron_entry(host, CRON).schedule == "0 2 * * *"
    assert plan_changes(spec) == {}

    # Spec change: readable fields in the plan, then converged.
    write_spec(tmp_path / "spec", host, {"backups": [backup(schedule="*/30 4 * * 1-5", keep={"count": 9})]})
    change = plan_changes(spec)["backups:site"]
    fields = {f["path"]: (f["old"], f["new"]) for f in change["fields"]}
    assert fields["schedule"] == ("0 2 * * *", "*/30 4 * * 1-5")
    assert fields["keep.count"] == (5, 9)
    reconcile("apply", spec)
    assert read_cron_entry(host, CRON).schedule == "*/30 4 * * 1-5"
    assert plan_changes(spec) == {}

    # Drift: someone edits the cron entry and the script on the host.
    host.exec(f"sed -i 's|^\\*/30 4|0 23|' {CRON} && echo 'echo tampered' >> {SCRIPT} && chmod 600 {SCRIPT}")
    drift = plan_changes(spec)["backups:site"]
    assert drift["reason"] == "drift"
    assert {f["path"] for f in drift["fields"]} == {"schedule", "cron_entry", "script", "script_mode"}
    reconcile("apply", spec)
    assert plan_changes(spec) == {}
    assert "tampered" not in host.exec(["cat", SCRIPT]).stdout

    # Take a backup, then drop the resource from the spec.
    run_cron_command(host, read_cron_entry(host, CRON))
    taken = files_in(host, DEST)
    assert len(taken) == 2
    write_spec(tmp_path / "spec", host, {})
    assert plan_changes(spec)["backups:site"]["action"] == "delete"
    reconcile("apply", spec)
    assert not exists(host, SCRIPT) and not exists(host, CRON)
    assert files_in(host, DEST) == taken, "backups are data: pruning the job keeps them"
    assert exists(host, "/etc/cron.d/reconciler-backup-other")
    assert exists(host, "/usr/local/lib/reconciler/backup-other")
    assert plan_changes(spec) == {}
