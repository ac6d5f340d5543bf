"""Prune: a resource removed from the spec is deleted only if the reconciler created it.

* a file and an empty directory the reconciler created are deleted (reason
  ``removed-from-spec``);
* a look-alike file that was on the host before the first apply (adopted by the
  spec) is released and stays, with a warning;
* a directory the reconciler created but that now holds someone's data is not
  deleted: the apply reports it (exit 1) and it stays owned, so a later run
  retries once it is empty.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import (
    cat,
    changes_by_address,
    exists,
    inventory,
    plan_json,
    reconcile,
    write_spec,
)

KEEP = {"path": "/srv/prune/keep.conf", "content": "keep\n"}
ADOPTED = {"path": "/srv/prune/adopted.conf", "content": "mine\n"}
MADE = {"path": "/srv/prune/made.conf", "content": "made\n"}
EMPTY_DIR = {"path": "/srv/prune/empty"}
NESTED = [{"path": "/srv/prune/nest"}, {"path": "/srv/prune/nest/inner"}]
DATA_DIR = {"path": "/srv/prune/data"}


@pytest.mark.timeout(300)
def test_only_what_the_reconciler_created_is_pruned(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    # A look-alike, there before the reconciler: same path and content the spec will ask for.
    host.exec("mkdir -p /srv/prune && printf 'mine\\n' > /srv/prune/adopted.conf")
    spec = write_spec(tmp_path / "spec", {"web": host}, {
        "directories": [{"path": "/srv/prune"}, EMPTY_DIR, DATA_DIR, *NESTED],
        "files": [KEEP, ADOPTED, MADE],
    })
    changes = changes_by_address(plan_json(spec))
    assert "files:/srv/prune/adopted.conf" not in changes  # already as the spec says: adopted, no change
    reconcile("apply", spec, check_code=0)
    objects = inventory(host)["objects"]
    assert objects["files:/srv/prune/adopted.conf"]["created"] is False
    assert objects["directories:/srv/prune"]["created"] is False  # it existed (made by the exec above)
    assert objects["files:/srv/prune/made.conf"]["created"] is True
    assert objects["directories:/srv/prune/data"]["created"] is True

    # Someone puts data into a directory the reconciler made.
    host.exec("echo precious > /srv/prune/data/user.db")

    # Everything but keep.conf and the parent leaves the spec.
    write_spec(spec, {"web": host}, {"directories": [{"path": "/srv/prune"}], "files": [KEEP]})
    plan = plan_json(spec)
    changes = changes_by_address(plan)
    assert set(changes) == {"files:/srv/prune/made.conf", "directories:/srv/prune/empty",
                            "directories:/srv/prune/data", "directories:/srv/prune/nest",
                            "directories:/srv/prune/nest/inner"}
    assert {c["action"] for c in changes.values()} == {"delete"}
    assert {c["reason"] for c in changes.values()} == {"removed-from-spec"}
    [web] = plan["hosts"]
    assert web["warnings"] == ["files:/srv/prune/adopted.conf left the spec; it existed before the "
                               "reconciler managed it, so it is released and left in place"]
    # Files go before the directories that may hold them, inner directories before outer.
    order = [c["address"] for c in web["changes"]]
    assert order[0] == "files:/srv/prune/made.conf"
    assert order.index("directories:/srv/prune/nest/inner") < order.index("directories:/srv/prune/nest")

    proc = reconcile("apply", spec, check_code=1)
    assert "✓ web: files:/srv/prune/made.conf (delete)" in proc.stdout
    assert "✓ web: directories:/srv/prune/empty (delete)" in proc.stdout
    assert "✓ web: directories:/srv/prune/nest/inner (delete)" in proc.stdout
    assert "✓ web: directories:/srv/prune/nest (delete)" in proc.stdout
    assert "✗ web: directories:/srv/prune/data (delete) FAILED" in proc.stdout
    assert "Directory not empty" in proc.stdout
    assert "only empty directories are pruned; its contents are left alone" in proc.stdout
    assert "Apply FAILED. 4 applied, 1 failed, 0 skipped." in proc.stdout

    assert not exists(host, "/srv/prune/made.conf")
    assert not exists(host, "/srv/prune/empty")
    assert not exists(host, "/srv/prune/nest")
    assert cat(host, "/srv/prune/adopted.conf") == "mine\n"
    assert cat(host, "/srv/prune/data/user.db") == "precious\n"
    assert cat(host, "/srv/prune/keep.conf") == "keep\n"

    objects = inventory(host)["objects"]
    assert "files:/srv/prune/adopted.conf" not in objects  # released
    assert "files:/srv/prune/made.conf" not in objects     # deleted, forgotten
    assert objects["directories:/srv/prune/data"]["created"] is True  # failed delete: kept, retried

    # Once the data is moved away, the next run finishes the prune.
    host.exec("rm /srv/prune/data/user.db")
    proc = reconcile("apply", spec, check_code=0)
    assert "✓ web: directories:/srv/prune/data (delete)" in proc.stdout
    assert not exists(host, "/srv/prune/data")
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
    assert set(inventory(host)["objects"]) == {"directories:/srv/prune", "files:/srv/prune/keep.conf"}


@pytest.mark.timeout(300)
def test_adopted_file_with_different_content_is_still_not_pruned(fresh_host: TestHost,
                                                                  tmp_path: Path) -> None:
    """Adopting rewrites the look-alike to the spec's content, but it is still not ours to delete."""
    host = fresh_host
    host.exec("printf 'the admin wrote this\\n' > /etc/lookalike.conf")
    spec = write_spec(tmp_path / "spec", {"web": host}, {"files": [{"path": "/etc/lookalike.conf",
                                                                   "content": "managed\n"}]})
    [change] = changes_by_address(plan_json(spec)).values()
    assert (change["action"], change["reason"]) == ("update", "not-yet-managed")
    reconcile("apply", spec, check_code=0)
    assert cat(host, "/etc/lookalike.conf") == "managed\n"
    write_spec(spec, {"web": host}, {"files": []})
    plan = plan_json(spec)
    assert plan["hosts"][0]["changes"] == []
    proc = reconcile("apply", spec, check_code=0)
    assert "files:/etc/lookalike.conf left the spec; it existed before the reconciler managed it" in (
        proc.stdout)
    assert cat(host, "/etc/lookalike.conf") == "managed\n"
