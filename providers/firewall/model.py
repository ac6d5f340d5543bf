"""The firewall spec and its backend-neutral meaning.

``Firewall`` is what users write. ``normalize`` turns each rule into a
``NormalizedRule``: ports as sorted, non-overlapping intervals, addresses as
canonical networks, the protocol resolved (``tcp`` when a port is given, any
protocol otherwise). Both backends render from ``NormalizedRule`` only, and the
lockout check (``management_port_blocker``) reasons about it, so the two
backends and the check cannot disagree about what a rule means.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.provider import Issue, Resource

Verdict = Literal["accept", "drop", "reject"]
BackendName = Literal["auto", "nftables", "ufw"]
ProtocolName = Literal["tcp", "udp", "both", "any"]
Direction = Literal["in", "out"]
PortSpec = int | str

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

RATE_UNITS = ("second", "minute", "hour", "day")
_RATE = re.compile(r"^([1-9][0-9]{0,8})/(second|minute|hour|day)$")
_PORT_RANGE = re.compile(r"^([0-9]{1,5})\s*-\s*([0-9]{1,5})$")
# IFNAMSIZ is 16 including the NUL; no wildcards, since ufw cannot express them.
_INTERFACE = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")
# Comments travel into nft strings and ufw's own rule files: no quotes or controls.
_COMMENT = re.compile(r"^[A-Za-z0-9 _.,:;/()+=@#%-]{0,64}$")
CONFIRM_MIN, CONFIRM_MAX = 5, 600


class Policy(BaseModel):
    """What happens to traffic no rule decides. ``forward`` unset leaves forwarding
    alone (Docker hosts route container traffic through it)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    incoming: Verdict = Field(default="drop", description="Incoming connections no rule accepts.")
    outgoing: Verdict = Field(default="accept", description="Outgoing connections no rule decides.")
    forward: Verdict | None = Field(default=None, description="Forwarded traffic; unset leaves it alone.")


class Rule(BaseModel):
    """One rule; the first rule that matches a new connection decides it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    port: PortSpec | list[PortSpec] | None = Field(
        default=None, description='22, "8000-8100", or a list of those; unset = every port.')
    protocol: ProtocolName | None = Field(
        default=None, description="tcp, udp, both or any (default: tcp with a port, any without).")
    source: str | None = Field(default=None, description="Address or CIDR (IPv4 or IPv6).")
    destination: str | None = Field(default=None, description="Address or CIDR (IPv4 or IPv6).")
    interface: str | None = Field(default=None, description="Network interface (incoming or outgoing side).")
    action: Verdict = Field(default="accept", description="accept, drop or reject.")
    direction: Direction = Field(default="in", description="in (to this host) or out (from it).")
    rate_limit: str | None = Field(
        default=None, description='e.g. "10/minute": accept at most this many packets; the rest fall '
                                  "through to later rules and the policy (nftables only).")
    log: bool = Field(default=False, description="Log the connections this rule matches.")
    comment: str = Field(default="", description="Shown beside the rule on the host.")


class Firewall(Resource):
    """The host firewall: one per host."""

    backend: BackendName = Field(
        default="auto", description="auto: ufw when it is installed and active, else nftables.")
    policy: Policy = Field(default_factory=Policy, description="What happens to traffic no rule decides.")
    rules: list[Rule] = Field(default_factory=list, description="Rules; the first that matches decides.")
    confirm_seconds: int = Field(
        default=30, description="The host restores the previous rules unless a fresh SSH login "
                                "confirms the change within this many seconds.")
    allow_management_port_block: bool = Field(
        default=False, description="Allow rules that block the SSH port the reconciler uses "
                                   "(apply still rolls back when SSH is cut).")


@dataclass(frozen=True)
class NormalizedRule:
    """A rule with every default resolved and every value in canonical form."""

    index: int
    direction: Direction
    action: Verdict
    protocols: tuple[str, ...]  # () = any protocol; else a subset of ("tcp", "udp")
    ports: tuple[tuple[int, int], ...]  # () = every port
    source: Network | None
    destination: Network | None
    interface: str | None
    rate: tuple[int, str] | None
    log: bool
    comment: str

    @property
    def family(self) -> int | None:
        """4 or 6 when an address pins the rule to one IP family, else None."""
        for net in (self.source, self.destination):
            if net is not None:
                return net.version
        return None


# ------------------------------------------------------------------------------ parsing

def parse_ports(value: PortSpec | list[PortSpec] | None) -> tuple[tuple[int, int], ...]:
    """Ports as sorted intervals. Raises ValueError with a user-facing message.

    Overlapping or touching entries are refused rather than merged: nftables merges
    some of them (a range and a neighbouring port) but not others (two neighbouring
    ports), so accepting them would make the observed rules differ from the spec."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("an empty port list matches nothing; leave port out to match every port")
    intervals: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"expected a port number or range, got {item!r}")
        if isinstance(item, int):
            lo = hi = item
        else:
            text = item.strip()
            match = _PORT_RANGE.match(text)
            if match:
                lo, hi = int(match.group(1)), int(match.group(2))
            elif text.isdigit():
                lo = hi = int(text)
            else:
                raise ValueError(f'expected a port (22) or a range ("8000-8100"), got {item!r}')
            if lo > hi:
                raise ValueError(f"port range {item!r} runs backwards")
        for p in (lo, hi):
            if not 1 <= p <= 65535:
                raise ValueError(f"port {p} is out of range (1-65535)")
        intervals.append((lo, hi))
    intervals.sort()
    for (lo1, hi1), (lo2, hi2) in itertools.pairwise(intervals):
        if lo2 <= hi1 or (lo2 == hi1 + 1 and (lo1 != hi1 or lo2 != hi2)):
            raise ValueError(f"ports {format_interval((lo1, hi1))} and {format_interval((lo2, hi2))} "
                             "overlap or touch; write them as one range")
    return tuple(intervals)


