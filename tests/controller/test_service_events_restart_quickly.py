"""A managed service stopped or disabled by hand is noticed from systemd's own events
(PID 1's journal, followed over the host's SSH connection), not at the next drift
interval: the controller restarts or re-enables it at once. Before the fix a stopped
service waited for the periodic plan (59 s with the defaults); here the drift
interval is an hour, so only the event can explain a correction within the test's
wait. The time it takes is measured in bench/bench_service_events.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.controller.support import (
    LocalRepo,
    WatchProcess,
    read_history,
    read_status,
    ssh_hosts_yaml,
    wait_for,
)

SERVICES = """\
services:
  - name: pinger
    exec: ["/bin/sleep", "infinity"]
"""


def state(host: TestHost, verb: str) -> str:
    return host.exec(["systemctl", verb, "pinger.service"], check=False).stdout.strip()


def corrections(state_dir: Path) -> list[dict[str, object]]:
    return [e for e in read_history(state_dir) if e["cause"] == "drift" and e["result"] == "corrected"]


@pytest.mark.timeout(600)
def test_stopped_and_disabled_services_are_corrected_from_systemd_events(shared_host: TestHost,
                                                                         tmp_path: Path) -> None:
    host = shared_host
    state_dir = tmp_path / "state"
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))
    repo.write("specs/services.yaml", SERVICES)
    sha = repo.commit("pinger")
    with WatchProcess(repo.path, state_dir, "--listen", "off", "--drift-interval", "1h") as proc:
        wait_for("the commit",
                 lambda: (read_status(state_dir).get("last_applied") or {}).get("revision") == sha,
                 timeout=180, explain=proc.log)
        assert state(host, "is-active") == "active"
        wait_for("the systemd event stream", lambda: "watching systemd events" in proc.log(), timeout=60,
                 explain=proc.log)

        host.exec(["systemctl", "stop", "pinger.service"])
        wait_for("the stopped service to run again", lambda: state(host, "is-active") == "active",
                 timeout=60, interval=0.1, explain=proc.log)
        [fixed] = wait_for("the correction in the history", lambda: corrections(state_dir), timeout=30,
                           explain=proc.log)
        assert fixed["trigger"] == "service-event"
        assert any(c["address"] == "services:pinger" for c in fixed["changes"])  # type: ignore[attr-defined]

        host.exec(["systemctl", "disable", "pinger.service"])
        wait_for("the disabled service to be enabled again", lambda: state(host, "is-enabled") == "enabled",
                 timeout=60, interval=0.1, explain=proc.log)
        assert all(e["trigger"] == "service-event" for e in corrections(state_dir))
