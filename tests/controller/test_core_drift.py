"""The decision core (pure logic), drift between commits: when a check runs, what is
corrected, what is only recorded, how a fight with someone else is spaced out.
One test per transition, named for the behaviour."""

from __future__ import annotations

from dataclasses import replace

from reconciler.controller.config import DriftCorrection
from reconciler.controller.core import (
    ApplyRevision,
    CountFailure,
    CountRun,
    DriftRequested,
    DriftRun,
    DriftState,
    EngineOutcome,
    Planned,
    PlanRevision,
    Policy,
    ProbeHealth,
    Retry,
    Rule,
    Running,
    SaveStatus,
    Tick,
    Waiting,
)
from reconciler.controller.records import Cause, Contested, HealthResult, Result, Stage, Trigger
from tests.controller.core_support import (
    NEW_YEAR,
    T0,
    WINDOWED,
    A,
    B,
    applied,
    applied_state,
    change,
    effects,
    head,
    ok_apply,
    ok_plan,
    probed,
    records,
    step,
    verifying_run,
    waiting_state,
)

DRIFT = change(reason="drift", before="by hand", after="listen 8080")


def test_due_drift_check_plans_the_applied_revision() -> None:
    decision = step(applied_state(next_drift_at=T0), Tick(T0))
    assert Rule.DRIFT_CHECK_STARTED in decision.rules
    assert effects(decision) == [PlanRevision(A)]
    assert decision.state.next_drift_at == T0 + 60
    assert decision.state.drift_run is not None and decision.state.drift_run.trigger is Trigger.DRIFT_INTERVAL


def test_file_event_checks_drift_at_once() -> None:
    decision = step(applied_state(), DriftRequested(T0, Trigger.FILE_EVENT, ("/srv/app.conf",)))
    assert Rule.DRIFT_CHECK_STARTED in decision.rules and effects(decision) == [PlanRevision(A)]
    assert decision.state.drift_run is not None and decision.state.drift_run.detail == ("/srv/app.conf",)


def test_no_drift_check_before_a_revision_is_applied_and_loaded() -> None:
    nothing_yet = applied_state(head=None, applied=None, next_drift_at=T0)
    unloadable = applied_state(applied_loaded=False, applied_load_failed=True, next_drift_at=T0)
    for state in (nothing_yet, unloadable):
        decision = step(state, Tick(T0))
        assert Rule.DRIFT_CHECK_WITHOUT_APPLIED_SPEC in decision.rules
        assert not [e for e in effects(decision) if isinstance(e, PlanRevision)]
        assert decision.state.next_drift_at == T0 + 60


def test_no_drift_check_while_a_newer_commit_waits_for_its_retry() -> None:
    state = applied_state(head=head(B), retry=Retry(B, 2, T0 + 50, "down"), next_drift_at=T0)
    decision = step(state, Tick(T0))
    assert Rule.DRIFT_CHECK_WAITS_FOR_RETRY in decision.rules and not effects(decision)


def test_hosts_in_sync_count_as_a_run_and_clear_pending_drift() -> None:
    state = waiting_state(Waiting.DRIFT_PLAN, drift=DriftState(pending=(DRIFT,), streak=3, not_before=T0 + 4))
    decision = step(state, Planned(T0, A, ok_plan()))
    assert Rule.HOSTS_IN_SYNC in decision.rules
    assert decision.state.drift.pending == () and decision.state.drift.streak == 0
    assert decision.state.drift.last_check == "2027-01-15T08:00:00Z"
    # Counted (the run timestamp moves), but no history entry.
    assert CountRun(Cause.DRIFT.value, Result.IN_SYNC, 1.0) in decision.actions and not records(decision)


def test_drift_check_that_cannot_plan_is_counted_and_logged() -> None:
    decision = step(waiting_state(Waiting.DRIFT_PLAN), Planned(T0, A, EngineOutcome(error="web: unreachable",
                                                                                    transient=True)))
    assert Rule.DRIFT_CHECK_FAILED in decision.rules
    assert CountFailure(Stage.DRIFT_PLAN) in decision.actions and not records(decision)
    assert CountRun(Cause.DRIFT.value, Result.FAILED, 1.0) in decision.actions


