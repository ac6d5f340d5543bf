"""A generated secret is in use (a database was initialised with it), so when its file
is deleted or overwritten by hand the reconciler restores the SAME value from its own
root-only copy in /var/lib/reconciler/secrets, and the files that embed it do not change.
Only ``--replace`` rotates a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import cat, changes_by_address, plan_json, reconcile, stat, write_spec

SECRET_PATH = "/etc/shop/secrets/db_password"
KEPT_PATH = "/var/lib/reconciler/secrets/db_password"
ENV_PATH = "/etc/shop/db.env"


@pytest.mark.timeout(300)
def test_deleted_or_edited_secret_comes_back_with_the_same_value(
        fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, {
        "secrets": [{"name": "db_password", "path": SECRET_PATH}],
        "files": [{"path": ENV_PATH, "content": "DB_PASSWORD=${secret:db_password}\n", "mode": "0600"}],
    })
    reconcile("apply", spec, check_code=0)
    value = cat(host, SECRET_PATH)
    assert len(value) == 32
    assert cat(host, KEPT_PATH) == value
    assert stat(host, KEPT_PATH) == "regular file root:root 600"

    # Deleted by hand: drift on the secret only; the env file keeps its content.
    host.exec(["rm", "-f", SECRET_PATH])
    changes = changes_by_address(plan_json(spec))
    assert set(changes) == {"secrets:db_password"}
    assert changes["secrets:db_password"]["action"] == "update"
    assert changes["secrets:db_password"]["reason"] == "drift"
    reconcile("apply", spec, check_code=0)
    assert cat(host, SECRET_PATH) == value
    assert stat(host, SECRET_PATH) == "regular file root:root 600"
    assert cat(host, ENV_PATH) == f"DB_PASSWORD={value}\n"

    # Overwritten by hand: the value in use is put back, not the intruder's.
    host.exec(["sh", "-c", f"printf intruder > {SECRET_PATH}"])
    reconcile("apply", spec, check_code=0)
    assert cat(host, SECRET_PATH) == value
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)

    # Only --replace rotates, and then the copy follows.
    reconcile("apply", spec, "--replace", "secrets:db_password", check_code=0)
    rotated = cat(host, SECRET_PATH)
    assert rotated != value and cat(host, KEPT_PATH) == rotated
    assert cat(host, ENV_PATH) == f"DB_PASSWORD={rotated}\n"
