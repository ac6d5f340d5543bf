"""Disaster recovery of the ServQR flagship on the test bed, shared by the recovery
test (tests/flagship/test_servqr_recovery.py) and bench/bench_recovery.py.

The spec is specs/servqr plus examples/servqr-offsite (offsite copies to a second
host, encrypted to an age identity kept here), with ServQR's own resources limited
to host ``servqr`` (a spec applies a resource to every host unless it says
``hosts:``, and the offsite host must not run ServQR).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from testbed.hosts import TestHost
from testbed.servqr import copy_spec
from testbed.util import REPO_ROOT

OFFSITE_EXAMPLE = REPO_ROOT / "examples" / "servqr-offsite" / "specs-servqr"
ROWS = [(1, "printer jam on floor 2"), (2, "QR code label faded"), (3, "badge reader offline")]


def install_transfer_tools(*hosts: TestHost) -> None:
    """rsync and age from Debian's packages (what a ``packages`` resource would declare)."""
    def install(host: TestHost) -> None:
        host.exec("command -v rsync >/dev/null && command -v age >/dev/null || { apt-get update -qq && "
                  "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync age; }", timeout=600)

    with ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(install, hosts))


def host_address(host: TestHost) -> str:
    """The host's address on the test bed's network (eth0; docker0 is its own engine's)."""
    out = host.exec(["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
    return out.split(" inet ", 1)[1].split("/", 1)[0]


def write_dr_spec(root: Path) -> Path:
    """specs/servqr + the offsite layer under ``root``; returns the spec directory."""
    spec = copy_spec(root)
    for name in ("backups.yaml", "offsite.yaml"):
        shutil.copy(OFFSITE_EXAMPLE / name, spec / name)
    for path in spec.glob("*.yaml"):
        if path.name in ("hosts.yaml", "offsite.yaml"):
            continue
        data = yaml.safe_load(path.read_text())
        for value in data.values():
            for resource in value if isinstance(value, list) else [value]:
                resource.setdefault("hosts", ["servqr"])
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


def point_hosts(spec: Path, servqr: TestHost, offsite: TestHost, recipient: str) -> None:
    hosts: dict[str, dict[str, Any]] = {}
    for name, host in (("servqr", servqr), ("offsite", offsite)):
        entry: dict[str, Any] = {"connect": host.ssh_url, "identity_file": str(host.key_path),
                 "known_hosts": str(host.known_hosts_path)}
        hosts[name] = entry
    hosts["servqr"]["vars"] = {"domain": "servqr.example.com", "offsite_address": host_address(offsite),
                               "offsite_recipient": recipient}
    data = yaml.safe_load((spec / "hosts.yaml").read_text())
    data["hosts"] = hosts
    (spec / "hosts.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def psql(host: TestHost, sql: str) -> str:
    return host.exec(["docker", "exec", "-i", "servqr-postgres", "psql", "-U", "servqr", "-d", "servqr",
                      "-v", "ON_ERROR_STOP=1", "-tA"], input=sql).stdout.strip()


def write_rows(host: TestHost) -> None:
    psql(host, "create table tickets (id int primary key, summary text not null);"
         + "".join(f"insert into tickets values ({i}, '{s}');" for i, s in ROWS))


def read_rows(host: TestHost) -> list[str]:
    return psql(host, "select id, summary from tickets order by id").splitlines()


def expected_rows() -> list[str]:
    return [f"{i}|{s}" for i, s in ROWS]
