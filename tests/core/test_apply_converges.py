"""On a fresh host over real SSH: plan lists the creates (exit 2) and touches nothing;
apply converges (the host's own stat/cat confirm it); a second plan is empty (exit 0)."""

from __future__ import annotations

import hashlib
from pathlib import Path

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

RESOURCES = {
    "directories": [{"path": "/srv/shop", "mode": "0750"},
                    {"path": "/srv/shop/data", "owner": "www-data", "group": "www-data", "mode": "2770"}],
    "files": [
        {"path": "/srv/shop/app.conf", "content": "listen ${port}\nhost ${host}\n", "mode": "0640",
         "group": "www-data", "depends_on": ["directories:/srv/shop"]},
        {"path": "/srv/shop/data/seed.txt", "content": "seed\n", "owner": "www-data"},
        {"path": "/etc/shop-motd", "template": "templates/motd.txt", "mode": "0444"},
    ],
}


def make_spec(tmp_path: Path, host: TestHost) -> Path:
    spec = write_spec(tmp_path / "spec", {"web": host}, {"vars": {"port": "8080"}, **RESOURCES})
    (spec / "templates").mkdir()
    (spec / "templates" / "motd.txt").write_text("Welcome to ${host}, port ${port}. Literal $${x}.\n")
    return spec


@pytest.mark.timeout(300)
def test_plan_apply_then_nothing_to_do(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = make_spec(tmp_path, host)

    # Plan: every resource is a create, exit 2, and the host is untouched.
    proc = reconcile("plan", spec, "--detailed-exitcode", check_code=2)
    for address in ("directories:/srv/shop", "directories:/srv/shop/data", "files:/srv/shop/app.conf",
                    "files:/srv/shop/data/seed.txt", "files:/etc/shop-motd"):
        assert f"  + {address}\n" in proc.stdout
    assert proc.stdout.rstrip().endswith("Plan: 5 to add, 0 to change, 0 to destroy.")
    assert not exists(host, "/srv/shop") and not exists(host, "/etc/shop-motd")
    assert not exists(host, "/var/lib/reconciler")  # no inventory written by a plan
    plan = plan_json(spec)
    assert {c["action"] for c in changes_by_address(plan).values()} == {"create"}
    assert {c["reason"] for c in changes_by_address(plan).values()} == {"absent"}

    # Apply converges; the host's own tools confirm every field.
    proc = reconcile("apply", spec, check_code=0)
    assert "Apply complete! 5 applied, 0 failed, 0 skipped." in proc.stdout
    assert stat(host, "/srv/shop") == "directory root:root 750"
    assert stat(host, "/srv/shop/data") == "directory www-data:www-data 2770"
    assert stat(host, "/srv/shop/app.conf") == "regular file root:www-data 640"
    assert cat(host, "/srv/shop/app.conf") == "listen 8080\nhost web\n"
    assert stat(host, "/srv/shop/data/seed.txt") == "regular file www-data:root 644"
    assert cat(host, "/srv/shop/data/seed.txt") == "seed\n"
    assert stat(host, "/etc/shop-motd") == "regular file root:root 444"
    motd = "Welcome to web, port 8080. Literal ${x}.\n"
    assert cat(host, "/etc/shop-motd") == motd
    # The plan's content digest is the real file's SHA-256.
    digest = host.exec(["sha256sum", "/etc/shop-motd"]).stdout.split()[0]
    assert digest == hashlib.sha256(motd.encode()).hexdigest()
    assert changes_by_address(plan)["files:/etc/shop-motd"]["fields"][0] == {
        "path": "type", "old": None, "new": "file", "sensitive": False, "known_after_apply": False,
        "diff": None, "internal": False, "explanation": ""}
    assert {"path": "content", "old": None, "new": f"sha256:{digest}", "sensitive": False,
            "known_after_apply": False, "internal": False, "explanation": "",
            "diff": {"kind": "text", "lines": ["@@ -0,0 +1 @@", "+" + motd.rstrip("\n")], "summary": "",
                     "omitted": 0}} in changes_by_address(plan)["files:/etc/shop-motd"]["fields"]
    # No temporary files are left next to the targets.
    assert host.exec("find / -xdev -name '.reconciler*' -print", check=False).stdout == ""

    # Idempotent: the second plan is empty, and a second apply changes nothing.
    proc = reconcile("plan", spec, "--detailed-exitcode", check_code=0)
    assert proc.stdout.strip() == "No changes. The hosts match the spec."
    before = host.exec("stat -c '%n %Y %i' /srv/shop/app.conf /etc/shop-motd").stdout
    proc = reconcile("apply", spec, check_code=0)
    assert proc.stdout.strip() == "No changes. The hosts match the spec."
    assert host.exec("stat -c '%n %Y %i' /srv/shop/app.conf /etc/shop-motd").stdout == before
