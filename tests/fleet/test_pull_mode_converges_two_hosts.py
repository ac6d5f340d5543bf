"""Pull mode: two hosts run their own controller (``install-service --host auto``,
reconcile installed offline from the wheelhouse) against one repository served by
``git daemon`` on one of them. Each applies only its own part of the fleet spec,
with fleet references resolved from the whole fleet; ``reconcile fleet status``
reads both controllers over SSH and shows them on the same revision, then shows the
host whose controller is stopped lagging behind a new commit, until it catches up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from testbed.hosts import HostFactory, TestHost
from testbed.wheelhouse import install_reconciler
from tests.controller.support import HostRepo, read_file, wait_applied, wait_for
from tests.fleet.support import fleet_entry
from tests.support.harness import reconcile

UNIT = "reconciler-controller.service"
PEERS_TEMPLATE = "# every app host\n${each:app/name} ${each:app/address}\n"


def fleet_files(version: str) -> dict[str, object]:
    return {"files": [
        {"path": "/etc/fleet/whoami", "content": f"${{host}} in ${{host:pull-b/groups}} {version}\n"},
        {"path": "/etc/fleet/peers", "hosts": ["app"], "template": "peers.tmpl"},
        {"path": "/etc/fleet/only-b", "hosts": ["pull-b"], "content": "b\n"},
    ]}


def serve_repository(host: TestHost) -> str:
    """``git daemon`` on the host, exporting /srv/git; the URL other hosts fetch from."""
    host.exec(["systemd-run", "--unit", "git-daemon", "git", "daemon", "--reuseaddr", "--export-all",
               "--base-path=/srv/git", "/srv/git"])
    return f"git://{host.container_ip}/fleet"


@pytest.mark.timeout(1500)
def test_two_hosts_pull_their_part_of_one_repository(host_factory: HostFactory, tmp_path: Path) -> None:
    a, b = host_factory.many(2, names=["pull-a", "pull-b"])
    repo = HostRepo(a, "/srv/git/fleet").init()
    # The spec as the hosts read it: SSH addresses on the Docker network (unused in pull
    # mode: each controller reaches only its own host, locally).
    hosts = {"pull-a": {"connect": f"ssh://root@{a.container_ip}", "groups": ["app"]},
             "pull-b": {"connect": f"ssh://root@{b.container_ip}", "groups": ["app"]}}
    repo.write("fleet/hosts.yaml", yaml.safe_dump({"hosts": hosts}))
    repo.write("fleet/peers.tmpl", PEERS_TEMPLATE)
    repo.write("fleet/files.yaml", yaml.safe_dump(fleet_files("v1")))
    first = repo.commit("fleet: v1")
    url = serve_repository(a)
    for host in (a, b):
        install_reconciler(host)
        host.exec(["reconcile", "install-service", "--repo", url, "--path", "fleet", "--host", "auto",
                   "--interval", "3s", "--listen", "off"])

    for host in (a, b):
        wait_applied(host, first, timeout=300)
    peers = f"# every app host\npull-a {a.container_ip}\npull-b {b.container_ip}\n"
    assert read_file(a, "/etc/fleet/whoami") == "pull-a in app v1\n"
    assert read_file(b, "/etc/fleet/whoami") == "pull-b in app v1\n"
    assert read_file(a, "/etc/fleet/peers") == read_file(b, "/etc/fleet/peers") == peers
    assert read_file(b, "/etc/fleet/only-b") == "b\n"
    assert read_file(a, "/etc/fleet/only-b") is None, "pull-a applied pull-b's part"

    # The operator's copy of the spec reaches the hosts from here (127.0.0.1 ports).
    operator = tmp_path / "operator"
    operator.mkdir()
    (operator / "hosts.yaml").write_text(yaml.safe_dump({"hosts": {
        "pull-a": fleet_entry(a, groups=["app"]), "pull-b": fleet_entry(b, groups=["app"])}}))
    (operator / "peers.tmpl").write_text(PEERS_TEMPLATE)
    (operator / "files.yaml").write_text(yaml.safe_dump(fleet_files("v1")))
    status = json.loads(reconcile("fleet", "status", operator, "--revision", first, "--output", "json",
                                  check_code=0).stdout)
    assert [(h["host"], h["applied"], h["lags"]) for h in status["hosts"]] == [
        ("pull-a", first, False), ("pull-b", first, False)], status

    # A new commit reaches both.
    repo.write("fleet/files.yaml", yaml.safe_dump(fleet_files("v2")))
    second = repo.commit("fleet: v2")
    for host in (a, b):
        wait_applied(host, second, timeout=180)
    assert read_file(b, "/etc/fleet/whoami") == "pull-b in app v2\n"

    # pull-b's controller stops: after the next commit, the table shows it lagging.
    b.exec(["systemctl", "stop", UNIT])
    repo.write("fleet/files.yaml", yaml.safe_dump(fleet_files("v3")))
    third = repo.commit("fleet: v3")
    wait_applied(a, third, timeout=180)
    proc = reconcile("fleet", "status", operator, "--revision", third, check_code=2)
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith("pull-")}
    assert rows["pull-a"].split()[1:3] == [third[:12], "no"], proc.stdout
    assert rows["pull-b"].split()[1:3] == [second[:12], "yes"], proc.stdout
    assert "1 host(s) lag: pull-b." in proc.stdout, proc.stdout

    b.exec(["systemctl", "start", UNIT])
    wait_applied(b, third, timeout=180)
    assert read_file(b, "/etc/fleet/whoami") == "pull-b in app v3\n"
    wait_for("the fleet on v3", lambda: reconcile("fleet", "status", operator, "--revision", third,
                                                  check_code=(0, 2)).returncode == 0, timeout=60)
