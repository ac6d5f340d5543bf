"""The flagship: a bare Debian 12 host (systemd, sshd, sudo, python3 and nothing else)
converged to specs/servqr by one apply, end to end, reached as the user ``deploy``
who becomes root with sudo (root may not log in over SSH), through a bastion (a
second test host: every SSH login the target accepts comes from the bastion's
address): the spec installs nginx, Docker, the PostgreSQL client, nftables, curl and
cron itself.

Every health check of the architecture's Monitoring Points passes (HTTPS through
nginx to both apps, pg_isready, nginx active); a second plan is empty; one drift of
each kind (file, directory mode, secret file deleted, service stopped, unit edited,
container removed, nginx site edited, firewall rule added) shows in the plan and a
single apply restores all of them; then a spec change committed to a git repository
is applied by the controller (`reconcile watch`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from testbed.hosts import HostFactory, TestHost
from testbed.images import Images
from testbed.servqr import copy_spec, health_checks, https_from_outside, stage_images, summary
from tests.support.harness import host_entry, plan_json, reconcile

RECONCILE = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "reconcile")

DRIFTS = {
    # address the plan must show -> shell command that makes the drift on the host
    "files:/opt/servqr/.env": "echo 'DB_HOST=evil.example' >> /opt/servqr/.env",
    "directories:/opt/servqr/logs": "chmod 0777 /opt/servqr/logs",
    "secrets:jwt_secret": "rm -f /opt/servqr/.jwt_secret",
    "services:servqr-frontend": "systemctl stop servqr-frontend",
    "services:servqr-backend": "echo '# hand edit' >> /etc/systemd/system/servqr-backend.service",
    "containers:servqr-postgres": "docker rm -f servqr-postgres",
    "nginx_sites:servqr": "echo '# hand edit' >> /etc/nginx/sites-available/servqr",
    "firewall:host": "nft add rule inet reconciler input tcp dport 8080 accept",
}


def wait_healthy(host: TestHost, timeout: float = 120) -> list[str]:
    """The names of failing checks, after waiting up to timeout for them to pass."""
    deadline = time.monotonic() + timeout
    while True:
        failing = [c for c in health_checks(host) if not c.ok]
        if not failing or time.monotonic() > deadline:
            return [f"{c.name}: {c.detail}" for c in failing]
        time.sleep(3)


def logins_on(host: TestHost) -> list[str]:
    """The source addresses of the SSH logins the host accepted, in order, from its own
    journal."""
    out = host.exec("journalctl -u ssh --no-pager -o cat | grep 'Accepted publickey' || true").stdout
    return [line.split(" from ")[1].split()[0] for line in out.splitlines() if " from " in line]


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.test"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@pytest.mark.timeout(1500)
def test_servqr_converges_heals_every_drift_and_follows_git(
        bare_host: TestHost, host_factory: HostFactory, testbed_images: Images, tmp_path: Path) -> None:
    host = bare_host
    bastion = host_factory("servqr-bastion", ports=())
    try:
        run_servqr_end_to_end(host, bastion, testbed_images, tmp_path)
    finally:
        bastion.remove()


def run_servqr_end_to_end(host: TestHost, bastion: TestHost, testbed_images: Images, tmp_path: Path) -> None:
    assert host.exec(["sh", "-c", "command -v nginx || command -v docker"], check=False).returncode != 0
    stage_images(host, testbed_images)  # the PostgreSQL image, for the Docker the spec installs
    host.add_sudo_user("deploy")
    host.disable_root_login()
    earlier = len(logins_on(host))  # the test bed's own readiness check logged in directly
    repo = tmp_path / "repo"
    spec = copy_spec(repo)
    hosts_file = spec / "hosts.yaml"
    data = yaml.safe_load(hosts_file.read_text())
    # Reached as an operator's private hosts are: by the address only the bastion can
    # route to, jumping through the bastion (its key checked like the target's).
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("\n".join([*bastion.host_key_lines,
                                      *host.known_hosts_lines(host.container_ip)]) + "\n")
    data["hosts"]["servqr"] = host_entry(host, connect=f"ssh://deploy@{host.container_ip}:22",
                                         known_hosts=str(known_hosts),
                                         proxy_jump=f"ssh://root@127.0.0.1:{bastion.ssh_port}",
                                         become="sudo", vars=data["hosts"]["servqr"]["vars"])
    hosts_file.write_text(yaml.safe_dump(data, sort_keys=False))

    # Plan: everything to create, host untouched; apply converges; health as the seed lists it.
    reconcile("plan", spec, "--detailed-exitcode", check_code=2)
    assert host.exec(["test", "-e", "/opt/servqr"], check=False).returncode != 0
    reconcile("apply", spec, check_code=0, timeout=900)
    failing = wait_healthy(host)
    assert not failing, "\n".join(failing)
    outside = https_from_outside(host)
    assert outside.ok, outside.detail
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)

    # One drift of each kind; the plan names exactly those; one apply heals them all.
    for command in DRIFTS.values():
        host.exec(command)
    plan = plan_json(spec)
    planned = {c["address"] for c in plan["hosts"][0]["changes"]}
    assert set(DRIFTS) <= planned, f"missing from the plan: {set(DRIFTS) - planned}"
    reconcile("apply", spec, check_code=0, timeout=900)
    failing = wait_healthy(host)
    assert not failing, "\n".join(failing)
    assert "DB_HOST=evil.example" not in host.exec(["cat", "/opt/servqr/.env"]).stdout
    assert "8080" not in host.exec(["nft", "list", "table", "inet", "reconciler"]).stdout
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)

    # GitOps: the spec lives in a repository; the controller applies a new commit.
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "servqr as deployed")
    state = tmp_path / "controller-state"
    log_path = tmp_path / "controller.log"
    log = log_path.open("wb")
    controller = subprocess.Popen(
        [RECONCILE, "watch", "--repo", str(repo), "--branch", "main", "--path", "specs/servqr",
         "--state-dir", str(state), "--interval", "5s", "--drift-interval", "600s", "--listen", "off",
         "--log-format", "json"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        template = spec / "templates" / "backend.env"
        template.write_text(template.read_text() + "FEATURE_FLAGS=gitops\n")
        git(repo, "commit", "-q", "-am", "backend: enable gitops feature flag")
        sha = git(repo, "rev-parse", "HEAD")
        deadline = time.monotonic() + 300
        while "FEATURE_FLAGS=gitops" not in host.exec(["cat", "/opt/servqr/.env"]).stdout:
            assert controller.poll() is None, "the controller exited:\n" + tail(log_path)
            assert time.monotonic() < deadline, "commit not applied in time:\n" + tail(log_path)
            time.sleep(2)
        failing = wait_healthy(host)
        assert not failing, "\n".join(failing)
        deadline = time.monotonic() + 120
        while True:
            history = subprocess.run([RECONCILE, "history", "--state-dir", str(state), "--output", "json",
                                      "--limit", "0"], capture_output=True, text=True, check=True).stdout
            if sha[:12] in history:
                break
            assert time.monotonic() < deadline, f"no history entry for {sha}: {history}"
            time.sleep(2)
        assert json.loads(history), history
    finally:
        os.killpg(controller.pid, signal.SIGTERM)
        try:
            controller.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(controller.pid, signal.SIGKILL)
            controller.wait()
        log.close()
    logins = logins_on(host)[earlier:]
    assert logins and set(logins) == {bastion.container_ip}, f"logins not through the bastion: {logins}"
    print(summary(health_checks(host)))
