"""With ``--require-signed`` the controller applies only commits with an SSH signature
from a key in the allowed-signers file (``git verify-commit``); an unsigned commit and
a commit signed with an unknown key are refused, reported and quarantined."""

from __future__ import annotations

import pytest

from testbed.hosts import TestHost
from tests.controller.support import (
    HOST_REPO,
    LOCAL_HOSTS_YAML,
    HostRepo,
    files_yaml,
    host_status,
    install_controller,
    journal,
    read_file,
    wait_applied,
    wait_for,
)

APP = "/srv/app/app.conf"
SIGNERS = "/etc/reconciler/allowed_signers"

SETUP_KEYS = r"""
set -e
mkdir -p /etc/reconciler /root/keys
ssh-keygen -q -t ed25519 -N '' -C ops@example.com -f /root/keys/trusted
ssh-keygen -q -t ed25519 -N '' -C mallory@example.com -f /root/keys/stranger
echo "ops@example.com $(cut -d' ' -f1,2 /root/keys/trusted.pub)" > /etc/reconciler/allowed_signers
git -C "$1" config gpg.format ssh
"""


def refused(host: TestHost, sha: str) -> dict[str, object]:
    status = wait_for(f"commit {sha[:12]} to be refused",
                      lambda: (s := host_status(host)).get("last_error")
                      and s["last_error"]["revision"] == sha and s, timeout=60, explain=lambda: journal(host))
    error: dict[str, object] = status["last_error"]
    assert error["cause"] == "signature"
    assert sha in status["quarantined"]
    return error


@pytest.mark.timeout(600)
def test_only_commits_signed_by_an_allowed_key_are_applied(shared_host: TestHost) -> None:
    host = shared_host
    repo = HostRepo(host).init()
    host.exec(["bash", "-c", SETUP_KEYS, "setup", HOST_REPO])
    trusted = ("-c", "user.signingkey=/root/keys/trusted.pub")  # passed to git before `commit`
    repo.write("specs/hosts.yaml", LOCAL_HOSTS_YAML)
    repo.write("specs/app.yaml", files_yaml({APP: "signed 1\n"}))
    first = signed_commit(host, "signed 1", trusted)
    install_controller(host, "--require-signed", "--allowed-signers", SIGNERS)
    status = wait_applied(host, first)
    assert read_file(host, APP) == "signed 1\n"
    assert status["last_error"] is None

    repo.write("specs/app.yaml", files_yaml({APP: "unsigned\n"}))
    unsigned = repo.commit("unsigned change")
    error = refused(host, unsigned)
    assert "not signed" in str(error["message"])
    assert read_file(host, APP) == "signed 1\n"

    repo.write("specs/app.yaml", files_yaml({APP: "stranger\n"}))
    stranger_key = ("-c", "user.signingkey=/root/keys/stranger.pub")
    stranger = signed_commit(host, "signed by someone else", stranger_key)
    error = refused(host, stranger)
    assert "signature check failed" in str(error["message"])
    assert read_file(host, APP) == "signed 1\n"

    repo.write("specs/app.yaml", files_yaml({APP: "signed 2\n"}))
    second = signed_commit(host, "signed 2", trusted)
    wait_applied(host, second, timeout=60)
    assert read_file(host, APP) == "signed 2\n"


def signed_commit(host: TestHost, message: str, key: tuple[str, str]) -> str:
    host.exec(["git", "-C", HOST_REPO, "add", "-A"])
    host.exec(["git", "-C", HOST_REPO, *key, "commit", "-q", "-S", "-m", message])
    return host.exec(["git", "-C", HOST_REPO, "rev-parse", "HEAD"]).stdout.strip()