def test_drift_inside_the_windows_is_corrected() -> None:
    decision = step(waiting_state(Waiting.DRIFT_PLAN), Planned(T0, A, ok_plan(DRIFT)))
    assert Rule.DRIFT_CORRECTION_STARTED in decision.rules
    assert effects(decision) == [ApplyRevision(A)]
    assert decision.state.in_flight == Running(A, Cause.DRIFT, "2027-01-15T08:00:00Z")
    assert isinstance(decision.actions[-2], SaveStatus)


def test_drift_correction_is_recorded_with_before_and_after() -> None:
    state = waiting_state(Waiting.DRIFT_APPLY, in_flight=Running(A, Cause.DRIFT, "x"))
    decision = step(state, applied(A, ok_apply(DRIFT), now=T0 + 1))
    assert Rule.DRIFT_CORRECTED in decision.rules
    [record] = records(decision)
    assert (record.cause, record.result, record.revision) == (Cause.DRIFT, Result.CORRECTED, A)
    assert record.changes == (DRIFT,) and record.intent == "drift correction"
    assert record.changes[0].fields[0].before == "by hand"
    assert decision.state.in_flight is None and decision.state.drift.pending == ()
    assert CountRun(Cause.DRIFT.value, Result.CORRECTED, 2.0, 1) in decision.actions


def test_corrections_in_a_row_space_event_checks_out() -> None:
    state = waiting_state(Waiting.DRIFT_APPLY)
    gaps = []
    for _ in range(4):
        decision = step(state, applied(A, ok_apply(DRIFT)))
        gaps.append(decision.state.drift.not_before - T0)
        state = replace(decision.state, waiting=Waiting.DRIFT_APPLY, drift_run=waiting_state(
            Waiting.DRIFT_APPLY).drift_run)
    assert gaps == [0.0, 2.0, 4.0, 8.0]


def test_drift_events_while_corrections_keep_coming_are_spaced_out() -> None:
    state = applied_state(drift=DriftState(streak=3, not_before=T0 + 4))
    decision = step(state, DriftRequested(T0, Trigger.FILE_EVENT))
    assert Rule.DRIFT_REQUEST_DEBOUNCED in decision.rules and not effects(decision)
    assert decision.state.drift.wanted is Trigger.FILE_EVENT
    later = step(decision.state, Tick(T0 + 4))
    assert effects(later) == [PlanRevision(A)]
    assert later.state.drift_run is not None and later.state.drift_run.trigger is Trigger.FILE_EVENT


def test_drift_that_went_away_before_the_lock_is_not_recorded() -> None:
    decision = step(waiting_state(Waiting.DRIFT_APPLY), applied(A, ok_apply()))
    assert Rule.DRIFT_VANISHED in decision.rules and not records(decision)
    assert CountRun(Cause.DRIFT.value, Result.IN_SYNC, 1.0) in decision.actions


def test_failed_drift_correction_is_recorded_and_stays_pending() -> None:
    failed = EngineOutcome(error="web: files:/srv/app.conf: read-only file system", planned=True,
                           applied=True, changes=(DRIFT,))
    decision = step(waiting_state(Waiting.DRIFT_APPLY), applied(A, failed))
    assert Rule.DRIFT_CORRECTION_FAILED in decision.rules
    [record] = records(decision)
    assert record.result is Result.FAILED and record.transient is False and "read-only" in record.error
    assert decision.state.drift.pending == (DRIFT,)
    assert CountFailure(Stage.DRIFT) in decision.actions


def test_drift_outside_window_is_detected_not_corrected() -> None:
    decision = step(waiting_state(Waiting.DRIFT_PLAN), Planned(T0, A, ok_plan(DRIFT)), WINDOWED)
    assert Rule.DRIFT_DETECTED_NOT_CORRECTED in decision.rules
    assert not [e for e in effects(decision) if isinstance(e, ApplyRevision)]
    [record] = records(decision)
    assert record.result is Result.DETECTED and "outside every allow window" in record.reason
    assert decision.state.drift.blocked and decision.state.drift.pending == (DRIFT,)
    assert CountRun(Cause.DRIFT.value, Result.DETECTED, 1.0, 1) in decision.actions


