"""The nftables backend: render our table as text, and read it back from ``nft -j``.

The reconciler owns exactly one table, ``table inet reconciler``, and never
touches any other. The rendered file replaces it atomically in one ``nft -f``
transaction (``table ...`` creates it if missing, ``delete table`` empties it,
then the full definition follows), so there is no moment with half a ruleset.

Comparison happens on rule *lines*: ``rule_line`` renders a normalized spec rule
in the form ``nft list`` prints, and ``rule_text`` rebuilds that form from the
JSON nft reports, so a hand-added or edited rule shows up as exactly that line.
nft canonicalises a few things on the way in (set elements sorted, ``reject``
turned into ``reject with icmp port-unreachable`` under an ``ip`` match), and
the renderer and the parser agree on those; the golden tests hold them together.

A base chain's policy can only be accept or drop, so policy ``reject`` is a drop
policy plus two final rules marked ``reconciler: policy reject``; the parser folds
them back into ``reject``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import NormalizedRule, Policy, format_interval, format_network

TABLE = "reconciler"
FAMILY = "inet"
CHAINS = {"incoming": "input", "outgoing": "output", "forward": "forward"}
LOG_PREFIX = "[reconciler] "
POLICY_REJECT_COMMENT = "reconciler: policy reject"

# Always accepted, before any spec rule: replies to connections already allowed
# (this is what keeps the reconciler's own SSH session alive through any change),
# loopback, and the ICMP that IPv4 and IPv6 need to work at all (errors, path MTU,
# IPv6 neighbour discovery) plus ping, as ufw allows by default. nft prints ICMP
# type sets in numeric order, so they are written in that order here.
BASELINE: dict[str, tuple[str, ...]] = {
    "incoming": (
        "ct state established,related accept",
        'iifname "lo" accept',
        "icmp type { destination-unreachable, echo-request, time-exceeded, parameter-problem } accept",
        "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, "
        "echo-request, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept",
    ),
    "outgoing": (
        "ct state established,related accept",
        'oifname "lo" accept',
        "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept",
    ),
    "forward": (
        "ct state established,related accept",
    ),
}

POLICY_REJECT_RULES = (
    f'meta l4proto tcp reject with tcp reset comment "{POLICY_REJECT_COMMENT}"',
    f'reject comment "{POLICY_REJECT_COMMENT}"',
)

HEADER = """\
# Managed by reconciler: the table `inet reconciler`, loaded at boot by
# reconciler-firewall.service. Local edits are overwritten on the next run.
"""


# ------------------------------------------------------------------------------ rendering

def _ports(ports: Sequence[tuple[int, int]]) -> str:
    items = [format_interval(p) for p in ports]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def rule_line(rule: NormalizedRule) -> str:
    """One spec rule as the line ``nft list`` prints for it."""
    parts: list[str] = []
    if rule.interface is not None:
        parts.append(f'{"iifname" if rule.direction == "in" else "oifname"} "{rule.interface}"')
    for field_name, net in (("saddr", rule.source), ("daddr", rule.destination)):
        if net is not None:
            parts.append(f"{'ip' if net.version == 4 else 'ip6'} {field_name} {format_network(net)}")
    if len(rule.protocols) == 1:
        proto = rule.protocols[0]
        parts.append(f"{proto} dport {_ports(rule.ports)}" if rule.ports else f"meta l4proto {proto}")
    elif rule.protocols:
        parts.append("meta l4proto { tcp, udp }")
        if rule.ports:
            parts.append(f"th dport {_ports(rule.ports)}")
    if rule.rate is not None:
        parts.append(f"limit rate {rule.rate[0]}/{rule.rate[1]}")
    if rule.log:
        parts.append(f'log prefix "{LOG_PREFIX}"')
    if rule.action == "reject" and rule.protocols == ("tcp",):
        parts.append("reject with tcp reset")
    else:
        parts.append(rule.action)
    if rule.comment:
        parts.append(f'comment "{rule.comment}"')
    return " ".join(parts)


@dataclass(frozen=True)
class Ruleset:
    """Our table as plain data: chain policies and rule lines, keyed by direction."""

    policy: dict[str, str | None]
    rules: dict[str, list[str]] = field(default_factory=dict)


def desired_ruleset(policy: Policy, rules: Sequence[NormalizedRule]) -> Ruleset:
    """What the table must contain. The forward chain exists only when its policy is set."""
    wanted: dict[str, str | None] = {"incoming": policy.incoming, "outgoing": policy.outgoing,
                                     "forward": policy.forward}
    lines: dict[str, list[str]] = {}
    for direction, verdict in wanted.items():
        if verdict is None:
            continue
        chain = [*BASELINE[direction]]
        if direction != "forward":
            side = "in" if direction == "incoming" else "out"
            chain += [rule_line(r) for r in rules if r.direction == side]
        lines[direction] = chain
    return Ruleset(wanted, lines)


def render(ruleset: Ruleset) -> str:
    """The file ``nft -f`` loads: an atomic replace of our table, and nothing else."""
    out = [HEADER, f"table {FAMILY} {TABLE}", f"delete table {FAMILY} {TABLE}", f"table {FAMILY} {TABLE} {{"]
    for direction, chain in CHAINS.items():
        verdict = ruleset.policy.get(direction)
        if verdict is None:
            continue
        out.append(f"\tchain {chain} {{")
        out.append(f"\t\ttype filter hook {chain} priority filter; "
                   f"policy {'drop' if verdict == 'reject' else verdict};")
        body = ruleset.rules.get(direction, [])
        if verdict == "reject":
            body = [*body, *POLICY_REJECT_RULES]
        out.extend(f"\t\t{line}" for line in body)
        out.append("\t}")
    out.append("}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ parsing

class NftParseError(ValueError):
    """``nft -j`` output that is not a listing of one table."""


_BARE_META = frozenset({"iifname", "oifname", "iif", "oif", "mark"})
_STRING_META = frozenset({"iifname", "oifname"})
_PORT_UNREACHABLE = frozenset({"icmp", "icmpx", "icmpv6"})


def _left_text(left: Any) -> tuple[str, bool]:
    """The text of a match's left side, and whether its values are quoted strings."""
    if isinstance(left, dict):
        if "meta" in left:
            key = str(left["meta"].get("key"))
            return (key if key in _BARE_META else f"meta {key}"), key in _STRING_META
        if "payload" in left:
            p = left["payload"]
            return f"{p.get('protocol')} {p.get('field')}", False
        if "ct" in left:
            return f"ct {left['ct'].get('key')}", False
    return json.dumps(left, sort_keys=True), False