def format_interval(interval: tuple[int, int], sep: str = "-") -> str:
    lo, hi = interval
    return str(lo) if lo == hi else f"{lo}{sep}{hi}"


def parse_network(text: str) -> Network:
    """An address or CIDR; host bits must be zero (``10.0.0.5/8`` is refused)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an IPv4/IPv6 address or CIDR network ({exc})") from None


def format_network(net: Network) -> str:
    """``10.0.0.0/8``; a single address without its /32 or /128, as nft prints it."""
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


def parse_rate(text: str) -> tuple[int, str]:
    match = _RATE.match(text.strip())
    if not match:
        raise ValueError(f'expected a rate such as "10/minute" (per {", ".join(RATE_UNITS)}), got {text!r}')
    return int(match.group(1)), match.group(2)


def resolve_protocols(protocol: ProtocolName | None, has_ports: bool) -> tuple[str, ...]:
    if protocol is None:
        protocol = "tcp" if has_ports else "any"
    if protocol == "any":
        if has_ports:
            raise ValueError("ports belong to tcp or udp: set protocol to tcp, udp or both")
        return ()
    return ("tcp", "udp") if protocol == "both" else (protocol,)


def normalize(index: int, rule: Rule) -> NormalizedRule:
    """The canonical form of a rule. Raises ValueError (use ``rule_issues`` to get
    every problem with its field path instead)."""
    ports = parse_ports(rule.port)
    source = parse_network(rule.source) if rule.source is not None else None
    destination = parse_network(rule.destination) if rule.destination is not None else None
    if source is not None and destination is not None and source.version != destination.version:
        raise ValueError("source and destination are of different IP families (IPv4 and IPv6)")
    return NormalizedRule(
        index=index, direction=rule.direction, action=rule.action,
        protocols=resolve_protocols(rule.protocol, bool(ports)), ports=ports,
        source=source, destination=destination, interface=rule.interface,
        rate=parse_rate(rule.rate_limit) if rule.rate_limit is not None else None,
        log=rule.log, comment=rule.comment)


def normalize_all(firewall: Firewall) -> list[NormalizedRule]:
    return [normalize(i, r) for i, r in enumerate(firewall.rules)]


def rule_issues(index: int, rule: Rule) -> list[Issue]:
    """Every offline problem with one rule, each at its field."""
    at = ("rules", index)
    issues: list[Issue] = []
    ports: tuple[tuple[int, int], ...] = ()
    try:
        ports = parse_ports(rule.port)
    except ValueError as exc:
        issues.append(Issue((*at, "port"), str(exc)))
    try:
        resolve_protocols(rule.protocol, bool(ports) or rule.port is not None)
    except ValueError as exc:
        issues.append(Issue((*at, "protocol"), str(exc)))
    families: dict[str, int] = {}
    for name in ("source", "destination"):
        text = getattr(rule, name)
        if text is None:
            continue
        try:
            families[name] = parse_network(text).version
        except ValueError as exc:
            issues.append(Issue((*at, name), str(exc)))
    if len(set(families.values())) > 1:
        issues.append(Issue((*at, "destination"), "source and destination are of different IP families "
                                                  "(IPv4 and IPv6); no packet can match both"))
    if rule.interface is not None and not _INTERFACE.match(rule.interface):
        issues.append(Issue((*at, "interface"), f"{rule.interface!r} is not an interface name "
                                                "(1-15 letters, digits, '_', '.', '@', '-'; no wildcards)"))
    if rule.rate_limit is not None:
        try:
            parse_rate(rule.rate_limit)
        except ValueError as exc:
            issues.append(Issue((*at, "rate_limit"), str(exc)))
        if rule.action != "accept":
            issues.append(Issue((*at, "rate_limit"), "rate_limit limits what a rule accepts; "
                                                     f"it means nothing with action {rule.action}"))
    if not _COMMENT.match(rule.comment):
        issues.append(Issue((*at, "comment"), "comments are at most 64 characters of letters, digits, "
                                              "spaces and _ . , : ; / ( ) + = @ # % - (no quotes)"))
    return issues


def firewall_issues(firewall: Firewall) -> list[Issue]:
    """Offline validation of the whole firewall object."""
    issues: list[Issue] = []
    for i, rule in enumerate(firewall.rules):
        issues.extend(rule_issues(i, rule))
        if firewall.backend == "ufw" and rule.rate_limit is not None:
            issues.append(Issue(("rules", i, "rate_limit"), UFW_RATE_LIMIT))
    if not CONFIRM_MIN <= firewall.confirm_seconds <= CONFIRM_MAX:
        issues.append(Issue(("confirm_seconds",), f"must be between {CONFIRM_MIN} and {CONFIRM_MAX} seconds"))
    if firewall.allow_management_port_block:
        issues.append(Issue(("allow_management_port_block",), MANAGEMENT_OVERRIDE_WARNING, warning=True))
    return issues


UFW_RATE_LIMIT = ("the ufw backend cannot express rate_limit (ufw's own `limit` is fixed at 6 connections "
                  "per 30 seconds per source); use backend: nftables or drop rate_limit")

MANAGEMENT_OVERRIDE_WARNING = (
    "allow_management_port_block is true: rules that block the SSH port the reconciler manages this host "
    "over are applied instead of refused; if a change cuts new SSH logins, the host restores the previous "
    "rules after confirm_seconds and apply fails")


# ------------------------------------------------------------------------------ lockout check

@dataclass(frozen=True)
class ManagementPath:
    """How the reconciler reaches the host: from ``$SSH_CONNECTION`` of its own session,
    so ``port`` is the port sshd listens on (not a port published in front of it)."""

    client: Address
    server: Address
    port: int
    interface: str | None = None  # where the client's packets come in (``ip route get``)

    @classmethod
    def parse(cls, ssh_connection: str, interface: str | None = None) -> ManagementPath | None:
        """From ``client_ip client_port server_ip server_port``; None when not over SSH."""
        parts = ssh_connection.split()
        if len(parts) != 4:
            return None
        try:
            client = ipaddress.ip_address(parts[0].split("%", 1)[0])
            server = ipaddress.ip_address(parts[2].split("%", 1)[0])
            port = int(parts[3])
        except ValueError:
            return None
        return cls(client, server, port, interface)


def _matches(net: Network | None, addr: Address) -> bool | None:
    """True/False when the rule's address decides; None when it does not constrain."""
    if net is None:
        return None
    return net.version == addr.version and addr in net


