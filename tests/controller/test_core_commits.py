"""The decision core (pure logic), commit by commit: from a fetched head through
signature, checkout, windows, apply, health, rollback and quarantine. One test
per transition, named for the behaviour."""

from __future__ import annotations

from dataclasses import replace

from reconciler.controller.core import (
    ApplyRevision,
    CheckSignature,
    Cleanup,
    CountFailure,
    CountRun,
    Deferred,
    EngineOutcome,
    Failure,
    LoadOutcome,
    LoadRevision,
    Planned,
    PlanRevision,
    ProbeHealth,
    PublishApplied,
    Retry,
    RevisionLoaded,
    Rule,
    Running,
    SaveStatus,
    SignatureChecked,
    Tick,
    Waiting,
    WatchRevision,
)
from reconciler.controller.records import Cause, HealthResult, Result, Stage, Summary, Trigger
from tests.controller.core_support import (
    INFO,
    NEW_YEAR,
    SIGNED,
    T0,
    WINDOWED,
    A,
    B,
    C,
    applied,
    applied_state,
    change,
    commit_run,
    effects,
    fetched,
    head,
    loaded,
    ok_apply,
    ok_plan,
    probed,
    records,
    step,
    verifying_run,
    waiting_state,
)


def test_new_commit_starts_with_checkout_and_records_the_run_in_flight() -> None:
    state = applied_state(waiting=Waiting.FETCH)
    decision = step(state, fetched(B))
    assert Rule.NEW_REVISION_FETCHED in decision.rules and Rule.COMMIT_STARTS_WITH_CHECKOUT in decision.rules
    assert decision.state.head is not None and decision.state.head.revision == B
    assert decision.state.in_flight == Running(B, Cause.COMMIT, decision.state.in_flight.started_at, 1)
    assert decision.state.attempted is not None and decision.state.attempted.revision == B
    # The run in flight is saved before the effect starts (crash safety).
    assert isinstance(decision.actions[-2], SaveStatus) and decision.actions[-1] == LoadRevision(B)
    assert decision.state.waiting is Waiting.CANDIDATE
    assert decision.state.run is not None and decision.state.run.record.commit == INFO


def test_with_require_signed_a_new_commit_starts_with_its_signature() -> None:
    decision = step(applied_state(waiting=Waiting.FETCH), fetched(B), SIGNED)
    assert Rule.COMMIT_STARTS_WITH_SIGNATURE in decision.rules
    assert effects(decision) == [CheckSignature(B)]


def test_unsigned_commit_is_quarantined_and_never_retried() -> None:
    state = waiting_state(Waiting.SIGNATURE, in_flight=Running(B, Cause.COMMIT, "x"))
    decision = step(state, SignatureChecked(T0, B, False, "the commit is not signed"), SIGNED)
    assert Rule.UNSIGNED_COMMIT_QUARANTINED in decision.rules
    assert decision.state.is_quarantined(B) and decision.state.in_flight is None
    [record] = records(decision)
    assert (record.result, record.stage) == (Result.REFUSED, Stage.SIGNATURE)
    assert record.signature == (False, "the commit is not signed")
    error = decision.state.last_error
    assert error is not None and "signature check failed" in error.message
    assert CountFailure(Stage.SIGNATURE) in decision.actions
    # Never retried: the same head, fetched again, is left alone.
    again = step(replace(decision.state, waiting=Waiting.FETCH), fetched(B, T0 + 30), SIGNED)
    assert Rule.QUARANTINED_HEAD_IGNORED in again.rules and not records(again)
    assert not [e for e in effects(again) if isinstance(e, CheckSignature | LoadRevision)]


def test_trusted_signature_leads_to_the_checkout() -> None:
    decision = step(waiting_state(Waiting.SIGNATURE), SignatureChecked(T0, B, True, "good"), SIGNED)
    assert Rule.SIGNED_COMMIT_CHECKED_OUT in decision.rules
    assert effects(decision) == [LoadRevision(B)]
    assert decision.state.run is not None and decision.state.run.record.signature == (True, "good")


def test_spec_errors_refuse_the_commit_with_file_and_line() -> None:
    diagnostics = ({"file": "specs/app.yaml", "line": 4, "message": "bad mode"},)
    event = RevisionLoaded(T0, B, LoadOutcome.SPEC_ERRORS, "specs/app.yaml:4:5: files[0].mode: bad mode",
                           diagnostics)
    decision = step(waiting_state(Waiting.CANDIDATE), event)
    assert Rule.INVALID_SPEC_QUARANTINED in decision.rules
    [record] = records(decision)
    assert (record.result, record.stage) == (Result.REFUSED, Stage.SPEC)
    assert record.error.startswith(f"commit {B[:12]} refused: 1 error(s) in the spec; nothing was changed:\n")
    assert "specs/app.yaml:4:5" in record.error and record.diagnostics == diagnostics
    assert decision.state.last_error is not None and decision.state.last_error.diagnostics == diagnostics
    assert decision.state.is_quarantined(B)
    assert not [e for e in effects(decision) if isinstance(e, ApplyRevision | PlanRevision)]


