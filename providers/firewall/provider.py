"""The host firewall, with nftables or ufw: one ``firewall`` object per host.

State (the same shape for both backends)::

    backend:   nftables | ufw          where the reconciler's rules live on the host
    policy:    {incoming, outgoing, forward}
    rules:     {incoming: [...], outgoing: [...]}   one line per rule, as the tool prints it
    persisted: sha256 of /etc/reconciler/firewall.nft   (nftables only)
    boot_unit: enabled | disabled | modified | absent   (nftables only)
    enabled:   true                    ufw only: ufw is active

* nftables: the reconciler owns ``table inet reconciler`` and nothing else; the
  table is replaced atomically (see ``firewall_nft``) and persisted as
  ``/etc/reconciler/firewall.nft`` with ``reconciler-firewall.service``.
* ufw: the reconciler owns the ufw rules commented ``reconciler...``; the others
  are listed as unmanaged and left alone.

Safety: replies to established connections are always accepted; a spec that
would block new SSH logins on the port the reconciler came in on is refused at
plan time unless ``allow_management_port_block`` is set; and every change is
commit-confirmed (see ``firewall_host``): the host undoes it by itself unless a
fresh SSH login works afterwards.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.plan import Action, FieldChange
from reconciler.provider import ApplyItem, HostContext, Issue, Prerequisite, Provider, State
from reconciler.transport.base import Transport

from .host import (
    BOOT_RULESET,
    BOOT_UNIT,
    BOOT_UNIT_TEXT,
    HostFacts,
    arm_and_load_nft,
    arm_ufw,
    confirm,
    mark_ufw,
    observe_host,
    persist_nft,
    remove_nft,
    run_ufw,
    unmark_ufw,
)
from .model import (
    UFW_RATE_LIMIT,
    Firewall,
    NormalizedRule,
    firewall_issues,
    management_port_blocker,
    normalize_all,
)
from .nft import NftParseError, Ruleset, desired_ruleset, parse_table, render
from .ufw import UfwRule, desired_rules, policy_commands, rule_commands

__all__ = ["Firewall", "FirewallProvider"]

RESOURCE_ID = "host"
_SCRATCH = "firewall"
_SCRATCH_BACKEND = "firewall.backend"
DIRECTIONS = ("incoming", "outgoing")
POLICY_NAMES = ("incoming", "outgoing", "forward")


class FirewallPlanError(ReconcilerError):
    """The spec cannot be applied to this host as it is (plan fails, exit 1)."""


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def resolve_backend(resource: Firewall, facts: HostFacts) -> str:
    """auto means ufw when ufw is installed and active, else nftables."""
    if resource.backend != "auto":
        return resource.backend
    return "ufw" if facts.ufw_installed and facts.ufw_status.active else "nftables"


def _facts(ctx: HostContext) -> HostFacts:
    facts = ctx.scratch.get(_SCRATCH)
    if not isinstance(facts, HostFacts):
        raise FirewallPlanError("firewall: the host was not observed before planning (internal error)")
    return facts


class FirewallProvider(Provider[Firewall]):
    kind = "firewall"
    model = Firewall
    order = 60
    singleton = True
    description = "The host firewall (nftables or ufw): policies and rules, commit-confirmed."

    def resource_id(self, resource: Firewall) -> str:
        return RESOURCE_ID

    def prerequisites(self, resource: Firewall) -> list[Prerequisite]:
        """The backend's tool; with ``auto`` either one."""
        if resource.backend == "nftables":
            return ["packages:nftables"]
        if resource.backend == "ufw":
            return ["packages:ufw"]
        return [("packages:nftables", "packages:ufw")]

    def validate(self, resource: Firewall) -> list[Issue]:
        return firewall_issues(resource)

    # ------------------------------------------------------------------ reading
    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, Firewall]) -> dict[
            str, State | None]:
        facts = observe_host(ctx.transport)
        ctx.scratch[_SCRATCH] = facts
        resource = resources.get(RESOURCE_ID)
        ctx.scratch[_SCRATCH_BACKEND] = resolve_backend(resource, facts) if resource is not None else None
        return {rid: self._actual(facts, resource) if rid == RESOURCE_ID else None for rid in ids}

    @staticmethod
    def _actual(facts: HostFacts, resource: Firewall | None) -> State | None:
        present = [name for name, here in (("nftables", facts.nft_present),
                                           ("ufw", facts.ufw_marked or bool(facts.ufw_owned))) if here]
        if not present:
            return None
        backend = resolve_backend(resource, facts) if resource is not None else present[0]
        state: State = {"backend": "+".join(present)}
        if backend == "nftables":
            try:
                ruleset = parse_table(facts.nft_listing) if facts.nft_listing is not None else None
            except NftParseError as exc:
                raise ReconcilerError(f"firewall: {exc}") from exc
            state["policy"] = ruleset.policy if ruleset else dict.fromkeys(POLICY_NAMES)
            state["rules"] = ruleset.rules if ruleset else {}
            state["persisted"] = _prefixed(facts.boot_hashes.get(BOOT_RULESET))
            state["boot_unit"] = _boot_unit_status(facts)
        else:
            policy = dict(facts.ufw_policy)
            if facts.ufw_status.defaults:  # what the running ufw reports wins over its config file
                policy.update({k: v for k, v in facts.ufw_status.defaults.items() if k != "forward"})
            if resource is not None and resource.policy.forward is None:
                policy["forward"] = None  # not managed: do not show it as a difference
            state["enabled"] = facts.ufw_status.active
            state["policy"] = policy
            state["rules"] = _by_direction(facts.ufw_owned)
        return state

    def desired(self, resource: Firewall, ctx: HostContext) -> State:
        facts = _facts(ctx)
        backend = resolve_backend(resource, facts)
        rules = normalize_all(resource)
        self._check_backend(backend, facts, rules)
        self._check_management_port(resource, rules, facts)
        if backend == "nftables":
            ruleset = desired_ruleset(resource.policy, rules)
            return {"backend": "nftables", "policy": ruleset.policy, "rules": ruleset.rules,
                    "persisted": _sha256(render(ruleset)), "boot_unit": "enabled"}
        return {"backend": "ufw", "enabled": True,
                "policy": {"incoming": resource.policy.incoming, "outgoing": resource.policy.outgoing,
                           "forward": resource.policy.forward},
                "rules": _by_direction(desired_rules(rules))}

    @staticmethod
    def _check_tools(backend: str, facts: HostFacts) -> None:
        """At apply: the backend's tool is there. A plan does not check this itself: the
        engine reports a missing prerequisite, and one the spec installs is not there yet."""
        if backend == "nftables" and not facts.nft_installed:
            raise FirewallPlanError("firewall: nft is not installed on the host (package nftables)")
        if backend == "ufw" and not facts.ufw_installed:
            raise FirewallPlanError("firewall: backend ufw was asked for, but ufw is not installed on the "
                                    "host (package ufw); use backend: nftables")

    @staticmethod
    def _check_backend(backend: str, facts: HostFacts, rules: list[NormalizedRule]) -> None:
        if backend == "nftables":
            if facts.ufw_status.active:
                raise FirewallPlanError(
                    "firewall: backend nftables was asked for, but ufw is active on the host, and every "
                    "packet would have to pass both firewalls; use backend: ufw (or auto), or run "
                    "`ufw disable` first")
            return
        limited = [r.index for r in rules if r.rate is not None]
        if limited:
            raise FirewallPlanError(f"firewall: rules[{limited[0]}].rate_limit: the backend here is ufw, "
                                    f"and {UFW_RATE_LIMIT}")

    @staticmethod
    def _check_management_port(resource: Firewall, rules: list[NormalizedRule], facts: HostFacts) -> None:
        path = facts.management
        if path is None or resource.allow_management_port_block:
            return
        blocker = management_port_blocker(rules, resource.policy.incoming, path)
        if blocker is not None:
            raise FirewallPlanError(
                f"firewall: refusing a spec that would block new SSH logins on port {path.port}, the port "
                f"the reconciler manages this host over: {blocker}. Add a rule such as "
                f"{{port: {path.port}, protocol: tcp, action: accept}} before it, or set "
                "allow_management_port_block: true to apply it anyway (the host then restores the "
                "previous rules by itself if SSH is cut)")

    def unmanaged(self, ctx: HostContext, observed: Mapping[str, State | None]) -> list[str]:
        facts = ctx.scratch.get(_SCRATCH)
        if not isinstance(facts, HostFacts) or not facts.ufw_installed:
            return []
        in_use = ctx.scratch.get(_SCRATCH_BACKEND) == "ufw" or facts.ufw_status.active
        if not (in_use or facts.ufw_marked or facts.ufw_owned):
            return []
        return [f"ufw rule: {r.display() if isinstance(r, UfwRule) else r.text}" for r in facts.ufw_unowned]

    # ------------------------------------------------------------------ comparing
    def compare(self, desired: State, actual: State) -> list[FieldChange]:
        """Rules diff line by line (``rules.incoming[3]: + tcp dport 80 accept``);
        everything else field by field."""
        others = {k: v for k, v in desired.items() if k != "rules"}
        changes = super().compare(others, actual)
        want_rules: dict[str, list[str]] = desired.get("rules", {})
        have_rules: dict[str, list[str]] = actual.get("rules") or {}
        for direction in sorted(set(want_rules) | set(have_rules), key=_direction_order):
            changes.extend(_line_changes(f"rules.{direction}", have_rules.get(direction, []),
                                         want_rules.get(direction, [])))
        return changes

    # ------------------------------------------------------------------ changing
    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        facts = _facts(ctx)
        if item.change.action is Action.DELETE:
            self._remove_all(ctx.transport, facts, confirm_seconds=30)
            return
        assert isinstance(item.resource, Firewall)
        resource = item.resource
        rules = normalize_all(resource)
        self._check_tools(resolve_backend(resource, facts), facts)
        if resolve_backend(resource, facts) == "nftables":
            self._apply_nft(ctx.transport, resource, rules, facts)
            if facts.ufw_marked or facts.ufw_owned:
                # ufw is inactive here (else the plan was refused): its rules filter nothing.
                self._remove_ufw(ctx.transport, facts, guard_seconds=None)
        else:
            self._apply_ufw(ctx.transport, resource, rules, facts)
            if facts.nft_present:
                remove_nft(ctx.transport)  # only ever opens things up: no confirm needed

    @staticmethod
    def _apply_nft(transport: Transport, resource: Firewall, rules: list[NormalizedRule],
                   facts: HostFacts) -> None:
        ruleset = desired_ruleset(resource.policy, rules)
        text = render(ruleset)
        current: Ruleset | None = None
        if facts.nft_listing is not None:
            try:
                current = parse_table(facts.nft_listing)
            except NftParseError:
                current = None
        if current is None or current.policy != ruleset.policy or current.rules != ruleset.rules:
            guard = arm_and_load_nft(transport, text, resource.confirm_seconds)
            confirm(transport, guard, facts.management)
        # Persist only once confirmed: a reboot must never bring back unconfirmed rules.
        if (facts.boot_hashes.get(BOOT_RULESET) != _sha256(text).removeprefix("sha256:")
                or facts.boot_hashes.get(BOOT_UNIT) != _sha256(BOOT_UNIT_TEXT).removeprefix("sha256:")
                or facts.boot_enabled != "enabled"):
            persist_nft(transport, text)

    @staticmethod
    def _apply_ufw(transport: Transport, resource: Firewall, rules: list[NormalizedRule],
                   facts: HostFacts) -> None:
        have_policy = dict(facts.ufw_policy)
        if facts.ufw_status.defaults:
            have_policy.update({k: v for k, v in facts.ufw_status.defaults.items() if k != "forward"})
        want_policy: dict[str, str | None] = {"incoming": resource.policy.incoming,
                                              "outgoing": resource.policy.outgoing,
                                              "forward": resource.policy.forward}
        commands = policy_commands(want_policy, have_policy)
        commands += rule_commands(desired_rules(rules), facts.ufw_owned)
        if not facts.ufw_status.active:
            commands.append(["--force", "enable"])  # after the rules, so it starts complete
        if commands:
            guard = arm_ufw(transport, resource.confirm_seconds)
            run_ufw(transport, commands, guard)
            confirm(transport, guard, facts.management)
        mark_ufw(transport)

    def _remove_all(self, transport: Transport, facts: HostFacts, confirm_seconds: int) -> None:
        """The firewall left the spec: our nft table goes (filtering stops), and our ufw
        rules go, commit-confirmed, since ufw's policy stays and may then block SSH."""
        if facts.ufw_marked or facts.ufw_owned:
            guard = confirm_seconds if facts.ufw_status.active else None
            self._remove_ufw(transport, facts, guard_seconds=guard)
        if facts.nft_present:
            remove_nft(transport)

    @staticmethod
    def _remove_ufw(transport: Transport, facts: HostFacts, guard_seconds: int | None) -> None:
        commands = rule_commands([], facts.ufw_owned)
        if commands and guard_seconds is not None:
            guard = arm_ufw(transport, guard_seconds)
            run_ufw(transport, commands, guard)
            confirm(transport, guard, facts.management)
        elif commands:
            transport.run_script(_UFW_DELETE_INACTIVE, stdin="".join("\t".join(c) + "\n" for c in commands)
                                 .encode())
        unmark_ufw(transport)


