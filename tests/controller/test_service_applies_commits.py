"""The controller as a systemd service on a test host follows a local git repository:
a good commit is applied, a commit with a spec error is refused before anything
runs (the host keeps its state; status shows the error with file:line and the
sha), and the next good commit is applied."""

from __future__ import annotations

import pytest

from testbed.hosts import TestHost
from tests.controller.support import (
    LOCAL_HOSTS_YAML,
    UNIT,
    HostRepo,
    files_yaml,
    host_history,
    host_status,
    install_controller,
    journal,
    read_file,
    wait_applied,
    wait_for,
)

APP = "/srv/app/app.conf"


@pytest.mark.timeout(600)
def test_commits_are_applied_and_a_broken_spec_is_refused(shared_host: TestHost) -> None:
    host = shared_host
    repo = HostRepo(host).init()
    repo.write("specs/hosts.yaml", LOCAL_HOSTS_YAML)
    repo.write("specs/app.yaml", files_yaml({APP: "version 1\n"}))
    first = repo.commit("app: version 1")
    install_controller(host)

    # systemd saw READY=1 (Type=notify) and runs it with a watchdog.
    show = host.exec(["systemctl", "show", UNIT, "-p", "Type,ActiveState,WatchdogUSec,StatusText"]).stdout
    assert "Type=notify" in show and "ActiveState=active" in show
    assert "WatchdogUSec=0" not in show
    wait_applied(host, first)
    assert read_file(host, APP) == "version 1\n"

    # A new commit is picked up at once (watchfiles on the repository) and applied.
    repo.write("specs/app.yaml", files_yaml({APP: "version 2\n"}))
    second = repo.commit("app: version 2")
    wait_applied(host, second, timeout=60)
    assert read_file(host, APP) == "version 2\n"

    # A spec error: refused before anything runs, reported with file:line and sha.
    repo.write("specs/app.yaml", files_yaml({APP: "version 3\n", "/srv/app/extra.conf": "x\n"}, mode="0999"))
    broken = repo.commit("app: version 3 with a bad mode")
    status = wait_for("the broken commit to be refused",
                      lambda: (s := host_status(host)).get("last_error") and s, timeout=60,
                      explain=lambda: journal(host))
    error = status["last_error"]
    assert error["revision"] == broken
    assert error["cause"] == "spec"
    assert broken[:12] in error["message"]
    assert "specs/app.yaml:4:" in error["message"], error["message"]
    assert {d["file"] for d in error["diagnostics"]} == {"specs/app.yaml"}
    assert all(d["line"] for d in error["diagnostics"])
    assert status["last_applied"]["revision"] == second
    assert broken in status["quarantined"]
    assert read_file(host, APP) == "version 2\n"
    assert read_file(host, "/srv/app/extra.conf") is None
    text = host.exec(["reconcile", "status"]).stdout
    assert broken[:12] in text and "specs/app.yaml:4:" in text

    # Quarantined: not retried in a loop (the history gets exactly one entry for it).
    refused = [e for e in host_history(host) if e["revision"] == broken]
    assert [e["result"] for e in refused] == ["refused"]

    # The next good commit is applied and clears the error.
    repo.write("specs/app.yaml", files_yaml({APP: "version 4\n"}))
    fourth = repo.commit("app: version 4")
    status = wait_applied(host, fourth, timeout=60)
    assert read_file(host, APP) == "version 4\n"
    assert status["last_error"] is None

    history = host_history(host)
    assert [(e["revision"], e["cause"], e["result"]) for e in history if e["cause"] == "commit"] == [
        (first, "commit", "applied"), (second, "commit", "applied"), (broken, "commit", "refused"),
        (fourth, "commit", "applied")]
    assert all(e["intent"] == "intended change" for e in history if e["cause"] == "commit")
    change = next(e for e in history if e["revision"] == second)["changes"][0]
    assert change["address"] == f"files:{APP}" and change["action"] == "update"
    assert change["fields"][0]["path"] == "content"
    assert read_refused_log(host, broken)


def read_refused_log(host: TestHost, sha: str) -> bool:
    """The refusal is in the journal as a structured JSON line with the sha."""
    return any('"commit refused"' in line and sha[:12] in line for line in journal(host).splitlines())
