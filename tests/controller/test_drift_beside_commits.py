"""Drift and deploys side by side, over SSH (issue 19): one file drifts every few
seconds while commits change another. A commit is judged by what it changed and by
its health checks: every commit is applied (none rolled back for the other file's
drift), every drift is corrected while commits come and go (also during their health
grace), and the drift is recorded as drift, not as the commits' fault."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from reconciler.controller.state import StateStore
from testbed.hosts import TestHost
from tests.controller.support import (
    LocalRepo,
    WatchProcess,
    files_yaml,
    read_status,
    ssh_hosts_yaml,
    wait_for,
)

DRIFTING = "/srv/side-by-side/a.conf"
COMMITTED = "/srv/side-by-side/b.conf"
WANT = "a: as the spec says\n"
COMMITS = 4
# Generous: the machine may be loaded; what matters is that no drift is left alone.
CORRECTED_WITHIN = 30.0


class Drifter(threading.Thread):
    """Edits the drifting file by hand every ~3 s once the last edit was corrected."""

    def __init__(self, host: TestHost) -> None:
        super().__init__(name="drifter", daemon=True)
        self.host = host
        self.halt = threading.Event()
        self.corrected: list[float] = []
        self.missed: list[int] = []

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            n += 1
            self.host.exec(["sh", "-c", f"echo 'edited by hand {n}' > {DRIFTING}"])
            made = time.monotonic()
            while self.host.exec(["cat", DRIFTING], check=False).stdout != WANT:
                if time.monotonic() - made > CORRECTED_WITHIN:
                    self.missed.append(n)
                    break
                time.sleep(0.2)
            else:
                self.corrected.append(time.monotonic() - made)
            self.halt.wait(3.0)


@pytest.mark.timeout(600)
def test_drift_of_one_file_beside_commits_of_another(shared_host: TestHost, tmp_path: Path) -> None:
    host = shared_host
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))

    def spec(version: int) -> str:
        return files_yaml({DRIFTING: WANT, COMMITTED: f"b: version {version}\n"})

    repo.write("specs/app.yaml", spec(0))
    first = repo.commit("v0")
    state = tmp_path / "state"
    # The default health grace (30 s): the old rule blamed each commit for the drift it saw in it.
    with WatchProcess(repo.path, state, "--listen", "off", "--drift-interval", "1s") as proc:
        def applied(sha: str) -> bool:
            return (read_status(state).get("last_applied") or {}).get("revision") == sha

        wait_for("the first commit", lambda: applied(first), timeout=120, explain=proc.log)
        drifter = Drifter(host)
        drifter.start()
        shas = []
        try:
            for version in range(1, COMMITS + 1):
                time.sleep(4)
                repo.write("specs/app.yaml", spec(version))
                shas.append(repo.commit(f"v{version}"))
                wait_for(f"commit v{version} to be applied", lambda: applied(shas[-1]), timeout=120,
                         explain=proc.log)
                assert host.exec(["cat", COMMITTED]).stdout == f"b: version {version}\n"
            time.sleep(4)
        finally:
            drifter.halt.set()
            drifter.join(timeout=60)
        history = StateStore(state).read_history()

    by_revision = {e["revision"]: e for e in history if e["cause"] == "commit"}
    assert [by_revision[sha]["result"] for sha in shas] == ["applied"] * COMMITS, proc.log()
    assert not read_status(state)["quarantined"]
    assert drifter.missed == [], f"drift edits left alone: {drifter.missed}"
    assert len(drifter.corrected) >= COMMITS
    drift = [e for e in history if e["cause"] == "drift"]
    assert drift and all(e["result"] == "corrected" for e in drift)
    assert {c["address"] for e in drift for c in e["changes"]} == {f"files:{DRIFTING}"}
    # The drifting file was never the commits' own change, so never contested.
    assert not any(e.get("contested") for e in drift)
    assert sum(int(e.get("count", 1)) for e in drift) >= len(drifter.corrected) // 2
