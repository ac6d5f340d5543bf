"""plan never changes a host's packages: no apt-get update, no install, no source file,
no stamp; dpkg's database and apt's configuration are byte for byte the same after it
(the plan shows the versions it would install: (known after apply) on a host whose
lists have never been fetched)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.packages.support import (
    HELLO,
    changes,
    dpkg_snapshot,
    plan_json,
    repository,
    served_repo,
    write_spec,
)


@pytest.mark.timeout(600)
def test_plan_leaves_dpkg_and_apt_untouched(bare_host: TestHost, tmp_path: Path) -> None:
    host = bare_host
    with served_repo(host, tmp_path / "repo", {HELLO: "1.0"}) as (repo, url):
        spec = write_spec(tmp_path / "spec", host, apt_repositories=[repository(url, repo.public_key)],
                          packages=[{"name": HELLO}, {"name": "sl", "state": "latest"},
                                    {"name": "python3", "hold": True}])
        before = dpkg_snapshot(host)
        lists_before = host.exec("ls -l --time-style=+%s /var/lib/apt/lists").stdout
        code, plan = plan_json(spec)
    assert code == 2
    by_address = {c["address"]: c for c in changes(plan)}
    assert set(by_address) == {"apt_repositories:reconciler-tests", f"packages:{HELLO}", "packages:sl",
                               "packages:python3"}
    assert by_address[f"packages:{HELLO}"]["fields"][0]["known_after_apply"] is True
    python3 = {f["path"]: (f["old"], f["new"]) for f in by_address["packages:python3"]["fields"]}
    assert python3 == {"held": (False, True)}
    assert dpkg_snapshot(host) == before
    assert host.exec("ls -l --time-style=+%s /var/lib/apt/lists").stdout == lists_before
