"""Helpers for the fleet's host tests (no tests here): a spec over several test hosts,
each reachable from this machine over SSH (127.0.0.1) and from the others at its
address on the Docker network (``hosts.NAME.address``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from testbed.hosts import TestHost
from tests.support.harness import host_entry


def fleet_entry(host: TestHost, groups: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    entry = host_entry(host, address=host.container_ip, **extra)
    if groups:
        entry["groups"] = list(groups)
    return entry


def write_fleet_spec(spec_dir: Path, hosts: Mapping[str, dict[str, Any]], body: Mapping[str, Any]) -> Path:
    """``hosts.yaml`` (hosts:) and ``fleet.yaml`` (everything else) in ``spec_dir``."""
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "hosts.yaml").write_text(yaml.safe_dump({"hosts": dict(hosts)}, sort_keys=False))
    (spec_dir / "fleet.yaml").write_text(yaml.safe_dump(dict(body), sort_keys=False))
    return spec_dir


def exists(host: TestHost, path: str) -> bool:
    return host.exec(["test", "-e", path], check=False).returncode == 0
