"""A resource a commit changed that something else keeps changing is contested, not a
reason to roll the commit back (issue 19): the commit is applied, the resource is
put back each time as a drift correction marked ``contested``, and the status lists
it with how often and what the host could tell (the file's modification time and
owner)."""

from __future__ import annotations

import threading
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

FOUGHT = "/srv/contested/app.conf"


@pytest.mark.timeout(600)
def test_a_resource_someone_keeps_changing_is_contested(shared_host: TestHost, tmp_path: Path) -> None:
    host = shared_host
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))
    repo.write("specs/app.yaml", files_yaml({FOUGHT: "version 1\n"}))
    first = repo.commit("v1")
    state = tmp_path / "state"
    with WatchProcess(repo.path, state, "--listen", "off", "--drift-interval", "1s") as proc:
        wait_for("the first commit", lambda: (read_status(state).get("last_applied") or {}).get("revision")
                 == first, timeout=120, explain=proc.log)
        halt = threading.Event()

        def fight() -> None:
            # Whenever the controller has put version 2 in place, someone writes version 1 back
            # (a moment later: an apply checks its own result right after writing).
            while not halt.is_set():
                if host.exec(["cat", FOUGHT], check=False).stdout == "version 2\n":
                    halt.wait(2.0)
                    host.exec(["sh", "-c", f"echo 'version 1' > {FOUGHT}"])
                halt.wait(0.5)

        fighter = threading.Thread(target=fight, daemon=True)
        fighter.start()
        try:
            repo.write("specs/app.yaml", files_yaml({FOUGHT: "version 2\n"}))
            second = repo.commit("v2")
            status = wait_for("the fought-over file to be contested three times",
                              lambda: (s := read_status(state)).get("contested")
                              and s["contested"][0]["count"] >= 3 and s, timeout=180, explain=proc.log)
        finally:
            halt.set()
            fighter.join(timeout=30)
        history = StateStore(state).read_history()

    assert status["last_applied"]["revision"] == second and second not in status["quarantined"]
    [contested] = status["contested"]
    assert (contested["host"], contested["address"]) == ("web", f"files:{FOUGHT}")
    assert contested["revision"] == second
    assert any(f"{FOUGHT} was modified at" in line for line in contested["evidence"]), contested
    commit = next(e for e in history if e["revision"] == second and e["cause"] == "commit")
    assert commit["result"] == "applied"
    drift = [e for e in history if e["cause"] == "drift"]
    assert drift and all(e["contested"] == [f"web: files:{FOUGHT}"] for e in drift)
