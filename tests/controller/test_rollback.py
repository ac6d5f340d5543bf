"""A commit whose apply fails, or whose health checks fail within the grace window,
is rolled back: the last good revision is applied again from its own worktree,
restoring what the failed run changed. The failure is reported with the sha, and
the commit is quarantined (not retried; only a newer commit is tried)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.controller.support import (
    LocalRepo,
    files_yaml,
    read_history,
    read_status,
    run_once,
    ssh_hosts_yaml,
)

APP = "/srv/rollback/app.conf"
BLOCKER = "/srv/rollback/blocker"  # a regular file: nothing can be created below it
HEALTHY = "/srv/rollback/healthy"

CONFIG = f"""\
health:
  grace: 3s
  interval: 1s
  checks:
    - name: marker
      command: [test, -f, {HEALTHY}]
"""


def content(host: TestHost, path: str) -> str:
    return host.exec(["cat", path]).stdout


@pytest.mark.timeout(600)
def test_failed_apply_and_failed_health_roll_back(shared_host: TestHost, tmp_path: Path) -> None:
    host = shared_host
    host.exec(["sh", "-c", f"mkdir -p /srv/rollback && : > {BLOCKER} && : > {HEALTHY}"])
    config = tmp_path / "controller.yaml"
    config.write_text(CONFIG)
    state = tmp_path / "state"
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))

    def once() -> int:
        return run_once(repo.path, state, "--config", str(config)).returncode

    repo.write("specs/app.yaml", files_yaml({APP: "good\n"}))
    good = repo.commit("good")
    assert once() == 0
    assert content(host, APP) == "good\n"

    # The first change applies, the second cannot (its parent is a file): roll back.
    repo.write("specs/app.yaml", files_yaml({APP: "half\n", f"{BLOCKER}/x.conf": "x\n"}))
    bad_apply = repo.commit("a change that fails half-way")
    assert once() == 1
    assert content(host, APP) == "good\n"
    status = read_status(state)
    assert status["last_applied"]["revision"] == good
    error = status["last_error"]
    assert error["revision"] == bad_apply and error["cause"] == "apply"
    assert f"files:{BLOCKER}/x.conf" in error["message"] and f"rolled back to {good[:12]}" in error["message"]
    assert bad_apply in status["quarantined"]
    entry = read_history(state)[-1]
    assert entry["revision"] == bad_apply and entry["result"] == "rolled-back"
    assert entry["rollback"]["ok"] and entry["rollback"]["revision"] == good
    restored = {c["address"]: c for c in entry["rollback"]["changes"]}
    assert restored[f"files:{APP}"]["action"] == "update"

    # Quarantined: a second pass does not try it again.
    entries = len(read_history(state))
    assert once() == 0
    assert len(read_history(state)) == entries
    assert content(host, APP) == "good\n"

    # Applies fine but the health check fails for the whole grace window: roll back.
    host.exec(["rm", "-f", HEALTHY])
    repo.write("specs/app.yaml", files_yaml({APP: "unhealthy\n"}))
    bad_health = repo.commit("a change that leaves the service unhealthy")
    assert once() == 1
    assert content(host, APP) == "good\n"
    status = read_status(state)
    assert status["last_error"]["revision"] == bad_health and status["last_error"]["cause"] == "health"
    assert "marker" in status["last_error"]["message"]
    entry = read_history(state)[-1]
    assert entry["result"] == "rolled-back" and entry["rollback"]["ok"]
    assert next(h for h in entry["health"] if not h["ok"])["check"] == "marker"

    # Healthy again, a newer commit is applied.
    host.exec(["touch", HEALTHY])
    repo.write("specs/app.yaml", files_yaml({APP: "better\n"}))
    better = repo.commit("better")
    assert once() == 0
    assert content(host, APP) == "better\n"
    status = read_status(state)
    assert status["last_applied"]["revision"] == better and status["last_error"] is None