# Deleting rules of an inactive ufw changes no packet filtering, so no rollback guard.
_UFW_DELETE_INACTIVE = r"""
set -f
tab=$(printf '\t')
while IFS= read -r line; do
  IFS=$tab; set -- $line; IFS=' '
  ufw "$@" >/dev/null
done
"""


def _prefixed(hexdigest: str | None) -> str | None:
    return f"sha256:{hexdigest}" if hexdigest else None


def _boot_unit_status(facts: HostFacts) -> str:
    """enabled | disabled | modified (not the unit we write) | absent."""
    unit_hash = facts.boot_hashes.get(BOOT_UNIT)
    if unit_hash is None:
        return "absent"
    if _prefixed(unit_hash) != _sha256(BOOT_UNIT_TEXT):
        return "modified"
    return "enabled" if facts.boot_enabled == "enabled" else "disabled"


def _by_direction(rules: Sequence[UfwRule]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {d: [] for d in DIRECTIONS}
    for rule in rules:
        out["incoming" if rule.direction == "in" else "outgoing"].append(rule.display())
    return out


def _direction_order(direction: str) -> tuple[int, str]:
    order = {"incoming": 0, "outgoing": 1, "forward": 2}
    return order.get(direction, 9), direction


def _line_changes(path: str, have: list[str], want: list[str]) -> list[FieldChange]:
    """One FieldChange per added, removed or replaced line, indexed by position
    (old position for removals, new position otherwise)."""
    out: list[FieldChange] = []
    matcher = difflib.SequenceMatcher(a=have, b=want, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        olds, news = have[i1:i2], want[j1:j2]
        for k in range(max(len(olds), len(news))):
            old: Any = olds[k] if k < len(olds) else None
            new: Any = news[k] if k < len(news) else None
            index = j1 + k if new is not None else i1 + k
            out.append(FieldChange(f"{path}[{index}]", old, new))
    return out
