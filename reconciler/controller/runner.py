"""One controller run: plan or apply a loaded spec with the core engine, or probe health.

Nothing here decides *what* to run (that is the core's job in ``core.py``); it
runs it and says how it went, in terms the core acts on (``outcome`` turns a
run into ``core.EngineOutcome``): ok, failed, and whether the failure is
transient (retry later) or terminal (wait for new input).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from reconciler.controller.config import HealthConfig
from reconciler.controller.core import EngineOutcome
from reconciler.controller.records import (
    ChangeRecord,
    FieldRecord,
    HealthResult,
    JobRecord,
    Summary,
    resource_key,
)
from reconciler.controller.transports import PooledTransport, TransportPool
from reconciler.engine import ApplyReport, Engine, HostReport, RunOptions, Status, host_dependencies
from reconciler.errors import ReconcilerError
from reconciler.plan import Plan
from reconciler.rollout import RolloutPlan, plan_rollout
from reconciler.sensitive import REDACTOR, public
from reconciler.spec import LoadedSpec

log = structlog.get_logger("reconciler.controller")

MAX_ERRORS_SHOWN = 5


@dataclass
class RunResult:
    plan: Plan | None = None
    report: ApplyReport | None = None
    error: str = ""
    transient: bool = False
    jobs: tuple[JobRecord, ...] = ()
    """The scheduled host jobs' last results, from what this run observed."""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def applied_changes(self) -> bool:
        return self.report is not None and any(h.outcomes for h in self.report.hosts)


def plan_changes(plan: Plan) -> list[dict[str, Any]]:
    """The plan's changes as history data: before and after per field, secrets redacted
    (``Plan.to_json`` passes every value through ``public``)."""
    return [c.to_json() for c in change_records(plan)]


def change_records(plan: Plan) -> tuple[ChangeRecord, ...]:
    """The plan's changes as records, secrets redacted (``Plan.to_json`` passes every
    value through ``public``)."""
    out: list[ChangeRecord] = []
    for host in plan.to_json()["hosts"]:
        for change in host["changes"]:
            fields = tuple(FieldRecord(f["path"], f["old"], f["new"]) for f in change["fields"])
            out.append(ChangeRecord(change["host"], change["address"], change["action"], change["reason"],
                                    fields))
    return tuple(out)


def rollout_of(spec: LoadedSpec) -> RolloutPlan | None:
    """The batches a commit of ``spec`` is rolled out in, when its spec has ``rollout:``
    (the same as ``reconcile apply`` goes through; reconciler.rollout)."""
    if spec.rollout is None:
        return None
    return plan_rollout(list(spec.hosts), host_dependencies(spec), spec.rollout)


def outcome(spec: LoadedSpec, result: RunResult, evidence: Sequence[tuple[str, str]] = ()) -> EngineOutcome:
    """A run's result as the data the core decides on."""
    plan = result.plan
    failed: list[str] = []
    for host in result.report.hosts if result.report is not None else []:
        if host.error:
            failed.append(resource_key(host.host, "*"))
        failed += [resource_key(host.host, o.change.address) for o in host.outcomes
                   if o.status is not Status.APPLIED]
    return EngineOutcome(
        error=result.error, transient=result.transient, planned=plan is not None,
        applied=result.report is not None, changed=result.applied_changes,
        summary=Summary.from_json(plan.summary()) if plan is not None else None,
        changes=change_records(plan) if plan is not None else (),
        resources=resource_health(spec, plan, result.report), failed=tuple(failed),
        evidence=tuple(evidence), jobs=result.jobs)


@dataclass(frozen=True)
class Probe:
    """One health probe: the configured checks, hosts that could not be planned, and
    every resource that differs from the spec."""

    checks: tuple[HealthResult, ...]
    host_errors: tuple[tuple[str, str], ...]
    differing: tuple[ChangeRecord, ...]
    jobs: tuple[JobRecord, ...] = ()


def resource_health(spec: LoadedSpec, plan: Plan | None, report: ApplyReport | None = None) -> dict[
        str, dict[str, str]]:
    """Per host, each resource's state: ok, differs (pending change), failed, or unknown (host error)."""
    out: dict[str, dict[str, str]] = {}
    pending = {(c.host, c.address) for c in plan.changes} if plan else set()
    host_errors = {h.host for h in plan.hosts if h.error} if plan else set()
    failed: set[tuple[str, str]] = set()
    if report is not None:
        for h in report.hosts:
            if h.error:
                host_errors.add(h.host)
            for o in h.outcomes:
                if o.status is Status.APPLIED:
                    pending.discard((h.host, o.change.address))
                else:
                    failed.add((h.host, o.change.address))
    planned = {h.host for h in plan.hosts} if plan is not None else set(spec.hosts)
    for host in spec.hosts:
        if host not in planned:
            continue  # not in this run (a batch of a rollout): nothing new is known
        states: dict[str, str] = {}
        for entry in spec.entries_for(host):
            key = (host, entry.address)
            if key in failed:
                states[entry.address] = "failed"
            elif host in host_errors:
                states[entry.address] = "unknown"
            elif key in pending:
                states[entry.address] = "differs"
            else:
                states[entry.address] = "ok"
        out[host] = states
    return out


