"""Debian packages with apt: installed, upgraded, pinned, held, removed.

State per package (None: not installed): ``version`` (the installed version),
``held`` (``apt-mark hold``), ``prune`` (marked to be removed when it leaves the
spec); ``status`` only when dpkg has it in a state other than installed. The
desired ``version`` is what apt would install: the installed one for ``present``,
the candidate for ``latest`` and for a missing package, the pin when there is
one, ``(known after apply)`` when the lists do not know the package yet. So a
plan reads ``version = "1.22.1-9" -> "1.22.1-9+deb12u1"``: installed -> candidate.

Plan never changes the host: no ``apt-get update`` then. Apply, in ``begin``,
once per run for all the packages changing:
1. ``apt-get update`` when one of them is missing from the lists or the lists
   are older than its ``lists_max_age`` (sources added by ``apt_repositories``
   are fetched when they are written), then a fresh look at the candidates;
   a package still unknown fails: "package nginxx is not known to apt on host
   web (after apt-get update)";
2. a simulation of the one ``apt-get install`` transaction (installs, upgrades
   and removals together); if apt would remove anything the spec did not ask to
   remove (a dependent of a removed package, a conflict of a new one), nothing
   is changed and the plan's packages fail saying which;
3. the transaction, non-interactive, keeping locally changed configuration files
   (``--force-confold``), waiting at most ``lock_timeout`` for another apt or dpkg
   run; then purges, then holds. ``finish`` records the ``prune: true`` marks in
   ``/var/lib/reconciler/packages-prune.list``.

Removal never purges unless ``purge: true`` and never removes what other packages
depend on (step 2). A package that leaves the spec is removed only when the
reconciler installed it and its last spec said ``prune: true``; otherwise it is
released with a warning (``release_reason``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.errors import ApplyError, CommandFailed
from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, Provider, State
from reconciler.sensitive import KNOWN_AFTER_APPLY

from .apt import (
    INSTALL,
    MARK,
    OBSERVE,
    PRUNE_MARKS,
    PURGE,
    UPDATE,
    AptFacts,
    explain_apt_failure,
    parse_observation,
    simulated_removals,
)
from .model import Package, parse_duration, validate_package

__all__ = ["Package", "PackagesProvider"]

FACTS = "packages.facts"
# Every remote command has a deadline: apt's own lock wait plus this much work.
UPDATE_DEADLINE = 600.0
INSTALL_DEADLINE = 1800.0


@dataclass
class _Run:
    """What ``begin`` found out, per package id, for ``apply`` and ``finish``."""

    errors: dict[str, str] = field(default_factory=dict)


def _facts(ctx: HostContext) -> AptFacts:
    facts = ctx.scratch.get(FACTS)
    if not isinstance(facts, AptFacts):
        facts = AptFacts()
        ctx.scratch[FACTS] = facts
    return facts


def observe_packages(ctx: HostContext, ids: Sequence[str], with_candidates: Collection[str]) -> AptFacts:
    """Run ``OBSERVE`` for ``ids`` (``apt-cache policy`` too for those in
    ``with_candidates``) and merge the answers into the run's facts."""
    dpkg_only = [i for i in ids if i not in with_candidates]
    both = [i for i in ids if i in with_candidates]
    result = ctx.transport.run_script(OBSERVE, [str(len(dpkg_only)), *dpkg_only, *both], timeout=120)
    fresh = parse_observation(result.out)
    facts = _facts(ctx)
    facts.merge(fresh, ids)
    return facts


def package_state(facts: AptFacts, pkg_id: str, resource: Package | None) -> State | None:
    entry = facts.entry(pkg_id)
    marked = pkg_id in facts.prune_marked
    if entry is None or entry.status == "not-installed":
        return None
    if entry.status == "config-files":
        # Removed; only a purge still has something to do.
        if resource is not None and resource.state == "absent" and resource.purge:
            return {"status": "config-files"}
        return None
    state: State = {"version": entry.version if entry.status == "installed" else None,
                    "held": entry.held, "prune": marked}
    if entry.status != "installed":
        state["status"] = entry.status
    return state


def target_version(facts: AptFacts, pkg: Package) -> str | None:
    """The version apply would leave installed; None when apt cannot tell yet."""
    entry = facts.entry(pkg.name)
    installed = entry.version if entry is not None and entry.status == "installed" else None
    if pkg.version is not None:
        return pkg.version
    policy = facts.policy.get(pkg.name)
    candidate = policy.candidate if policy is not None else None
    if pkg.state == "present":
        return installed or candidate
    # latest: the candidate of lists young enough to trust.
    age = facts.lists_age()
    if age is None or age > parse_duration(pkg.lists_max_age):
        return None
    return candidate or installed


