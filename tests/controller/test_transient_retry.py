"""A transient fault (the host or its Docker engine unreachable) is not a bad
commit: the same revision is retried with exponential backoff and jitter, never
quarantined, and applied as soon as the host is back. The SSH path runs through a
forwarder that the test switches off (connection refused) and on again; the host's
Docker engine is stopped and started."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from tests.controller.support import (
    LocalRepo,
    TcpForwarder,
    WatchProcess,
    files_yaml,
    read_history,
    read_status,
    ssh_hosts_yaml,
    wait_for,
)

APP = "/srv/transient/app.conf"


@pytest.mark.timeout(300)
def test_unreachable_host_is_retried_with_backoff(shared_host: TestHost, tmp_path: Path) -> None:
    host = shared_host
    forwarder = TcpForwarder(host.ssh_port)
    forwarder.enable()
    known = forwarder.known_hosts(host, tmp_path / "known_hosts")
    config = tmp_path / "controller.yaml"
    config.write_text("backoff_base: 1s\nbackoff_max: 4s\n")
    state = tmp_path / "state"
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host, port=forwarder.port, known_hosts=known))
    repo.write("specs/app.yaml", files_yaml({APP: "one\n"}))
    first = repo.commit("one")
    try:
        with WatchProcess(repo.path, state, "--listen", "off", config=config) as proc:
            def applied(sha: str) -> bool:
                return (read_status(state).get("last_applied") or {}).get("revision") == sha

            wait_for("the first commit", lambda: applied(first), timeout=120, explain=proc.log)

            forwarder.disable()
            repo.write("specs/app.yaml", files_yaml({APP: "two\n"}))
            second = repo.commit("two")
            retries = wait_for("three retries of the second commit",
                               lambda: (r := [e for e in read_history(state) if e["revision"] == second
                                              and e["result"] == "retrying"]) and len(r) >= 3 and r,
                               timeout=120, explain=proc.log)
            status = read_status(state)
            assert status["retry"]["revision"] == second
            assert second not in status["quarantined"] and status["last_applied"]["revision"] == first
            assert [e["attempt"] for e in retries[:3]] == [1, 2, 3]
            # Equal jitter: attempt n waits between half and all of min(4, 1 * 2**(n-1)) seconds.
            for entry in retries[:3]:
                step = min(4.0, 2.0 ** (entry["attempt"] - 1))
                assert step / 2 <= entry["retry_in"] <= step + 0.1, entry
            assert "cannot connect" in retries[0]["error"] or "connection" in retries[0]["error"].lower()
            assert host.exec(["cat", APP]).stdout == "one\n"

            forwarder.enable()
            wait_for("the retried commit to be applied", lambda: applied(second), timeout=60,
                     explain=proc.log)
            assert host.exec(["cat", APP]).stdout == "two\n"
            final = [e for e in read_history(state) if e["revision"] == second][-1]
            assert final["result"] == "applied" and final["trigger"] == "retry"
            assert read_status(state)["retry"] is None
    finally:
        forwarder.disable()


@pytest.mark.timeout(600)
def test_docker_engine_down_is_retried(shared_host: TestHost, testbed_images: Images, tmp_path: Path) -> None:
    host = shared_host
    host.load_image(testbed_images.busybox)
    config = tmp_path / "controller.yaml"
    config.write_text("backoff_base: 1s\nbackoff_max: 2s\n")
    state = tmp_path / "state"
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))
    repo.write("specs/box.yaml", f"containers:\n  - name: retried-box\n    image: {testbed_images.busybox}\n"
               "    pull: never\n    command: [sleep, '3600']\n")
    sha = repo.commit("a container")
    host.exec(["systemctl", "stop", "docker.socket", "docker.service"])
    try:
        with WatchProcess(repo.path, state, "--listen", "off", config=config) as proc:
            retries = wait_for("two retries while the engine is down",
                               lambda: (r := [e for e in read_history(state) if e["result"] == "retrying"])
                               and len(r) >= 2 and r, timeout=120, explain=proc.log)
            assert "Docker engine" in retries[0]["error"], retries[0]["error"]
            assert sha not in read_status(state)["quarantined"]
            host.exec(["systemctl", "start", "docker.socket", "docker.service"])
            wait_for("the container once the engine is back",
                     lambda: (read_status(state).get("last_applied") or {}).get("revision") == sha,
                     timeout=120, explain=proc.log)
        running = host.exec(["docker", "inspect", "-f", "{{.State.Running}}", "retried-box"]).stdout.strip()
        assert running == "true"
    finally:
        host.exec(["systemctl", "start", "docker.socket", "docker.service"], check=False)
