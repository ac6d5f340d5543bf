"""Parsing real tool output against golden files: ``nft -j list table`` (nftables
1.0.6), ufw's ``user.rules``/``user6.rules`` and ``ufw status verbose`` (ufw 0.36.2),
and the provider's whole observation script output, all captured on the test host."""

from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path
from typing import Any

import yaml
from reconciler_providers.firewall.host import BOOT_RULESET, parse_observation
from reconciler_providers.firewall.model import Firewall, normalize_all
from reconciler_providers.firewall.nft import desired_ruleset, parse_table
from reconciler_providers.firewall.provider import FirewallProvider
from reconciler_providers.firewall.ufw import (
    RawTuple,
    UfwRule,
    desired_rules,
    merge_families,
    parse_defaults_file,
    parse_status,
    parse_user_rules,
    rule_commands,
)

FIXTURES = Path(__file__).parent / "fixtures"


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def spec(name: str) -> Firewall:
    return Firewall.model_validate(yaml.safe_load(text(name)))


# ------------------------------------------------------------------------------ nftables

def test_nft_listing_reads_back_as_the_rendered_rules() -> None:
    firewall = spec("full_spec.yaml")
    want = desired_ruleset(firewall.policy, normalize_all(firewall))
    got = parse_table(text("nft_full.json"))
    assert got.policy == {"incoming": "reject", "outgoing": "drop", "forward": "drop"}
    assert got.rules == want.rules


def _listing_with(extra_rule_expr: list[dict[str, Any]]) -> str:
    data = json.loads(text("nft_full.json"))
    items = data["nftables"]
    # Appended by hand after the policy-reject pair, as `nft add rule` would.
    items.append({"rule": {"family": "inet", "table": "reconciler", "chain": "input", "handle": 99,
                           "expr": extra_rule_expr}})
    return json.dumps(data)


def test_hand_added_rule_is_exactly_one_extra_line() -> None:
    added = [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                        "right": 8080}}, {"accept": None}]
    got = parse_table(_listing_with(added))
    firewall = spec("full_spec.yaml")
    want = desired_ruleset(firewall.policy, normalize_all(firewall))
    # The trailing policy-reject pair is no longer last, so policy reads as drop and
    # the pair shows as rules: the drift is visible, not hidden.
    assert got.policy["incoming"] == "drop"
    assert got.rules["incoming"][: len(want.rules["incoming"])] == want.rules["incoming"]
    assert got.rules["incoming"][-1] == "tcp dport 8080 accept"


def test_unknown_statement_is_shown_not_dropped() -> None:
    odd = [{"mangle": {"key": {"meta": {"key": "mark"}}, "value": 1}}]
    got = parse_table(_listing_with(odd))
    assert got.rules["incoming"][-1] == json.dumps(odd[0], sort_keys=True)


def test_extra_chain_in_our_table_is_drift() -> None:
    data = json.loads(text("nft_full.json"))
    chain = {"family": "inet", "table": "reconciler", "name": "mine", "handle": 50}
    data["nftables"].append({"chain": chain})
    assert "chain mine" in parse_table(json.dumps(data)).rules["incoming"]


def test_provider_compare_shows_line_level_changes() -> None:
    firewall = spec("full_spec.yaml")
    ruleset = desired_ruleset(firewall.policy, normalize_all(firewall))
    desired = {"backend": "nftables", "policy": ruleset.policy, "rules": ruleset.rules}
    actual = copy.deepcopy(desired)
    actual["rules"]["incoming"].insert(5, "tcp dport 8080 accept")
    del actual["rules"]["outgoing"][-1]
    changes = FirewallProvider().compare(desired, actual)
    assert [(c.path, c.old, c.new) for c in changes] == [
        ("rules.incoming[5]", "tcp dport 8080 accept", None),
        ("rules.outgoing[4]", None, ruleset.rules["outgoing"][-1]),
    ]


# ------------------------------------------------------------------------------ ufw

def _ufw_rules() -> list[UfwRule | RawTuple]:
    return merge_families(parse_user_rules(text("ufw_user.rules"), 4),
                          parse_user_rules(text("ufw_user6.rules"), 6), ipv6_enabled=True)