class Runner:
    def __init__(self, pool: TransportPool, *, lock_timeout: float) -> None:
        self.pool = pool
        self.lock_timeout = lock_timeout

    def _engine(self, spec: LoadedSpec, revision: str, hosts: Sequence[str] | None = None,
                upstream_failed: Sequence[str] = ()) -> tuple[Engine, dict[str, PooledTransport]]:
        transports = self.pool.for_spec(spec)
        failed: dict[str, set[str]] = {}
        for key in upstream_failed:
            host, _, address = key.partition(": ")
            failed.setdefault(host, set()).add(address)
        options = RunOptions(revision=revision[:12], lock_wait=self.lock_timeout,
                             hosts=None if hosts is None else [h for h in spec.hosts if h in hosts],
                             upstream_failed={h: frozenset(a) for h, a in failed.items()})
        return Engine(spec, options, transports=dict(transports)), transports

    @staticmethod
    def _transient(failed: dict[str, bool], transports: dict[str, PooledTransport]) -> bool:
        """Is every failure transient? ``failed`` maps each failed host to whether the
        engine flagged its failure as coming from the connection (a TransportError or a
        busy lock, also raised by a provider, e.g. for a Docker engine that is down).
        Unflagged, a host still counts as transient when its transport broke during the
        run or it is unreachable now. One terminal failure makes the whole run terminal,
        so it is rolled back rather than retried for ever."""
        def host_transient(name: str, flagged: bool) -> bool:
            transport = transports.get(name)
            if flagged:
                return True
            return transport is not None and (bool(transport.take_faults()) or not transport.reachable())

        return bool(failed) and all(host_transient(name, flagged) for name, flagged in failed.items())

    def plan(self, spec: LoadedSpec, revision: str, hosts: Sequence[str] | None = None) -> RunResult:
        """Observe and plan without taking host locks or changing anything."""
        if hosts is not None and not any(h in spec.hosts for h in hosts):
            return RunResult(plan=Plan(spec.path, spec.digest, revision))
        engine, transports = self._engine(spec, revision, hosts)
        try:
            with engine:
                plan = engine.plan()
        except ReconcilerError as exc:
            return RunResult(error=REDACTOR.scrub(str(exc)))
        result = RunResult(plan=plan, jobs=job_records(engine))
        if plan.has_errors:
            result.error = _host_errors(plan)
            result.transient = self._transient(_plan_failures(plan), transports)
        return result

    def apply(self, spec: LoadedSpec, revision: str,
              before_apply: Callable[[Plan], None] | None = None, *, hosts: Sequence[str] | None = None,
              upstream_failed: Sequence[str] = ()) -> RunResult:
        """Plan under the host locks, then apply when anything differs.
        ``before_apply`` sees the locked plan first (to record what is about to change).
        ``hosts``: only those (a batch, a rollback of the hosts a rollout changed); hosts
        the spec does not have are left out, and none left is nothing to do.
        ``upstream_failed``: ``host: address`` keys earlier batches failed."""
        if hosts is not None and not any(h in spec.hosts for h in hosts):
            return RunResult(plan=Plan(spec.path, spec.digest, revision))
        engine, transports = self._engine(spec, revision, hosts, upstream_failed)
        try:
            with engine:
                plan = engine.plan(lock=True)
                result = RunResult(plan=plan, jobs=job_records(engine))
                if plan.has_errors:
                    result.error = _host_errors(plan)
                    result.transient = self._transient(_plan_failures(plan), transports)
                    return result
                if not plan.has_changes:
                    return result
                if before_apply is not None:
                    before_apply(plan)
                report = engine.apply()
        except ReconcilerError as exc:
            return RunResult(error=REDACTOR.scrub(str(exc)))
        result.report = report
        result.jobs = job_records(engine)
        if not report.ok:
            result.error = _report_errors(report)
            failed = {h.host: _host_failure_transient(h) for h in report.hosts if not h.ok}
            result.transient = self._transient(failed, transports)
        return result

    # -- health --------------------------------------------------------------------------
    def probe(self, spec: LoadedSpec, revision: str, config: HealthConfig,
              hosts: Sequence[str] | None = None) -> Probe:
        """Plan the revision again (a host that cannot be planned fails its ``converged``
        check; a service that died right after its start differs) and run the configured
        checks, and the spec's ``rollout.health.checks``, once; on ``hosts`` only when
        given (a batch of a rollout)."""
        wanted = [h for h in spec.hosts if hosts is None or h in hosts]
        planned = self.plan(spec, revision, wanted if hosts is not None else None)
        host_errors: list[tuple[str, str]] = []
        plans = planned.plan.hosts if planned.plan else []
        for host in wanted:
            host_plan = next((h for h in plans if h.host == host), None)
            if host_plan is None:
                host_errors.append((host, planned.error or "not planned"))
            elif host_plan.error:
                host_errors.append((host, host_plan.error))
        differing = change_records(planned.plan) if planned.plan is not None else ()
        checks: list[HealthResult] = []
        transports = self.pool.for_spec(spec)
        for check in config.checks:
            for host in wanted:
                if check.hosts is not None and host not in check.hosts:
                    continue
                checks.append(self._run_check(transports[host], host, check.name, check.argv(),
                                              check.timeout))
        for rollout_check in spec.rollout.health.checks if spec.rollout is not None else []:
            for host in wanted:
                if rollout_check.hosts is None or host in spec.fleet.targets(rollout_check.hosts):
                    checks.append(self._run_check(transports[host], host, rollout_check.name,
                                                  rollout_check.argv(), rollout_check.timeout))
        return Probe(tuple(checks), tuple(host_errors), differing, planned.jobs)

    def explain(self, spec: LoadedSpec, keys: Sequence[str]) -> tuple[tuple[str, str], ...]:
        """What the hosts can tell about who or what last changed these resources
        (``host: address`` keys): for a resource with a ``path``, the file's
        modification time and owner (``stat``). Best effort: a failure tells nothing."""
        transports = self.pool.for_spec(spec)
        out: list[tuple[str, str]] = []
        for key in keys:
            host, _, address = key.partition(": ")
            if host not in transports:
                continue
            entry = next((e for e in spec.entries_for(host) if e.address == address), None)
            path = getattr(spec.resource_for_host(entry, host), "path", None) if entry is not None else None
            if not isinstance(path, str) or not path.startswith("/"):
                continue
            try:
                proc = transports[host].run(["stat", "-c", "%y %U:%G", "--", path], timeout=15, check=False)
            except ReconcilerError:
                continue
            when, _, owner = proc.out.strip().rpartition(" ")
            if proc.ok and when:
                out.append((key, f"{path} was modified at {when} (owner {owner})"))
        return tuple(out)

    @staticmethod
    def _run_check(transport: PooledTransport, host: str, name: str, argv: list[str],
                   timeout: float) -> HealthResult:
        try:
            proc = transport.run(argv, timeout=timeout + 5, check=False)
        except ReconcilerError as exc:
            return HealthResult(host, name, False, REDACTOR.scrub(str(exc)))
        if proc.ok:
            return HealthResult(host, name, True)
        detail = (proc.err.strip() or proc.out.strip())[-400:]
        message = f"`{' '.join(argv)}` exited {proc.exit_code}" + (f": {detail}" if detail else "")
        return HealthResult(host, name, False, REDACTOR.scrub(message))


