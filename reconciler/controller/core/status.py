"""The core's state to and from ``status.json`` (the part of it that outlives a restart)."""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Any, TypeVar

from reconciler.controller.core.model import (
    JOBS_KEEP,
    QUARANTINE_KEEP,
    Attempt,
    Deferred,
    DriftState,
    Failure,
    FetchRetry,
    Good,
    Head,
    Retry,
    Running,
    State,
)
from reconciler.controller.records import (
    Cause,
    ChangeRecord,
    Contested,
    HealthResult,
    JobRecord,
    Result,
    Stage,
    Summary,
    utc_text,
)
from reconciler.controller.state import ControllerStatus, ErrorRecord, InFlight, RetryState, Revision

E = TypeVar("E", bound=StrEnum)

def state_from_status(status: ControllerStatus) -> State:
    """The state a controller left in ``status.json`` (the decision state that outlives a restart)."""
    def good(rev: Revision | None) -> Good | None:
        if rev is None:
            return None
        return Good(rev.revision, rev.at, Summary.from_json(rev.summary),
                    _enum(Result, rev.result, Result.APPLIED))

    err = status.last_error
    flight = status.in_flight
    retry = status.retry
    pending = status.pending
    return State(
        head=Head(status.head.revision, status.head.at) if status.head else None,
        applied=good(status.last_applied),
        applied_changed=frozenset(status.applied_changes),
        attempted=Attempt(status.last_attempted.revision, status.last_attempted.at)
        if status.last_attempted else None,
        last_error=Failure(err.revision, err.at, _enum(Stage, err.cause, Stage.INTERNAL), err.message,
                           tuple(err.diagnostics)) if err else None,
        in_flight=Running(flight.revision, _enum(Cause, flight.cause, Cause.COMMIT), flight.started_at,
                          flight.attempts) if flight else None,
        retry=Retry(retry.revision, retry.attempt, float(retry.next_at), retry.error) if retry else None,
        fetch_retry=_fetch_retry(status.fetch_failing),
        deferred=Deferred(pending.revision, pending.at, Summary.from_json(pending.summary), pending.message)
        if pending else None,
        quarantined=tuple(status.quarantined.items())[-QUARANTINE_KEEP:],
        resources={host: dict(states) for host, states in status.resources.items()},
        health=tuple(HealthResult.from_json(h) for h in status.health),
        contested=tuple(Contested.from_json(c) for c in status.contested),
        jobs=_jobs(status.jobs),
        drift=DriftState(pending=tuple(ChangeRecord.from_json(c) for c in status.pending_drift),
                         last_check=status.last_drift_check),
    )


def status_from_state(state: State, base: ControllerStatus) -> ControllerStatus:
    """``base`` (repo, branch, pid ...) with the decision state written into it."""
    a = state.applied
    e = state.last_error
    f = state.in_flight
    r = state.retry
    p = state.deferred
    run = state.run
    return dataclasses.replace(
        base,
        head=Revision(state.head.revision, at=state.head.at) if state.head else None,
        last_applied=Revision(a.revision, at=a.at, summary=a.summary.to_json(), result=a.result.value)
        if a else None,
        applied_changes=sorted(state.applied_changed),
        last_attempted=Revision(state.attempted.revision, at=state.attempted.at) if state.attempted else None,
        last_error=ErrorRecord(e.revision, e.at, e.stage.value, e.message, [dict(d) for d in e.diagnostics])
        if e else None,
        in_flight=InFlight(f.revision, f.cause.value, f.started_at, f.attempts) if f else None,
        retry=RetryState(r.revision, r.attempt, r.next_at, r.error) if r else None,
        fetch_failing={"attempt": fr.attempt, "since": fr.since, "next_at": fr.next_at, "error": fr.error}
        if (fr := state.fetch_retry) is not None else None,
        pending=Revision(p.revision, at=p.at, summary=p.summary.to_json(), result=Result.DEFERRED.value,
                         message=p.message) if p else None,
        pending_drift=[c.to_json() for c in state.drift.pending],
        last_drift_check=state.drift.last_check,
        quarantined=dict(state.quarantined),
        resources={host: dict(states) for host, states in state.resources.items()},
        health=[h.to_json() for h in state.health],
        contested=[c.to_json() for c in state.contested],
        jobs=[j.to_json() for j in state.jobs],
        verifying={"revision": run.revision, "since": utc_text(run.started),
                   "until": utc_text(run.verify_until)}
        if run is not None and run.verifying else None,
    )


def _fetch_retry(data: dict[str, Any] | None) -> FetchRetry | None:
    """Fetches failing in a row as ``status.json`` keeps them (a backoff that outlives a
    restart, and the time of the first failure); None when absent or unreadable."""
    if not data:
        return None
    try:
        return FetchRetry(int(data["attempt"]), float(data["next_at"]), str(data.get("error", "")),
                          str(data.get("since", "")))
    except (KeyError, TypeError, ValueError):
        return None


def _jobs(data: list[dict[str, Any]]) -> tuple[JobRecord, ...]:
    """The last job results ``status.json`` keeps; an unreadable one is dropped (its
    job's next result is then recorded as new)."""
    out: list[JobRecord] = []
    for item in data[-JOBS_KEEP:]:
        try:
            out.append(JobRecord.from_json(item))
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(out)


def _enum(cls: type[E], value: str, default: E) -> E:
    try:
        return cls(value)
    except ValueError:
        return default
