"""A commit during whose run the controller died three times (say, it exhausts the
machine's memory) is quarantined at the next start instead of being tried again,
so it cannot keep the controller in a crash loop; a newer commit is still tried.
The crashes are as the controller finds them on start: a run left in flight in
status.json, with its attempt count."""

from __future__ import annotations

from pathlib import Path

from reconciler.controller.state import ControllerStatus, InFlight, StateStore, utc_now
from tests.controller.support import LocalRepo, files_yaml, read_history, read_status, run_once

# Never contacted: the quarantine happens before any host is planned.
UNREACHABLE = 'hosts:\n  web:\n    connect: "ssh://root@127.0.0.1:1"\n'


def test_a_commit_that_crashed_the_controller_three_times_is_quarantined(tmp_path: Path) -> None:
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", UNREACHABLE)
    repo.write("specs/app.yaml", files_yaml({"/srv/app.conf": "x\n"}))
    deadly = repo.commit("the commit that kills the controller")
    state = tmp_path / "state"
    store = StateStore(state)
    store.prepare()
    store.write_status(ControllerStatus(in_flight=InFlight(deadly, "commit", utc_now(), attempts=3)))

    assert run_once(repo.path, state).returncode == 1
    status = read_status(state)
    assert deadly in status["quarantined"] and status["in_flight"] is None
    assert status["last_error"]["revision"] == deadly
    assert "stopped 3 times" in status["last_error"]["message"]
    assert [(e["revision"], e["result"]) for e in read_history(state)] == [(deadly, "failed")]

    # Not tried again on the next start.
    run_once(repo.path, state)
    assert len(read_history(state)) == 1

    # A newer commit is tried (the host is unreachable, so it waits for a retry).
    repo.write("specs/app.yaml", files_yaml({"/srv/app.conf": "y\n"}))
    newer = repo.commit("a fix")
    run_once(repo.path, state)
    entry = read_history(state)[-1]
    assert (entry["revision"], entry["result"]) == (newer, "retrying")