def test_ufw_owned_rules_read_back_as_desired() -> None:
    owned = [r for r in _ufw_rules() if isinstance(r, UfwRule) and r.owned]
    assert owned == desired_rules(normalize_all(spec("ufw_spec.yaml")))


def test_ufw_unowned_rules_are_kept_apart() -> None:
    unowned = [r for r in _ufw_rules() if not (isinstance(r, UfwRule) and r.owned)]
    assert [r.display() if isinstance(r, UfwRule) else r.text for r in unowned] == [
        "allow in from any to any port 8080",
        "route:allow any any 0.0.0.0/0 any 0.0.0.0/0 in_eth0!out_eth1",
        "route:allow any any ::/0 any ::/0 in_eth0!out_eth1",
    ]


def test_ufw_half_rule_keeps_its_family() -> None:
    v4 = [r for r in parse_user_rules(text("ufw_user.rules"), 4) if isinstance(r, UfwRule) and r.owned]
    merged = merge_families(v4, [], ipv6_enabled=True)
    first = merged[0]
    assert isinstance(first, UfwRule)
    assert first.display() == ("allow in proto tcp from any to any port 22 comment 'reconciler: ssh' "
                               "(ipv4 only)")
    # With IPv6 off in /etc/default/ufw there is no IPv6 half to miss.
    first_no_v6 = merge_families(v4, [], ipv6_enabled=False)[0]
    assert isinstance(first_no_v6, UfwRule) and first_no_v6.family is None


def test_ufw_delete_after_the_common_prefix_then_append() -> None:
    want = desired_rules(normalize_all(spec("ufw_spec.yaml")))
    have = [want[0], want[2], want[3]]  # want[1] deleted by hand
    commands = rule_commands(want[:4], have)
    assert commands == [["delete", *want[2].args(with_comment=False)],
                        ["delete", *want[3].args(with_comment=False)],
                        want[1].args(), want[2].args(), want[3].args()]
    assert rule_commands(want, want) == []


def test_ufw_status_active() -> None:
    status = parse_status(text("ufw_status_active.txt"))
    assert status.active
    assert status.logging == "on (low)"
    assert status.defaults == {"incoming": "drop", "outgoing": "accept", "forward": "drop"}


def test_ufw_status_inactive() -> None:
    status = parse_status(text("ufw_status_inactive.txt"))
    assert not status.active and status.defaults is None


def test_ufw_defaults_file() -> None:
    policy, ipv6 = parse_defaults_file(text("ufw_default"))
    assert policy == {"incoming": "drop", "outgoing": "accept", "forward": "drop"}
    assert ipv6


# ------------------------------------------------------------------------------ whole observation

def test_observation_with_our_nft_table() -> None:
    facts = parse_observation(text("observe_nft.txt"))
    assert facts.management is not None
    assert facts.management.client == ipaddress.ip_address("172.17.0.1")
    assert (facts.management.port, facts.management.interface) == (22, "eth0")
    assert facts.nft_installed and facts.nft_listing is not None
    assert parse_table(facts.nft_listing).rules["incoming"][-2:] == [
        'tcp dport 22 accept comment "ssh"', 'tcp dport { 80, 443 } accept comment "web"']
    assert BOOT_RULESET in facts.boot_hashes and facts.boot_enabled == "enabled"
    assert facts.ufw_installed and not facts.ufw_status.active and not facts.ufw_marked
    assert facts.ufw_owned == []


def test_observation_with_ufw_active() -> None:
    facts = parse_observation(text("observe_ufw_active.txt"))
    assert facts.nft_listing is None and not facts.nft_present
    assert facts.ufw_status.active and facts.ufw_marked
    assert [r.display() for r in facts.ufw_owned] == [
        "allow in proto tcp from any to any port 22 comment 'reconciler: ssh'",
        "allow in proto tcp from any to any port 80,443 comment 'reconciler: web'",
    ]
    assert [r.display() for r in facts.ufw_unowned if isinstance(r, UfwRule)] == [
        "allow in proto tcp from any to any port 9999"]
