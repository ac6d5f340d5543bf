"""Rendering, spec -> text, against golden files: the nftables table file and the ufw
commands. ``full.nft`` is the text that produced ``nft_full.json`` on a real nft
(see test_firewall_parse_golden), so the golden text is known to load."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml
from reconciler_providers.firewall.model import Firewall, Policy, normalize_all
from reconciler_providers.firewall.nft import POLICY_REJECT_RULES, desired_ruleset, render
from reconciler_providers.firewall.ufw import desired_rules, rule_commands

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> Firewall:
    return Firewall.model_validate(yaml.safe_load((FIXTURES / name).read_text()))


def test_nft_table_matches_golden() -> None:
    firewall = load("full_spec.yaml")
    text = render(desired_ruleset(firewall.policy, normalize_all(firewall)))
    assert text == (FIXTURES / "full.nft").read_text()


def test_table_file_is_one_atomic_replace_of_our_table_only() -> None:
    firewall = load("full_spec.yaml")
    lines = [ln for ln in render(desired_ruleset(firewall.policy, normalize_all(firewall))).splitlines()
             if ln and not ln.startswith("#")]
    # Create-if-missing, delete, define: one transaction under `nft -f`, no window
    # without rules, and no statement that touches another table.
    assert lines[:3] == ["table inet reconciler", "delete table inet reconciler", "table inet reconciler {"]
    assert not any("flush" in ln for ln in lines)
    tables = [ln for ln in lines if ln.startswith("table")]
    assert tables == ["table inet reconciler", "table inet reconciler {"]


def test_reject_policy_is_drop_plus_final_reject_rules() -> None:
    text = render(desired_ruleset(Policy(incoming="reject"), []))
    chain = text.split("\tchain input {\n", 1)[1].split("\n\t}\n", 1)[0]
    body = [ln.strip() for ln in chain.splitlines()]
    assert body[0] == "type filter hook input priority filter; policy drop;"
    assert tuple(body[-2:]) == POLICY_REJECT_RULES


def test_forward_chain_only_when_its_policy_is_set() -> None:
    assert "chain forward" not in render(desired_ruleset(Policy(), []))
    assert "chain forward" in render(desired_ruleset(Policy(forward="drop"), []))


@pytest.mark.parametrize(("rule", "line"), [
    ({"port": 22}, "tcp dport 22 accept"),
    ({"port": "22"}, "tcp dport 22 accept"),
    ({"port": "5-5", "protocol": "udp"}, "udp dport 5 accept"),
    ({"port": [443, 80, "8000-8100"]}, "tcp dport { 80, 443, 8000-8100 } accept"),
    ({"protocol": "both"}, "meta l4proto { tcp, udp } accept"),
    ({"source": "2001:DB8::1/128", "action": "drop"}, "ip6 saddr 2001:db8::1 drop"),
    ({"port": 22, "action": "reject"}, "tcp dport 22 reject with tcp reset"),
    ({"port": 53, "protocol": "both", "action": "reject"}, "meta l4proto { tcp, udp } th dport 53 reject"),
    ({"direction": "out", "interface": "wg0", "destination": "10.1.0.0/16"},
     'oifname "wg0" ip daddr 10.1.0.0/16 accept'),
])
def test_rule_lines(rule: dict[str, object], line: str) -> None:
    [normalized] = normalize_all(Firewall.model_validate({"rules": [rule]}))
    ruleset = desired_ruleset(Policy(), [normalized])
    chain = "incoming" if normalized.direction == "in" else "outgoing"
    assert ruleset.rules[chain][-1] == line


def test_ufw_commands_match_golden() -> None:
    firewall = load("ufw_spec.yaml")
    commands = rule_commands(desired_rules(normalize_all(firewall)), [])
    text = "".join(shlex.join(["ufw", *c]) + "\n" for c in commands)
    assert text == (FIXTURES / "ufw_commands.txt").read_text()


def test_ufw_splits_more_than_fifteen_port_slots() -> None:
    firewall = Firewall.model_validate({"rules": [{"port": [*range(1000, 1014), "2000-2010"]}]})
    rules = desired_rules(normalize_all(firewall))
    assert [r.ports for r in rules] == [",".join(map(str, range(1000, 1014))), "2000:2010"]
