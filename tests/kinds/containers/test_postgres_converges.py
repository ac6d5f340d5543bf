"""PostgreSQL 15 converges as a container on a real host: data dir bound from the host,
port 5432 on 127.0.0.1 only, healthy before anything that depends on it starts;
a plan changes nothing, and a second plan is empty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from tests.kinds.containers.support import (
    applied,
    assert_no_changes,
    host_snapshot,
    inspect,
    reconcile,
    write_spec,
)

DATA_DIR = "/opt/servqr/data/postgres"


def servqr_postgres(image: str) -> dict[str, Any]:
    return {
        "name": "servqr-postgres",
        "image": image,
        "pull": "never",
        "env": {"POSTGRES_USER": "servqr", "POSTGRES_DB": "servqr",
                "POSTGRES_PASSWORD": "${secret:db_password}"},
        "ports": ["127.0.0.1:5432:5432"],
        "binds": [{"source": DATA_DIR, "target": "/var/lib/postgresql/data"}],
        "networks": ["servqr"],
        "healthcheck": {"test": ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "servqr"],
                        "interval": "1s", "timeout": "5s", "retries": 5, "start_period": "60s"},
        "memory": "512m",
        "stop_timeout": 30,
    }


def prober(image: str) -> dict[str, Any]:
    """Checks at its own start, once, whether the database already answers (by name, on the network)."""
    return {
        "name": "servqr-probe",
        "image": image,
        "pull": "never",
        "entrypoint": ["sh", "-c", "pg_isready -h servqr-postgres -U servqr; exec sleep infinity"],
        "networks": ["servqr"],
        "depends_on": ["containers:servqr-postgres"],
    }


@pytest.mark.timeout(900)
def test_postgres_converges_healthy_local_only_and_idempotent(fresh_host: TestHost, testbed_images: Images,
                                                              tmp_path: Path) -> None:
    host = fresh_host
    host.load_image(testbed_images.postgres)
    spec = write_spec(
        tmp_path / "spec", host,
        # The data directory itself is the image's: its entrypoint gives it to uid 999.
        directories=[{"path": "/opt/servqr"}, {"path": "/opt/servqr/data", "mode": "0750"}],
        secrets=[{"name": "db_password", "path": "/opt/servqr/.db_password"}],
        containers=[prober(testbed_images.postgres), servqr_postgres(testbed_images.postgres)],
    )

    before = host_snapshot(host)
    planned = reconcile("plan", "--detailed-exitcode", spec)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "+ containers:servqr-postgres" in planned.stdout
    assert host_snapshot(host) == before, "a plan must not change the host"

    applied(spec)

    info = inspect(host, "servqr-postgres")
    assert info is not None
    assert info["State"]["Running"] and info["State"]["Health"]["Status"] == "healthy"
    assert info["Config"]["Labels"]["io.reconciler.managed"] == "true"
    assert info["HostConfig"]["PortBindings"] == {"5432/tcp": [{"HostIp": "127.0.0.1", "HostPort": "5432"}]}
    assert info["HostConfig"]["Memory"] == 512 << 20
    assert [(m["Type"], m["Source"], m["Destination"]) for m in info["Mounts"]] == [
        ("bind", DATA_DIR, "/var/lib/postgresql/data")]
    # The cluster lives in the host directory, owned by the image's postgres user.
    assert host.exec(f"cat {DATA_DIR}/PG_VERSION").stdout.strip() == "15"
    assert host.exec(f"stat -c %u {DATA_DIR}").stdout.strip() == "999"
    # Listening on the host's loopback only.
    listeners = host.exec("ss -Hltn 'sport = :5432'").stdout.split("\n")
    local_addresses = {line.split()[3] for line in listeners if line.strip()}
    assert local_addresses == {"127.0.0.1:5432"}
    # The generated password works over TCP from the host's own psql.
    query = host.exec("PGPASSWORD=$(cat /opt/servqr/.db_password) "
                      "psql -h 127.0.0.1 -U servqr -d servqr -tAc 'select current_user'")
    assert query.stdout.strip() == "servqr"
    # The dependent container started only once the database was healthy.
    logs = host.exec(["docker", "logs", "servqr-probe"])
    assert "servqr-postgres:5432 - accepting connections" in logs.stdout + logs.stderr

    assert_no_changes(spec)
