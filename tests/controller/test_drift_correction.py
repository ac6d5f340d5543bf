"""Drift made by hand is corrected without a commit, and each correction is logged
as a drift event with before and after: a managed file edited (seen at once through
watchfiles), a managed container removed (seen at once through Docker events), a
managed service stopped (seen by the periodic plan)."""

from __future__ import annotations

import hashlib

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from tests.controller.support import (
    LOCAL_HOSTS_YAML,
    HostRepo,
    host_history,
    install_controller,
    journal,
    read_file,
    wait_applied,
    wait_for,
)

APP = "/srv/app/app.conf"


def spec(busybox: str) -> str:
    return f"""\
files:
  - path: {APP}
    content: "listen 8080\\n"
services:
  - name: ticker
    exec: ["/bin/sleep", "infinity"]
containers:
  - name: box
    image: {busybox}
    pull: never
    command: ["sleep", "3600"]
"""


def drift_entries(host: TestHost, address: str) -> list[dict[str, object]]:
    return [e for e in host_history(host) if e["cause"] == "drift" and e["result"] == "corrected"
            and any(c["address"] == address for c in e["changes"])]  # type: ignore[union-attr]


def sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.timeout(900)
def test_hand_made_drift_is_corrected_and_logged(shared_host: TestHost, testbed_images: Images) -> None:
    host = shared_host
    host.load_image(testbed_images.busybox)
    repo = HostRepo(host).init()
    repo.write("specs/hosts.yaml", LOCAL_HOSTS_YAML)
    repo.write("specs/main.yaml", spec(testbed_images.busybox))
    sha = repo.commit("app, ticker service and box container")
    install_controller(host, "--drift-interval", "5s")
    wait_applied(host, sha, timeout=180)
    commits = len(host_history(host))

    # A managed file edited by hand.
    host.exec(["sh", "-c", f"echo 'listen 9999' > {APP}"])
    wait_for("the edited file to be restored", lambda: read_file(host, APP) == "listen 8080\n", timeout=30,
             explain=lambda: journal(host))
    entry = wait_for("a drift entry for the file", lambda: drift_entries(host, f"files:{APP}"), timeout=30)[0]
    change = next(c for c in entry["changes"] if c["address"] == f"files:{APP}")  # type: ignore[attr-defined]
    assert change["reason"] == "drift" and change["action"] == "update"
    assert {"path": "content", "before": sha256("listen 9999\n"), "after": sha256("listen 8080\n")} \
        in change["fields"]
    assert entry["revision"] == sha and entry["intent"] == "drift correction"
    assert entry["trigger"] in ("file-event", "drift-interval")

    # A managed container removed.
    old_id = host.exec(["docker", "inspect", "-f", "{{.Id}}", "box"]).stdout.strip()
    host.exec(["docker", "rm", "-f", "box"])
    wait_for("the container to run again",
             lambda: host.exec(["docker", "inspect", "-f", "{{.State.Running}}", "box"], check=False)
             .stdout.strip() == "true", timeout=60, explain=lambda: journal(host))
    assert host.exec(["docker", "inspect", "-f", "{{.Id}}", "box"]).stdout.strip() != old_id
    entry = wait_for("a drift entry for the container", lambda: drift_entries(host, "containers:box"),
                     timeout=30)[0]
    change = next(c for c in entry["changes"] if c["address"] == "containers:box")  # type: ignore[attr-defined]
    assert change["action"] == "create"
    assert {"path": "image", "before": None, "after": testbed_images.busybox} in change["fields"]

    # A managed service stopped.
    host.exec(["systemctl", "stop", "ticker.service"])
    wait_for("the service to run again",
             lambda: host.exec(["systemctl", "is-active", "ticker.service"], check=False).stdout.strip()
             == "active", timeout=60, explain=lambda: journal(host))
    entry = wait_for("a drift entry for the service", lambda: drift_entries(host, "services:ticker"),
                     timeout=30)[0]
    change = next(c for c in entry["changes"] if c["address"] == "services:ticker")  # type: ignore[attr-defined]
    assert {"path": "active", "before": "inactive", "after": "active"} in change["fields"]

    # No commit happened: every new entry is a drift correction of the same revision.
    new = host_history(host)[commits:]
    assert new and all(e["cause"] == "drift" and e["revision"] == sha for e in new)
