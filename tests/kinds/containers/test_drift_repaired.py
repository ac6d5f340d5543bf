"""Outside changes are drift, shown as exactly that change and repaired:
``docker stop`` is started again in place (same container), ``docker rm`` is created
again (on the same data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from tests.kinds.containers.support import applied, assert_no_changes, inspect, planned_changes, write_spec


@pytest.mark.timeout(900)
def test_stopped_or_removed_by_hand_is_repaired(fresh_host: TestHost, testbed_images: Images,
                                                tmp_path: Path) -> None:
    host = fresh_host
    host.load_image(testbed_images.postgres)
    spec = write_spec(tmp_path / "spec", host, containers=[{
        "name": "db",
        "image": testbed_images.postgres,
        "pull": "never",
        "env": {"POSTGRES_PASSWORD": "not-secret-in-this-test"},
        "binds": [{"source": "/srv/db", "target": "/var/lib/postgresql/data"}],
        "healthcheck": {"test": "pg_isready -h 127.0.0.1", "interval": "1s", "retries": 5,
                        "start_period": "60s"},
    }])
    applied(spec)
    created = inspect(host, "db")
    assert created is not None
    host.exec(["docker", "exec", "db", "psql", "-U", "postgres", "-c", "create table kept (n int)"])

    host.exec(["docker", "stop", "db"])
    [change] = planned_changes(spec)
    assert (change["action"], change["reason"]) == ("update", "drift")
    assert [(f["path"], f["old"], f["new"]) for f in change["fields"]] == [
        ("state", "stopped", "running"), ("health", None, "healthy")]
    applied(spec)
    restarted = inspect(host, "db")
    assert restarted is not None
    assert restarted["Id"] == created["Id"], "started again, not replaced"
    assert restarted["State"]["Health"]["Status"] == "healthy"
    assert_no_changes(spec)

    host.exec(["docker", "rm", "-f", "db"])
    [change] = planned_changes(spec)
    assert change["action"] == "create"
    applied(spec)
    recreated = inspect(host, "db")
    assert recreated is not None and recreated["Id"] != created["Id"]
    assert recreated["State"]["Health"]["Status"] == "healthy"
    tables = host.exec(["docker", "exec", "db", "psql", "-U", "postgres", "-tAc",
                        "select tablename from pg_tables where tablename = 'kept'"]).stdout.strip()
    assert tables == "kept", "the bind-mounted data outlived the container"
    assert_no_changes(spec)
