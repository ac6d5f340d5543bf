"""The plan-time lockout check: would a new SSH connection over the reconciler's own
path (client address, sshd's port, incoming interface) be accepted by the spec?"""

from __future__ import annotations

from typing import Any

import pytest
from reconciler_providers.firewall.model import (
    Firewall,
    ManagementPath,
    management_port_blocker,
    normalize_all,
)

PATH = ManagementPath.parse("172.17.0.1 41990 172.17.0.10 22", "eth0")


def check(spec: dict[str, Any], path: ManagementPath | None = PATH) -> str | None:
    firewall = Firewall.model_validate(spec)
    assert path is not None
    return management_port_blocker(normalize_all(firewall), firewall.policy.incoming, path)


def test_parse_ssh_connection() -> None:
    assert PATH is not None
    assert (str(PATH.client), str(PATH.server), PATH.port) == ("172.17.0.1", "172.17.0.10", 22)
    assert ManagementPath.parse("") is None  # not over SSH (local transport)
    v6 = ManagementPath.parse("fe80::1%eth0 5000 fe80::2%eth0 2222")
    assert v6 is not None and v6.port == 2222 and v6.client.version == 6


@pytest.mark.parametrize("spec", [
    {"rules": [{"port": 22}]},
    {"rules": [{"port": "20-30"}]},
    {"rules": [{"port": [80, 22], "protocol": "both"}]},
    {"rules": [{"source": "172.16.0.0/12"}]},
    {"rules": [{"port": 22, "interface": "eth0"}]},
    {"rules": [{"port": 22, "rate_limit": "10/minute"}]},
    {"rules": [{"port": 22, "action": "drop", "source": "10.0.0.0/8"}, {"port": 22}]},
    {"rules": [{"port": 22, "action": "drop", "direction": "out"}, {"port": 22}]},
    {"rules": [{"port": 22, "action": "drop", "interface": "wg0"}, {"port": 22}]},
    {"policy": {"incoming": "accept"}},
])
def test_allowed(spec: dict[str, Any]) -> None:
    assert check(spec) is None


@pytest.mark.parametrize(("spec", "reason"), [
    ({"rules": [{"port": [80, 443]}]}, "policy.incoming is drop and no rule accepts tcp port 22"),
    ({"policy": {"incoming": "reject"}}, "policy.incoming is reject"),
    ({"rules": [{"port": 22, "protocol": "udp"}]}, "no rule accepts tcp port 22"),
    ({"rules": [{"port": 22, "source": "10.0.0.0/8"}]}, "no rule accepts tcp port 22 from 172.17.0.1"),
    ({"rules": [{"port": 22, "source": "2001:db8::/32"}]}, "no rule accepts"),
    ({"rules": [{"port": 22, "interface": "wg0"}]}, "no rule accepts"),
    ({"rules": [{"action": "drop"}, {"port": 22}], "policy": {"incoming": "accept"}},
     "rules[0] (drop any protocol) matches new connections to port 22"),
    ({"rules": [{"port": "1-1024", "action": "reject"}, {"port": 22}]}, "rules[0] (reject tcp port 1-1024)"),
])
def test_blocked(spec: dict[str, Any], reason: str) -> None:
    blocker = check(spec)
    assert blocker is not None and reason in blocker


def test_unknown_interface_is_pessimistic() -> None:
    path = ManagementPath.parse("172.17.0.1 41990 172.17.0.10 22")  # `ip route get` said nothing
    assert path is not None
    # An accept limited to an interface cannot be relied on; a drop on one might apply.
    assert check({"rules": [{"port": 22, "interface": "eth0"}]}, path) is not None
    drop_on_other = {"rules": [{"port": 22, "action": "drop", "interface": "eth9"}, {"port": 22}]}
    assert check(drop_on_other, path) is not None


def test_connection_over_loopback_is_always_accepted() -> None:
    path = ManagementPath.parse("127.0.0.1 41990 127.0.0.1 22", "lo")
    assert check({"rules": []}, path) is None
