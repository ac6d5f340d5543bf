"""Order across hosts without a rollout: the backends wait for the database host, and
when the resource they depend on fails there, their dependent changes are skipped
("depends on ... on db, which failed") while their other changes are made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.hosts import HostFactory
from tests.fleet.support import exists, fleet_entry, write_fleet_spec
from tests.support.harness import reconcile

BODY = {
    "groups": {"web": {"hosts": ["web-*"]}},
    "files": [
        {"path": "/srv/fleet/db-ready", "hosts": ["db"], "content": "ready\n"},
        {"path": "/etc/fleet-app.conf", "hosts": ["web"], "content": "db=${host:db/address}\n",
         "depends_on": ["db/files:/srv/fleet/db-ready"]},
        {"path": "/etc/fleet-motd", "hosts": ["web"], "content": "hello\n"},
    ],
}


@pytest.mark.timeout(600)
def test_a_failure_on_the_database_host_skips_what_depends_on_it(host_factory: HostFactory,
                                                                    tmp_path: Path) -> None:
    db, web1, web2 = host_factory.many(3, names=["dep-db", "dep-web-1", "dep-web-2"])
    spec = write_fleet_spec(tmp_path / "spec", {"db": fleet_entry(db), "web-1": fleet_entry(web1),
                                                "web-2": fleet_entry(web2)}, BODY)
    db.exec(["sh", "-c", "mkdir -p /srv && echo not-a-directory > /srv/fleet"])  # the write will fail

    proc = reconcile("apply", spec, "--output", "json", check_code=1, timeout=300)
    hosts = {h["host"]: h for h in json.loads(proc.stdout)["apply"]["hosts"]}
    [db_change] = hosts["db"]["outcomes"]
    assert db_change["status"] == "failed", db_change
    for name, host in (("web-1", web1), ("web-2", web2)):
        outcomes = {o["address"]: o for o in hosts[name]["outcomes"]}
        skipped = outcomes["files:/etc/fleet-app.conf"]
        assert skipped["status"] == "skipped", skipped
        assert skipped["error"] == "depends on files:/srv/fleet/db-ready on db, which failed", skipped
        assert outcomes["files:/etc/fleet-motd"]["status"] == "applied"
        assert not exists(host, "/etc/fleet-app.conf")
        assert exists(host, "/etc/fleet-motd")

    db.exec(["rm", "/srv/fleet"])
    reconcile("apply", spec, check_code=0, timeout=300)
    assert web2.exec(["cat", "/etc/fleet-app.conf"]).stdout == f"db={db.container_ip}\n"
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
