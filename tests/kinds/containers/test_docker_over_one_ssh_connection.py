"""The Docker client rides the run's one SSH connection: during a run that observes,
creates and verifies containers, this process holds exactly one TCP connection to the
host's SSH port, starts no ``ssh`` process, and on the host the API is relayed by the
one host agent under sshd (its unix socket connected to the engine's), with no
``docker system dial-stdio`` and no other channel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.engine import Engine
from reconciler.spec import load_spec
from testbed.hosts import TestHost
from testbed.images import Images
from testbed.util import wait_until
from tests.kinds.containers.support import write_spec

ESTABLISHED = "01"
AGENT_MARK = "RECONCILER-AGENT-BOOT"


def engine_peers(host: TestHost, pid: int) -> list[str]:
    """Unix sockets of process ``pid`` whose peer is the Docker engine's listening socket
    (``ss -xpn``: the engine's side of each connection shows the socket path)."""
    rows = [line.split() for line in host.exec(["ss", "-xpn"]).stdout.splitlines()[1:]]
    mine = {r[5]: r[7] for r in rows if len(r) >= 9 and f"pid={pid}," in r[8]}  # local inode -> peer
    engine = {r[5] for r in rows if len(r) >= 8 and r[4].endswith("/docker.sock")}
    return [inode for inode, peer in mine.items() if peer in engine]


def established_to(port: int) -> list[int]:
    """Socket inodes of established TCP connections (any process) whose remote port is ``port``."""
    inodes: list[int] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == ESTABLISHED:
                    inodes.append(int(fields[9]))
    return inodes


def my_socket_inodes() -> set[int]:
    inodes: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:["):-1]))
    return inodes


def my_child_commands() -> list[str]:
    children: list[str] = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid():
            children.append(stat.split("(", 1)[1].rsplit(")", 1)[0])
    return children


@pytest.mark.timeout(600)
def test_docker_api_goes_over_the_existing_ssh_connection(fresh_host: TestHost, testbed_images: Images,
                                                           tmp_path: Path) -> None:
    host = fresh_host
    host.load_image(testbed_images.busybox)
    spec_dir = write_spec(tmp_path / "spec", host, containers=[
        {"name": f"worker-{n}", "image": testbed_images.busybox, "pull": "never",
         "command": ["sleep", "3600"]} for n in range(3)])
    spec, diags = load_spec(str(spec_dir))
    assert spec is not None, diags.items
    assert established_to(host.ssh_port) == [], "no leftover connections before the run"

    with Engine(spec) as engine:
        plan = engine.plan()
        assert len(plan.changes) == 3 and not plan.has_errors
        report = engine.apply()
        assert report.ok, report.to_json()

        connections = established_to(host.ssh_port)
        assert len(connections) == 1, f"expected one SSH connection, found {len(connections)}"
        assert set(connections) <= my_socket_inodes(), "and it is this process's own"
        assert "ssh" not in my_child_commands(), "no ssh binary was started for Docker"
        relays = host.exec("pgrep -a -f 'docker system dial-stdio'", check=False)
        assert relays.stdout == "", "no dial-stdio: the agent relays the API"
        agents = host.exec(f"pgrep -P \"$(pgrep -d, sshd)\" -f {AGENT_MARK}", check=False).stdout.split()
        assert len(agents) == 1, f"one host agent under sshd, found {agents}"
        assert engine_peers(host, int(agents[0])), "the agent holds a connection to the engine's socket"
        # Everything the run did to containers happened on that connection.
        running = host.exec(["docker", "ps", "--format", "{{.Names}}"]).stdout.split()
        assert sorted(running) == ["worker-0", "worker-1", "worker-2"]

    # paramiko's transport thread tears the socket down shortly after close().
    wait_until("the SSH connection to close", lambda: established_to(host.ssh_port) == [], timeout=30)