def test_commit_git_cannot_check_out_is_quarantined() -> None:
    event = RevisionLoaded(T0, B, LoadOutcome.CHECKOUT_FAILED, "cannot check out bbbbbbbbbbbb: bad object")
    decision = step(waiting_state(Waiting.CANDIDATE), event)
    assert Rule.CHECKOUT_FAILURE_QUARANTINED in decision.rules
    assert records(decision)[0].stage is Stage.CHECKOUT and decision.state.is_quarantined(B)


def test_provider_that_cannot_load_is_retried_not_quarantined() -> None:
    event = RevisionLoaded(T0, B, LoadOutcome.PROVIDERS_BROKEN, "provider nginx_sites cannot be imported",
                           jitter=0.0)
    decision = step(waiting_state(Waiting.CANDIDATE), event)
    assert Rule.BROKEN_INSTALLATION_RETRIED in decision.rules
    assert not decision.state.is_quarantined(B)
    assert decision.state.retry == Retry(B, 1, T0 + 1.0, "provider nginx_sites cannot be imported")
    assert records(decision)[0].result is Result.RETRYING and records(decision)[0].stage is Stage.PLAN


def test_valid_commit_inside_the_windows_is_applied() -> None:
    decision = step(waiting_state(Waiting.CANDIDATE), loaded(B))
    assert Rule.VALID_COMMIT_APPLIED in decision.rules
    assert effects(decision) == [ApplyRevision(B)] and decision.state.waiting is Waiting.COMMIT_APPLY


def test_commit_outside_the_windows_is_only_planned() -> None:
    decision = step(waiting_state(Waiting.CANDIDATE), loaded(B), WINDOWED)
    assert Rule.COMMIT_OUTSIDE_WINDOW_PLANNED in decision.rules
    assert effects(decision) == [PlanRevision(B)]
    assert decision.state.run is not None and "outside every allow window" in decision.state.run.window_reason


def test_deferred_commit_is_reported_with_its_plan_and_waits() -> None:
    state = waiting_state(Waiting.DEFER_PLAN, run=commit_run(window_reason="outside every allow window"))
    decision = step(state, Planned(T0, B, ok_plan(change())), WINDOWED)
    assert Rule.COMMIT_DEFERRED in decision.rules
    [record] = records(decision)
    assert record.result is Result.DEFERRED and record.reason == "outside every allow window"
    assert record.summary == Summary(change=1) and record.changes == (change(),)
    assert decision.state.deferred == Deferred(B, decision.state.deferred.at, Summary(change=1),
                                               "outside every allow window")
    assert Cleanup(frozenset({A, B})) in decision.actions  # the deferred worktree is kept
    assert not decision.state.is_quarantined(B)


def test_deferred_commit_waits_while_the_windows_stay_closed() -> None:
    state = applied_state(head=head(B), deferred=Deferred(B, "x", Summary(), "closed"), next_fetch_at=T0 + 30,
                          next_drift_at=T0 + 60)
    decision = step(state, Tick(T0), WINDOWED)
    assert Rule.DEFERRED_WAITS_FOR_WINDOW in decision.rules and not effects(decision)


def test_window_opening_applies_the_deferred_commit() -> None:
    state = applied_state(head=head(B), deferred=Deferred(B, "x", Summary(), "closed"),
                          next_fetch_at=NEW_YEAR + 30, next_drift_at=NEW_YEAR + 60)
    decision = step(state, Tick(NEW_YEAR), WINDOWED)
    assert Rule.WINDOW_OPENS_FOR_DEFERRED in decision.rules
    assert decision.state.run is not None and decision.state.run.trigger is Trigger.WINDOW
    assert effects(decision) == [LoadRevision(B)]


