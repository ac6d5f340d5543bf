"""A spec for a test host reached as ``deploy`` with ``become: sudo``: files, directories,
a secret, a service and a container, i.e. every kind of write and the Docker API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbed.hosts import TestHost
from tests.support.harness import write_spec

SLEEP_COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def resources(busybox: str) -> dict[str, Any]:
    return {
        "directories": [{"path": "/srv/become", "mode": "0750"}],
        "secrets": [{"name": "become_token", "path": "/srv/become/token", "length": 24}],
        "files": [{"path": "/srv/become/app.conf", "content": "token=${secret:become_token}\n",
                   "mode": "0600"}],
        "services": [{"name": "become-sleeper", "exec": ["/bin/sleep", "infinity"]}],
        "containers": [{"name": "become-box", "image": busybox, "pull": "never", "command": SLEEP_COMMAND}],
    }


def deploy_spec(spec_dir: Path, host: TestHost, busybox: str, **become: Any) -> Path:
    entry = {"connect": host.ssh_url_as("deploy"), "identity_file": str(host.key_path),
             "known_hosts": str(host.known_hosts_path), "become": "sudo", **become}
    return write_spec(spec_dir, {"web": entry}, resources(busybox))


def assert_converged(host: TestHost) -> None:
    assert host.exec(["stat", "-c", "%F %U:%G %a", "/srv/become"]).stdout.strip() == "directory root:root 750"
    token = host.exec(["cat", "/srv/become/token"]).stdout
    assert len(token) == 24
    assert host.exec(["cat", "/srv/become/app.conf"]).stdout == f"token={token}\n"
    assert host.exec(["stat", "-c", "%U %a", "/var/lib/reconciler/owners.json"]).stdout.split() == ["root",
                                                                                                  "600"]
    assert host.exec(["systemctl", "is-active", "become-sleeper"]).stdout.strip() == "active"
    assert host.exec(["docker", "ps", "--format", "{{.Names}}"]).stdout.split() == ["become-box"]