def management_port_blocker(rules: list[NormalizedRule], incoming_policy: Verdict,
                            path: ManagementPath) -> str | None:
    """Why a new SSH connection over ``path`` would not be accepted, or None if it would.

    Follows the incoming chain the way both backends build it: loopback is always
    accepted, then the rules in order, then the policy. A rule whose interface is
    unknown to match counts as matching when it drops (pessimistic) and as not
    matching when it accepts. A rate-limited accept counts as an accept: the
    reconciler opens only a couple of connections per run."""
    if path.interface == "lo":
        return None
    for rule in rules:
        if rule.direction != "in" or (rule.protocols and "tcp" not in rule.protocols):
            continue
        if rule.ports and not any(lo <= path.port <= hi for lo, hi in rule.ports):
            continue
        if _matches(rule.source, path.client) is False or _matches(rule.destination, path.server) is False:
            continue
        if rule.interface is not None and path.interface is not None and rule.interface != path.interface:
            continue
        certain = rule.interface is None or path.interface is not None
        if rule.action == "accept":
            if certain:
                return None
            continue
        return (f"rules[{rule.index}] ({rule.action} {describe(rule)}) matches new connections to port "
                f"{path.port} from {path.client}")
    if incoming_policy == "accept":
        return None
    return f"policy.incoming is {incoming_policy} and no rule accepts tcp port {path.port} from {path.client}"


def describe(rule: NormalizedRule) -> str:
    """A short human description of what a rule matches (for messages)."""
    parts = ["/".join(rule.protocols) or "any protocol"]
    if rule.ports:
        parts.append("port " + ",".join(format_interval(p) for p in rule.ports))
    if rule.source is not None:
        parts.append(f"from {format_network(rule.source)}")
    if rule.destination is not None:
        parts.append(f"to {format_network(rule.destination)}")
    if rule.interface is not None:
        parts.append(f"on {rule.interface}")
    return " ".join(parts)