def _value_text(value: Any, quoted: bool) -> str:
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return f'"{value}"' if quoted else value
    if isinstance(value, list):
        return ",".join(_value_text(v, quoted) for v in value)
    if isinstance(value, dict):
        if "set" in value:
            elements = value["set"] if isinstance(value["set"], list) else [value["set"]]
            return "{ " + ", ".join(_value_text(v, quoted) for v in elements) + " }"
        if "range" in value:
            lo, hi = value["range"]
            return f"{_value_text(lo, quoted)}-{_value_text(hi, quoted)}"
        if "prefix" in value:
            return f"{value['prefix']['addr']}/{value['prefix']['len']}"
    return json.dumps(value, sort_keys=True)


def _expr_text(expr: Mapping[str, Any]) -> str:
    """One JSON statement as nft text, for the vocabulary the renderer uses; anything
    else comes out as its JSON, which still compares (and shows) as a difference."""
    if len(expr) != 1:
        return json.dumps(expr, sort_keys=True)
    (key, body), = expr.items()
    if key == "match":
        left, quoted = _left_text(body.get("left"))
        right = _value_text(body.get("right"), quoted)
        op = body.get("op", "==")
        return f"{left} {right}" if op in ("==", "in") else f"{left} {op} {right}"
    if key in ("accept", "drop") and body is None:
        return key
    if key == "reject":
        if body is None or (body.get("type") in _PORT_UNREACHABLE
                            and body.get("expr", "port-unreachable") == "port-unreachable"):
            return "reject"
        if body.get("type") == "tcp reset":
            return "reject with tcp reset"
        return f"reject with {body.get('type')} {body.get('expr', '')}".rstrip()
    if key == "limit" and isinstance(body, dict) and body.get("rate_unit", "packets") == "packets":
        over = "over " if body.get("inv") else ""
        text = f"limit rate {over}{body.get('rate')}/{body.get('per')}"
        burst = body.get("burst", 5)
        return text if burst in (0, 5) else f"{text} burst {burst} packets"
    if key == "log" and isinstance(body, dict) and set(body) <= {"prefix"}:
        return f'log prefix "{body["prefix"]}"' if "prefix" in body else "log"
    if key == "counter":
        return "counter"
    if key in ("jump", "goto") and isinstance(body, dict):
        return f"{key} {body.get('target')}"
    return json.dumps(expr, sort_keys=True)


def rule_text(rule: Mapping[str, Any]) -> str:
    """A rule object from ``nft -j`` as the line ``nft list`` would print."""
    text = " ".join(_expr_text(e) for e in rule.get("expr", []))
    if rule.get("comment"):
        text += f' comment "{rule["comment"]}"'
    return text


def parse_table(listing: str) -> Ruleset:
    """Our table from ``nft -j list table inet reconciler``.

    Chains are keyed by direction (input -> incoming ...); a chain that is not one
    of ours shows as ``chain NAME`` in the incoming rules, so it is drift too."""
    try:
        data = json.loads(listing)
        items = data["nftables"]
    except (ValueError, KeyError, TypeError) as exc:
        raise NftParseError(f"cannot read `nft -j` output: {exc}") from None
    by_chain = {chain: direction for direction, chain in CHAINS.items()}
    policy: dict[str, str | None] = {d: None for d in CHAINS}
    rules: dict[str, list[str]] = {}
    extra: list[str] = []
    for item in items:
        if "chain" in item:
            chain = item["chain"]
            direction = by_chain.get(chain.get("name", ""))
            if direction is None or chain.get("hook") != chain.get("name"):
                extra.append(f"chain {chain.get('name')}")
                continue
            policy[direction] = chain.get("policy", "accept")
            rules.setdefault(direction, [])
        elif "rule" in item:
            rule = item["rule"]
            direction = by_chain.get(rule.get("chain", ""))
            if direction is None:
                extra.append(f"chain {rule.get('chain')}: {rule_text(rule)}")
                continue
            rules.setdefault(direction, []).append(rule_text(rule))
        elif "set" in item or "map" in item:
            kind = "set" if "set" in item else "map"
            extra.append(f"{kind} {item[kind].get('name')}")
    for direction, lines in rules.items():
        if policy[direction] == "drop" and tuple(lines[-2:]) == POLICY_REJECT_RULES:
            policy[direction] = "reject"
            del lines[-2:]
    if extra:
        rules.setdefault("incoming", []).extend(extra)
    return Ruleset(policy, rules)
