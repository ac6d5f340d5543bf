"""The ufw backend: spec rules as ufw commands, and ufw's own state read back.

ufw keeps each rule in ``/etc/ufw/user.rules`` (IPv4) and ``user6.rules`` (IPv6)
as a structured line, ``### tuple ### ACTION PROTO DPORT DST SPORT SRC DIR[_IFACE]
[comment=HEX]``, whether or not ufw is active; those lines are parsed, not the
``ufw status`` table. ``ufw status verbose`` tells whether ufw is active and its
default policies.

Rules the reconciler owns carry a ufw comment starting with ``reconciler``. A rule
without an address is one ufw rule with an IPv4 and an IPv6 half; ``ufw delete``
removes both halves. ufw treats two rules that differ only in their comment as the
same rule (adding one re-labels the other), so a hand-made rule identical to an
owned one is taken over.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .model import NormalizedRule, format_interval, format_network

OWNER_MARK = "reconciler"
ACTIONS = {"accept": "allow", "drop": "deny", "reject": "reject"}
VERDICTS = {v: k for k, v in ACTIONS.items()}
# /etc/default/ufw spells policies as iptables targets.
FILE_POLICIES = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject"}
POLICY_KEYS = {"incoming": "DEFAULT_INPUT_POLICY", "outgoing": "DEFAULT_OUTPUT_POLICY",
               "forward": "DEFAULT_FORWARD_POLICY"}
UFW_DIRECTIONS = {"incoming": "incoming", "outgoing": "outgoing", "forward": "routed"}
# iptables' multiport match takes at most 15 ports, a range counting as two.
MULTIPORT_SLOTS = 15
_ANY = {4: "0.0.0.0/0", 6: "::/0"}


@dataclass(frozen=True)
class UfwRule:
    """One ufw rule as ``ufw`` takes it on its command line.

    ``family`` is 4 or 6 for a rule that exists in one IP family only (an address
    pins it, or only one half of an address-less rule is present), else None."""

    action: str  # allow | deny | reject | limit
    direction: str  # in | out
    interface: str | None
    log: str  # "" | "log" | "log-all"
    proto: str  # tcp | udp | any
    ports: str | None  # ufw syntax: 80,443,8000:8100
    source: str | None
    destination: str | None
    comment: str
    family: int | None = None
    source_port: str | None = None  # never set by us; kept so such a rule is shown faithfully

    @property
    def owned(self) -> bool:
        return self.comment == OWNER_MARK or self.comment.startswith(OWNER_MARK + ":")

    def args(self, *, with_comment: bool = True) -> list[str]:
        """``ufw`` arguments that add this rule (prefix ``delete`` to remove it)."""
        out = [self.action, self.direction]
        if self.interface is not None:
            out += ["on", self.interface]
        if self.log:
            out.append(self.log)
        if self.proto != "any":
            out += ["proto", self.proto]
        out += ["from", self.source or "any"]
        if self.source_port is not None:
            out += ["port", self.source_port]
        out += ["to", self.destination or "any"]
        if self.ports is not None:
            out += ["port", self.ports]
        if with_comment and self.comment:
            out += ["comment", self.comment]
        return out

    def display(self) -> str:
        """How a rule shows in plans: its ufw command, plus the family when only one
        half of an address-less rule exists."""
        text = " ".join(self.args(with_comment=False))
        if self.comment:
            text += f" comment '{self.comment}'"
        if self.family is not None and self.source is None and self.destination is None:
            text += f" (ipv{self.family} only)"
        return text


# ------------------------------------------------------------------------------ from the spec

def _port_chunks(ports: Sequence[tuple[int, int]]) -> list[str | None]:
    if not ports:
        return [None]
    chunks: list[list[str]] = [[]]
    slots = 0
    for interval in ports:
        cost = 1 if interval[0] == interval[1] else 2
        if slots + cost > MULTIPORT_SLOTS:
            chunks.append([])
            slots = 0
        chunks[-1].append(format_interval(interval, ":"))
        slots += cost
    return [",".join(c) for c in chunks]


def owned_comment(rule: NormalizedRule) -> str:
    return f"{OWNER_MARK}: {rule.comment}" if rule.comment else OWNER_MARK


def rules_for(rule: NormalizedRule) -> list[UfwRule]:
    """The ufw rules one spec rule becomes: one per protocol (ufw needs a protocol
    for port lists and ranges) and per group of at most 15 ports. Rate limits are
    refused before this point (see firewall_model.UFW_RATE_LIMIT)."""
    out: list[UfwRule] = []
    for proto in rule.protocols or ("any",):
        for ports in _port_chunks(rule.ports):
            out.append(UfwRule(
                action=ACTIONS[rule.action], direction=rule.direction, interface=rule.interface,
                log="log" if rule.log else "", proto=proto, ports=ports,
                source=format_network(rule.source) if rule.source is not None else None,
                destination=format_network(rule.destination) if rule.destination is not None else None,
                comment=owned_comment(rule)))
    return out


def desired_rules(rules: Sequence[NormalizedRule]) -> list[UfwRule]:
    """Every owned ufw rule, in the order ufw will hold them (see ``canonical_order``),
    duplicates dropped (ufw would refuse to add a rule twice)."""
    seen: set[tuple[str, ...]] = set()
    out: list[UfwRule] = []
    for rule in rules:
        for ufw_rule in rules_for(rule):
            key = tuple(ufw_rule.args(with_comment=False))
            if key not in seen:
                seen.add(key)
                out.append(ufw_rule)
    return canonical_order(out)


def canonical_order(rules: Sequence[UfwRule]) -> list[UfwRule]:
    """ufw appends each rule's IPv4 half to user.rules and its IPv6 half to
    user6.rules, so read back the IPv4-bearing rules come first, in order, then the
    IPv6-only ones. Desired and observed rules are both put in this order."""
    v6_only = [r for r in rules if _family(r) == 6]
    return [r for r in rules if _family(r) != 6] + v6_only


def _family(rule: UfwRule) -> int | None:
    if rule.family is not None:
        return rule.family
    for addr in (rule.source, rule.destination):
        if addr is not None:
            return 6 if ":" in addr else 4
    return None


# ------------------------------------------------------------------------------ from the host

_TUPLE = re.compile(r"^### tuple ### (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)"
                    r"(?: comment=([0-9a-fA-F]*))?\s*$")


@dataclass(frozen=True)
class RawTuple:
    """A ``### tuple ###`` line ufw could not express as a plain rule (routed or app
    rules): never ours, listed as unmanaged with its original text."""

    text: str


def _decode_comment(hexed: str | None) -> str:
    if not hexed:
        return ""
    try:
        return bytes.fromhex(hexed).decode("utf-8", "replace")
    except ValueError:
        return hexed


def _address(text: str) -> str | None:
    return None if text in ("0.0.0.0/0", "::/0", "any") else text


def parse_user_rules(text: str, family: int) -> list[UfwRule | RawTuple]:
    """Rules from ufw's ``user.rules`` (family 4) or ``user6.rules`` (family 6)."""
    out: list[UfwRule | RawTuple] = []
    for line in text.splitlines():
        if not line.startswith("### tuple ###"):
            continue
        match = _TUPLE.match(line)
        if match is None or ":" in match.group(1):  # app rules have more fields; route:... rules
            out.append(RawTuple(line.removeprefix("### tuple ###").strip()))
            continue
        action, proto, dport, dst, sport, src, where, hexed = match.groups()
        action, _, log = action.partition("_")
        direction, _, interface = where.partition("_")
        out.append(UfwRule(
            action=action, direction=direction, interface=interface or None, log=log, proto=proto,
            ports=_canonical_ports(dport), source=_address(src), destination=_address(dst),
            comment=_decode_comment(hexed), family=family,
            source_port=None if sport == "any" else sport))
    return out


