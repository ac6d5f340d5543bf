"""Drift: a managed file edited, chmod'ed, chowned or deleted on the host shows in the
plan as exactly that change with reason ``drift``, and the next apply repairs it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import cat, changes_by_address, plan_json, reconcile, stat, write_spec


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.timeout(300)
def test_outside_changes_are_drift_and_get_repaired(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, {
        "directories": [{"path": "/srv/drift", "mode": "0755"}],
        "files": [
            {"path": "/srv/drift/edited.conf", "content": "original\n"},
            {"path": "/srv/drift/chmodded.conf", "content": "mode\n", "mode": "0640"},
            {"path": "/srv/drift/deleted.conf", "content": "deleted\n"},
            {"path": "/srv/drift/chowned.conf", "content": "owner\n"},
            {"path": "/srv/drift/untouched.conf", "content": "same\n"},
        ],
    })
    reconcile("apply", spec, check_code=0)

    host.exec("echo 'edited by hand' > /srv/drift/edited.conf; chmod 0666 /srv/drift/chmodded.conf; "
              "rm /srv/drift/deleted.conf; chown www-data /srv/drift/chowned.conf; chmod 0700 /srv/drift")

    proc = reconcile("plan", spec, "--detailed-exitcode", check_code=2)
    assert "# files:/srv/drift/edited.conf will be updated in-place (drift: changed on the host outside " \
           "reconciler)" in proc.stdout
    assert proc.stdout.rstrip().endswith("Plan: 1 to add, 4 to change, 0 to destroy.")

    changes = changes_by_address(plan_json(spec))
    assert set(changes) == {"directories:/srv/drift", "files:/srv/drift/edited.conf",
                            "files:/srv/drift/chmodded.conf", "files:/srv/drift/deleted.conf",
                            "files:/srv/drift/chowned.conf"}
    assert {c["reason"] for c in changes.values()} == {"drift"}

    def fields(address: str) -> list[tuple[str, object, object]]:
        return [(f["path"], f["old"], f["new"]) for f in changes[address]["fields"]]

    edited_now = sha("edited by hand\n")
    assert fields("files:/srv/drift/edited.conf") == [("content", edited_now, sha("original\n"))]
    assert fields("files:/srv/drift/chmodded.conf") == [("mode", "0666", "0640")]
    assert fields("files:/srv/drift/chowned.conf") == [("owner", "www-data", "root")]
    assert fields("directories:/srv/drift") == [("mode", "0700", "0755")]
    assert changes["files:/srv/drift/deleted.conf"]["action"] == "create"
    assert changes["files:/srv/drift/edited.conf"]["action"] == "update"

    proc = reconcile("apply", spec, check_code=0)
    assert "Apply complete! 5 applied, 0 failed, 0 skipped." in proc.stdout
    assert cat(host, "/srv/drift/edited.conf") == "original\n"
    assert stat(host, "/srv/drift/chmodded.conf") == "regular file root:root 640"
    assert cat(host, "/srv/drift/deleted.conf") == "deleted\n"
    assert stat(host, "/srv/drift/chowned.conf") == "regular file root:root 644"
    assert stat(host, "/srv/drift") == "directory root:root 755"
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)


@pytest.mark.timeout(300)
def test_a_spec_edit_is_not_drift(fresh_host: TestHost, tmp_path: Path) -> None:
    resources = {"files": [{"path": "/srv/edit.conf", "content": "v1\n"}]}
    spec = write_spec(tmp_path / "spec", {"web": fresh_host}, resources)
    reconcile("apply", spec, check_code=0)
    resources["files"][0]["content"] = "v2\n"
    write_spec(spec, {"web": fresh_host}, resources)
    [change] = changes_by_address(plan_json(spec)).values()
    assert change["reason"] == "spec-changed"
    assert [(f["path"], f["old"], f["new"]) for f in change["fields"]] == [
        ("content", sha("v1\n"), sha("v2\n"))]
