"""Offline validation of the firewall: mistakes are reported at their spec line, all at
once, before any host is touched; the management-port override is a warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.spec import load_spec

HOSTS = {"web": {"connect": "ssh://root@web.example.com:22"}}


def diagnostics(tmp_path: Path, firewall: dict[str, Any]) -> tuple[list[str], list[str]]:
    spec = {"hosts": HOSTS, "firewall": firewall}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    _, diags = load_spec(str(tmp_path))
    warnings = [str(d) for d in diags.items if d not in diags.errors]
    return [str(d) for d in diags.errors], warnings


def test_the_seed_firewall_is_valid(tmp_path: Path) -> None:
    seed = {"policy": {"incoming": "drop", "outgoing": "accept"},
            "rules": [{"port": 22, "comment": "ssh"}, {"port": [80, 443], "comment": "web"}]}
    assert diagnostics(tmp_path, seed) == ([], [])


@pytest.mark.parametrize(("rule", "expected"), [
    ({"port": 70000}, "firewall.rules[0].port: port 70000 is out of range (1-65535)"),
    ({"port": "9000-8000"}, "firewall.rules[0].port: port range '9000-8000' runs backwards"),
    ({"port": "http"}, "firewall.rules[0].port: expected a port (22) or a range"),
    ({"port": []}, "firewall.rules[0].port: an empty port list matches nothing"),
    ({"port": [80, "80-90"]}, "firewall.rules[0].port: ports 80 and 80-90 overlap or touch"),
    ({"port": ["8000-8100", 8101]}, "ports 8000-8100 and 8101 overlap or touch; write them as one range"),
    ({"port": 22, "protocol": "any"}, "firewall.rules[0].protocol: ports belong to tcp or udp"),
    ({"protocol": "icmp"}, "firewall.rules[0].protocol: expected one of tcp, udp, both, any"),
    ({"source": "10.0.0.5/8"}, "firewall.rules[0].source: '10.0.0.5/8' is not an IPv4/IPv6 address or CIDR"),
    ({"source": "10.0.0.0/8", "destination": "2001:db8::1"},
     "firewall.rules[0].destination: source and destination are of different IP families"),
    ({"interface": "eth*"}, "firewall.rules[0].interface: 'eth*' is not an interface name"),
    ({"rate_limit": "fast"}, 'firewall.rules[0].rate_limit: expected a rate such as "10/minute"'),
    ({"rate_limit": "10/minute", "action": "drop"}, "it means nothing with action drop"),
    ({"comment": 'say "hi"'}, "firewall.rules[0].comment: comments are at most 64 characters"),
    ({"action": "allow"}, "firewall.rules[0].action: expected one of accept, drop, reject"),
    ({"ports": 22}, "firewall.rules[0].ports: unknown field"),
])
def test_rule_mistakes(tmp_path: Path, rule: dict[str, Any], expected: str) -> None:
    errors, _ = diagnostics(tmp_path, {"rules": [rule]})
    assert len(errors) == 1 and expected in errors[0], errors
    assert errors[0].startswith("spec.yaml:") or "/spec.yaml:" in errors[0]


def test_all_mistakes_at_once(tmp_path: Path) -> None:
    errors, _ = diagnostics(tmp_path, {"confirm_seconds": 1, "rules": [{"port": 0}, {"source": "nope"}]})
    assert len(errors) == 3, errors


def test_ufw_cannot_rate_limit(tmp_path: Path) -> None:
    errors, _ = diagnostics(tmp_path, {"backend": "ufw", "rules": [{"port": 22, "rate_limit": "10/minute"}]})
    assert any("the ufw backend cannot express rate_limit" in e for e in errors), errors


def test_policy_values(tmp_path: Path) -> None:
    errors, _ = diagnostics(tmp_path, {"policy": {"incoming": "deny"}})
    assert errors and "firewall.policy.incoming: expected one of accept, drop, reject" in errors[0]


def test_management_port_override_warns(tmp_path: Path) -> None:
    errors, warnings = diagnostics(tmp_path, {"allow_management_port_block": True, "rules": []})
    assert errors == []
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: ") and "firewall.allow_management_port_block" in warnings[0]
    assert "the host restores the previous rules after confirm_seconds" in warnings[0]


def test_one_firewall_per_spec(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"hosts": HOSTS, "firewall": {"rules": []}}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"firewall": {"rules": []}}))
    _, diags = load_spec(str(tmp_path))
    assert any("firewall" in str(d) and "is defined twice" in str(d) for d in diags.errors)
