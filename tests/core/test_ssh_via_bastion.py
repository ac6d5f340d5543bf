"""A host reachable only through a bastion is planned and converged through it: the
target's sshd is not published on 127.0.0.1 at all, and its name (``hidden.internal``)
resolves only on the bastion, so the only way in is a direct-tcpip channel through the
bastion's connection. The bastion's host key is checked like any host's; the three
ways to name a bastion (``via:``, ``proxy_jump:``, ~/.ssh/config ``ProxyJump``) all
work; targets behind one bastion share one connection to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from reconciler.transport.ssh import SSHTransport
from reconciler.transport.sshconnect import JUMPS
from testbed.hosts import HostFactory, TestHost
from tests.support.harness import host_entry, reconcile, write_spec

HIDDEN = "hidden.internal"  # in the bastion's /etc/hosts only


@pytest.fixture(scope="module")
def hosts(host_factory: HostFactory) -> Iterator[tuple[TestHost, TestHost]]:
    target = host_factory("hidden", ports=(), publish_ssh=False)
    bastion = host_factory("bastion", ports=(), extra_args=["--add-host", f"{HIDDEN}:{target.container_ip}"])
    yield bastion, target
    for host in (target, bastion):
        host.remove()


def known_hosts(tmp_path: Path, bastion: TestHost, target: TestHost, *,
                bastion_lines: list[str] | None = None) -> Path:
    path = tmp_path / "known_hosts"
    lines = bastion.host_key_lines if bastion_lines is None else bastion_lines
    path.write_text("\n".join([*lines, *target.known_hosts_lines(HIDDEN)]) + "\n")
    return path


def resources(tag: str) -> dict[str, object]:
    return {
        "directories": [{"path": f"/srv/{tag}", "mode": "0750", "hosts": ["web"]}],
        "files": [{"path": f"/srv/{tag}/app.conf", "content": f"tag={tag}\n", "hosts": ["web"],
                   "depends_on": [f"directories:/srv/{tag}"]},
                  {"path": f"/srv/{tag}/other.conf", "content": "b\n", "mode": "0600", "hosts": ["web"],
                   "depends_on": [f"directories:/srv/{tag}"]}],
    }


def logins_on(target: TestHost) -> list[str]:
    """The source addresses of the target's accepted SSH logins, from its own journal."""
    out = target.exec("journalctl -u ssh --no-pager -o cat | grep 'Accepted publickey' || true").stdout
    return [line.split(" from ")[1].split()[0] for line in out.splitlines() if " from " in line]


@pytest.mark.timeout(600)
def test_converge_through_via(hosts: tuple[TestHost, TestHost], tmp_path: Path) -> None:
    bastion, target = hosts
    assert 22 not in target.ports  # nothing on 127.0.0.1 leads to the target's sshd
    kh = known_hosts(tmp_path, bastion, target)
    web = {"connect": f"ssh://root@{HIDDEN}:22", "identity_file": str(bastion.key_path),
           "known_hosts": str(kh), "via": "bastion"}
    spec = write_spec(tmp_path / "spec", {"bastion": host_entry(bastion, known_hosts=str(kh)), "web": web},
                      resources("via"))

    proc = reconcile("plan", spec, "--detailed-exitcode", check_code=2)
    assert "+ files:/srv/via/app.conf" in proc.stdout
    assert target.exec("test -e /srv/via", check=False).returncode != 0  # plan touched nothing

    reconcile("apply", spec, check_code=0)
    assert target.exec("cat /srv/via/app.conf").stdout == "tag=via\n"
    assert target.exec("stat -c '%a' /srv/via/other.conf").stdout.strip() == "600"
    assert bastion.exec("test -e /srv/via", check=False).returncode != 0  # hosts: [web] only

    reconcile("plan", spec, "--detailed-exitcode", check_code=0)  # converged: nothing to do
    # Every login the target ever accepted came from the bastion's address.
    assert logins_on(target) and set(logins_on(target)) == {bastion.container_ip}


