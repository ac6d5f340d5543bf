"""While another process holds dpkg's lock, apply waits lock_timeout and then fails
saying who holds it; nothing is installed; the reconciler's own host lock is released
(a later apply works)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.packages.support import (
    HELLO,
    apply_ok,
    installed_version,
    reconcile,
    repository,
    served_repo,
    write_spec,
)

HOLD_LOCK = ("import fcntl, time; f = open('/var/lib/dpkg/lock-frontend', 'w'); "
             "fcntl.lockf(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(600)")


@pytest.mark.timeout(600)
def test_a_held_dpkg_lock_is_a_clear_bounded_failure(bare_host: TestHost, tmp_path: Path) -> None:
    host = bare_host
    with served_repo(host, tmp_path / "repo", {HELLO: "1.0"}) as (repo, url):
        repos = [repository(url, repo.public_key)]
        spec = write_spec(tmp_path / "spec", host, apt_repositories=repos,
                          packages=[{"name": HELLO, "lock_timeout": "3s"}])
        # apt uses fcntl locks, as Python's lockf does: this is how apt-get itself holds it.
        host.exec(f"systemd-run --unit hold-dpkg-lock python3 -c \"{HOLD_LOCK}\"")
        host.exec("for i in $(seq 50); do journalctl -u hold-dpkg-lock | grep -q locked && exit 0; "
                  "sleep 0.2; done; exit 1")
        proc = reconcile("apply", str(spec))
        assert proc.returncode == 1
        assert "the dpkg lock on host web is held by process" in proc.stdout, proc.stdout
        assert "(python3)" in proc.stdout and "waited 3 s (lock_timeout)" in proc.stdout
        assert installed_version(host, HELLO) is None

        host.exec("systemctl stop hold-dpkg-lock")
        apply_ok(spec)
    assert installed_version(host, HELLO) == "1.0"