def test_transient_failure_retries_same_commit_with_backoff() -> None:
    outcome = EngineOutcome(error="web: cannot connect", transient=True, planned=False)
    delays = []
    state = waiting_state(Waiting.COMMIT_APPLY)
    for attempt in (1, 2, 3):
        decision = step(state, applied(B, outcome, now=T0, jitter=0.5))
        assert Rule.TRANSIENT_FAILURE_RETRIED in decision.rules
        retry = decision.state.retry
        assert retry is not None and retry.revision == B and retry.attempt == attempt
        delays.append(retry.next_at - T0)
        [record] = records(decision)
        assert (record.result, record.attempt, record.stage) == (Result.RETRYING, attempt, Stage.PLAN)
        assert record.retry_in == round(delays[-1], 1)
        assert not decision.state.is_quarantined(B) and decision.state.last_error is None
        assert CountFailure(Stage.TRANSIENT) in decision.actions
        state = replace(decision.state, waiting=Waiting.COMMIT_APPLY, run=commit_run())
    # Equal jitter at 0.5: three quarters of 2, 4, 8 seconds.
    assert delays == [1.5, 3.0, 6.0]


def test_retry_waits_for_its_backoff() -> None:
    state = applied_state(head=head(B), retry=Retry(B, 1, T0 + 10, "down"))
    decision = step(state, Tick(T0))
    assert Rule.RETRY_WAITS_FOR_BACKOFF in decision.rules and not effects(decision)


def test_retry_due_fetches_then_retries_the_same_commit() -> None:
    state = applied_state(head=head(B), retry=Retry(B, 1, T0 - 1, "down"))
    decision = step(state, Tick(T0))
    assert Rule.FETCH_DUE in decision.rules and [e.trigger for e in effects(decision)] == [Trigger.RETRY]
    decision = step(decision.state, fetched(B, trigger=Trigger.RETRY))
    assert Rule.RETRY_DUE in decision.rules
    assert decision.state.run is not None and decision.state.run.trigger is Trigger.RETRY
    assert effects(decision) == [LoadRevision(B)]


def test_newer_commit_replaces_a_pending_retry_and_is_tried_at_once() -> None:
    state = applied_state(head=head(B), retry=Retry(B, 4, T0 + 200, "down"), waiting=Waiting.FETCH)
    decision = step(state, fetched(C))
    assert Rule.NEWER_COMMIT_REPLACES_RETRY in decision.rules
    assert decision.state.retry is None and effects(decision) == [LoadRevision(C)]


def test_planning_failure_that_is_not_transient_quarantines_the_commit() -> None:
    outcome = EngineOutcome(error="web: provider files: bad path")
    decision = step(waiting_state(Waiting.COMMIT_APPLY), applied(B, outcome))
    assert Rule.PLAN_FAILURE_QUARANTINED in decision.rules
    [record] = records(decision)
    assert (record.result, record.stage) == (Result.FAILED, Stage.PLAN)
    assert record.error == f"commit {B[:12]} failed to plan: web: provider files: bad path"
    assert decision.state.is_quarantined(B)
    assert not [e for e in effects(decision) if isinstance(e, ApplyRevision)]  # nothing to roll back


def test_apply_failure_rolls_back_to_last_good() -> None:
    failed = EngineOutcome(error="web: files:/srv/x: parent is a file", planned=True, applied=True,
                           changed=True, summary=Summary(change=2), changes=(change(),))
    decision = step(waiting_state(Waiting.COMMIT_APPLY), applied(B, failed))
    assert Rule.APPLY_FAILURE_ROLLS_BACK in decision.rules
    assert effects(decision) == [ApplyRevision(A)] and decision.state.waiting is Waiting.ROLLBACK
    assert decision.state.is_quarantined(B) and CountFailure(Stage.APPLY) in decision.actions
    assert not records(decision)  # recorded once the rollback is done

    done = step(decision.state, applied(A, ok_apply(change(before="half", after="good")), now=T0 + 2))
    assert Rule.ROLLBACK_RESTORED_LAST_GOOD in done.rules
    [record] = records(done)
    assert (record.result, record.stage) == (Result.ROLLED_BACK, Stage.APPLY)
    assert record.rollback is not None and (record.rollback.revision, record.rollback.ok) == (A, True)
    assert record.summary == Summary(change=2)
    assert done.state.applied is not None and done.state.applied.revision == A
    assert done.state.last_error is not None
    assert done.state.last_error.message.endswith(f"; rolled back to {A[:12]}")
    assert CountRun("rollback", Result.APPLIED) in done.actions


