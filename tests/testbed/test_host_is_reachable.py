"""The test bed works: hosts boot, answer over SSH with their own host keys, run
nginx/nftables and their own Docker engine; hosts restart and get cleaned up."""

from __future__ import annotations

import paramiko
import pytest

from testbed.hosts import SESSION_LABEL, HostFactory, TestHost, session_id
from testbed.images import Images
from testbed.util import run
from testbed.wheelhouse import install_reconciler

pytestmark = pytest.mark.timeout(600)


def ssh(client: paramiko.SSHClient, cmd: str) -> tuple[int, str, str]:
    _, stdout, stderr = client.exec_command(cmd, timeout=120)
    out = stdout.read().decode()
    err = stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


def test_ssh_login_systemd_nginx_nftables(shared_host: TestHost) -> None:
    assert shared_host.ssh_url == f"ssh://root@127.0.0.1:{shared_host.ssh_port}"
    with shared_host.ssh_client() as client:
        _, state, _ = ssh(client, "systemctl is-system-running")
        assert state.strip() in ("running", "degraded")
        rc, out, err = ssh(client, "nginx -t")
        assert rc == 0, out + err
        rc, out, err = ssh(client, "nft list ruleset")
        assert rc == 0, out + err
        rc, out, _ = ssh(client, "systemctl is-enabled ssh nginx cron docker")
        assert rc == 0 and out.split() == ["enabled"] * 4, out
        rc, out, _ = ssh(client, "id -u; git --version; python3 -c 'import venv'; psql --version")
        assert rc == 0 and out.splitlines()[0] == "0", out


def test_inner_docker_runs_busybox(shared_host: TestHost, testbed_images: Images) -> None:
    shared_host.load_image(testbed_images.busybox)
    with shared_host.ssh_client() as client:
        rc, out, err = ssh(client, f"docker run --rm {testbed_images.busybox} echo hello")
        assert rc == 0, err
        assert out.strip() == "hello"
        rc, out, _ = ssh(client, "docker info --format '{{.Driver}}'")
        assert out.strip() == "vfs"


def test_known_hosts_is_strict_and_host_keys_are_per_host(
    shared_host: TestHost, fresh_host: TestHost
) -> None:
    a = shared_host.known_hosts_path.read_text()
    b = fresh_host.known_hosts_path.read_text()
    assert f"[127.0.0.1]:{shared_host.ssh_port} ssh-ed25519 " in a
    keys_a = {line.split()[2] for line in a.splitlines()}
    keys_b = {line.split()[2] for line in b.splitlines()}
    assert keys_a and keys_b and not keys_a & keys_b, "two hosts share an SSH host key"
    # A known_hosts entry with another host's key must be rejected.
    wrong = fresh_host.known_hosts_path.with_name("wrong.known_hosts")
    wrong.write_text(a.replace(f"[127.0.0.1]:{shared_host.ssh_port}", f"[127.0.0.1]:{fresh_host.ssh_port}"))
    client = paramiko.SSHClient()
    client.load_host_keys(str(wrong))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        with pytest.raises(paramiko.SSHException):
            client.connect(
                "127.0.0.1",
                port=fresh_host.ssh_port,
                username="root",
                key_filename=str(fresh_host.key_path),
                look_for_keys=False,
                allow_agent=False,
                timeout=20,
            )
    finally:
        client.close()
        wrong.unlink()
    # Keys only: no password logins.
    sshd = fresh_host.exec("sshd -T | grep -Ei '^(permitrootlogin|passwordauthentication) '").stdout
    assert "permitrootlogin without-password" in sshd or "permitrootlogin prohibit-password" in sshd
    assert "passwordauthentication no" in sshd


def test_restart_comes_back_with_same_host_keys(fresh_host: TestHost) -> None:
    keys_before = fresh_host.exec("cat /etc/ssh/ssh_host_ed25519_key.pub").stdout
    fresh_host.exec("echo kept > /root/marker")
    fresh_host.restart()
    assert fresh_host.exec("cat /etc/ssh/ssh_host_ed25519_key.pub").stdout == keys_before
    proc = fresh_host.ssh_exec("cat /root/marker; systemctl is-system-running", check=False)
    assert proc.stdout.split()[0] == "kept"
    assert proc.stdout.split()[1] in ("running", "degraded")
    fresh_host.wait_docker()


def test_containers_are_labelled_and_removed(host_factory: HostFactory) -> None:
    host = host_factory(name="label-check", ports=(8080,))
    labels = run(
        [
            "docker",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{SESSION_LABEL}"}}}}',
            host.container_id,
        ]
    ).stdout.strip()
    assert labels == session_id()
    ports = run(["docker", "port", host.container_id]).stdout
    assert all(line.split(" -> ")[1].startswith("127.0.0.1:") for line in ports.splitlines()), ports
    assert host.published_port(8080) != host.ssh_port
    host.remove()
    host.remove()  # idempotent
    assert run(["docker", "inspect", host.container_id], check=False).returncode != 0


def test_install_reconciler(fresh_host: TestHost) -> None:
    install_reconciler(fresh_host)
    proc = fresh_host.exec("test -L /usr/local/bin/reconcile && /opt/reconciler/venv/bin/pip show reconciler")
    assert "Name: reconciler" in proc.stdout
