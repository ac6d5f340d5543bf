"""Helpers for the decision core's unit tests (no tests here): states, events and
readers of a decision's actions. Pure data, no hosts, no git, no clock."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from reconciler.controller.config import SyncWindow, WindowKind
from reconciler.controller.core import (
    EFFECTS,
    Action,
    Applied,
    CommitRun,
    Decision,
    DriftRun,
    EngineOutcome,
    Event,
    Fetched,
    Good,
    Head,
    HealthProbed,
    LoadOutcome,
    Policy,
    RecordRun,
    RevisionLoaded,
    State,
    Waiting,
    decide,
)
from reconciler.controller.records import (
    Cause,
    ChangeRecord,
    CommitInfo,
    FieldRecord,
    HealthResult,
    RunRecord,
    Summary,
    Trigger,
    utc_text,
)

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
NEW_YEAR = 1_798_761_630.0  # 2027-01-01 00:00:30 UTC, inside CLOSED_MOSTLY
A, B, C = "a" * 40, "b" * 40, "c" * 40
POLICY = Policy()
# An allow window open only in the first minute of the year: closed at T0.
CLOSED_MOSTLY = SyncWindow(kind=WindowKind.ALLOW, schedule="0 0 1 1 *", duration=60)
WINDOWED = Policy(sync_windows=(CLOSED_MOSTLY,))
SIGNED = Policy(require_signed=True)
INFO = CommitInfo("a change", "Ops <ops@example.com>", "2027-01-15T07:59:00+00:00")

A_TYPE = TypeVar("A_TYPE")


def change(address: str = "files:/srv/app.conf", host: str = "web", reason: str = "spec-changed",
           before: object = "old", after: object = "new") -> ChangeRecord:
    return ChangeRecord(host, address, "update", reason, (FieldRecord("content", before, after),))


def ok_apply(*changes: ChangeRecord) -> EngineOutcome:
    return EngineOutcome(planned=True, applied=bool(changes), changed=bool(changes),
                         summary=Summary(change=len(changes)), changes=changes, resources={"web": {}})


def ok_plan(*changes: ChangeRecord) -> EngineOutcome:
    return EngineOutcome(planned=True, summary=Summary(change=len(changes)), changes=changes,
                         resources={"web": {}})


def applied_state(**changes: object) -> State:
    """A controller at rest: A fetched, applied and loaded, timers in the future."""
    state = State(head=Head(A, utc_text(T0 - 100), INFO), applied=Good(A, utc_text(T0 - 100)),
                  applied_loaded=True, next_fetch_at=T0 + 30, next_drift_at=T0 + 60)
    return replace(state, **changes)  # type: ignore[arg-type]


def commit_run(sha: str = B, **changes: object) -> CommitRun:
    record = RunRecord(time=utc_text(T0 - 5), cause=Cause.COMMIT, revision=sha, trigger=Trigger.LOCAL_REPO)
    run = CommitRun(sha, Trigger.LOCAL_REPO, T0 - 5, record)
    return replace(run, **changes)  # type: ignore[arg-type]


def verifying_run(sha: str = B, own: frozenset[str] = frozenset({"web: files:/srv/app.conf"}),
                  **changes: object) -> CommitRun:
    settings: dict[str, object] = {"applied": ok_apply(change()), "changed": own, "verify_until": T0 + 25,
                                   "next_probe": T0, **changes}
    return commit_run(sha, **settings)


def waiting_state(waiting: Waiting, **changes: object) -> State:
    """A state waiting for ``waiting``'s result, with the run it belongs to."""
    base = applied_state(head=Head(B, utc_text(T0 - 10), INFO))
    if waiting in (Waiting.SIGNATURE, Waiting.CANDIDATE, Waiting.DEFER_PLAN, Waiting.COMMIT_APPLY):
        base = replace(base, run=commit_run())
    elif waiting in (Waiting.PROBE, Waiting.ROLLBACK):
        base = replace(base, run=verifying_run())
    elif waiting in (Waiting.DRIFT_PLAN, Waiting.DRIFT_APPLY):
        base = replace(base, head=Head(A, utc_text(T0 - 100), INFO),
                       drift_run=DriftRun(A, Trigger.DRIFT_INTERVAL, T0 - 1, (change(reason="drift"),),
                                          frozenset()))
    return replace(base, waiting=waiting, **changes)  # type: ignore[arg-type]


def head(sha: str) -> Head:
    return Head(sha, utc_text(T0 - 60), INFO)


def step(state: State, event: Event, policy: Policy = POLICY) -> Decision:
    return decide(state, event, policy)


def effects(decision: Decision) -> list[Action]:
    return [a for a in decision.actions if isinstance(a, EFFECTS)]


def of(decision: Decision, kind: type[A_TYPE]) -> list[A_TYPE]:
    return [a for a in decision.actions if isinstance(a, kind)]


def records(decision: Decision) -> list[RunRecord]:
    return [a.record for a in of(decision, RecordRun)]


def fetched(sha: str, now: float = T0, trigger: Trigger = Trigger.LOCAL_REPO) -> Fetched:
    return Fetched(now, trigger, sha, INFO)


def loaded(sha: str = B, now: float = T0) -> RevisionLoaded:
    return RevisionLoaded(now, sha, LoadOutcome.LOADED)


def applied(sha: str, outcome: EngineOutcome, now: float = T0, jitter: float = 0.5) -> Applied:
    return Applied(now, sha, outcome, jitter)


def probed(sha: str = B, now: float = T0, *, checks: tuple[HealthResult, ...] = (),
           differing: tuple[ChangeRecord, ...] = (),
           host_errors: tuple[tuple[str, str], ...] = ()) -> HealthProbed:
    return HealthProbed(now, sha, ("web",), checks, host_errors, differing)
