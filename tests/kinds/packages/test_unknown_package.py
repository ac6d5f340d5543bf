"""A package apt does not know fails with its name and the host, after apt-get update
(the lists are refreshed before giving up); the packages that do exist are installed in
the same transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.packages.support import (
    HELLO,
    installed_version,
    reconcile,
    repository,
    served_repo,
    write_spec,
)


@pytest.mark.timeout(600)
def test_an_unknown_package_is_named_and_the_others_install(bare_host: TestHost, tmp_path: Path) -> None:
    host = bare_host
    with served_repo(host, tmp_path / "repo", {HELLO: "1.0"}) as (repo, url):
        spec = write_spec(tmp_path / "spec", host, apt_repositories=[repository(url, repo.public_key)],
                          packages=[{"name": "nginxx"}, {"name": HELLO}])
        proc = reconcile("apply", str(spec))
    assert proc.returncode == 1
    assert "package nginxx is not known to apt on host web (after apt-get update)" in proc.stdout, proc.stdout
    assert "✓ web: packages:reconciler-test-hello (create)" in proc.stdout
    assert installed_version(host, HELLO) == "1.0"
