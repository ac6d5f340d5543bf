"""Sync windows on a real host: outside an allow window (or inside a deny window) a new
commit is planned and reported, not applied, and drift is reported, not corrected;
``drift_correction: always`` corrects drift even then; once the windows allow it,
the pending commit is applied."""

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

APP = "/srv/windows/app.conf"
# Opens only at midnight on January 1st, for one minute: closed while the test runs.
CLOSED = "sync_windows:\n  - {kind: allow, schedule: '0 0 1 1 *', duration: 1m}\n"
# Opens every minute for two minutes: a deny window that is always open.
FROZEN = "sync_windows:\n  - {kind: deny, schedule: '* * * * *', duration: 2m, name: freeze}\n"


def content(host: TestHost) -> str:
    return host.exec(["cat", APP]).stdout


@pytest.mark.timeout(600)
def test_changes_wait_for_the_sync_window(shared_host: TestHost, tmp_path: Path) -> None:
    host = shared_host
    state = tmp_path / "state"
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))

    def once(config: str) -> int:
        path = tmp_path / "controller.yaml"
        path.write_text(config)
        return run_once(repo.path, state, "--config", str(path)).returncode

    repo.write("specs/app.yaml", files_yaml({APP: "one\n"}))
    first = repo.commit("one")
    assert once("") == 0
    assert content(host) == "one\n"

    # Outside the allow window: planned and reported, the host untouched.
    repo.write("specs/app.yaml", files_yaml({APP: "two\n"}))
    second = repo.commit("two")
    assert once(CLOSED) == 0
    assert content(host) == "one\n"
    status = read_status(state)
    assert status["last_applied"]["revision"] == first
    assert status["pending"]["revision"] == second
    assert "outside every allow window" in status["pending"]["message"]
    entry = read_history(state)[-1]
    assert (entry["revision"], entry["result"]) == (second, "deferred")
    assert entry["summary"] == {"add": 0, "change": 1, "destroy": 0}
    assert entry["changes"][0]["address"] == f"files:{APP}"

    # Drift inside a deny window: reported with before and after, not corrected ...
    host.exec(["sh", "-c", f"echo by-hand > {APP}"])
    assert once(FROZEN + "drift_correction: windows\n") == 0
    assert content(host) == "by-hand\n"
    detected = read_history(state)[-1]
    assert (detected["cause"], detected["result"]) == ("drift", "detected")
    assert "deny window freeze is open" in detected["reason"]
    assert read_status(state)["pending_drift"][0]["address"] == f"files:{APP}"
    # ... unless drift correction is allowed separately; still no new commit applied.
    assert once(FROZEN + "drift_correction: always\n") == 0
    assert content(host) == "one\n"
    corrected = read_history(state)[-1]
    assert (corrected["cause"], corrected["result"], corrected["revision"]) == ("drift", "corrected", first)
    assert read_status(state)["pending_drift"] == []

    # Windows open (none configured): the pending commit is applied.
    assert once("") == 0
    assert content(host) == "two\n"
    status = read_status(state)
    assert status["last_applied"]["revision"] == second and status["pending"] is None