def job_records(engine: Engine) -> tuple[JobRecord, ...]:
    """The scheduled host jobs' last results the engine's providers report from what it
    observed (``Engine.job_results``), as the controller records them."""
    return tuple(JobRecord.of(host, found) for host, results in engine.job_results().items()
                 for found in results)


def _plan_failures(plan: Plan) -> dict[str, bool]:
    return {h.host: h.transient for h in plan.hosts if h.error}


def _host_failure_transient(report: HostReport) -> bool:
    """Every failure on this host came from the connection (skips follow from failures)."""
    failures = [o for o in report.outcomes if o.status is Status.FAILED]
    if report.error:
        return report.transient and all(o.transient for o in failures)
    return bool(failures) and all(o.transient for o in failures)


def _host_errors(plan: Plan) -> str:
    return "; ".join(f"{h.host}: {h.error}" for h in plan.hosts if h.error)


def _report_errors(report: ApplyReport) -> str:
    problems: list[str] = []
    for h in report.hosts:
        if h.error:
            problems.append(f"{h.host}: {h.error}")
        for o in h.outcomes:
            if o.status is not Status.APPLIED:
                problems.append(f"{h.host}: {o.change.address}: {o.error}")
    shown = problems[:MAX_ERRORS_SHOWN]
    if len(problems) > len(shown):
        shown.append(f"and {len(problems) - len(shown)} more")
    return str(public("; ".join(shown)))
