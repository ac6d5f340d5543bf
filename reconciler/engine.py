"""The engine: observe every host, plan, and apply in dependency order.

Hosts are worked on in parallel, one transport (one SSH connection) each. Per
host, each provider observes all of its resources in one batch. Plan and apply
share the same observe/desired/compare calls; apply then re-observes what it
changed and treats a resource that still differs as a failure.

A host whose resources reference another host's published values
(``${published:HOST/KIND:ID/FIELD}``) waits for that host: in a plan until it is
observed, in an apply until it is applied (so a key generated there is known).
A referenced host outside ``--host`` is observed read-only, never changed.

Cross-host ``depends_on`` (``SELECTOR/KIND:ID``, see reconciler.fleet) orders hosts
the same way: a host is applied after the hosts it depends on, and a change that
depends on a resource that failed (or was skipped) on another host, or on a host
that failed as a whole, is skipped. ``apply_rollout`` goes through the hosts in the
batches of ``reconciler.rollout`` and stops when a batch fails.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from reconciler.annotate import annotate
from reconciler.errors import CommandFailed, LockBusy, ReconcilerError, TransportError
from reconciler.interpolate import PublishedRef, parse_published, references, walk_strings
from reconciler.inventory import LEGACY, Inventory
from reconciler.logs import get_logger
from reconciler.plan import Action, Change, FieldChange, Handover, HostPlan, Plan, Reason
from reconciler.provider import ApplyItem, HostContext, JobResult, Provider, Resource, State, load_providers
from reconciler.report import ApplyReport, BatchOutcome, ChangeOutcome, HostReport, RolloutReport, Status
from reconciler.rollout import (
    BatchChecks,
    BatchSize,
    RolloutCheck,
    RolloutPlan,
    plan_rollout,
    run_checks,
    too_many_failed,
)
from reconciler.sensitive import REDACTOR, Sensitive, contains_sensitive, public
from reconciler.spec import LoadedSpec, ResourceEntry, remote_secret_host
from reconciler.transport import LocalTransport, Transport
from reconciler.transport.base import HostLock
from reconciler.transport.coalesce import run_coalesced

log = get_logger("reconciler.engine")

__all__ = ["ApplyReport", "ChangeOutcome", "Engine", "HostReport", "RunOptions", "Status"]


ProgressFn = Callable[[str, int, int, Change, Status | None], None]


HOST_WAIT_SECONDS = 1800.0
"""How long a host waits for another host whose published values it references."""


def published_refs(spec: LoadedSpec, host: str) -> list[PublishedRef]:
    """The ``${published:...}`` references in the resources of ``host``."""
    found: list[PublishedRef] = []
    for e in spec.entries_for(host):
        for _path, text in walk_strings(e.resource.model_dump(mode="python")):
            for ref in references(text):
                parsed = parse_published(ref.name) if ref.kind == "published" else None
                if parsed is not None:
                    found.append(parsed)
    return found


def host_dependencies(spec: LoadedSpec) -> dict[str, set[str]]:
    """Host -> the other hosts it is applied after: those whose published values its
    resources reference, and those its cross-host ``depends_on`` names."""
    upstreams = spec.upstreams
    return {h: {r.host for r in published_refs(spec, h) if r.host != h and r.host in spec.hosts}
            | {other for pairs in upstreams.get(h, {}).values() for other, _a in pairs if other in spec.hosts}
            for h in spec.hosts}


UpstreamLookup = Callable[[str, str], "str | None"]
"""(host, address) -> why that resource is not in place on that host (it failed, was
skipped, the host failed), or None when whatever depends on it may go ahead."""


@dataclass
class RunOptions:
    hosts: list[str] | None = None
    replace: frozenset[str] = frozenset()
    revision: str = ""
    lock_wait: float = 60.0
    progress: ProgressFn | None = None
    stop: threading.Event | None = None
    """Set (by a Ctrl-C) to stop an apply: the change under way finishes, the rest are
    reported as interrupted, the inventory is written and the host lock released."""
    serial: BatchSize | list[BatchSize] | None = None
    """Hosts per batch (``--serial``), overriding the spec's ``rollout.serial``."""
    max_fail_percentage: int | None = None
    """``--max-fail-percentage``, overriding the spec's ``rollout.max_fail_percentage``."""
    upstream_failed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Host -> addresses that failed on it in an earlier run of the same rollout (``*``:
    the whole host), for hosts outside this run; what depends on them is skipped."""


def make_transport(name: str, spec: LoadedSpec) -> Transport:
    host = spec.hosts[name]
    if host.connect == "local":
        return LocalTransport(name)
    from reconciler.transport.ssh import SSHTransport  # paramiko only when a host needs it

    return SSHTransport(name, host.connect, identity_file=host.identity_file,
                        known_hosts=host.known_hosts, host_key=host.host_key,
                        via=host.via, proxy_jump=host.proxy_jump, peers=spec.hosts, become=host.become,
                        become_password_file=host.become_password_file)


def transport_key(name: str, spec: LoadedSpec) -> str:
    """Everything that decides how ``name`` is reached: its access settings and those of
    the hosts it jumps through (``via``). A long-lived transport is replaced when this
    changes."""
    parts: list[str] = []
    current: str | None = name
    while current is not None and current in spec.hosts and len(parts) <= len(spec.hosts):
        host = spec.hosts[current]
        parts.append(host.model_dump_json(exclude={"vars"}))
        current = host.via
    return "\n".join(parts)


def spec_hash(resource: Resource) -> str:
    data = resource.model_dump(mode="json")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class _Planned:
    item: ApplyItem
    entry: ResourceEntry | None
    deps: set[str]
    # No change of its own, but a dependency is created first: observed again at its
    # turn, and applied only if it then differs (see _plan_rechecks).
    recheck: bool = False


@dataclass
class HostSession:
    """Everything known about one host during a run."""

    name: str
    spec: LoadedSpec
    transport: Transport
    options: RunOptions
    ctx: HostContext = field(init=False)
    inventory: Inventory = field(default_factory=Inventory)
    observed: dict[str, dict[str, State | None]] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)  # address -> per-host resource
    planned: list[_Planned] = field(default_factory=list)
    plan: HostPlan = field(init=False)
    lock: HostLock | None = None
    # The spec's providers, plus those of kinds only this host's inventory holds (see
    # _load_inventory_kinds), in apply order.
    providers: dict[str, Provider[Any]] = field(init=False)
    upstream_problem: UpstreamLookup = field(default=lambda _host, _address: None)

    def __post_init__(self) -> None:
        self.providers = dict(self.spec.providers)
        self.ctx = HostContext(self.name, self.transport, self.spec.host_vars(self.name),
                               revision=self.options.revision, fleet=self.spec.fleet)
        self.plan = HostPlan(self.name)

    def _entries(self) -> list[ResourceEntry]:
        """The spec's resources on this host, less implied ones (``Provider.implied_by``)
        that another stack owns: that stack already puts them in effect here."""
        return [e for e in self.spec.entries_for(self.name)
                if not e.implied or self.inventory.owner_of(e.address) in (None, LEGACY, self.spec.stack)]

    # ------------------------------------------------------------------ planning
    def observe(self) -> None:
        """The inventory and every kind's resources, read in parallel; their requests to
        the host travel together (``run_coalesced``), so a host costs one round trip.
        Owned objects that left the spec need the inventory first: a second round, only
        when there are any. Implied resources another stack owns are observed with the
        rest (reading is harmless) and dropped once the inventory says so."""
        entries = self.spec.entries_for(self.name)
        by_kind: dict[str, dict[str, Resource]] = {k: {} for k in self.providers}
        for e in entries:
            res = self.spec.resource_for_host(e, self.name)
            by_kind[e.kind][e.id] = res
            self.resources[e.address] = res
        # Prerequisites the spec does not declare here: observed too, so the plan can
        # say whether the host already has them.
        undeclared: dict[str, list[str]] = {k: [] for k in self.providers}
        for e in entries:
            for choice in self._prerequisites(e):
                for address in choice:
                    kind, _, rid = address.partition(":")
                    if address not in self.resources and kind in undeclared:
                        undeclared[kind].append(rid)

        def observe_kind(kind: str, ids: list[str]) -> dict[str, State | None]:
            started = time.monotonic()
            result = self.providers[kind].observe(self.ctx, ids, by_kind[kind])
            log.debug("observed", host=self.name, kind=kind, resources=len(ids),
                      seconds=round(time.monotonic() - started, 3))
            return result

        def read_inventory() -> None:
            self.inventory = Inventory.read(self.transport, self.spec.stack)

        self.observed = {k: {} for k in self.providers}
        first = {k: list(dict.fromkeys([*by_kind[k], *undeclared[k]])) for k in self.providers}

        def observe_spec(kind: str) -> Callable[[], None]:
            return lambda: self.observed[kind].update(observe_kind(kind, first[kind]))

        run_coalesced(self.transport, [read_inventory, *(observe_spec(k) for k, ids in first.items() if ids)])
        for kind in self._load_inventory_kinds():
            by_kind[kind] = {}
            self.observed[kind] = {}
            first[kind] = []
        left = {k: [i for i in dict.fromkeys(self.inventory.ids_of(k)) if i not in first[k]]
                for k in self.providers}

        def observe_left(kind: str) -> Callable[[], None]:
            return lambda: self.observed[kind].update(observe_kind(kind, left[kind]))

        run_coalesced(self.transport, [observe_left(k) for k, ids in left.items() if ids])
        kept = {e.address for e in self._entries()}
        for e in entries:
            if e.address not in kept:
                self.resources.pop(e.address, None)
                self.observed[e.kind].pop(e.id, None)
        for kind, provider in self.providers.items():
            if provider.provides_secrets:
                self.ctx.secrets.update(provider.secret_values(self.observed[kind]))
        for value in self.ctx.secrets.values():
            REDACTOR.register(value)

    def _load_inventory_kinds(self) -> list[str]:
        """Load the providers of kinds this stack owns objects of on the host but the spec
        no longer names (load_spec loaded only the spec's kinds), so those objects are
        pruned. Returns the kinds added; a kind no installed provider claims stays out
        (its objects are left alone). Nothing to do when the caller of
        load_spec chose the providers."""
        if not self.spec.partial_providers:
            return []
        missing = {o.kind for o in self.inventory.objects.values()} - set(self.providers)
        if not missing:
            return []
        found = load_providers(missing)
        if not missing <= set(found):  # a plugin whose entry point is not named after its kind
            found = load_providers()
        added = [k for k in found if k not in self.providers]
        merged = {**self.providers, **found}
        self.providers = dict(sorted(merged.items(), key=lambda kv: (kv[1].order, kv[0])))
        return added

    def compute_plan(self) -> HostPlan:
        entries = self._entries()
        spec_addresses = {e.address for e in entries}
        self._plan_ownership(spec_addresses)
        missing = self._missing_prerequisites(entries)
        if missing:
            # Nothing is applied on this host: the resources that need them would fail,
            # and the ones applied before them would leave the host half-converged.
            self.plan.error = "\n".join(missing)
            return self.plan
        for e in entries:
            provider = self.providers[e.kind]
            res = self.resources[e.address]
            desired = provider.desired(res, self.ctx)
            actual = self.observed.get(e.kind, {}).get(e.id)
            change = self._change_for(e, provider, desired, actual)
            if change is not None:
                self.planned.append(_Planned(ApplyItem(change, res, desired, actual), e, self._deps(e, res)))
        self._plan_rechecks(entries)
        self._plan_triggered(entries)
        # Prune: owned objects that left the spec.
        for obj in list(self.inventory.objects.values()):
            if obj.address in spec_addresses or obj.kind not in self.providers:
                continue
            actual = self.observed.get(obj.kind, {}).get(obj.id)
            if actual is None and self.providers[obj.kind].prunable:
                continue  # already gone; forgotten after a successful apply
            if not obj.created:
                self.plan.warnings.append(f"{obj.address} left the spec; it existed before the reconciler "
                                          "managed it, so it is released and left in place")
                continue
            kept = self.providers[obj.kind].release_reason(obj.id, actual)
            if kept is not None:
                self.plan.warnings.append(f"{obj.address} left the spec; {kept}")
                continue
            if actual is None:
                continue  # nothing to delete
            change = Change(self.name, obj.kind, obj.id, Action.DELETE,
                            tuple(FieldChange(k, v, None) for k, v in actual.items()
                                  if not contains_sensitive(v)), Reason.REMOVED)
            self.planned.append(_Planned(ApplyItem(change, None, None, actual), None, set()))
        for kind, provider in self.providers.items():
            self.plan.unmanaged.extend(provider.unmanaged(self.ctx, self.observed.get(kind, {})))
        self.planned = self._order(self.planned)
        annotate(self.ctx, self.providers, [p.item for p in self.planned])
        self.plan.changes = [p.item.change for p in self.planned]
        self.plan.observed_digest = self._observed_digest()
        return self.plan

    def _plan_ownership(self, spec_addresses: set[str]) -> None:
        """Objects of this spec that another stack owns are refused (ReconcilerError naming
        both stacks) unless the spec adopts them; adopted ones, and 0.1 inventory objects,
        change hands at apply (``plan.handovers``)."""
        stack, inventory = self.spec.stack, self.inventory
        taken: dict[str, list[str]] = {}
        for address in sorted(spec_addresses):
            owner = inventory.owner_of(address)
            if owner is None or owner == stack:
                continue
            if owner == LEGACY:
                self.plan.handovers.append(Handover(address, LEGACY, stack))
            elif address in self.spec.adopt:
                self.plan.handovers.append(Handover(address, owner, stack))
            else:
                taken.setdefault(owner, []).append(address)
        if taken:
            them = "it" if sum(len(a) for a in taken.values()) == 1 else "them"
            owned = "; ".join(f"stack {stack} declares {', '.join(addresses)}, owned by stack {owner}"
                              for owner, addresses in sorted(taken.items()))
            raise ReconcilerError(f"{owned}; remove {them} from one of the specs, or list {them} under "
                                  f"`adopt:` in stack {stack}'s spec to take {them} over")
        leftover = sorted(a for a in inventory.unclaimed if a not in spec_addresses)
        if inventory.legacy_present:
            # The migration at apply keeps them, owned by no stack, for whoever declares them.
            self.plan.handovers.extend(Handover(a, LEGACY, "") for a in leftover)
        elif leftover:
            self.plan.warnings.append(
                f"{len(leftover)} object(s) of the 0.1 inventory are owned by no stack "
                f"({', '.join(leftover)}); a stack that declares one takes it over, and none is ever "
                "pruned meanwhile")

    def _change_for(self, e: ResourceEntry, provider: Provider[Any], desired: State | None,
                    actual: State | None) -> Change | None:
        def unchanged_spec() -> bool:
            """Applied from this very spec before: a difference now is drift (a call, as
            hashing every resource would slow down a no-op plan)."""
            owned = self.inventory.get(e.address)
            return owned is not None and owned.spec_hash == spec_hash(self.resources[e.address])

        if desired is None:  # the spec says this must not exist (e.g. `state: absent`)
            if actual is None:
                return None
            return Change(self.name, e.kind, e.id, Action.DELETE,
                          tuple(FieldChange(k, v, None) for k, v in actual.items()
                                if not contains_sensitive(v)), Reason.UNWANTED)
        if actual is None:
            # Gone although the reconciler applied this very spec before: deleted by hand.
            reason = Reason.DRIFT if unchanged_spec() else Reason.ABSENT
            return Change(self.name, e.kind, e.id, Action.CREATE,
                          tuple(FieldChange(k, None, v) for k, v in desired.items()), reason)
        if e.address in self.options.replace:
            if provider.provides_secrets:
                self.ctx.secrets.pop(e.id, None)  # dependents will see the new value
            return Change(self.name, e.kind, e.id, Action.REPLACE, tuple(provider.compare(desired, actual)),
                          Reason.REQUESTED)
        fields = provider.compare(desired, actual)
        if not fields:
            return None
        action = provider.action_for(fields)
        if unchanged_spec():
            reason = Reason.DRIFT
        elif self.inventory.get(e.address) is not None:
            reason = Reason.SPEC_CHANGED
        else:
            # Never applied: nothing changed the spec; it is new to this host.
            reason = Reason.ABSENT if action is Action.CREATE else Reason.ADOPT
        if any(f.pending for f in fields) and self.options.replace & self._deps(e, self.resources[e.address]):
            # Not drift: it uses a value that --replace is about to regenerate.
            reason = Reason.REQUESTED
        return Change(self.name, e.kind, e.id, action, tuple(fields), reason)

    def _plan_triggered(self, entries: list[ResourceEntry]) -> None:
        """An unchanged resource whose ``triggers`` include a planned change gets an update
        of its own (empty fields, reason ``triggered``), so the plan shows that a config
        change will restart a service. Repeated until nothing new is triggered (chains)."""
        planned = {p.item.change.address for p in self.planned}
        added = True
        while added:
            added = False
            for e in entries:
                if e.address in planned:
                    continue
                provider = self.providers[e.kind]
                res = self.resources[e.address]
                actual = self.observed.get(e.kind, {}).get(e.id)
                hits = sorted(a for a in provider.triggers(res) if a in planned)
                if not hits or actual is None:
                    continue
                change = Change(self.name, e.kind, e.id, Action.UPDATE, (), Reason.TRIGGERED,
                                note=f"triggered by {', '.join(hits)}")
                item = ApplyItem(change, res, provider.desired(res, self.ctx), actual)
                self.planned.append(_Planned(item, e, self._deps(e, res)))
                planned.add(e.address)
                added = True

    def _prerequisites(self, e: ResourceEntry) -> list[tuple[str, ...]]:
        """The resource's prerequisites as choices (tuples of addresses) of loaded kinds."""
        choices = []
        for p in self.providers[e.kind].prerequisites(self.resources[e.address]):
            choice = (p,) if isinstance(p, str) else tuple(p)
            choice = tuple(a for a in choice if a.partition(":")[0] in self.providers)
            if choice:
                choices.append(choice)
        return choices

    def _missing_prerequisites(self, entries: list[ResourceEntry]) -> list[str]:
        """One sentence per prerequisite that is neither declared for this host nor
        observed on it, or that the spec declares must not exist."""
        problems: list[str] = []
        for e in entries:
            for choice in self._prerequisites(e):
                declared = [a for a in choice if a in self.resources]
                if any(self._wanted(a) for a in declared):
                    continue
                if any(self.observed.get(a.partition(":")[0], {}).get(a.partition(":")[2]) is not None
                       for a in choice if a not in self.resources):
                    continue
                needs = " or ".join(choice)
                if declared:
                    problems.append(f"{e.address} needs {needs}, which the spec says must be absent "
                                    f"on host {self.name}")
                else:
                    which = "which is not" if len(choice) == 1 else "none of which is"
                    problems.append(f"{e.address} needs {needs}, {which} installed on host {self.name} "
                                    "and not in the spec; declare it in the spec, or install it on the "
                                    "host by other means")
        return problems

    def _wanted(self, address: str) -> bool:
        """The spec declares ``address`` for this host and wants it to exist."""
        kind = address.partition(":")[0]
        return self.providers[kind].desired(self.resources[address], self.ctx) is not None

    def _plan_rechecks(self, entries: list[ResourceEntry]) -> None:
        """A resource without a change of its own, whose ``depends_on`` or prerequisite is
        a prerequisite-kind object (one some kind names in ``prerequisites``: a package)
        created in this run, is checked again at its turn in apply: installing software
        can change other things (installing nginx enables Debian's default site, which
        the spec may say must be absent). The plan shows it as triggered, "checked again
        after ..."; apply observes it again and changes it only if it then differs."""
        planned = {p.item.change.address for p in self.planned}
        foundations = {a.partition(":")[0] for e in entries for c in self._prerequisites(e) for a in c}
        created = {p.item.change.address for p in self.planned
                   if p.item.change.action in (Action.CREATE, Action.REPLACE)
                   and p.item.change.kind in foundations}
        if not created:
            return
        for e in entries:
            if e.address in planned:
                continue
            res = self.resources[e.address]
            watched = set(res.depends_on) | {a for c in self._prerequisites(e) for a in c}
            hits = sorted(watched & created)
            if not hits:
                continue
            provider = self.providers[e.kind]
            change = Change(self.name, e.kind, e.id, Action.UPDATE, (), Reason.TRIGGERED,
                            note=f"checked again after {', '.join(hits)} is created, which may change it")
            actual = self.observed.get(e.kind, {}).get(e.id)
            item = ApplyItem(change, res, provider.desired(res, self.ctx), actual)
            self.planned.append(_Planned(item, e, self._deps(e, res), recheck=True))

    def _deps(self, e: ResourceEntry, res: Resource) -> set[str]:
        provider = self.providers[e.kind]
        deps = set(self.spec.local_dependencies(e, self.name)) | set(provider.requires(res)) \
            | set(provider.triggers(res))
        deps.update(a for choice in self._prerequisites(e) for a in choice if a in self.resources)
        secret_kinds = [k for k, p in self.providers.items() if p.provides_secrets]
        for _path, text in walk_strings(res.model_dump(mode="python")):
            for ref in references(text):
                if ref.kind == "secret":
                    deps.update(f"{k}:{ref.name}" for k in secret_kinds)
        deps.discard(e.address)
        return deps

    def _order(self, planned: list[_Planned]) -> list[_Planned]:
        """Topological order: dependencies first, then the kinds' default order.
        Prunes run last, in reverse kind order (dependents go before what they use) and
        reverse id order within a kind (/a/b before /a). A delete the spec asks for
        (``state: absent``) is an ordinary change and keeps its place."""
        kinds = list(self.providers)
        live = [p for p in planned if p.entry is not None]
        deletes = [p for p in planned if p.entry is None]
        index = {p.item.change.address: p for p in live}
        indegree = {a: 0 for a in index}
        dependents: dict[str, list[str]] = {a: [] for a in index}
        for p in live:
            for dep in p.deps:
                if dep in index:
                    indegree[p.item.change.address] += 1
                    dependents[dep].append(p.item.change.address)

        # Positions by dict, not list.index(): that compares _Planned values and made
        # ordering quadratic (a plan of 1,000 creates spent 0.4 s here).
        kind_rank = {k: i for i, k in enumerate(kinds)}
        spec_rank = {p.item.change.address: i for i, p in enumerate(live)}

        def prio(address: str) -> tuple[int, int]:
            return (kind_rank[index[address].item.change.kind], spec_rank[address])

        heap = [(prio(a), a) for a, n in indegree.items() if n == 0]
        heapq.heapify(heap)
        out: list[_Planned] = []
        while heap:
            _, address = heapq.heappop(heap)
            out.append(index[address])
            for d in dependents[address]:
                indegree[d] -= 1
                if indegree[d] == 0:
                    heapq.heappush(heap, (prio(d), d))
        placed = {p.item.change.address for p in out}
        out.extend(p for p in live if p.item.change.address not in placed)  # cycles are refused; be safe
        # Removed resources have no spec to order them by. Within a kind, reverse id order
        # deletes /a/b before /a (a container of things sorts before its contents).
        deletes.sort(key=lambda p: (kind_rank[p.item.change.kind], p.item.change.id), reverse=True)
        return out + deletes

    def _observed_digest(self) -> str:
        data: dict[str, Any] = {kind: {rid: public(state) for rid, state in states.items()}
                                for kind, states in self.observed.items()}
        data[" ownership"] = self.inventory.digest()  # another stack's apply makes a saved plan stale
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ applying
    def apply(self, report: HostReport) -> None:
        self._hold_lock()
        total = len(self.planned)
        failed: set[str] = set()
        # Record creations before making them: if the run dies half-way, what it
        # made is still known as ours and can be pruned later.
        for handover in self.plan.handovers:
            if handover.to_stack:
                self.inventory.take(handover.address)
        for p in self.planned:
            c = p.item.change
            if c.action is Action.CREATE:
                self.inventory.record(c.kind, c.id, created=True)
        if total or self.plan.handovers:
            self.inventory.write(self.transport)

        done = 0
        groups = self._groups(self.planned)
        try:
            for kind, group in groups:
                provider = self.providers[kind]
                runnable: list[_Planned] = []
                for p in group:
                    blocked = sorted(d for d in p.deps if d in failed)
                    upstream = self._upstream_failures(p)
                    if self._stopping():
                        failed.add(p.item.change.address)
                        done += 1
                        report.outcomes.append(ChangeOutcome(p.item.change, Status.INTERRUPTED, INTERRUPTED))
                        self._progress(done, total, p.item.change, Status.INTERRUPTED)
                    elif p.item.change.refused:
                        failed.add(p.item.change.address)
                        done += 1
                        report.outcomes.append(ChangeOutcome(p.item.change, Status.FAILED,
                                                             p.item.change.refused))
                        self._progress(done, total, p.item.change, Status.FAILED)
                    elif blocked or upstream:
                        failed.add(p.item.change.address)
                        done += 1
                        why = [f"depends on {', '.join(blocked)}, which failed"] if blocked else []
                        report.outcomes.append(ChangeOutcome(p.item.change, Status.SKIPPED,
                                                             "; ".join([*why, *upstream])))
                        self._progress(done, total, p.item.change, Status.SKIPPED)
                    else:
                        runnable.append(p)
                if not runnable:
                    continue
                try:
                    self._reobserve_after_prerequisites(kind, runnable)
                    settled = self._settle_rechecks(provider, runnable)
                except Exception as exc:
                    msg = f"could not observe {kind} again after installing what they need: {_explain(exc)}"
                    for p in runnable:
                        done += 1
                        failed.add(p.item.change.address)
                        report.outcomes.append(ChangeOutcome(p.item.change, Status.FAILED, msg,
                                                             transient=is_transient(exc)))
                        self._progress(done, total, p.item.change, Status.FAILED)
                    continue
                for p, outcome in settled:
                    done += 1
                    report.outcomes.append(outcome)
                    self._progress(done, total, outcome.change, outcome.status)
                    self._record(p, outcome)
                runnable = [p for p in runnable if not any(p is s for s, _ in settled)]
                if not runnable:
                    continue
                items = [self._refresh(p) for p in runnable]
                starting: Callable[[Change], None] = functools.partial(self._progress, done, total,
                                                                       status=None)
                outcomes = self._apply_group(provider, items, starting)
                for p, outcome in zip(runnable, outcomes, strict=True):
                    done += 1
                    report.outcomes.append(outcome)
                    if outcome.status is not Status.APPLIED:
                        failed.add(p.item.change.address)
                    self._progress(done, total, outcome.change, outcome.status)
                    self._record(p, outcome)
                    log.info("change", host=self.name, address=outcome.change.address,
                             action=outcome.change.action.value, status=outcome.status.value,
                             error=REDACTOR.scrub(outcome.error) or None)
        finally:
            self._record_converged(failed)
            try:
                self.inventory.write(self.transport)
            except ReconcilerError as exc:
                report.error = f"could not write the inventory: {exc}"

    def _upstream_failures(self, p: _Planned) -> list[str]:
        """Why a change cannot go ahead because of other hosts: the resources there it
        depends on (cross-host ``depends_on``) that failed, or their host failing."""
        if p.entry is None:
            return []
        pairs = self.spec.upstreams.get(self.name, {}).get(p.entry.address, ())
        return [problem for host, address in pairs if (problem := self.upstream_problem(host, address))]

    def _hold_lock(self) -> None:
        """The inventory (the owner index above all) is only written under the host lock.
        A plan made without the lock is checked against who owns what now: another
        stack's apply in between makes it stale."""
        if self.lock is not None:
            return
        self.lock = self.transport.lock(self.options.lock_wait)
        if Inventory.read(self.transport, self.spec.stack).digest() != self.inventory.digest():
            raise ReconcilerError("who owns what on this host changed since the plan (another stack "
                                  "applied in between); plan again")

    @staticmethod
    def _groups(planned: list[_Planned]) -> list[tuple[str, list[_Planned]]]:
        """Runs of consecutive changes of one kind (one begin/finish each). A change that
        depends on an earlier change of the same run starts a new run, so its dependency
        is applied and verified first, and a failed dependency skips it."""
        groups: list[tuple[str, list[_Planned]]] = []
        in_run: set[str] = set()
        for p in planned:
            kind = p.item.change.kind
            if groups and groups[-1][0] == kind and in_run.isdisjoint(p.deps):
                groups[-1][1].append(p)
            else:
                groups.append((kind, [p]))
                in_run = set()
            in_run.add(p.item.change.address)
        return groups

    def _reobserve_after_prerequisites(self, kind: str, runnable: list[_Planned]) -> None:
        """When a prerequisite of these changes was applied earlier in this run (nginx was
        just installed), their plan-time observation predates it: observe them again, so
        ``apply`` sees the host as it is now. Rechecks are always observed again."""
        changed = [p for p in runnable if p.recheck or (p.entry is not None and any(
            a in self.ctx.applied for choice in self._prerequisites(p.entry) for a in choice))]
        if not changed:
            return
        ids = [p.item.change.id for p in runnable]
        resources = {p.item.change.id: p.item.resource for p in runnable if p.item.resource is not None}
        after = self.providers[kind].observe(self.ctx, ids, resources)
        self.observed.setdefault(kind, {}).update(after)
        for p in runnable:
            p.item.actual = after.get(p.item.change.id)

    def _settle_rechecks(self, provider: Provider[Any],
                         runnable: list[_Planned]) -> list[tuple[_Planned, ChangeOutcome]]:
        """Turn each recheck (freshly observed) into the change it now needs, in place, or
        settle it as done when the host already matches the spec; returns the settled."""
        settled: list[tuple[_Planned, ChangeOutcome]] = []
        for p in runnable:
            if not p.recheck or p.entry is None or p.item.resource is None:
                continue
            desired = provider.desired(p.item.resource, self.ctx)
            change = self._change_for(p.entry, provider, desired, p.item.actual)
            if change is None:  # already as the spec says: nothing to do
                settled.append((p, ChangeOutcome(p.item.change, Status.APPLIED)))
                continue
            p.item = ApplyItem(change, p.item.resource, desired, p.item.actual)
            p.recheck = False
        return settled

    def _refresh(self, p: _Planned) -> ApplyItem:
        """Recompute desired state just before applying: secrets made earlier in this
        run are now known, so values planned as (known after apply) resolve."""
        if p.item.resource is None or p.entry is None:
            return p.item
        desired = self.providers[p.entry.kind].desired(p.item.resource, self.ctx)
        return ApplyItem(p.item.change, p.item.resource, desired, p.item.actual)

    def _apply_group(self, provider: Provider[Any], items: list[ApplyItem],
                     starting: Callable[[Change], None]) -> list[ChangeOutcome]:
        outcomes: dict[int, ChangeOutcome] = {}
        try:
            provider.begin(self.ctx, items)
        except Exception as exc:
            msg = _explain(exc)
            return [ChangeOutcome(i.change, Status.FAILED, msg, transient=is_transient(exc)) for i in items]
        try:
            for n, item in enumerate(items):
                if self._stopping():
                    outcomes[n] = ChangeOutcome(item.change, Status.INTERRUPTED, INTERRUPTED)
                    continue
                starting(item.change)
                started = time.monotonic()
                try:
                    provider.apply(self.ctx, item)
                except Exception as exc:
                    outcomes[n] = ChangeOutcome(item.change, Status.FAILED, _explain(exc),
                                                time.monotonic() - started, is_transient(exc))
                else:
                    outcomes[n] = ChangeOutcome(item.change, Status.APPLIED, "", time.monotonic() - started)
        finally:
            self._flush_writes(items, outcomes)
            try:
                provider.finish(self.ctx, [i for n, i in enumerate(items) if outcomes.get(n) is not None
                                           and outcomes[n].status is Status.APPLIED])
            except Exception as exc:
                msg, transient = _explain(exc), is_transient(exc)
                for n, o in outcomes.items():
                    if o.status is Status.APPLIED:
                        outcomes[n] = ChangeOutcome(o.change, Status.FAILED, msg, o.seconds, transient)
        self._verify(provider, items, outcomes)
        return [outcomes[n] for n in range(len(items))]

    def _flush_writes(self, items: list[ApplyItem], outcomes: dict[int, ChangeOutcome]) -> None:
        """Send the file work the applies queued (``ctx.writes``) as one request; a queued
        item that failed fails its own change."""
        writes = self.ctx.writes
        if not writes:
            return
        queued = writes.addresses
        started = time.monotonic()
        try:
            failed = writes.flush(self.transport)
        except Exception as exc:
            msg, transient = _explain(exc), is_transient(exc)
            failed = {a: msg for a in queued}
        else:
            transient = False
        seconds = time.monotonic() - started
        for n, item in enumerate(items):
            outcome = outcomes.get(n)
            if outcome is None or outcome.status is not Status.APPLIED or item.change.address not in queued:
                continue
            error = failed.get(item.change.address)
            if error is None:
                outcomes[n] = ChangeOutcome(item.change, Status.APPLIED, "", outcome.seconds + seconds)
            else:
                outcomes[n] = ChangeOutcome(item.change, Status.FAILED, REDACTOR.scrub(error),
                                            outcome.seconds + seconds, transient)

    def _verify(self, provider: Provider[Any], items: list[ApplyItem],
                outcomes: dict[int, ChangeOutcome]) -> None:
        """Observe again what was applied; anything that still differs failed."""
        applied = [(n, i) for n, i in enumerate(items) if outcomes[n].status is Status.APPLIED]
        if not applied:
            return
        ids = [i.change.id for _, i in applied]
        resources = {i.change.id: i.resource for _, i in applied if i.resource is not None}
        try:
            after = provider.observe(self.ctx, ids, resources)
        except Exception as exc:
            for n, i in applied:
                outcomes[n] = ChangeOutcome(i.change, Status.FAILED, f"could not verify: {_explain(exc)}",
                                            outcomes[n].seconds, is_transient(exc))
            return
        if provider.provides_secrets:
            self.ctx.secrets.update(provider.secret_values(after))
            for value in self.ctx.secrets.values():
                REDACTOR.register(value)
        for n, item in applied:
            actual = after.get(item.change.id)
            if item.change.action is Action.DELETE:
                if actual is not None:
                    outcomes[n] = ChangeOutcome(item.change, Status.FAILED, "still present after delete",
                                                outcomes[n].seconds)
                continue
            assert item.resource is not None
            desired = provider.desired(item.resource, self.ctx)
            if desired is None:
                problem = "still present, though the spec says absent" if actual is not None else ""
            elif actual is None:
                problem = "still absent after apply"
            else:
                diff = provider.compare(desired, actual)
                problem = ("did not converge: " + "; ".join(
                    f"{f.path} is {public(f.old)!r}, want {public(f.new)!r}" for f in diff)) if diff else ""
            if problem:
                outcomes[n] = ChangeOutcome(item.change, Status.FAILED, problem, outcomes[n].seconds)
            else:
                self.observed.setdefault(item.change.kind, {})[item.change.id] = actual

    def _record(self, p: _Planned, outcome: ChangeOutcome) -> None:
        c = p.item.change
        if outcome.status is not Status.APPLIED:
            return
        if not p.recheck:  # a recheck that found nothing to do changed nothing
            self.ctx.applied.add(c.address)
        if c.action is Action.DELETE:
            self.inventory.forget(c.address)
            return
        assert p.item.resource is not None
        self.inventory.record(c.kind, c.id, created=c.action is Action.CREATE or None,
                              spec_hash=spec_hash(p.item.resource), revision=self.options.revision,
                              touched=True)

    def _record_converged(self, failed: set[str]) -> None:
        """Every spec resource that is now as the spec says is recorded, adopted or not,
        and owned objects already gone from the host are forgotten."""
        planned = {p.item.change.address for p in self.planned}
        for e in self._entries():
            if e.address in failed:
                continue
            if self.observed.get(e.kind, {}).get(e.id) is None and e.address not in planned:
                continue
            res = self.resources[e.address]
            existing = self.inventory.get(e.address)
            self.inventory.record(e.kind, e.id, created=None if existing else False, spec_hash=spec_hash(res),
                                  revision=self.options.revision if existing is None or
                                  existing.spec_hash != spec_hash(res) else None)
        spec_addresses = {e.address for e in self._entries()}
        for obj in list(self.inventory.objects.values()):
            if obj.address in spec_addresses or obj.address in failed:
                continue
            actual = self.observed.get(obj.kind, {}).get(obj.id)
            if (not obj.created or actual is None
                    or self.providers[obj.kind].release_reason(obj.id, actual) is not None):
                self.inventory.forget(obj.address)

    def _stopping(self) -> bool:
        return self.options.stop is not None and self.options.stop.is_set()

    def _progress(self, done: int, total: int, change: Change, status: Status | None) -> None:
        if self.options.progress is not None:
            self.options.progress(self.name, done, total, change, status)


INTERRUPTED = "not started: the run was interrupted"


def is_transient(exc: BaseException) -> bool:
    """Connection trouble (TransportError, a busy host lock): the same change may succeed later."""
    return isinstance(exc, TransportError | LockBusy)


def _explain(exc: BaseException) -> str:
    if isinstance(exc, CommandFailed | ReconcilerError):
        return REDACTOR.scrub(str(exc))
    return REDACTOR.scrub(f"{type(exc).__name__}: {exc}")


class Engine:
    """Runs plan and apply over the hosts of a loaded spec."""

    def __init__(self, spec: LoadedSpec, options: RunOptions | None = None,
                 transports: Mapping[str, Transport] | None = None) -> None:
        self.spec = spec
        self.options = options or RunOptions()
        self._transports: dict[str, Transport] = dict(transports or {})
        self.sessions: dict[str, HostSession] = {}
        self._host_deps = host_dependencies(spec)
        self._observed: dict[str, threading.Event] = {}
        self._applied: dict[str, threading.Event] = {}
        self._side: dict[str, HostSession] = {}  # referenced hosts outside the run, observed only
        self._side_lock = threading.Lock()
        self._applying = False
        self._reports: dict[str, HostReport] = {}

    def _lookup_published(self, asking: str, ref: PublishedRef) -> str | None:
        """A published value for a resource of host ``asking`` (see the module docstring)."""
        provider = self.spec.providers.get(ref.kind)
        if provider is None or ref.field not in provider.published_fields or ref.host not in self.spec.hosts:
            return None
        session = self._session_of(asking, ref.host)
        if session is None:
            return None
        state = session.observed.get(ref.kind, {}).get(ref.id)
        return provider.published(ref.id, state).get(ref.field)

    def _lookup_secret(self, asking: str, name: str) -> Sensitive | None:
        """``${secret:SELECTOR/NAME}`` for a resource of host ``asking``: the secret as
        that other host has it (observed in a plan, generated by its apply)."""
        found = remote_secret_host(self.spec, name)
        if found is None:
            return None
        host, secret = found
        session = self._session_of(asking, host)
        return None if session is None else session.ctx.secrets.get(secret)

    def _session_of(self, asking: str, host: str) -> HostSession | None:
        if host not in self.spec.hosts:
            return None  # a host of the fleet this run does not reach (pull mode)
        if host != asking:
            events = self._applied if self._applying else self._observed
            event = events.get(host)
            if event is not None and not event.wait(HOST_WAIT_SECONDS):
                log.warning("gave up waiting for a referenced host", host=asking, referenced=host)
                return None
        if host in self.sessions:
            return self.sessions[host]
        with self._side_lock:
            if host not in self._side:
                side = HostSession(host, self.spec, self.transport(host), self.options)
                try:
                    side.observe()
                except (TransportError, CommandFailed, ReconcilerError) as exc:
                    log.error("cannot observe a referenced host", host=asking, referenced=host,
                              error=_explain(exc))
                self._side[host] = side
            return self._side[host]

    def _dependency_order(self, names: list[str]) -> list[str]:
        """Referenced hosts first, so waiting hosts never hold every worker."""
        out: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in out or name in visiting:
                return
            visiting.add(name)
            for dep in sorted(self._host_deps.get(name, ())):
                if dep in names:
                    visit(dep)
            out.append(name)

        for name in names:
            visit(name)
        return out

    def host_names(self) -> list[str]:
        names = list(self.spec.hosts)
        if self.options.hosts:
            unknown = [h for h in self.options.hosts if h not in self.spec.hosts]
            if unknown:
                raise ReconcilerError(f"unknown host(s): {', '.join(unknown)}; "
                                      f"the spec defines {', '.join(names)}")
            names = [h for h in names if h in self.options.hosts]
        return names

    def transport(self, name: str) -> Transport:
        if name not in self._transports:
            self._transports[name] = make_transport(name, self.spec)
        return self._transports[name]

    def _each_host(self, fn: Callable[[str], Any], names: Iterable[str]) -> list[Any]:
        names = list(names)
        if len(names) == 1:
            return [fn(names[0])]
        with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
            return list(pool.map(fn, names))

    def _check_replace(self) -> None:
        """A --replace address that names nothing would silently replace nothing."""
        unknown = sorted(a for a in self.options.replace if a not in self.spec.by_address)
        if unknown:
            raise ReconcilerError(f"--replace {', '.join(unknown)}: no such resource in the spec "
                                  "(write it as kind:id, e.g. secrets:db_password)")

    def plan(self, *, lock: bool = False) -> Plan:
        """Observe every host and work out the changes. With ``lock``, each host's lock
        is taken first and held until ``apply`` or ``close``."""
        self._check_replace()
        # Absolute, so `reconcile apply PLAN` finds the spec from any directory.
        plan = Plan(os.path.abspath(self.spec.path), self.spec.digest, self.options.revision,
                    diagnostics=list(self.spec.warnings), stack=self.spec.stack)

        names = self._dependency_order(self.host_names())
        self._applying = False
        self._side.clear()  # a long-lived engine (the controller's) must not reuse old observations
        for name in names:
            self._observed[name] = threading.Event()

        def plan_host(name: str) -> HostPlan:
            session = HostSession(name, self.spec, self.transport(name), self.options)
            session.ctx.published = functools.partial(self._lookup_published, name)
            session.ctx.remote_secret = functools.partial(self._lookup_secret, name)
            session.upstream_problem = self._upstream_problem
            session.plan.after = self._after(name)
            self.sessions[name] = session
            try:
                if lock:
                    session.lock = session.transport.lock(self.options.lock_wait)
                try:
                    session.observe()
                finally:
                    self._observed[name].set()
                return session.compute_plan()
            except (TransportError, CommandFailed, LockBusy, ReconcilerError) as exc:
                session.plan.error = _explain(exc)
                session.plan.transient = is_transient(exc)
                log.error("plan failed", host=name, error=session.plan.error)
                return session.plan
            except Exception as exc:
                # A bug (most likely in a provider): this host fails with a message, the
                # other hosts go on; the traceback is in the debug log (-v).
                session.plan.error = f"internal error while planning: {_explain(exc)}"
                log.error("plan failed", host=name, error=session.plan.error)
                log.debug("plan failed", host=name, exc_info=True)
                return session.plan

        planned = dict(zip(names, self._each_host(plan_host, names), strict=True))
        plan.hosts = [planned[n] for n in self.host_names()]
        rollout = self.rollout_plan()
        if rollout.rolling or len(rollout.batches) > 1:
            plan.rollout = rollout
        return plan

    def _after(self, name: str) -> dict[str, list[str]]:
        """The hosts ``name`` is applied after, each with the addresses there it waits for."""
        out: dict[str, list[str]] = {h: [] for h in self.spec.fleet.ordered(self._host_deps.get(name, ()))}
        for pairs in self.spec.upstreams.get(name, {}).values():
            for host, address in pairs:
                if host in out and address not in out[host]:
                    out[host].append(address)
        return out

    def rollout_plan(self) -> RolloutPlan:
        """The stages and batches of this run's hosts (reconciler.rollout)."""
        return plan_rollout(self.host_names(), self._host_deps, self.spec.rollout, self.options.serial,
                            self.options.max_fail_percentage)

    def _upstream_problem(self, host: str, address: str) -> str | None:
        """Why ``address`` on ``host`` is not in place for what depends on it, or None.
        A host outside this run counts as in place, unless an earlier run of the same
        rollout said it failed (``RunOptions.upstream_failed``)."""
        earlier = self.options.upstream_failed.get(host)
        if earlier is not None and ("*" in earlier or address in earlier):
            return f"depends on {address} on {host}, which failed"
        event = self._applied.get(host)
        if event is None:
            return None
        if not event.wait(HOST_WAIT_SECONDS):
            return f"depends on {address} on {host}, which was not applied within {HOST_WAIT_SECONDS:g} s"
        report = self._reports.get(host)
        if report is None:
            return None
        if report.error:
            return f"depends on {address} on {host}, and host {host} failed"
        for o in report.outcomes:
            if o.change.address == address and o.status is not Status.APPLIED:
                what = "failed" if o.status is Status.FAILED else f"was {o.status.value}"
                return f"depends on {address} on {host}, which {what}"
        return None

    def apply(self, hosts: Iterable[str] | None = None) -> ApplyReport:
        """Apply what ``plan`` found (on ``hosts`` only, when given: one batch of a
        rollout). Hosts whose planning failed are reported, not touched."""
        wanted = None if hosts is None else set(hosts)
        names = self._dependency_order([n for n in self.host_names() if n in self.sessions
                                        and (wanted is None or n in wanted)])
        for name in names:
            self._applied[name] = threading.Event()
        self._applying = True

        def apply_host(name: str) -> HostReport:
            session = self.sessions[name]
            report = HostReport(name)
            try:
                if session.plan.error:
                    report.error = session.plan.error
                    return report
                session.apply(report)
            except (TransportError, ReconcilerError) as exc:
                report.error = _explain(exc)
                report.transient = is_transient(exc)
            finally:
                self._reports[name] = report
                self._applied[name].set()
            return report

        applied = dict(zip(names, self._each_host(apply_host, names), strict=True))
        return ApplyReport([applied[n] for n in self.host_names() if n in applied])

    def apply_rollout(self, on_batch: Callable[[BatchOutcome, int], None] | None = None) -> ApplyReport:
        """Apply batch by batch when a rollout is asked for (``rollout:``, ``--serial``):
        each batch is applied, its checks run until they pass or the grace ends, and the
        rollout stops when more than ``max_fail_percentage`` of a batch failed; later
        batches are left untouched. Without one, the same as ``apply``."""
        rollout = self.rollout_plan()
        if not rollout.rolling:
            return self.apply()
        planned = [b for b in ([h for h in batch if h in self.sessions] for batch in rollout.batches) if b]
        result = RolloutReport(rollout.serial, rollout.max_fail_percentage, total_batches=len(planned))
        for number, batch in enumerate(planned, 1):
            if self._stopping():
                result.stopped = f"interrupted before batch {number}"
                break
            applied = self.apply(batch)
            failed = {h.host for h in applied.hosts if not h.ok}
            checks = self._batch_checks([h for h in batch if h not in failed], rollout)
            failed |= checks.failed_hosts
            outcome = BatchOutcome(number, list(batch), self.spec.fleet.ordered(failed), checks.results)
            result.batches.append(outcome)
            if on_batch is not None:
                on_batch(outcome, len(planned))
            if too_many_failed(len(failed), len(batch), rollout.max_fail_percentage):
                result.stopped = (f"batch {number} of {len(planned)}: {len(failed)} of {len(batch)} host(s) "
                                  f"failed ({', '.join(outcome.failed)}), more than max_fail_percentage "
                                  f"{rollout.max_fail_percentage}%")
                break
        reports = [self._reports[n] for n in self.host_names() if n in self._reports]
        failed_hosts = {f for b in result.batches for f in b.failed}
        for report in reports:
            if report.host in failed_hosts or not report.ok:
                result.failed.append(report.host)
            elif report.outcomes:
                result.changed.append(report.host)
            else:
                result.unchanged.append(report.host)
        result.untouched = [n for n in self.host_names() if n in self.sessions and n not in self._reports]
        return ApplyReport(reports, rollout=result)

    def _batch_checks(self, hosts: list[str], rollout: RolloutPlan) -> BatchChecks:
        spec = self.spec.rollout
        checks: list[RolloutCheck] = list(spec.health.checks) if spec is not None else []
        wanted: dict[str, list[RolloutCheck]] = {}
        for host in hosts:
            mine = [c for c in checks if c.hosts is None or host in self.spec.fleet.targets(c.hosts)]
            if mine:
                wanted[host] = mine
        return run_checks({h: self.transport(h) for h in wanted}, wanted, grace=rollout.grace,
                          interval=rollout.interval, stop=self._stopping)

    def _stopping(self) -> bool:
        return self.options.stop is not None and self.options.stop.is_set()

    def close(self) -> None:
        for session in self.sessions.values():
            if session.lock is not None:
                try:
                    session.lock.release()
                except Exception as exc:  # the connection may already be gone
                    log.debug("lock release failed", host=session.name, error=str(exc))
                session.lock = None
        for t in self._transports.values():
            t.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def job_results(self) -> dict[str, list[JobResult]]:
        """Per host of the last ``plan``, the scheduled jobs' last results its providers
        report (``Provider.job_results``) from what that plan observed of the spec's
        resources on the host (after an ``apply``, as it observed them last). A host
        that could not be observed reports nothing; a provider that raises (a bug)
        reports nothing for that resource, and the others go on."""
        out: dict[str, list[JobResult]] = {}
        for name, session in self.sessions.items():
            if session.plan.error:
                continue
            found: list[JobResult] = []
            for e in self.spec.entries_for(name):
                provider = session.providers.get(e.kind)
                state = session.observed.get(e.kind, {}).get(e.id)
                if provider is None or state is None:
                    continue
                try:
                    found.extend(provider.job_results(e.id, state))
                except Exception as exc:
                    log.error("job results unreadable", host=name, address=e.address, error=_explain(exc))
            if found:
                out[name] = found
        return out

    def commands_run(self) -> dict[str, int]:
        return {name: t.commands_run for name, t in self._transports.items()}
