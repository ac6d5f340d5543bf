"""Helpers for the packages and apt_repositories host tests: a bare host, the CLI, and
what dpkg and apt say on the host (read with docker exec, never through the code under
test)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed.aptrepo import AptRepo
from testbed.hosts import TestHost

# Re-exported: the tests import the CLI helpers from here.
from tests.support.cli import apply_ok as apply_ok
from tests.support.cli import changes as changes
from tests.support.cli import plan_json as plan_json
from tests.support.cli import reconcile as reconcile
from tests.support.cli import write_spec as write_spec

HELLO = "reconciler-test-hello"
APP = "reconciler-test-app"


def installed_version(host: TestHost, name: str) -> str | None:
    """dpkg's installed version of ``name``, None when it is not installed."""
    proc = host.exec(["dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", name], check=False)
    status, _, version = proc.stdout.partition(" ")
    return version if proc.returncode == 0 and status == "installed" else None


def held(host: TestHost) -> set[str]:
    return set(host.exec(["apt-mark", "showhold"]).stdout.split())


def dpkg_snapshot(host: TestHost) -> str:
    """Everything a plan must not change: dpkg's database, apt's sources, holds, our stamps."""
    return host.exec("cat /var/lib/dpkg/status; apt-mark showhold; ls -l --time-style=+%s "
                     "/etc/apt/sources.list.d/ /var/lib/reconciler/ 2>/dev/null; "
                     "md5sum /etc/apt/sources.list.d/* 2>/dev/null; true").stdout


@contextmanager
def served_repo(host: TestHost, root: Path, packages: dict[str, str],
                depends: dict[str, list[str]] | None = None) -> Iterator[tuple[AptRepo, str]]:
    """A signed repository with ``packages`` (name -> version) served inside ``host``;
    yields (repo, url)."""
    repo = AptRepo(root)
    try:
        for name, version in packages.items():
            repo.add(name, version, depends=(depends or {}).get(name))
        repo.publish()
        yield repo, repo.serve(host)
    finally:
        repo.close()


def repository(url: str, key: str, name: str = "reconciler-tests") -> dict[str, object]:
    return {"name": name, "uris": [url], "suites": ["./"], "key": key}
