"""One controller run: plan or apply a loaded spec with the core engine, then probe health.

Nothing here decides *what* to run (that is the loop's job in ``loop.py``); it
runs it and says how it went, in terms the loop acts on: ok, failed, and
whether the failure is transient (retry later) or terminal (wait for new input).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from reconciler.controller.config import HealthConfig
from reconciler.controller.transports import PooledTransport, TransportPool
from reconciler.engine import ApplyReport, Engine, HostReport, RunOptions, Status
from reconciler.errors import ReconcilerError
from reconciler.plan import Plan
from reconciler.sensitive import REDACTOR, public
from reconciler.spec import LoadedSpec

log = structlog.get_logger("reconciler.controller")

MAX_ERRORS_SHOWN = 5


@dataclass(frozen=True)
class HealthResult:
    host: str
    check: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "check": self.check, "ok": self.ok, "detail": public(self.detail)}


@dataclass
class RunResult:
    plan: Plan | None = None
    report: ApplyReport | None = None
    error: str = ""
    transient: bool = False
    health: list[HealthResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def applied_changes(self) -> bool:
        return self.report is not None and any(h.outcomes for h in self.report.hosts)


def plan_changes(plan: Plan) -> list[dict[str, Any]]:
    """The plan's changes as history data: before and after per field, secrets redacted
    (``Plan.to_json`` passes every value through ``public``)."""
    out: list[dict[str, Any]] = []
    for host in plan.to_json()["hosts"]:
        for change in host["changes"]:
            out.append({
                "host": change["host"], "address": change["address"], "action": change["action"],
                "reason": change["reason"],
                "fields": [{"path": f["path"], "before": f["old"], "after": f["new"]}
                           for f in change["fields"]],
            })
    return out


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
    for host in spec.hosts:
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

    def _engine(self, spec: LoadedSpec, revision: str) -> tuple[Engine, dict[str, PooledTransport]]:
        transports = self.pool.for_spec(spec)
        options = RunOptions(revision=revision[:12], lock_wait=self.lock_timeout)
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

    def plan(self, spec: LoadedSpec, revision: str) -> RunResult:
        """Observe and plan without taking host locks or changing anything."""
        engine, transports = self._engine(spec, revision)
        try:
            with engine:
                plan = engine.plan()
        except ReconcilerError as exc:
            return RunResult(error=REDACTOR.scrub(str(exc)))
        result = RunResult(plan=plan)
        if plan.has_errors:
            result.error = _host_errors(plan)
            result.transient = self._transient(_plan_failures(plan), transports)
        return result

    def apply(self, spec: LoadedSpec, revision: str,
              before_apply: Callable[[Plan], None] | None = None) -> RunResult:
        """Plan under the host locks, then apply when anything differs.
        ``before_apply`` sees the locked plan first (to record what is about to change)."""
        engine, transports = self._engine(spec, revision)
        try:
            with engine:
                plan = engine.plan(lock=True)
                result = RunResult(plan=plan)
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
        if not report.ok:
            result.error = _report_errors(report)
            failed = {h.host: _host_failure_transient(h) for h in report.hosts if not h.ok}
            result.transient = self._transient(failed, transports)
        return result

    # -- health --------------------------------------------------------------------------
    def health(self, spec: LoadedSpec, revision: str, config: HealthConfig,
               stop: Callable[[], bool] = lambda: False) -> list[HealthResult]:
        """Probe until every check passes or the grace window ends; the last probe's results.

        Besides the configured checks, every host must still match the spec (a
        fresh plan is empty): a service that dies right after its start shows here."""
        deadline = time.monotonic() + config.grace
        while True:
            results = self._probe(spec, revision, config)
            if all(r.ok for r in results) or time.monotonic() >= deadline or stop():
                return results
            time.sleep(min(config.interval, max(0.0, deadline - time.monotonic())))

    def _probe(self, spec: LoadedSpec, revision: str, config: HealthConfig) -> list[HealthResult]:
        results: list[HealthResult] = []
        planned = self.plan(spec, revision)
        for host in spec.hosts:
            hosts = planned.plan.hosts if planned.plan else []
            host_plan = next((h for h in hosts if h.host == host), None)
            if host_plan is None:
                results.append(HealthResult(host, "converged", False, planned.error or "not planned"))
            elif host_plan.error:
                results.append(HealthResult(host, "converged", False, host_plan.error))
            elif host_plan.changes:
                differing = ", ".join(c.address for c in host_plan.changes[:MAX_ERRORS_SHOWN])
                results.append(HealthResult(host, "converged", False,
                                            f"differs from the spec again: {differing}"))
            else:
                results.append(HealthResult(host, "converged", True))
        transports = self.pool.for_spec(spec)
        for check in config.checks:
            for host in spec.hosts:
                if check.hosts is not None and host not in check.hosts:
                    continue
                results.append(self._run_check(transports[host], host, check.name, check.argv(),
                                               check.timeout))
        return results

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
