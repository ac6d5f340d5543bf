"""Pruning packages follows ownership and is opt-in: a package the reconciler installed
stays installed when it leaves the spec (a warning says so) unless its spec said
prune: true; one that was installed before the reconciler managed it is never removed,
prune: true or not."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.packages.support import (
    APP,
    HELLO,
    apply_ok,
    changes,
    installed_version,
    plan_json,
    repository,
    served_repo,
    write_spec,
)

KEPT = "reconciler-test-kept"


@pytest.mark.timeout(900)
def test_only_owned_packages_marked_prune_are_removed(bare_host: TestHost, tmp_path: Path) -> None:
    host = bare_host
    with served_repo(host, tmp_path / "repo", {HELLO: "1.0", APP: "1.0", KEPT: "1.0"}) as (repo, url):
        repos = [repository(url, repo.public_key)]
        spec = write_spec(tmp_path / "spec", host, apt_repositories=repos)
        apply_ok(spec)
        # KEPT is on the host before the reconciler manages it: an operator installed it.
        host.exec(f"apt-get install -y -q {KEPT}", timeout=300)

        write_spec(tmp_path / "spec", host, apt_repositories=repos, packages=[
            {"name": HELLO}, {"name": APP, "prune": True}, {"name": KEPT, "prune": True}])
        apply_ok(spec)
        assert {installed_version(host, n) for n in (HELLO, APP, KEPT)} == {"1.0"}
        assert host.exec(["cat", "/var/lib/reconciler/packages-prune.list"]).stdout.split() == [APP, KEPT]

        write_spec(tmp_path / "spec", host, apt_repositories=repos, packages=[])
        _, plan = plan_json(spec)
        [host_plan] = plan["hosts"]
        assert [(c["address"], c["action"]) for c in changes(plan)] == [(f"packages:{APP}", "delete")]
        warnings = "\n".join(host_plan["warnings"])
        assert f"packages:{HELLO} left the spec; packages are removed only when their spec said prune: true" \
            in warnings
        assert f"packages:{KEPT} left the spec; it existed before the reconciler managed it" in warnings
        apply_ok(spec)
    assert installed_version(host, APP) is None
    assert installed_version(host, HELLO) == "1.0" and installed_version(host, KEPT) == "1.0"
    assert plan_json(spec)[0] == 0