def test_drift_correction_never_only_detects() -> None:
    never = Policy(drift_correction=DriftCorrection.NEVER)
    decision = step(waiting_state(Waiting.DRIFT_PLAN), Planned(T0, A, ok_plan(DRIFT)), never)
    assert Rule.DRIFT_DETECTED_NOT_CORRECTED in decision.rules
    assert records(decision)[0].reason == "drift_correction is never"


def test_drift_correction_always_corrects_even_outside_the_windows() -> None:
    always = Policy(sync_windows=WINDOWED.sync_windows, drift_correction=DriftCorrection.ALWAYS)
    decision = step(waiting_state(Waiting.DRIFT_PLAN), Planned(T0, A, ok_plan(DRIFT)), always)
    assert Rule.DRIFT_CORRECTION_STARTED in decision.rules and effects(decision) == [ApplyRevision(A)]


def test_the_same_uncorrected_drift_is_recorded_once() -> None:
    first = step(waiting_state(Waiting.DRIFT_PLAN), Planned(T0, A, ok_plan(DRIFT)), WINDOWED)
    again_state = replace(first.state, waiting=Waiting.DRIFT_PLAN,
                          drift_run=DriftRun(A, Trigger.DRIFT_INTERVAL, T0 + 59, (), frozenset()))
    again = step(again_state, Planned(T0 + 60, A, ok_plan(DRIFT)), WINDOWED)
    assert Rule.SAME_DRIFT_REPORTED_ONCE in again.rules and not records(again)
    other = step(again_state, Planned(T0 + 60, A, ok_plan(change(reason="drift", before="else"))), WINDOWED)
    assert Rule.DRIFT_DETECTED_NOT_CORRECTED in other.rules and len(records(other)) == 1


def test_window_opening_over_drift_left_alone_checks_again() -> None:
    state = applied_state(drift=DriftState(pending=(DRIFT,), blocked=True), next_fetch_at=NEW_YEAR + 30,
                          next_drift_at=NEW_YEAR + 60)
    decision = step(state, Tick(NEW_YEAR), WINDOWED)
    assert Rule.WINDOW_OPENS_FOR_DRIFT in decision.rules and effects(decision) == [PlanRevision(A)]
    assert decision.state.drift_run is not None and decision.state.drift_run.trigger is Trigger.WINDOW


def test_drift_event_during_a_health_grace_brings_the_probe_forward() -> None:
    state = applied_state(head=head(B), run=verifying_run(next_probe=T0 + 2))
    decision = step(state, DriftRequested(T0, Trigger.FILE_EVENT, ("/srv/app.conf",)))
    assert Rule.DRIFT_REQUEST_IN_GRACE_PROBES in decision.rules and effects(decision) == [ProbeHealth(B)]


def test_drift_event_during_a_run_is_checked_when_the_run_ends() -> None:
    state = waiting_state(Waiting.COMMIT_APPLY)
    decision = step(state, DriftRequested(T0, Trigger.DOCKER_EVENT, ("web: die box",)))
    assert Rule.DRIFT_REQUEST_QUEUED in decision.rules and not effects(decision)
    drift = decision.state.drift
    assert drift.wanted is Trigger.DOCKER_EVENT and drift.detail == ("web: die box",)
    assert decision.state.waiting is Waiting.COMMIT_APPLY


OWN = "web: files:/srv/app.conf"
ELSEWHERE = change("files:/srv/other.conf", reason="drift", before="by hand", after="as the spec says")


def test_drift_elsewhere_seen_in_a_grace_is_corrected_not_held_against_the_commit() -> None:
    decision = step(waiting_state(Waiting.PROBE), probed(B, T0 + 1, differing=(ELSEWHERE,)))
    assert Rule.HEALTHY_COMMIT_APPLIED in decision.rules
    assert Rule.DRIFT_FOUND_BY_PROBE_CORRECTED in decision.rules
    [commit] = records(decision)
    assert commit.result is Result.APPLIED and decision.state.applied.revision == B  # type: ignore[union-attr]
    converged = decision.state.health[0]
    assert converged.ok and converged.detail == "drift of other resources: files:/srv/other.conf"
    assert effects(decision) == [ApplyRevision(B)]  # corrected as drift of the new revision
    assert decision.state.drift_run is not None and decision.state.drift_run.trigger is Trigger.HEALTH_PROBE
    done = step(decision.state, applied(B, ok_apply(ELSEWHERE), now=T0 + 2))
    [drift] = records(done)
    assert (drift.cause, drift.result, drift.revision) == (Cause.DRIFT, Result.CORRECTED, B)
    assert drift.contested == ()


