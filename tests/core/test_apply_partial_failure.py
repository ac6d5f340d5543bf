"""An apply in which some writes fail reports what was applied, what failed (with the
host's reason) and what was skipped (dependents, by depends_on, of any kind),
exits 1, leaves the old content of a file whose update failed intact, and leaves no
``.reconciler.*`` temporary files behind.

Real failures, no mocks: a file whose parent path is an existing regular file
(refused before any temporary file exists), and a file owned by a user that does
not exist (refused before the write).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import cat, exists, reconcile, stat, write_spec

GOOD = [
    {"path": "/srv/pf/ok.conf", "content": "ok\n"},
    {"path": "/srv/pf/existing.conf", "content": "old\n"},
]
BROKEN = [
    {"path": "/srv/pf/ok.conf", "content": "ok\n"},
    # An update whose write fails after the temporary file exists.
    {"path": "/srv/pf/existing.conf", "content": "new\n", "owner": "nosuchuser"},
    {"path": "/srv/pf/blocker/inner.conf", "content": "never\n"},
    {"path": "/srv/pf/ghost.conf", "content": "ghost\n", "owner": "nosuchuser"},
    {"path": "/srv/pf/after-ghost.conf", "content": "after\n", "depends_on": ["files:/srv/pf/ghost.conf"]},
    {"path": "/srv/pf/independent.conf", "content": "independent\n"},
]
DIRS = [
    {"path": "/srv/pf"},
    # Another kind, ordered after the file it depends on, and skipped with it.
    {"path": "/srv/pf/needs-inner", "depends_on": ["files:/srv/pf/blocker/inner.conf"]},
]


@pytest.mark.timeout(300)
def test_failures_are_reported_dependents_skipped_nothing_half_written(fresh_host: TestHost,
                                                                        tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, {"directories": DIRS[:1], "files": GOOD})
    reconcile("apply", spec, check_code=0)
    host.exec("echo 'a regular file' > /srv/pf/blocker")

    write_spec(spec, {"web": host}, {"directories": DIRS, "files": BROKEN})
    proc = reconcile("apply", spec, check_code=1)
    out = proc.stdout
    assert "✓ web: files:/srv/pf/independent.conf (create)" in out
    assert ("✗ web: files:/srv/pf/blocker/inner.conf (create) FAILED\n"
            "      parent /srv/pf/blocker is not a directory") in out
    assert ("✗ web: files:/srv/pf/ghost.conf (create) FAILED\n"
            "      /srv/pf/ghost.conf: unknown user 'nosuchuser'") in out
    assert ("✗ web: files:/srv/pf/existing.conf (update) FAILED\n"
            "      /srv/pf/existing.conf: unknown user 'nosuchuser'") in out
    assert ("- web: files:/srv/pf/after-ghost.conf skipped: depends on files:/srv/pf/ghost.conf, "
            "which failed") in out
    assert ("- web: directories:/srv/pf/needs-inner skipped: depends on files:/srv/pf/blocker/inner.conf, "
            "which failed") in out
    assert out.rstrip().endswith("Apply FAILED. 1 applied, 3 failed, 2 skipped.")
    assert "Traceback" not in proc.stderr

    # Nothing half-done on the host.
    assert cat(host, "/srv/pf/existing.conf") == "old\n"
    assert stat(host, "/srv/pf/existing.conf") == "regular file root:root 644"
    assert cat(host, "/srv/pf/blocker") == "a regular file\n"
    for path in ("/srv/pf/ghost.conf", "/srv/pf/after-ghost.conf", "/srv/pf/needs-inner"):
        assert not exists(host, path), path
    assert cat(host, "/srv/pf/independent.conf") == "independent\n"
    assert host.exec("find /srv /tmp /etc -name '.reconciler*' -print", check=False).stdout == ""

    # The JSON report says the same, change by change.
    report = json.loads(reconcile("apply", spec, "--output", "json", check_code=1).stdout)
    outcomes = {o["address"]: o for o in report["apply"]["hosts"][0]["outcomes"]}
    assert report["apply"]["ok"] is False
    assert {a: o["status"] for a, o in outcomes.items()} == {
        "files:/srv/pf/existing.conf": "failed",
        "files:/srv/pf/blocker/inner.conf": "failed",
        "files:/srv/pf/ghost.conf": "failed",
        "files:/srv/pf/after-ghost.conf": "skipped",
        "directories:/srv/pf/needs-inner": "skipped",
    }
    assert "unknown user 'nosuchuser'" in outcomes["files:/srv/pf/ghost.conf"]["error"]

    # Fixing the spec converges, and the host keeps no debris from the failures.
    files, dirs = copy.deepcopy(BROKEN), copy.deepcopy(DIRS)
    files[1]["owner"] = files[3]["owner"] = "root"
    files[2]["path"] = "/srv/pf/unblocked/inner.conf"
    dirs[1]["depends_on"] = ["files:/srv/pf/unblocked/inner.conf"]
    write_spec(spec, {"web": host}, {"directories": dirs, "files": files})
    reconcile("apply", spec, check_code=0)
    assert cat(host, "/srv/pf/existing.conf") == "new\n"
    assert exists(host, "/srv/pf/needs-inner") and exists(host, "/srv/pf/after-ghost.conf")
    assert host.exec("find /srv /tmp /etc -name '.reconciler*' -print", check=False).stdout == ""
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