def _canonical_ports(ufw_ports: str) -> str | None:
    """ufw's port list in the order and spelling ``rules_for`` produces."""
    if ufw_ports == "any":
        return None
    intervals: list[tuple[int, int]] = []
    for item in ufw_ports.split(","):
        lo, _, hi = item.partition(":")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            return ufw_ports
        intervals.append((int(lo), int(hi or lo)))
    return ",".join(format_interval(i, ":") for i in sorted(intervals))


def merge_families(v4: Sequence[UfwRule | RawTuple], v6: Sequence[UfwRule | RawTuple],
                   ipv6_enabled: bool) -> list[UfwRule | RawTuple]:
    """One entry per ufw rule: an address-less rule's IPv4 and IPv6 halves become one
    rule without a family; a half whose twin is missing keeps its family."""
    pending_v6 = list(v6)
    merged: list[UfwRule | RawTuple] = []
    for item in v4:
        if isinstance(item, UfwRule) and item.source is None and item.destination is None:
            twin = replace(item, family=6)
            if twin in pending_v6:
                pending_v6.remove(twin)
                item = replace(item, family=None)
            elif not ipv6_enabled:
                item = replace(item, family=None)
        elif isinstance(item, UfwRule):
            item = replace(item, family=None)
        merged.append(item)
    for item in pending_v6:
        if isinstance(item, UfwRule) and (item.source is not None or item.destination is not None):
            item = replace(item, family=None)
        merged.append(item)
    return merged


