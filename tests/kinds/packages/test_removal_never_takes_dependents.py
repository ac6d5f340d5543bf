"""state: absent removes a package but keeps its configuration files (purge: true
deletes those too), and never takes other packages with it: when apt would also remove
a package that depends on it, nothing is changed and the message names the dependent."""

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
    reconcile,
    repository,
    served_repo,
    write_spec,
)


def dpkg_status(host: TestHost, name: str) -> str:
    return host.exec(["dpkg-query", "-W", "-f", "${db:Status-Status}", name], check=False).stdout


@pytest.mark.timeout(900)
def test_absent_refuses_to_take_a_dependent_along(bare_host: TestHost, tmp_path: Path) -> None:
    host = bare_host
    packages = {HELLO: "1.0", APP: "1.0"}
    with served_repo(host, tmp_path / "repo", packages, depends={APP: [HELLO]}) as (repo, url):
        repos = [repository(url, repo.public_key)]
        spec = write_spec(tmp_path / "spec", host, apt_repositories=repos, packages=[{"name": APP}])
        apply_ok(spec)
        assert installed_version(host, HELLO) == "1.0"  # pulled in as APP's dependency

        write_spec(tmp_path / "spec", host, apt_repositories=repos, packages=[
            {"name": APP}, {"name": HELLO, "state": "absent"}])
        proc = reconcile("apply", str(spec))
        assert proc.returncode == 1
        expected = f"apt would also remove {APP} on host web, which the spec does not ask to remove"
        assert expected in proc.stdout, proc.stdout
        assert "nothing was changed" in proc.stdout
        assert installed_version(host, HELLO) == "1.0" and installed_version(host, APP) == "1.0"

        # Both absent: removed in one transaction; their configuration files stay ("rc").
        write_spec(tmp_path / "spec", host, apt_repositories=repos, packages=[
            {"name": APP, "state": "absent"}, {"name": HELLO, "state": "absent"}])
        apply_ok(spec)
        assert installed_version(host, HELLO) is None and installed_version(host, APP) is None
        assert dpkg_status(host, APP) == "config-files"
        assert host.exec(["test", "-f", f"/etc/{APP}/{APP}.conf"], check=False).returncode == 0
        assert plan_json(spec)[0] == 0

        # purge: true deletes them.
        write_spec(tmp_path / "spec", host, apt_repositories=repos, packages=[
            {"name": APP, "state": "absent", "purge": True}, {"name": HELLO, "state": "absent"}])
        [change] = changes(plan_json(spec)[1])
        assert change["action"] == "delete"
        fields = [(f["path"], f["old"], f["new"]) for f in change["fields"]]
        assert fields == [("status", "config-files", None)]
        apply_ok(spec)
        assert dpkg_status(host, APP) in ("", "not-installed")
        assert host.exec(["test", "-e", f"/etc/{APP}/{APP}.conf"], check=False).returncode != 0
        assert dpkg_status(host, HELLO) == "config-files"
        assert plan_json(spec)[0] == 0
