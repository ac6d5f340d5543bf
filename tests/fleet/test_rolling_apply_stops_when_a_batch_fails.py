"""A rolling apply (``rollout: {serial: 1}``) on four real hosts goes database first,
then one backend at a time, waiting for each batch's health checks; when a backend's
check does not pass within the grace, the rollout stops: the report (and its JSON)
says which hosts were changed, which failed and which were left untouched, and the
untouched host really is untouched. Once the cause is gone, the next run completes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.hosts import HostFactory
from tests.fleet.support import exists, fleet_entry, write_fleet_spec
from tests.support.harness import reconcile

BODY = {
    "groups": {"database": {"hosts": ["db"]}, "web": {"hosts": ["web-*"]}},
    "rollout": {
        "serial": 1,
        "max_fail_percentage": 0,
        "health": {"grace": "6s", "interval": "1s", "checks": [
            {"name": "not-marked-unhealthy", "hosts": ["web"],
             "command": ["test", "!", "-e", "/etc/unhealthy"]},
            {"name": "configured", "hosts": ["web"],
             "command": ["grep", "-q", "^db=", "/etc/fleet/app.conf"]},
        ]},
    },
    "files": [
        {"path": "/etc/fleet/db-ready", "hosts": ["database"], "content": "ready\n"},
        {"path": "/etc/fleet/app.conf", "hosts": ["web"],
         "content": "db=${host:database/address}\nme=${host}\n",
         "depends_on": ["database/files:/etc/fleet/db-ready"]},
    ],
}


@pytest.mark.timeout(900)
def test_rollout_stops_at_the_failing_batch_and_leaves_the_rest_untouched(
        host_factory: HostFactory, tmp_path: Path) -> None:
    db, web1, web2, web3 = host_factory.many(4, names=["roll-db", "roll-web-1", "roll-web-2", "roll-web-3"])
    spec = write_fleet_spec(tmp_path / "spec", {
        "db": fleet_entry(db), "web-1": fleet_entry(web1), "web-2": fleet_entry(web2),
        "web-3": fleet_entry(web3)}, BODY)
    web2.exec(["touch", "/etc/unhealthy"])  # web-2 applies fine, then fails its check

    plan = reconcile("plan", spec, "--output", "json", check_code=0).stdout
    rollout = json.loads(plan)["rollout"]
    assert rollout["batches"] == [["db"], ["web-1"], ["web-2"], ["web-3"]], rollout
    text = reconcile("plan", spec, check_code=0).stdout
    assert "Order: db → web-1, web-2, web-3" in text, text
    assert "web-1, web-2, web-3 after db (files:/etc/fleet/db-ready)" in text, text

    proc = reconcile("apply", spec, "--output", "json", check_code=1, timeout=600)
    report = json.loads(proc.stdout)["apply"]["rollout"]
    assert report["changed"] == ["db", "web-1"], report
    assert report["failed"] == ["web-2"], report
    assert report["untouched"] == ["web-3"], report
    assert "batch 3 of 4" in report["stopped"], report
    [failing] = [c for b in report["batches"] for c in b["checks"] if not c["ok"]]
    assert failing["host"] == "web-2" and failing["check"] == "not-marked-unhealthy", failing
    assert web1.exec(["cat", "/etc/fleet/app.conf"]).stdout == f"db={db.container_ip}\nme=web-1\n"
    assert exists(db, "/etc/fleet/db-ready")
    assert not exists(web3, "/etc/fleet/app.conf"), "the rollout went past the failed batch"
    assert not exists(web3, "/var/lib/reconciler"), "the untouched host was written to"

    text = reconcile("apply", spec, check_code=1, timeout=600).stdout
    assert "Rollout STOPPED: batch 3 of 4" in text and "untouched: web-3" in text, text

    web2.exec(["rm", "/etc/unhealthy"])
    proc = reconcile("apply", spec, "--output", "json", check_code=0, timeout=600)
    report = json.loads(proc.stdout)["apply"]["rollout"]
    assert report["stopped"] is None and report["untouched"] == [] and report["failed"] == [], report
    assert report["changed"] == ["web-3"], report
    assert web3.exec(["cat", "/etc/fleet/app.conf"]).stdout == f"db={db.container_ip}\nme=web-3\n"
