"""A change to a container's env replaces it (stop, remove, create, start), and the
rows in its bind-mounted data directory survive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from tests.kinds.containers.support import applied, assert_no_changes, inspect, planned_changes, write_spec


def postgres(image: str, extra_env: dict[str, str]) -> dict[str, Any]:
    return {
        "name": "db",
        "image": image,
        "pull": "never",
        "env": {"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "${secret:db_password}", **extra_env},
        "ports": ["127.0.0.1:5432:5432"],
        "binds": [{"source": "/opt/app/pgdata", "target": "/var/lib/postgresql/data"}],
        "healthcheck": {"test": ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "app"],
                        "interval": "1s", "retries": 5, "start_period": "60s"},
    }


def psql(host: TestHost, sql: str) -> str:
    """Through docker exec: the local socket is trusted inside the container."""
    return host.exec(["docker", "exec", "db", "psql", "-U", "app", "-d", "app", "-v", "ON_ERROR_STOP=1",
                      "-tAc", sql]).stdout.strip()


@pytest.mark.timeout(900)
def test_env_change_replaces_the_container_and_keeps_its_rows(fresh_host: TestHost, testbed_images: Images,
                                                              tmp_path: Path) -> None:
    host = fresh_host
    host.load_image(testbed_images.postgres)
    secrets = [{"name": "db_password", "path": "/opt/app/.db_password"}]
    spec = write_spec(tmp_path / "spec", host, secrets=secrets,
                      containers=[postgres(testbed_images.postgres, {"TZ": "UTC"})])
    applied(spec)
    first = inspect(host, "db")
    assert first is not None
    psql(host, "create table orders (id int primary key, item text)")
    psql(host, "insert into orders values (1, 'qr-stand'), (2, 'menu-card')")

    write_spec(tmp_path / "spec", host, secrets=secrets,
               containers=[postgres(testbed_images.postgres, {"TZ": "Europe/Berlin"})])
    [change] = planned_changes(spec)
    assert change["action"] == "replace"
    assert {f["path"]: (f["old"], f["new"]) for f in change["fields"]}["env.TZ"] == ("UTC", "Europe/Berlin")

    applied(spec)
    second = inspect(host, "db")
    assert second is not None
    assert second["Id"] != first["Id"], "the container was replaced"
    assert "TZ=Europe/Berlin" in second["Config"]["Env"]
    assert second["State"]["Health"]["Status"] == "healthy"
    assert psql(host, "select item from orders order by id") == "qr-stand\nmenu-card"
    assert_no_changes(spec)