@pytest.mark.timeout(600)
def test_the_bastions_host_key_is_checked(hosts: tuple[TestHost, TestHost], tmp_path: Path) -> None:
    bastion, target = hosts
    web = {"connect": f"ssh://root@{HIDDEN}:22", "identity_file": str(bastion.key_path), "via": "bastion"}
    bastion_url = f"ssh://root@127.0.0.1:{bastion.ssh_port}"

    impostor = paramiko.ECDSAKey.generate()
    wrong = [f"[127.0.0.1]:{bastion.ssh_port} {impostor.get_name()} {impostor.get_base64()}"]
    for lines, message in ((wrong, f"{bastion_url}: host key CHANGED (possible man-in-the-middle)"),
                           ([], f"{bastion_url}: unknown host key; add it to known_hosts or set "
                                "`host_key: accept-new` on host web")):
        kh = known_hosts(tmp_path, bastion, target, bastion_lines=lines)
        hosts_spec = {"bastion": host_entry(bastion, known_hosts=str(kh)),
                      "web": {**web, "known_hosts": str(kh)}}
        spec = write_spec(tmp_path / "spec", hosts_spec, resources("keys"))
        proc = reconcile("plan", spec, "--host", "web", check_code=1)
        assert f"Error: host web: {message}" in proc.stdout, proc.stdout
    assert target.exec("test -e /srv/keys", check=False).returncode != 0


@pytest.mark.timeout(600)
def test_proxy_jump_url_and_ssh_config(hosts: tuple[TestHost, TestHost], tmp_path: Path) -> None:
    bastion, target = hosts
    kh = known_hosts(tmp_path, bastion, target)

    # proxy_jump: the bastion as a URL, checked with the target's known_hosts.
    web = {"connect": f"ssh://root@{HIDDEN}", "identity_file": str(bastion.key_path), "known_hosts": str(kh),
           "proxy_jump": f"ssh://root@127.0.0.1:{bastion.ssh_port}"}
    spec = write_spec(tmp_path / "spec", {"web": web}, resources("jump"))
    reconcile("apply", spec, check_code=0)
    assert target.exec("cat /srv/jump/app.conf").stdout == "tag=jump\n"

    # ~/.ssh/config: the spec only names an alias; HostName, ProxyJump and the keys come
    # from the operator's config, as `ssh web-hidden` would use them.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host web-hidden\n    HostName {HIDDEN}\n    ProxyJump gate\n"
        f"Host gate\n    HostName 127.0.0.1\n    Port {bastion.ssh_port}\n"
        f"Host *\n    User root\n    IdentityFile {bastion.key_path}\n    IdentitiesOnly yes\n")
    spec = write_spec(tmp_path / "spec", {"web": {"connect": "ssh://web-hidden", "known_hosts": str(kh)}},
                      resources("jump"))
    reconcile("plan", spec, "--detailed-exitcode", home=home, check_code=0)  # the same host, converged
    assert set(logins_on(target)) == {bastion.container_ip}


@pytest.mark.timeout(300)
def test_targets_share_one_bastion_connection(hosts: tuple[TestHost, TestHost], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    bastion, target = hosts
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/config of the machine's
    kh = known_hosts(tmp_path, bastion, target)

    def incoming_on_bastion() -> int:
        out = bastion.exec("ss -Htn state established '( sport = :22 )'").stdout
        return len(out.splitlines())

    before = incoming_on_bastion()
    peers = {"bastion": host_entry(bastion, known_hosts=str(kh))}
    transports = [SSHTransport(name, f"ssh://root@{HIDDEN}", identity_file=str(bastion.key_path),
                               known_hosts=str(kh), via="bastion", peers=_specs(peers))
                  for name in ("web-a", "web-b")]
    try:
        for t in transports:
            assert t.run(["hostname"]).out.strip() == "hidden"
        assert JUMPS.connections() == 1
        assert incoming_on_bastion() == before + 1
        assert transports[0].description == f"ssh://root@{HIDDEN}:22 via ssh://root@127.0.0.1:{bastion.ssh_port}"
        # A probe (after a firewall change) logs in afresh, bastion included, and leaves nothing open.
        assert transports[0].probe_new_connection(timeout=30)
        assert JUMPS.connections() == 1
    finally:
        for t in transports:
            t.close()
    assert JUMPS.connections() == 0


def _specs(entries: dict[str, dict[str, object]]) -> dict[str, object]:
    from reconciler.spec import HostSpec

    return {name: HostSpec.model_validate(entry) for name, entry in entries.items()}