def test_a_failed_drift_correction_riding_along_does_not_fail_the_commit() -> None:
    elsewhere = change("files:/srv/other.conf", reason="drift")
    outcome = EngineOutcome(error="web: files:/srv/other.conf: did not converge", planned=True, applied=True,
                            changed=True, summary=Summary(change=2), changes=(change(), elsewhere),
                            failed=(elsewhere.key,))
    decision = step(waiting_state(Waiting.COMMIT_APPLY), applied(B, outcome))
    assert Rule.RIDING_DRIFT_FAILURE_NOT_HELD in decision.rules
    assert Rule.APPLIED_COMMIT_VERIFIED in decision.rules and effects(decision) == [ProbeHealth(B)]
    assert not decision.state.is_quarantined(B)
    # Its own change failing is the commit's failure, as is a whole host failing.
    for failed in ((change().key,), ("web: *",)):
        own = step(waiting_state(Waiting.COMMIT_APPLY), applied(B, replace(outcome, failed=failed)))
        assert Rule.APPLY_FAILURE_ROLLS_BACK in own.rules


def test_a_rollback_whose_only_failure_is_riding_drift_restored_the_last_good() -> None:
    elsewhere = change("files:/srv/other.conf", reason="drift")
    outcome = EngineOutcome(error="web: files:/srv/other.conf: did not converge", planned=True, applied=True,
                            changed=True, changes=(change(), elsewhere), failed=(elsewhere.key,))
    decision = step(waiting_state(Waiting.ROLLBACK), applied(A, outcome))
    assert Rule.ROLLBACK_RESTORED_LAST_GOOD in decision.rules


def test_failed_rollback_is_reported_as_failed() -> None:
    state = waiting_state(Waiting.ROLLBACK, run=verifying_run(record=replace(
        commit_run().record, stage=Stage.APPLY, error="commit bbb failed to apply: x")))
    decision = step(state, applied(A, EngineOutcome(error="web: cannot write")))
    assert Rule.ROLLBACK_FAILED in decision.rules
    [record] = records(decision)
    assert record.result is Result.FAILED and record.rollback is not None and not record.rollback.ok
    assert "the rollback to" in decision.state.last_error.message  # type: ignore[union-attr]
    assert CountFailure(Stage.ROLLBACK) in decision.actions
    assert CountRun("rollback", Result.FAILED) in decision.actions


def test_failure_without_a_good_revision_leaves_the_hosts_as_they_are() -> None:
    failed = EngineOutcome(error="web: boom", planned=True, applied=True, changes=(change(),))
    state = replace(waiting_state(Waiting.COMMIT_APPLY), applied=None, applied_loaded=False)
    decision = step(state, applied(B, failed))
    assert Rule.FAILURE_WITHOUT_GOOD_REVISION in decision.rules
    [record] = records(decision)
    assert record.result is Result.FAILED and record.rollback is not None and not record.rollback.attempted
    assert not [e for e in effects(decision) if isinstance(e, ApplyRevision)]


def test_applied_commit_enters_its_health_grace_and_is_probed_at_once() -> None:
    decision = step(waiting_state(Waiting.COMMIT_APPLY), applied(B, ok_apply(change())))
    assert Rule.APPLIED_COMMIT_VERIFIED in decision.rules
    run = decision.state.run
    assert run is not None and run.verifying and run.verify_until == T0 + 30
    assert run.changed == frozenset({"web: files:/srv/app.conf"})
    assert effects(decision) == [ProbeHealth(B)]


def test_drift_fixed_by_a_commit_apply_is_not_the_commits_own_change() -> None:
    outcome = ok_apply(change(), change("files:/srv/other.conf", reason="drift"))
    decision = step(waiting_state(Waiting.COMMIT_APPLY), applied(B, outcome))
    assert Rule.APPLIED_COMMIT_VERIFIED in decision.rules
    run = decision.state.run
    assert run is not None and run.changed == frozenset({"web: files:/srv/app.conf"})


def test_the_first_apply_owns_nothing() -> None:
    state = replace(waiting_state(Waiting.COMMIT_APPLY), applied=None, applied_loaded=False)
    decision = step(state, applied(B, ok_apply(change())))
    assert Rule.APPLIED_COMMIT_VERIFIED in decision.rules
    assert decision.state.run is not None and decision.state.run.changed == frozenset()


def test_healthy_commit_becomes_the_applied_revision() -> None:
    state = waiting_state(Waiting.PROBE, in_flight=Running(B, Cause.COMMIT, "x"), retry=Retry(B, 1, 0, "old"))
    decision = step(state, probed(B, T0 + 1, checks=(HealthResult("web", "http", True),)))
    assert Rule.HEALTHY_COMMIT_APPLIED in decision.rules
    s = decision.state
    assert s.applied is not None and (s.applied.revision, s.applied.result) == (B, Result.APPLIED)
    assert s.run is None and s.in_flight is None and s.retry is None and s.last_error is None
    [record] = records(decision)
    assert record.result is Result.APPLIED and record.seconds == 6.0
    assert [h.check for h in record.health or ()] == ["converged", "http"]
    assert PublishApplied(B, T0 + 1) in decision.actions and WatchRevision(B) in decision.actions
    assert Cleanup(frozenset({B})) in decision.actions
    assert CountRun(Cause.COMMIT.value, Result.APPLIED, 6.0) in decision.actions


