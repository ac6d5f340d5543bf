"""A vendor repository declared with apt_repositories (deb822, key inline in Signed-By)
is fetched and verified by apt, and a package from it installs in the same apply; the
source file carries the reconciler's header; the second plan is empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.packages.support import (
    HELLO,
    apply_ok,
    installed_version,
    plan_json,
    repository,
    served_repo,
    write_spec,
)


@pytest.mark.timeout(600)
def test_a_signed_repository_is_added_and_a_package_installed_from_it(bare_host: TestHost,
                                                                       tmp_path: Path) -> None:
    host = bare_host
    with served_repo(host, tmp_path / "repo", {HELLO: "1.0"}) as (repo, url):
        spec = write_spec(tmp_path / "spec", host,
                          apt_repositories=[repository(url, repo.public_key)],
                          packages=[{"name": HELLO}])
        code, _ = plan_json(spec)
        assert code == 2
        assert installed_version(host, HELLO) is None
        apply_ok(spec)
    assert installed_version(host, HELLO) == "1.0"
    assert host.exec(["cat", "/usr/share/reconciler-test-hello/version"]).stdout.strip() == "1.0"
    sources = host.exec(["cat", "/etc/apt/sources.list.d/reconciler-tests.sources"]).stdout
    assert sources.startswith("# Managed by reconciler")
    assert "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----" in sources
    # apt itself trusts it: the package's candidate comes from our repository.
    policy = host.exec(["apt-cache", "policy", HELLO]).stdout
    assert "http://127.0.0.1:8099 ./ Packages" in policy, policy
    assert plan_json(spec)[0] == 0