@dataclass(frozen=True)
class UfwStatus:
    """What ``ufw status verbose`` says; ``defaults`` only when ufw is active."""

    active: bool
    logging: str | None = None
    defaults: dict[str, str] | None = None


_DEFAULT_ITEM = re.compile(r"(\w+) \((incoming|outgoing|routed)\)")


def parse_status(text: str) -> UfwStatus:
    """Parse ``ufw status verbose``. ``defaults`` maps incoming/outgoing/forward to
    accept/drop/reject (ufw's allow/deny/reject), or ``disabled`` for routing when
    forwarding is off in the kernel."""
    active = False
    logging: str | None = None
    defaults: dict[str, str] | None = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        value = value.strip()
        if key == "Status":
            active = value == "active"
        elif key == "Logging":
            logging = value
        elif key == "Default":
            defaults = {}
            for word, where in _DEFAULT_ITEM.findall(value):
                name = "forward" if where == "routed" else where
                defaults[name] = VERDICTS.get(word, word)
    return UfwStatus(active, logging, defaults if active else None)


def parse_defaults_file(text: str) -> tuple[dict[str, str | None], bool]:
    """Default policies (incoming/outgoing/forward) and whether IPv6 is on, from
    ``/etc/default/ufw``: what ufw applies whenever it (re)loads."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip('"')
    policy: dict[str, str | None] = {name: FILE_POLICIES.get(values.get(key, "")) for name, key in
                                     POLICY_KEYS.items()}
    return policy, values.get("IPV6", "yes").lower() == "yes"


def policy_commands(want: dict[str, str | None], have: dict[str, str | None]) -> list[list[str]]:
    """``ufw default ...`` commands for each policy that differs (None = leave alone)."""
    out: list[list[str]] = []
    for name, verdict in want.items():
        if verdict is not None and have.get(name) != verdict:
            out.append(["default", ACTIONS[verdict], UFW_DIRECTIONS[name]])
    return out


def rule_commands(want: Sequence[UfwRule], have: Sequence[UfwRule]) -> list[list[str]]:
    """``ufw`` commands that turn the owned rules ``have`` into ``want``, order included.

    ufw can only append (numbered inserts count IPv4 and IPv6 halves separately), so
    the owned rules after the longest common prefix are deleted and the rest of
    ``want`` is appended in order. Unowned rules are never in ``have``."""
    common = 0
    for a, b in zip(want, have, strict=False):
        if a != b:
            break
        common += 1
    commands = [["delete", *r.args(with_comment=False)] for r in have[common:]]
    commands += [r.args() for r in want[common:]]
    return commands