def test_commit_that_changed_nothing_is_recorded_unchanged() -> None:
    state = waiting_state(Waiting.PROBE, run=verifying_run(applied=ok_apply(), own=frozenset()))
    decision = step(state, probed(B))
    assert records(decision)[0].result is Result.UNCHANGED


def test_unhealthy_commit_is_probed_again_until_its_grace_ends() -> None:
    failing = (HealthResult("web", "http", False, "curl exited 7"),)
    decision = step(waiting_state(Waiting.PROBE), probed(B, T0 + 3, checks=failing))
    assert Rule.UNHEALTHY_COMMIT_PROBED_AGAIN in decision.rules
    assert decision.state.waiting is None and decision.state.run is not None
    assert decision.state.run.next_probe == T0 + 5 and not records(decision)
    tick = step(decision.state, Tick(T0 + 5))
    assert Rule.PROBE_DUE in tick.rules and effects(tick) == [ProbeHealth(B)]
    early = step(decision.state, Tick(T0 + 4))
    assert Rule.IDLE in early.rules and not effects(early)


def test_unhealthy_commit_at_the_end_of_its_grace_rolls_back() -> None:
    failing = (HealthResult("web", "http", False, "curl exited 7"),)
    decision = step(waiting_state(Waiting.PROBE), probed(B, T0 + 25, checks=failing))
    assert Rule.UNHEALTHY_COMMIT_ROLLS_BACK in decision.rules
    assert effects(decision) == [ApplyRevision(A)]
    run = decision.state.run
    assert run is not None and run.record.stage is Stage.HEALTH
    assert run.record.error == f"commit {B[:12]} is unhealthy after 30 s: web: http: curl exited 7"
    assert decision.state.is_quarantined(B)


def test_host_that_cannot_be_planned_fails_the_converged_check() -> None:
    unreachable = probed(B, T0 + 25, host_errors=(("web", "cannot connect"),))
    decision = step(waiting_state(Waiting.PROBE), unreachable)
    assert Rule.UNHEALTHY_COMMIT_ROLLS_BACK in decision.rules
    assert decision.state.health[0] == HealthResult("web", "converged", False, "cannot connect")


def test_commit_that_crashed_the_controller_three_times_is_quarantined() -> None:
    state = applied_state(head=head(A), in_flight=Running(B, Cause.COMMIT, "x", attempts=3),
                          waiting=Waiting.FETCH)
    decision = step(state, fetched(B))
    assert Rule.CRASH_LOOPING_COMMIT_QUARANTINED in decision.rules
    [record] = records(decision)
    assert (record.result, record.stage) == (Result.FAILED, Stage.CONTROLLER)
    assert "stopped 3 times" in record.error
    assert decision.state.is_quarantined(B) and decision.state.in_flight is None
    assert not [e for e in effects(decision) if isinstance(e, LoadRevision | ApplyRevision)]


def test_commit_that_crashed_twice_is_tried_a_third_time() -> None:
    state = applied_state(in_flight=Running(B, Cause.COMMIT, "x", attempts=2), waiting=Waiting.FETCH)
    decision = step(state, fetched(B))
    assert Rule.COMMIT_STARTS_WITH_CHECKOUT in decision.rules
    assert decision.state.in_flight is not None and decision.state.in_flight.attempts == 3


def test_quarantine_keeps_the_newest_fifty() -> None:
    state = applied_state(quarantined=tuple((f"{i:040d}", "old") for i in range(50)),
                          waiting=Waiting.SIGNATURE, run=commit_run())
    decision = step(state, SignatureChecked(T0, B, False, "unsigned"), SIGNED)
    assert len(decision.state.quarantined) == 50 and decision.state.quarantined[-1][0] == B
    assert decision.state.quarantined[0][0] == f"{1:040d}"


def test_failure_record_is_the_last_error_with_the_commit() -> None:
    gone = RevisionLoaded(T0, B, LoadOutcome.CHECKOUT_FAILED, "gone")
    decision = step(waiting_state(Waiting.CANDIDATE), gone)
    assert decision.state.last_error == Failure(B, "2027-01-15T08:00:00Z", Stage.CHECKOUT, "gone")