class PackagesProvider(Provider[Package]):
    kind = "packages"
    model = Package
    order = 2
    description = "Debian packages installed, upgraded, pinned, held or removed with apt."

    def resource_id(self, resource: Package) -> str:
        return resource.name

    def validate(self, resource: Package) -> list[Issue]:
        return validate_package(resource)

    # --------------------------------------------------------------------- reading
    def observe(self, ctx: HostContext, ids: Sequence[str],
                resources: Mapping[str, Package]) -> dict[str, State | None]:
        facts = observe_packages(ctx, ids, with_candidates=resources.keys())
        return {pkg_id: package_state(facts, pkg_id, resources.get(pkg_id)) for pkg_id in ids}

    def desired(self, resource: Package, ctx: HostContext) -> State | None:
        if resource.state == "absent":
            return None
        facts = _facts(ctx)
        version = target_version(facts, resource)
        state: State = {"version": KNOWN_AFTER_APPLY if version is None else version}
        if resource.hold is not None:
            state["held"] = resource.hold
        if resource.prune or resource.name in facts.prune_marked:
            state["prune"] = resource.prune
        return state

    def release_reason(self, rid: str, actual: State | None) -> str | None:
        if actual is not None and actual.get("prune") is True:
            return None
        return ("packages are removed only when their spec said prune: true (other software may need "
                "them), so it stays installed and is released")

    # --------------------------------------------------------------------- changing
    def begin(self, ctx: HostContext, items: Sequence[ApplyItem]) -> None:
        run = _Run()
        ctx.scratch["packages.run"] = run
        facts = _facts(ctx)
        lock_timeout = max((parse_duration(i.resource.lock_timeout) for i in items
                            if isinstance(i.resource, Package)), default=300)

        installs = [i for i in items if isinstance(i.resource, Package) and i.desired is not None
                    and self._needs_apt(i)]
        removals = [i for i in items if i.desired is None and (i.actual or {}).get("version") is not None]
        purges = [i for i in items if isinstance(i.resource, Package) and i.resource.purge]

        names = {i.change.id for i in installs}
        if any(self._candidate(facts, i) is None for i in installs):
            # Unknown at plan time: a repository added earlier in this run may offer it now.
            facts = observe_packages(ctx, [i.change.id for i in installs], with_candidates=names)
        if installs and self._lists_stale(facts, installs):
            self._update(ctx, lock_timeout)
            facts = observe_packages(ctx, [i.change.id for i in installs], with_candidates=names)
            refreshed = f" on host {ctx.name} (after apt-get update)"
        else:
            refreshed = f" on host {ctx.name}"

        args: list[str] = []
        ids: list[str] = []
        for i in installs:
            pkg = i.resource
            assert isinstance(pkg, Package)
            problem = self._install_problem(facts, pkg, refreshed)
            if problem:
                run.errors[pkg.name] = problem
                continue
            args.append(f"{pkg.name}={pkg.version}" if pkg.version else pkg.name)
            ids.append(pkg.name)
        removing = [i.change.id for i in removals
                    if not (isinstance(i.resource, Package) and i.resource.purge)]
        args += [f"{name}-" for name in removing]
        ids += removing
        flags = ["--allow-downgrades"] if any(isinstance(i.resource, Package) and i.resource.version
                                               for i in installs) else []
        if any(self._held_by_spec(facts, i) for i in items):
            flags.append("--allow-change-held-packages")

        if args:
            self._transaction(ctx, lock_timeout, flags, args, allowed=set(removing), run=run, ids=ids)
        purging = [i.change.id for i in purges if i.change.id not in run.errors]
        if purging:
            try:
                ctx.transport.run_script(PURGE, [str(lock_timeout), *purging],
                                         timeout=lock_timeout + INSTALL_DEADLINE)
            except CommandFailed as exc:
                why = explain_apt_failure(exc.stderr + "\n" + exc.stdout, ctx.name, lock_timeout)
                run.errors.update({name: f"apt-get purge failed: {why}" for name in purging})
        self._marks(ctx, items, run)

    def _needs_apt(self, item: ApplyItem) -> bool:
        """A create or a version change (not only a hold or prune mark)."""
        actual = item.actual or {}
        desired = item.desired or {}
        return (item.change.action is not Action.UPDATE or actual.get("version") != desired.get("version")
                or "status" in actual)

    @staticmethod
    def _candidate(facts: AptFacts, item: ApplyItem) -> str | None:
        policy = facts.policy.get(item.change.id)
        return policy.candidate if policy is not None else None

    @staticmethod
    def _lists_stale(facts: AptFacts, installs: Sequence[ApplyItem]) -> bool:
        age = facts.lists_age()
        for i in installs:
            pkg = i.resource
            assert isinstance(pkg, Package)
            policy = facts.policy.get(pkg.name)
            if policy is None or policy.candidate is None or age is None:
                return True
            if age > parse_duration(pkg.lists_max_age):
                return True
        return False

    @staticmethod
    def _install_problem(facts: AptFacts, pkg: Package, where: str) -> str | None:
        policy = facts.policy.get(pkg.name)
        if policy is None or (policy.candidate is None and not policy.versions):
            return f"package {pkg.name} is not known to apt{where}"
        if pkg.version is not None and pkg.version not in policy.versions:
            offered = ", ".join(policy.versions) or "none"
            return f"version {pkg.version} of {pkg.name} is not available{where} (apt offers: {offered})"
        if policy.candidate is None and pkg.version is None:
            return (f"package {pkg.name} has no installable version{where} (a purely virtual package? "
                    "name the package that provides it)")
        entry = facts.entry(pkg.name)
        if entry is not None and entry.held and pkg.hold is None:
            return (f"package {pkg.name} is held (apt-mark hold){where}; set hold: true or hold: false "
                    "in the spec to let the reconciler change it")
        return None

    @staticmethod
    def _held_by_spec(facts: AptFacts, item: ApplyItem) -> bool:
        entry = facts.entry(item.change.id)
        return (entry is not None and entry.held and isinstance(item.resource, Package)
                and item.resource.hold is not None)

    @staticmethod
    def _update(ctx: HostContext, lock_timeout: int) -> None:
        try:
            ctx.transport.run_script(UPDATE, [str(lock_timeout)], timeout=lock_timeout + UPDATE_DEADLINE)
        except CommandFailed as exc:
            why = explain_apt_failure(exc.stderr + "\n" + exc.stdout, ctx.name, lock_timeout)
            raise ApplyError(f"apt-get update failed on host {ctx.name}: {why}") from exc

    @staticmethod
    def _transaction(ctx: HostContext, lock_timeout: int, flags: list[str], args: list[str], *,
                     allowed: set[str], run: _Run, ids: list[str]) -> None:
        deadline = lock_timeout + INSTALL_DEADLINE
        sim = ctx.transport.run_script(INSTALL, [str(lock_timeout), "simulate", *flags, "--", *args],
                                       timeout=deadline, check=False)
        if not sim.ok:
            why = explain_apt_failure(sim.err + "\n" + sim.out, ctx.name, lock_timeout)
            run.errors.update({pkg_id: why for pkg_id in ids})
            return
        extra = sorted(set(simulated_removals(sim.out)) - allowed)
        if extra:
            why = (f"apt would also remove {', '.join(extra)} on host {ctx.name}, which the spec does not "
                   "ask to remove (they depend on a package being removed, or conflict with one being "
                   "installed); nothing was changed. Declare them with state: absent if that is intended")
            run.errors.update({pkg_id: why for pkg_id in ids})
            return
        try:
            ctx.transport.run_script(INSTALL, [str(lock_timeout), "run", *flags, "--", *args],
                                     timeout=deadline)
        except CommandFailed as exc:
            why = explain_apt_failure(exc.stderr + "\n" + exc.stdout, ctx.name, lock_timeout)
            run.errors.update({pkg_id: f"apt-get install failed: {why}" for pkg_id in ids})

    @staticmethod
    def _marks(ctx: HostContext, items: Sequence[ApplyItem], run: _Run) -> None:
        hold = [i.change.id for i in items if (i.desired or {}).get("held") is True
                and (i.actual or {}).get("held") is not True and i.change.id not in run.errors]
        unhold = [i.change.id for i in items if (i.desired or {}).get("held") is False
                  and (i.actual or {}).get("held") is True and i.change.id not in run.errors]
        if not hold and not unhold:
            return
        try:
            ctx.transport.run_script(MARK, [" ".join(hold), " ".join(unhold)], timeout=120)
        except CommandFailed as exc:
            run.errors.update({name: f"apt-mark failed: {exc}" for name in hold + unhold})

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        run = ctx.scratch.get("packages.run")
        if not isinstance(run, _Run):
            raise ApplyError("internal error: packages.begin did not run")
        if item.change.id in run.errors:
            raise ApplyError(run.errors[item.change.id])

    def finish(self, ctx: HostContext, items: Sequence[ApplyItem]) -> None:
        """Record which packages are to be removed when they leave the spec."""
        facts = _facts(ctx)
        marks = set(facts.prune_marked)
        for i in items:
            if i.desired is None:
                marks.discard(i.change.id)
            elif "prune" in i.desired:
                (marks.add if i.desired["prune"] else marks.discard)(i.change.id)
        if marks != facts.prune_marked:
            text = "".join(f"{name}\n" for name in sorted(marks))
            ctx.transport.write_file(PRUNE_MARKS, text.encode(), mode="0644")
            facts.prune_marked = marks
