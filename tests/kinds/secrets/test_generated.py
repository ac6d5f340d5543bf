"""Generated secrets: made once on the host (mode 0600), stable across runs (a secret
file deleted or edited by hand is restored with the same value), regenerated only with
``--replace secrets:NAME`` -- and then the files that use them are rewritten in the
same run. A secret that leaves the spec is never deleted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from testbed.hosts import TestHost
from tests.support.harness import (
    cat,
    changes_by_address,
    exists,
    plan_json,
    reconcile,
    stat,
    write_spec,
)

SECRETS = [
    {"name": "db_password", "path": "/etc/shop/secrets/db_password"},
    {"name": "api_key", "path": "/etc/shop/secrets/api_key", "length": 48, "alphabet": "hex",
     "group": "www-data", "mode": "0640"},
]
FILES = [
    {"path": "/etc/shop/db.env", "content": "DB_PASSWORD=${secret:db_password}\n", "mode": "0600"},
    {"path": "/etc/shop/app.env", "content": "DB=${secret:db_password}\nAPI=${secret:api_key}\n",
     "mode": "0600"},
    {"path": "/etc/shop/plain.conf", "content": "no secrets here\n"},
]


def spec_for(tmp_path: Path, host: TestHost, secrets: list[dict[str, Any]] = SECRETS) -> Path:
    return write_spec(tmp_path / "spec", {"web": host}, {"secrets": secrets, "files": FILES})


def values(host: TestHost) -> tuple[str, str]:
    return cat(host, "/etc/shop/secrets/db_password"), cat(host, "/etc/shop/secrets/api_key")


@pytest.mark.timeout(300)
def test_generated_once_stable_and_private(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = spec_for(tmp_path, host)
    changes = changes_by_address(plan_json(spec))
    env = {f["path"]: f for f in changes["files:/etc/shop/db.env"]["fields"]}
    assert env["content"]["new"] == "(known after apply)" and env["content"]["known_after_apply"]

    reconcile("apply", spec, check_code=0)
    db, api = values(host)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", db), db
    assert re.fullmatch(r"[0-9a-f]{48}", api), api
    assert stat(host, "/etc/shop/secrets/db_password") == "regular file root:root 600"
    assert stat(host, "/etc/shop/secrets/api_key") == "regular file root:www-data 640"
    assert cat(host, "/etc/shop/db.env") == f"DB_PASSWORD={db}\n"
    assert cat(host, "/etc/shop/app.env") == f"DB={db}\nAPI={api}\n"
    assert host.exec("ls -A /etc/shop/secrets").stdout.split() == ["api_key", "db_password"]  # no temp files

    # Stable: later runs, even ones that change other things, keep the value.
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
    host.exec("echo drift > /etc/shop/plain.conf")
    reconcile("apply", spec, check_code=0)
    assert values(host) == (db, api)
    assert cat(host, "/etc/shop/db.env") == f"DB_PASSWORD={db}\n"

    # A loosened mode is drift and is repaired without regenerating.
    host.exec("chmod 0644 /etc/shop/secrets/db_password")
    [change] = changes_by_address(plan_json(spec)).values()
    assert (change["address"], change["action"], change["reason"]) == (
        "secrets:db_password", "update", "drift")
    reconcile("apply", spec, check_code=0)
    assert stat(host, "/etc/shop/secrets/db_password") == "regular file root:root 600"
    assert values(host) == (db, api)


@pytest.mark.timeout(300)
def test_replace_regenerates_and_rewrites_users_in_the_same_run(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = spec_for(tmp_path, host)
    reconcile("apply", spec, check_code=0)
    db, api = values(host)

    plan = plan_json(spec, "--replace", "secrets:db_password")
    changes = changes_by_address(plan)
    assert set(changes) == {"secrets:db_password", "files:/etc/shop/db.env", "files:/etc/shop/app.env"}
    assert (changes["secrets:db_password"]["action"], changes["secrets:db_password"]["reason"]) == (
        "replace", "replace-requested")
    for address in ("files:/etc/shop/db.env", "files:/etc/shop/app.env"):
        assert changes[address]["reason"] == "replace-requested"
        assert [(f["path"], f["old"], f["new"]) for f in changes[address]["fields"]] == [
            ("content", "(sensitive)", "(known after apply)")]
    assert values(host) == (db, api)  # planning changed nothing

    proc = reconcile("apply", spec, "--replace", "secrets:db_password", check_code=0)
    assert "-/+ secrets:db_password" in proc.stdout
    assert "Apply complete! 3 applied, 0 failed, 0 skipped." in proc.stdout
    new_db, new_api = values(host)
    assert new_db != db and re.fullmatch(r"[A-Za-z0-9]{32}", new_db)
    assert new_api == api
    assert cat(host, "/etc/shop/db.env") == f"DB_PASSWORD={new_db}\n"
    assert cat(host, "/etc/shop/app.env") == f"DB={new_db}\nAPI={api}\n"
    assert stat(host, "/etc/shop/secrets/db_password") == "regular file root:root 600"
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)

    proc = reconcile("apply", spec, "--replace", "secrets:db_pasword", check_code=1)
    assert "--replace secrets:db_pasword: no such resource in the spec" in proc.stderr


@pytest.mark.timeout(300)
def test_deleted_or_edited_secret_is_restored_never_regenerated(fresh_host: TestHost, tmp_path: Path) -> None:
    """The value is in use (a database was set up with it): a secret file deleted or
    edited by hand comes back with the same value; only --replace rotates it."""
    host = fresh_host
    spec = spec_for(tmp_path, host)
    reconcile("apply", spec, check_code=0)
    db, api = values(host)
    host.exec("rm /etc/shop/secrets/db_password; echo guessed > /etc/shop/secrets/api_key")
    changes = changes_by_address(plan_json(spec))
    assert set(changes) == {"secrets:db_password", "secrets:api_key"}
    assert {c["reason"] for c in changes.values()} == {"drift"}
    reconcile("apply", spec, check_code=0)
    assert values(host) == (db, api)
    assert stat(host, "/etc/shop/secrets/db_password") == "regular file root:root 600"
    assert cat(host, "/etc/shop/db.env") == f"DB_PASSWORD={db}\n"
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)


@pytest.mark.timeout(300)
def test_secret_left_out_of_the_spec_is_kept(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = spec_for(tmp_path, host)
    reconcile("apply", spec, check_code=0)
    db, _ = values(host)
    write_spec(spec, {"web": host}, {"secrets": SECRETS[1:], "files": FILES[2:]})
    plan = plan_json(spec)
    assert "secrets:db_password" not in changes_by_address(plan)
    assert ("secrets:db_password left the spec; secrets are never deleted automatically, so it is released "
            "and left in place") in plan["hosts"][0]["warnings"]
    reconcile("apply", spec, check_code=0)
    assert cat(host, "/etc/shop/secrets/db_password") == db
    assert not exists(host, "/etc/shop/db.env")  # the files that used it were ours: pruned
