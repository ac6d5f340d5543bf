"""A repository whose signature does not match the key given is refused by apt before
its source file goes live: the change fails quoting apt, no file is left in
sources.list.d, and apt-get update on the host still works. With the right key (from
a file in the spec's directory) the same repository is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.aptrepo import AptRepo
from testbed.hosts import TestHost
from tests.kinds.packages.support import HELLO, apply_ok, reconcile, repository, served_repo, write_spec

SOURCES = "/etc/apt/sources.list.d/reconciler-tests.sources"


@pytest.mark.timeout(600)
def test_a_wrongly_signed_repository_never_goes_live(bare_host: TestHost, tmp_path: Path) -> None:
    host = bare_host
    other = AptRepo(tmp_path / "other")  # a key that did not sign the repository
    try:
        with served_repo(host, tmp_path / "repo", {HELLO: "1.0"}) as (repo, url):
            spec = write_spec(tmp_path / "spec", host, apt_repositories=[repository(url, other.public_key)])
            proc = reconcile("apply", str(spec))
            assert proc.returncode == 1, proc.stdout + proc.stderr
            assert "apt could not use repository reconciler-tests" in proc.stdout, proc.stdout
            assert "NO_PUBKEY" in proc.stdout or "not signed" in proc.stdout or "signature" in proc.stdout, \
                proc.stdout
            assert host.exec(["test", "-e", SOURCES], check=False).returncode != 0
            assert host.exec("apt-get update --error-on=any", check=False, timeout=300).returncode == 0

            # The right key, as a file of the spec's repository.
            (tmp_path / "spec" / "keys").mkdir(parents=True)
            (tmp_path / "spec" / "keys" / "vendor.asc").write_text(repo.public_key)
            write_spec(tmp_path / "spec", host, apt_repositories=[
                {"name": "reconciler-tests", "uris": [url], "suites": ["./"], "key_file": "keys/vendor.asc"}])
            apply_ok(spec)
    finally:
        other.close()
    assert host.exec(["test", "-f", SOURCES], check=False).returncode == 0
    assert HELLO in host.exec(["apt-cache", "policy", HELLO]).stdout
