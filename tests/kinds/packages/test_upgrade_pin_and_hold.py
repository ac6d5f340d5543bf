"""state: latest shows installed -> candidate once apt's lists know a newer version, and
apply upgrades; a version pin with hold: true downgrades and holds it; someone
releasing the hold by hand is drift that the next apply repairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.packages.support import (
    HELLO,
    apply_ok,
    changes,
    held,
    installed_version,
    plan_json,
    repository,
    served_repo,
    write_spec,
)


@pytest.mark.timeout(900)
def test_latest_upgrades_a_pin_downgrades_and_a_hold_is_kept(bare_host: TestHost, tmp_path: Path) -> None:
    host = bare_host
    with served_repo(host, tmp_path / "repo", {HELLO: "1.0"}) as (repo, url):
        repos = [repository(url, repo.public_key)]
        spec = write_spec(tmp_path / "spec", host, apt_repositories=repos,
                          packages=[{"name": HELLO, "state": "latest"}])
        apply_ok(spec)
        assert installed_version(host, HELLO) == "1.0"

        repo.add(HELLO, "2.0")
        repo.publish()
        repo.serve(host)
        host.exec("apt-get update -q", timeout=300)  # the operator's update: the lists now know 2.0
        code, plan = plan_json(spec)
        [change] = changes(plan)
        assert code == 2 and change["address"] == f"packages:{HELLO}" and change["action"] == "update"
        assert [(f["path"], f["old"], f["new"]) for f in change["fields"]] == [("version", "1.0", "2.0")]
        apply_ok(spec)
        assert installed_version(host, HELLO) == "2.0"
        assert plan_json(spec)[0] == 0

        write_spec(tmp_path / "spec", host, apt_repositories=repos,
                   packages=[{"name": HELLO, "version": "1.0", "hold": True}])
        [change] = changes(plan_json(spec)[1])
        assert {f["path"]: (f["old"], f["new"]) for f in change["fields"]} == {
            "version": ("2.0", "1.0"), "held": (False, True)}
        apply_ok(spec)
        assert installed_version(host, HELLO) == "1.0"
        assert HELLO in held(host)

    host.exec(["apt-mark", "unhold", HELLO])
    [change] = changes(plan_json(spec)[1])
    assert change["reason"] == "drift"
    assert [(f["path"], f["old"], f["new"]) for f in change["fields"]] == [("held", False, True)]
    apply_ok(spec)
    assert HELLO in held(host) and installed_version(host, HELLO) == "1.0"
