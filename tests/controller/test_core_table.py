"""The decision core (pure logic), as a table: every representative state meets every
kind of event, under each policy, and the result is defined: a named transition,
at most one effect and only as the last action, a waiting state that matches the
effect, no livelock (a tick either does something or the next wake-up is later),
and the same answer twice (no hidden input). Then: every transition is exercised
by a test of its own."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.controller.core import (
    EFFECTS,
    Applied,
    ApplyRevision,
    CheckSignature,
    Decision,
    Deferred,
    DriftRequested,
    DriftState,
    EngineOutcome,
    Event,
    Fetch,
    FetchFailed,
    FetchRequested,
    FetchRetry,
    LoadOutcome,
    LoadRevision,
    Planned,
    PlanRevision,
    Policy,
    ProbeHealth,
    Retry,
    RevisionLoaded,
    Rule,
    Running,
    SignatureChecked,
    Started,
    State,
    StepFailed,
    Stopping,
    Tick,
    Waiting,
    decide,
    next_wakeup,
)
from reconciler.controller.records import Cause, HealthResult, JobRecord, Summary, Trigger
from reconciler.provider import JobOutcome
from tests.controller.core_support import (
    POLICY,
    SIGNED,
    T0,
    WINDOWED,
    A,
    B,
    C,
    applied_state,
    change,
    fetched,
    head,
    ok_apply,
    ok_plan,
    probed,
    verifying_run,
    waiting_state,
)

DRIFT = change(reason="drift")

STATES: dict[str, State] = {
    "fresh": State(),
    "fresh, fetch due": State(want_fetch=Trigger.STARTUP, next_fetch_at=T0, next_drift_at=T0),
    "applied": applied_state(),
    "applied, timers due": applied_state(next_fetch_at=T0, next_drift_at=T0),
    "applied, spec not loaded": applied_state(applied_loaded=False),
    "applied, spec unloadable": applied_state(applied_loaded=False, applied_load_failed=True),
    "new head": applied_state(head=head(B)),
    "quarantined head": applied_state(head=head(B), quarantined=((B, "spec: bad"),)),
    "retry waiting": applied_state(head=head(B), retry=Retry(B, 1, T0 + 10, "down")),
    "retry due": applied_state(head=head(B), retry=Retry(B, 2, T0 - 1, "down")),
    "deferred": applied_state(head=head(B), deferred=Deferred(B, "x", Summary(change=1), "closed")),
    "crash-looping head": applied_state(head=head(B), in_flight=Running(B, Cause.COMMIT, "x", 3)),
    "drift left alone": applied_state(drift=DriftState(pending=(DRIFT,), blocked=True)),
    "drift debounced": applied_state(drift=DriftState(streak=3, not_before=T0 + 4,
                                                      wanted=Trigger.FILE_EVENT)),
    "fetch failing": applied_state(fetch_retry=FetchRetry(3, T0 + 120, "hung", "x"), next_fetch_at=T0 + 120),
    "fetch failing, fetch due": applied_state(fetch_retry=FetchRetry(3, T0, "hung", "x"), next_fetch_at=T0),
    "fetch failing, retry due": applied_state(head=head(B), retry=Retry(B, 2, T0 - 1, "down"),
                                              fetch_retry=FetchRetry(1, T0 + 30, "hung", "x")),
    "paused after a bug": applied_state(hold_until=T0 + 30, next_fetch_at=T0),
    "in grace": applied_state(head=head(B), run=verifying_run(next_probe=T0 + 2)),
    "in grace, probe due": applied_state(head=head(B), run=verifying_run(next_probe=T0)),
    **{f"waiting for {w.value}": waiting_state(w) for w in Waiting},
    "correcting drift in a grace": replace(waiting_state(Waiting.DRIFT_APPLY), head=head(B),
                                           run=verifying_run()),
}

DRILL_FAILED = JobRecord("web", "backups:appdb", "drill", JobOutcome.FAILED, T0 - 60, "checksum mismatch")
FAILED_APPLY = EngineOutcome(error="web: boom", planned=True, applied=True, changes=(change(),))
EVENTS: dict[str, Event] = {
    "started": Started(T0),
    "tick": Tick(T0),
    "tick later": Tick(T0 + 40),
    "fetch requested": FetchRequested(T0, Trigger.WEBHOOK),
    "drift requested": DriftRequested(T0, Trigger.FILE_EVENT, ("/srv/app.conf",)),
    "stopping": Stopping(T0),
    "fetched applied": fetched(A),
    "fetched new": fetched(B),
    "fetched newer": fetched(C),
    "fetch failed": FetchFailed(T0, Trigger.INTERVAL, "refused"),
    "signature good": SignatureChecked(T0, B, True, "good"),
    "signature bad": SignatureChecked(T0, B, False, "unsigned"),
    **{f"loaded {o.value}": RevisionLoaded(T0, B, o, "msg",
                                           ({"line": 1},) if o is LoadOutcome.SPEC_ERRORS else ())
       for o in LoadOutcome},
    "loaded applied": RevisionLoaded(T0, A, LoadOutcome.LOADED),
    "planned commit": Planned(T0, B, ok_plan(change())),
    "planned in sync": Planned(T0, A, ok_plan()),
    "planned drift": Planned(T0, A, ok_plan(DRIFT)),
    "plan failed": Planned(T0, A, EngineOutcome(error="web: down", transient=True)),
    "applied commit": Applied(T0, B, ok_apply(change())),
    "commit transient": Applied(T0, B, EngineOutcome(error="web: down", transient=True)),
    "commit plan failed": Applied(T0, B, EngineOutcome(error="web: bad")),
    "commit apply failed": Applied(T0, B, FAILED_APPLY),
    "commit apply failed on drift": Applied(T0, B, replace(FAILED_APPLY, changes=(change(), DRIFT),
                                                           failed=(DRIFT.key,))),
    "applied good": Applied(T0, A, ok_apply(DRIFT)),
    "applied good, nothing to do": Applied(T0, A, ok_apply()),
    "applied good failed": Applied(T0, A, EngineOutcome(error="web: boom", planned=True, applied=True)),
    "healthy": probed(B),
    "unhealthy": probed(B, checks=(HealthResult("web", "http", False, "7"),)),
    "unhealthy at the end": probed(B, T0 + 30, checks=(HealthResult("web", "http", False, "7"),)),
    "probe saw drift": probed(B, differing=(change("files:/srv/other.conf", reason="drift"),)),
    "probe saw own change undone": probed(B, differing=(change(reason="drift"),)),
    "probe host down": probed(B, host_errors=(("web", "cannot connect"),)),
    "step failed": StepFailed(T0, "KeyError: 'x'"),
    "planned in sync, a drill failed": Planned(T0, A, replace(ok_plan(), jobs=(DRILL_FAILED,))),
    "applied commit, a drill failed": Applied(T0, B, replace(ok_apply(change()), jobs=(DRILL_FAILED,))),
    "healthy, a drill failed": replace(probed(B), jobs=(DRILL_FAILED,)),
}
POLICIES = {"default": POLICY, "windows closed": WINDOWED, "require signed": SIGNED}
RESULT_FOR = {Fetch: Waiting.FETCH, CheckSignature: Waiting.SIGNATURE, ProbeHealth: Waiting.PROBE}


def check(state: State, event: Event, policy: Policy) -> Decision:
    decision = decide(state, event, policy)
    assert decision.rules, "no transition named"
    assert decide(state, event, policy) == decision, "not deterministic"
    effects = [a for a in decision.actions if isinstance(a, EFFECTS)]
    assert len(effects) <= 1, effects
    new = decision.state
    if effects:
        assert decision.actions[-1] is effects[0], "an effect must be the last action"
        assert new.waiting is not None
        expected = RESULT_FOR.get(type(effects[0]))
        if expected is not None:
            assert new.waiting is expected
        if isinstance(effects[0], ApplyRevision | PlanRevision | LoadRevision):
            assert new.waiting in (Waiting.COMMIT_APPLY, Waiting.ROLLBACK, Waiting.DRIFT_APPLY,
                                   Waiting.DEFER_PLAN, Waiting.DRIFT_PLAN, Waiting.CANDIDATE,
                                   Waiting.APPLIED_SPEC)
    elif state.waiting is not None and not isinstance(event, Started | StepFailed):
        # Only the awaited result can end a wait.
        assert new.waiting in (state.waiting, None)
    if new.waiting in (Waiting.SIGNATURE, Waiting.CANDIDATE, Waiting.DEFER_PLAN, Waiting.COMMIT_APPLY,
                       Waiting.PROBE, Waiting.ROLLBACK):
        assert new.run is not None
    if new.waiting in (Waiting.DRIFT_PLAN, Waiting.DRIFT_APPLY):
        assert new.drift_run is not None
    if new.waiting is None and new.run is not None:
        assert new.run.verifying, "a commit run stopped half-way"
    if isinstance(event, Tick) and new.waiting is None and not effects:
        assert next_wakeup(new, policy, event.now) > event.now, "a tick that did nothing leaves work due"
    assert len(new.quarantined) <= 50
    return decision


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize("state_name", STATES)
def test_every_state_and_event_has_a_defined_result(state_name: str, policy_name: str) -> None:
    for event_name, event in EVENTS.items():
        try:
            check(STATES[state_name], event, POLICIES[policy_name])
        except AssertionError as exc:
            raise AssertionError(f"{state_name} + {event_name} ({policy_name}): {exc}") from exc


def test_every_transition_has_a_test_of_its_own() -> None:
    here = Path(__file__).parent
    named = set()
    for path in here.glob("test_core_*.py"):
        if path.name != Path(__file__).name:
            named |= set(re.findall(r"Rule\.([A-Z_]+)", path.read_text()))
    missing = sorted(r.name for r in Rule if r.name not in named)
    assert not missing, f"transitions without a test: {missing}"


def test_the_documentation_lists_every_transition() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "controller-internals.md").read_text()
    assert [r.name for r in Rule if f"`{r.name}`" not in doc] == []
