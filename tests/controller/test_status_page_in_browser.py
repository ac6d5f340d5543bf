"""The status page in a real headless browser (Debian's Chromium), served by a
controller managing a real test host: it loads, shows the applied revision and the
host, shows a rollback after a bad commit (the failed commit quarantined with its
reason, the history entry naming the commit restored) and, without being reloaded
by the test, updates itself after drift is corrected (a drift correction, told
apart from the intended changes). Screenshots are kept in .testbed/artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.controller.support import (
    LocalRepo,
    WatchProcess,
    files_yaml,
    free_port,
    read_status,
    ssh_hosts_yaml,
    wait_for,
)
from tests.support.browser import Browser, chromium, keep_artifact

APP = "/srv/page/app.conf"
BLOCKER = "/srv/page/blocker"  # a regular file: nothing can be created below it

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium is not installed (scripts/setup.sh)")


@pytest.mark.timeout(600)
def test_the_page_shows_a_rollback_and_then_a_drift_correction(shared_host: TestHost, tmp_path: Path) -> None:
    host = shared_host
    host.exec(["sh", "-c", f"mkdir -p /srv/page && : > {BLOCKER} && rm -f {APP}"])
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))
    repo.write("specs/app.yaml", files_yaml({APP: "good\n"}))
    good = repo.commit("the good one")
    config = tmp_path / "controller.yaml"
    config.write_text("status_page: {refresh: 1s}\nhealth: {grace: 3s, interval: 1s}\n")
    state = tmp_path / "state"
    port = free_port()
    with WatchProcess(repo.path, state, "--listen", f"127.0.0.1:{port}", "--drift-interval", "2s",
                      config=config) as proc, Browser() as browser:
        wait_for("the good commit to be applied",
                 lambda: (read_status(state).get("last_applied") or {}).get("revision") == good, timeout=120,
                 explain=proc.log)
        tab = browser.open(f"http://127.0.0.1:{port}/")
        text = tab.wait_text("the applied commit", lambda t: "in sync" in t and good[:12] in t)
        assert "Hosts" in text and "web" in text and "intended change" in text
        assert tab.evaluate("document.title").startswith("reconciler: in sync")

        # A commit that fails half-way: rolled back to the good one, quarantined.
        repo.write("specs/app.yaml", files_yaml({APP: "half\n", f"{BLOCKER}/x.conf": "x\n"}))
        bad = repo.commit("a change that fails half-way")
        text = tab.wait_text("the rollback", lambda t: f"rolled back to {good[:12]}: restored" in t
                             and "Quarantined commits" in t and bad[:12] in t, timeout=120)
        quarantine = tab.evaluate("document.getElementById('quarantine').innerText")
        assert bad[:12] in quarantine and "apply: commit" in quarantine
        newest = tab.evaluate("document.querySelector('#timeline li').innerText")
        assert newest.startswith("intended change") and "rolled-back" in newest
        assert "a change that fails half-way" in newest
        shot = tab.screenshot(tmp_path / "status-page-rollback.png")
        keep_artifact(shot, "status-page-rollback.png")

        # Someone edits the file by hand; the drift is corrected and the page (reloading
        # itself) shows it as a drift correction, newest first.
        host.exec(["sh", "-c", f"echo by hand > {APP}"])
        newest = tab.wait_text("the drift correction", lambda _t: tab.evaluate(
            "document.querySelector('#timeline li').innerText").startswith("drift correction"), timeout=120)
        entry = tab.evaluate("document.querySelector('#timeline li').innerText")
        assert "corrected" in entry and f"files:{APP}" in entry
        assert tab.evaluate("document.querySelector('#timeline li').className") == "drift"
        assert host.exec(["cat", APP]).stdout == "good\n"
        shot = tab.screenshot(tmp_path / "status-page-drift-corrected.png")
        keep_artifact(shot, "status-page-drift-corrected.png")
        assert proc.stop() == 0
