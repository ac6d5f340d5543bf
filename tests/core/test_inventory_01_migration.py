"""A host managed by 0.1 (one ``/var/lib/reconciler/inventory.json``) is migrated on
the first apply, nothing lost: a plan shows the handovers and changes nothing; the
apply gives the applying stack what it declares and keeps the rest *unclaimed* (never
pruned, though 0.1 created it); a second stack that declares an unclaimed object takes
it over, with the right to prune it that 0.1 recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import cat, exists, owners, reconcile, write_spec

LEGACY = "/var/lib/reconciler/inventory.json"


def legacy_inventory(objects: dict[str, bool]) -> str:
    """An inventory as 0.1 wrote it (address -> created)."""
    return json.dumps({"format": 1, "comment": "Objects managed by reconciler on this host. "
                                               "Only created: true objects are ever pruned.",
                       "objects": {a: {"kind": a.split(":", 1)[0], "id": a.split(":", 1)[1], "created": c,
                                       "spec_hash": "0123456789abcdef", "revision": "",
                                       "applied_at": "2024-05-01T10:00:00Z"} for a, c in objects.items()}},
                      indent=2) + "\n"


@pytest.mark.timeout(900)
def test_01_inventory_is_migrated_on_first_apply(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    # What 0.1 left: three files it created, and its inventory listing them.
    host.exec("mkdir -p /srv/old /var/lib/reconciler && echo a > /srv/old/a.conf && echo b > /srv/old/b.conf "
              "&& echo c > /srv/old/c.conf")
    legacy = legacy_inventory({"directories:/srv/old": True, "files:/srv/old/a.conf": True,
                               "files:/srv/old/b.conf": True, "files:/srv/old/c.conf": True})
    host.exec(["sh", "-c", f"umask 077; cat > {LEGACY}"], input=legacy)

    app = write_spec(tmp_path / "app", {"web": host}, {
        "directories": [{"path": "/srv/old"}],
        "files": [{"path": "/srv/old/a.conf", "content": "a\n"}]})
    proc = reconcile("plan", app, "--detailed-exitcode", check_code=2)
    for line in ("files:/srv/old/a.conf: moves from the 0.1 inventory to stack app",
                 "directories:/srv/old: moves from the 0.1 inventory to stack app",
                 "files:/srv/old/b.conf: from the 0.1 inventory, declared by no stack yet: kept unclaimed "
                 "(never pruned)"):
        assert line in proc.stdout, proc.stdout
    assert "Plan: 0 to add, 0 to change, 0 to destroy, 4 ownership handovers." in proc.stdout
    assert cat(host, LEGACY) == legacy  # a plan writes nothing
    assert not exists(host, "/var/lib/reconciler/owners.json")

    reconcile("apply", app, check_code=0)
    assert not exists(host, LEGACY)
    assert cat(host, LEGACY + ".0.1-migrated") == legacy
    index = json.loads(cat(host, "/var/lib/reconciler/owners.json"))
    assert index["owners"] == {"directories:/srv/old": {"stack": "app", "created": True},
                               "files:/srv/old/a.conf": {"stack": "app", "created": True}}
    assert set(index["unclaimed"]) == {"files:/srv/old/b.conf", "files:/srv/old/c.conf"}
    assert all(exists(host, f"/srv/old/{n}.conf") for n in "abc")  # nothing pruned
    proc = reconcile("plan", app, "--detailed-exitcode", check_code=0)
    assert "2 object(s) of the 0.1 inventory are owned by no stack" in proc.stdout

    # A second stack declaring an unclaimed object takes it over (no adopt needed)...
    other = write_spec(tmp_path / "other", {"web": host}, {"files": [{"path": "/srv/old/b.conf",
                                                                        "content": "b\n"}]})
    proc = reconcile("apply", other, check_code=0)
    assert "files:/srv/old/b.conf: moves from the 0.1 inventory to stack other" in proc.stdout
    assert owners(host)["files:/srv/old/b.conf"] == {"stack": "other", "created": True}
    # ...with the right to prune it that 0.1 recorded (it created the file).
    write_spec(tmp_path / "other", {"web": host}, {"files": []})
    reconcile("apply", other, check_code=0)
    assert not exists(host, "/srv/old/b.conf")
    assert exists(host, "/srv/old/c.conf")  # still unclaimed, still there
    index = json.loads(cat(host, "/var/lib/reconciler/owners.json"))
    assert set(index["unclaimed"]) == {"files:/srv/old/c.conf"}