def test_drift_in_a_grace_is_corrected_before_the_verdict() -> None:
    failing = (HealthResult("web", "http", False, "warming up"),)
    decision = step(waiting_state(Waiting.PROBE), probed(B, T0 + 1, checks=failing, differing=(ELSEWHERE,)))
    assert Rule.UNHEALTHY_COMMIT_PROBED_AGAIN in decision.rules
    assert Rule.DRIFT_FOUND_BY_PROBE_CORRECTED in decision.rules
    assert effects(decision) == [ApplyRevision(B)] and decision.state.waiting is Waiting.DRIFT_APPLY
    assert decision.state.run is not None and decision.state.run.next_probe == T0 + 3
    done = step(decision.state, applied(B, ok_apply(ELSEWHERE), now=T0 + 2))
    assert [r.result for r in records(done)] == [Result.CORRECTED]
    assert done.state.run is not None and done.state.waiting is None  # the grace goes on
    assert not effects(done)
    verdict = step(replace(done.state, waiting=Waiting.PROBE), probed(B, T0 + 3))
    assert records(verdict)[0].result is Result.APPLIED


def test_own_resource_changed_again_is_contested_not_rolled_back() -> None:
    undone = change(reason="drift", before="by someone else", after="new")
    decision = step(waiting_state(Waiting.PROBE), probed(B, T0 + 1, differing=(undone,)))
    assert Rule.HEALTHY_COMMIT_APPLIED in decision.rules and not decision.state.is_quarantined(B)
    assert "contested" in decision.state.health[0].detail
    assert effects(decision) == [ApplyRevision(B, explain=(OWN,))]
    evidence = ((OWN, "/srv/app.conf was modified at 2027-01-15 08:00:01 (owner root:root)"),)
    done = step(decision.state, applied(B, replace(ok_apply(undone), evidence=evidence), now=T0 + 2))
    assert Rule.DRIFT_CORRECTED in done.rules
    [drift] = records(done)
    assert drift.contested == (OWN,) and drift.result is Result.CORRECTED
    [contested] = done.state.contested
    assert (contested.key, contested.revision, contested.count) == (OWN, B, 1)
    assert contested.evidence == (evidence[0][1],)
    # The same resource changed again later: still contested, counted.
    later = step(replace(done.state, waiting=Waiting.DRIFT_PLAN, drift_run=DriftRun(
        B, Trigger.DRIFT_INTERVAL, T0 + 9, (), done.state.applied_changed, ("/srv/app.conf",))),
        Planned(T0 + 10, B, ok_plan(undone)))
    assert effects(later) == [ApplyRevision(B, explain=(OWN,))]
    again = step(later.state, applied(B, ok_apply(undone), now=T0 + 11))
    assert again.state.contested[0].count == 2 and again.state.contested[0].evidence == ("/srv/app.conf",)


def test_a_new_commit_starts_with_nothing_contested() -> None:
    state = waiting_state(Waiting.PROBE, contested=(Contested("web", "files:/srv/app.conf", A, 4, "x", "y"),))
    decision = step(state, probed(B, T0 + 1))
    assert decision.state.contested == ()
    assert decision.state.applied_changed == frozenset({OWN})


def test_a_stale_retry_of_the_applied_head_is_dropped() -> None:
    state = applied_state(retry=Retry(A, 1, T0 + 50, "x"), next_drift_at=T0)
    decision = step(state, Tick(T0))
    assert Rule.HEAD_APPLIED_CLEARS_RETRY in decision.rules and decision.state.retry is None
    assert effects(decision) == [PlanRevision(A)]  # and drift checks go on
