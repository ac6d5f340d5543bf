"""The locally built postgres image behaves like the official one, inside a test host."""

from __future__ import annotations

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from testbed.util import wait_until

pytestmark = pytest.mark.timeout(600)


def test_postgres_image_becomes_ready_in_host(shared_host: TestHost, testbed_images: Images) -> None:
    host = shared_host
    host.load_image(testbed_images.postgres)
    host.exec("mkdir -p /srv/pgdata")  # bind-mounted, root-owned: the entrypoint must fix ownership
    host.exec(
        "docker run -d --name pg -p 127.0.0.1:5432:5432 -v /srv/pgdata:/var/lib/postgresql/data "
        "-e POSTGRES_USER=app -e POSTGRES_PASSWORD=s3cret -e POSTGRES_DB=appdb "
        f"{testbed_images.postgres}"
    )

    def ready() -> bool:
        return host.exec("docker exec pg pg_isready -h 127.0.0.1 -U app", check=False).returncode == 0

    try:
        wait_until("postgres in the test host", ready, timeout=90)
    except Exception:
        print(host.exec("docker logs pg", check=False).stdout)
        raise
    # From the host itself (postgresql-client), over TCP: password auth.
    out = host.exec("PGPASSWORD=s3cret psql -h 127.0.0.1 -U app -d appdb -tAc 'select current_database()'")
    assert out.stdout.strip() == "appdb"
    bad = host.exec("PGPASSWORD=wrong psql -h 127.0.0.1 -U app -d appdb -tAc 'select 1'", check=False)
    assert bad.returncode != 0 and "password authentication failed" in bad.stderr
    assert host.exec("stat -c %u /srv/pgdata").stdout.strip() == "999"
    # Restart on the existing data dir: no re-initialisation, same credentials.
    host.exec("docker restart pg")
    wait_until("postgres after restart", ready, timeout=90)
    out = host.exec("PGPASSWORD=s3cret psql -h 127.0.0.1 -U app -d appdb -tAc 'select 1'")
    assert out.stdout.strip() == "1"
    host.exec("docker rm -f pg")
