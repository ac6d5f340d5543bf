"""Two-host specs for the offsite tests: a source host and a target host whose
restricted account accepts the source's generated key only through ``rrsync -wo``.

``install_transfer_tools`` installs rsync and age from Debian's packages on a test
host (the hosts reach Debian's mirror); it stands in for the ``packages`` kind
until a spec can declare them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from testbed.hosts import TestHost

TARGET_USER = "offsite-src"
TARGET_HOME = "/srv/offsite/src"
TARGET_DIR = f"{TARGET_HOME}/copies"


def install_transfer_tools(host: TestHost) -> None:
    host.exec("command -v rsync >/dev/null && command -v age >/dev/null || "
              "{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync age; }",
              timeout=600)


def container_ip(host: TestHost) -> str:
    """The test host's address on the test bed's network (other test hosts reach it there)."""
    # eth0: the host's own Docker engine adds docker0, which other hosts cannot reach.
    out = host.exec(["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
    return out.split(" inet ", 1)[1].split("/", 1)[0]


def target_side(source_host: str, backup: str, target_host: str) -> dict[str, Any]:
    """The target host's resources: the account, its directories (the account writes only
    into copies/, its home and .ssh stay root's) and authorized_keys with the source's key."""
    only = {"hosts": [target_host]}
    key = f"${{published:{source_host}/backups:{backup}/public_key}}"
    return {
        "users": [{"name": TARGET_USER, "home": TARGET_HOME, "shell": "/bin/sh", **only}],
        "directories": [
            {"path": "/srv/offsite", "owner": "root", "group": "root", "mode": "0755", **only},
            {"path": TARGET_HOME, "owner": "root", "group": "root", "mode": "0755", **only},
            {"path": f"{TARGET_HOME}/.ssh", "owner": "root", "group": "root", "mode": "0755", **only},
            {"path": TARGET_DIR, "owner": TARGET_USER, "group": TARGET_USER, "mode": "0700", **only},
        ],
        "files": [{"path": f"{TARGET_HOME}/.ssh/authorized_keys", "owner": "root", "group": "root",
                   "mode": "0644", **only,
                   "content": f'restrict,command="/usr/bin/rrsync -wo {TARGET_DIR}" {key}\n'}],
    }


def offsite_target(target_host: str, address: str, **extra: Any) -> dict[str, Any]:
    return {"name": "vault", "host": target_host, "address": address, "user": TARGET_USER,
            "path": TARGET_DIR, **extra}


def write_two_host_spec(spec_dir: Path, hosts: dict[str, TestHost], resources: dict[str, Any]) -> Path:
    spec_dir.mkdir(parents=True, exist_ok=True)
    entries = {name: {"connect": h.ssh_url, "identity_file": str(h.key_path),
                      "known_hosts": str(h.known_hosts_path)} for name, h in hosts.items()}
    (spec_dir / "hosts.yaml").write_text(yaml.safe_dump({"hosts": entries}, sort_keys=False))
    (spec_dir / "resources.yaml").write_text(yaml.safe_dump(resources, sort_keys=False))
    return spec_dir
