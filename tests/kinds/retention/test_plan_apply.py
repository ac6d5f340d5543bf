"""Retention at converge time: the plan lists exactly the files apply then deletes; files
outside the glob, in subdirectories (not recursive), behind symlinks, and directories are
untouched; planning changes nothing; the second plan is empty."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.backups.support import plan_changes, read_cron_entry, reconcile, write_spec

LOGS = "/var/log/app"
AGES = {"app-1.log": 1, "app-5.log": 5, "app-10.log": 10, "app-20.log": 20, "app-30.log": 30}
EXPECTED = {f"{LOGS}/app-10.log", f"{LOGS}/app-20.log", f"{LOGS}/app-30.log"}
UNTOUCHED = [f"{LOGS}/notes.txt", f"{LOGS}/sub/nested.log", "/srv/outside/victim.log", f"{LOGS}/old.log",
             f"{LOGS}/archive.log"]


def listing(host: TestHost) -> str:
    return host.exec("find /var/log/app /srv/outside -printf '%p %y %s %T@\\n' | sort").stdout


@pytest.mark.timeout(600)
def test_plan_lists_exactly_what_apply_deletes(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    host.exec(f"mkdir -p {LOGS}/sub {LOGS}/archive.log /srv/outside")
    for name, age in AGES.items():
        host.exec(f"echo {name} > {LOGS}/{name} && touch -d '{age} days ago' {LOGS}/{name}")
    host.exec(f"echo n > {LOGS}/notes.txt && echo s > {LOGS}/sub/nested.log "
              "&& echo v > /srv/outside/victim.log "
              f"&& ln -s /srv/outside/victim.log {LOGS}/old.log "
              f"&& touch -d '90 days ago' {LOGS}/notes.txt {LOGS}/sub/nested.log /srv/outside/victim.log "
              f"{LOGS}/archive.log && touch -h -d '90 days ago' {LOGS}/old.log")
    spec = write_spec(tmp_path / "spec", host, {"retention": [
        {"name": "app-logs", "path": LOGS, "glob": "*.log", "max_age": "7d", "schedule": "45 0 * * *"}]})

    before = listing(host)
    change = plan_changes(spec)["retention:app-logs"]
    assert listing(host) == before, "plan changed the host"
    assert change["action"] == "create"
    deletions = {f["path"].removeprefix("over_limits."): f for f in change["fields"]
                 if f["path"].startswith("over_limits.")}
    assert set(deletions) == EXPECTED
    assert deletions[f"{LOGS}/app-30.log"]["old"]["over"] == "max_age"
    assert deletions[f"{LOGS}/app-30.log"]["new"] is None
    text = reconcile("plan", spec).stdout
    for path in EXPECTED:
        assert f"- over_limits.{path}" in text

    applied = json.loads(reconcile("apply", spec, "--output", "json").stdout)
    [outcome] = applied["apply"]["hosts"][0]["outcomes"]
    assert outcome["status"] == "applied", outcome
    remaining = set(host.exec(f"find {LOGS} /srv/outside -mindepth 1").stdout.split())
    assert not EXPECTED & remaining
    assert {f"{LOGS}/app-1.log", f"{LOGS}/app-5.log", *UNTOUCHED} <= remaining
    assert host.exec(["cat", "/srv/outside/victim.log"]).stdout == "v\n"
    assert host.exec(["test", "-d", f"{LOGS}/archive.log"], check=False).returncode == 0

    assert read_cron_entry(host, "/etc/cron.d/reconciler-retention-app-logs").schedule == "45 0 * * *"
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
    assert plan_changes(spec) == {}
