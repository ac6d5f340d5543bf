"""The decision core (pure logic), the loop around runs: start and restart, fetches,
timers, stopping, internal errors, results nobody waits for. One test per
transition, named for the behaviour."""

from __future__ import annotations

from dataclasses import replace

from reconciler.controller.core import (
    CountFailure,
    Failure,
    Fetch,
    FetchFailed,
    FetchRequested,
    FetchRetry,
    Head,
    LoadOutcome,
    LoadRevision,
    Log,
    Planned,
    PlanRevision,
    Retry,
    RevisionLoaded,
    Rule,
    Running,
    SaveStatus,
    Started,
    State,
    StepFailed,
    Stopping,
    Tick,
    Waiting,
    WatchRevision,
    next_wakeup,
    pass_complete,
    state_from_status,
    status_from_state,
)
from reconciler.controller.records import Cause, Stage, Trigger
from reconciler.controller.state import ControllerStatus
from tests.controller.core_support import (
    INFO,
    POLICY,
    T0,
    A,
    B,
    applied,
    applied_state,
    change,
    effects,
    fetched,
    head,
    loaded,
    of,
    ok_apply,
    ok_plan,
    probed,
    step,
    verifying_run,
    waiting_state,
)


def test_start_fetches_at_once_and_checks_drift_right_after() -> None:
    decision = step(State(), Started(T0))
    assert Rule.START in decision.rules and Rule.FETCH_DUE in decision.rules
    assert effects(decision) == [Fetch(Trigger.STARTUP)]
    assert decision.state.next_drift_at == T0  # the start-up pass checks drift too


def test_start_loads_the_applied_spec_before_it_fetches() -> None:
    decision = step(replace(applied_state(), applied_loaded=False), Started(T0))
    assert Rule.START_LOADS_APPLIED in decision.rules and effects(decision) == [LoadRevision(A)]
    loaded_ = step(decision.state, loaded(A))
    assert Rule.APPLIED_SPEC_LOADED in loaded_.rules and loaded_.state.applied_loaded
    assert WatchRevision(A) in loaded_.actions and effects(loaded_) == [Fetch(Trigger.STARTUP)]


def test_a_run_left_in_flight_by_a_crash_is_logged_and_resumed() -> None:
    state = applied_state(head=head(B), in_flight=Running(B, Cause.COMMIT, "x", attempts=1))
    decision = step(state, Started(T0))
    assert Rule.START_AFTER_CRASH in decision.rules
    [warning] = [a for a in of(decision, Log) if "stopped during a run" in a.message]
    assert ("attempt", 1) in warning.fields
    assert decision.state.in_flight is not None  # kept: it counts the crash when B runs again


def test_unloadable_applied_spec_waits_for_the_next_fetch() -> None:
    decision = step(waiting_state(Waiting.APPLIED_SPEC, head=head(A)),
                    RevisionLoaded(T0, A, LoadOutcome.CHECKOUT_FAILED, "no clone yet"))
    assert Rule.APPLIED_SPEC_UNLOADABLE in decision.rules
    assert not decision.state.applied_loaded and decision.state.applied_load_failed
    assert any("cannot load the applied revision" in a.message for a in of(decision, Log))
    # Not loaded again at once (that would loop) ...
    tick = step(replace(decision.state, next_fetch_at=T0 + 30), Tick(T0 + 1))
    assert not [e for e in effects(tick) if isinstance(e, LoadRevision)]
    # ... but after the next fetch.
    after = step(replace(decision.state, waiting=Waiting.FETCH), fetched(A, T0 + 30))
    assert Rule.HEAD_APPLIED_LOADS_SPEC in after.rules and effects(after) == [LoadRevision(A)]


def test_requested_fetch_starts_at_once() -> None:
    decision = step(applied_state(), FetchRequested(T0, Trigger.WEBHOOK))
    assert Rule.FETCH_DUE in decision.rules and effects(decision) == [Fetch(Trigger.WEBHOOK)]
    assert decision.state.want_fetch is None and decision.state.waiting is Waiting.FETCH


def test_fetch_interval_fetches() -> None:
    decision = step(applied_state(next_fetch_at=T0), Tick(T0))
    assert effects(decision) == [Fetch(Trigger.INTERVAL)]


def test_fetch_requested_during_a_health_grace_waits_for_the_verdict() -> None:
    state = applied_state(head=head(B), run=verifying_run(next_probe=T0 + 2))
    decision = step(state, FetchRequested(T0, Trigger.WEBHOOK))
    assert Rule.FETCH_HELD_WHILE_BUSY in decision.rules and not effects(decision)
    assert decision.state.want_fetch is Trigger.WEBHOOK
    # Applied: the run is over, the held fetch is due at once and goes out with its trigger.
    verdict = step(replace(decision.state, waiting=Waiting.PROBE), probed(B, T0 + 1))
    assert not effects(verdict) and next_wakeup(verdict.state, POLICY, T0 + 1) == T0 + 1
    assert effects(step(verdict.state, Tick(T0 + 1))) == [Fetch(Trigger.WEBHOOK)]


def test_a_run_that_ends_leaves_due_work_to_the_next_tick() -> None:
    """So requests that came during the run are served before the timers: a steady
    stream of drift corrections cannot starve a fetch (found by the soak benchmark)."""
    state = waiting_state(Waiting.DRIFT_APPLY, next_fetch_at=T0, next_drift_at=T0)
    done = step(state, applied(A, ok_apply(change(reason="drift"))))
    assert Rule.DRIFT_CORRECTED in done.rules and not effects(done)
    assert done.state.idle and next_wakeup(done.state, POLICY, T0) == T0
    webhook = step(done.state, FetchRequested(T0, Trigger.WEBHOOK))
    assert effects(webhook) == [Fetch(Trigger.WEBHOOK)]


def test_new_head_is_recorded_and_saved() -> None:
    decision = step(applied_state(waiting=Waiting.FETCH), fetched(B))
    assert Rule.NEW_REVISION_FETCHED in decision.rules
    assert decision.state.head is not None and decision.state.head.revision == B
    assert decision.state.next_fetch_at == T0 + 30
    assert any(a.message == "new revision" for a in of(decision, Log))


def test_same_head_changes_nothing() -> None:
    decision = step(applied_state(waiting=Waiting.FETCH), fetched(A))
    assert Rule.SAME_REVISION_FETCHED in decision.rules and Rule.HEAD_ALREADY_APPLIED in decision.rules
    assert not [a for a in of(decision, Log) if a.message == "new revision"]


def test_failed_fetch_is_counted_and_retried_with_backoff_from_the_interval() -> None:
    failed = FetchFailed(T0, Trigger.INTERVAL, "no answer within 2 s (git_timeout); git was stopped",
                         jitter=1.0)
    decision = step(applied_state(waiting=Waiting.FETCH), failed)
    assert Rule.FETCH_FAILED in decision.rules
    assert CountFailure(Stage.FETCH) in decision.actions and SaveStatus() in decision.actions
    assert decision.state.next_fetch_at == T0 + 30  # attempt 1: the interval (full jitter)
    retry = decision.state.fetch_retry
    assert retry is not None and (retry.attempt, retry.since) == (1, "2027-01-15T08:00:00Z")
    assert "git_timeout" in retry.error
    assert decision.state.head is not None and decision.state.head.revision == A

    # Failing again and again: the wait doubles up to backoff_max (300 s), the first
    # failure's time is kept.
    waits = []
    state = decision.state
    for n in range(2, 7):
        now = T0 + 1000 * n
        state = step(replace(state, waiting=Waiting.FETCH), FetchFailed(now, Trigger.INTERVAL, "x",
                                                                         jitter=1.0)).state
        assert state.fetch_retry is not None and state.fetch_retry.attempt == n
        waits.append(state.next_fetch_at - now)
    assert waits == [60, 120, 240, 300, 300]
    assert state.fetch_retry is not None and state.fetch_retry.since == "2027-01-15T08:00:00Z"

    # A fetch that works again ends the backoff.
    ok = step(replace(state, waiting=Waiting.FETCH), fetched(A, now=T0 + 9000))
    assert ok.state.fetch_retry is None and ok.state.next_fetch_at == T0 + 9000 + 30
    assert any(a.message == "fetch works again" for a in of(ok, Log))


def test_a_due_commit_retry_goes_on_without_a_fetch_while_fetches_fail() -> None:
    state = replace(applied_state(head=Head(B, "x", INFO)), retry=Retry(B, 1, T0 - 1, "busy"),
                    fetch_retry=FetchRetry(2, T0 + 50, "hung", "y"), next_fetch_at=T0 + 50)
    decision = step(state, Tick(T0))
    assert Rule.RETRY_DUE in decision.rules and Rule.FETCH_DUE not in decision.rules
    assert effects(decision) == [LoadRevision(B)]


def test_a_requested_fetch_is_not_held_by_the_fetch_backoff() -> None:
    failing = applied_state(fetch_retry=FetchRetry(4, T0 + 240, "hung", "y"), next_fetch_at=T0 + 240)
    assert effects(step(failing, Tick(T0))) == []  # the backoff holds the timer ...
    decision = step(failing, FetchRequested(T0, Trigger.WEBHOOK))  # ... not a webhook
    assert Rule.FETCH_DUE in decision.rules and effects(decision) == [Fetch(Trigger.WEBHOOK)]


def test_the_fetch_backoff_outlives_a_restart() -> None:
    retry = FetchRetry(2, T0 + 60, "no answer within 2 s", "2027-01-15T07:58:00Z")
    failing = applied_state(fetch_retry=retry)
    status = status_from_state(failing, ControllerStatus())
    assert status.fetch_failing == {"attempt": 2, "since": "2027-01-15T07:58:00Z", "next_at": T0 + 60,
                                    "error": "no answer within 2 s"}
    restored = state_from_status(ControllerStatus.from_json(status.to_json()))
    assert restored.fetch_retry == failing.fetch_retry
    started = step(restored, Started(T0 + 1))
    assert effects(started) == [LoadRevision(A)]
    spec_loaded = step(started.state, loaded(A, now=T0 + 1))  # then the start fetches at once, backoff or not
    assert effects(spec_loaded) == [Fetch(Trigger.STARTUP)]
    again = step(spec_loaded.state, FetchFailed(T0 + 2, Trigger.STARTUP, "hung", jitter=1.0)).state
    assert again.fetch_retry is not None
    assert (again.fetch_retry.attempt, again.fetch_retry.since) == (3, "2027-01-15T07:58:00Z")
    assert again.next_fetch_at == T0 + 2 + 120


def test_nothing_due_means_no_effect_and_a_wakeup_in_the_future() -> None:
    decision = step(applied_state(), Tick(T0))
    assert Rule.IDLE in decision.rules and not decision.actions
    assert next_wakeup(decision.state, POLICY, T0) == T0 + 30
    assert pass_complete(decision.state, POLICY, T0)


def test_internal_error_is_recorded_and_the_controller_pauses() -> None:
    state = waiting_state(Waiting.COMMIT_APPLY, in_flight=Running(B, Cause.COMMIT, "x"))
    decision = step(state, StepFailed(T0, "KeyError: 'web'"))
    assert Rule.INTERNAL_ERROR_PAUSES in decision.rules
    s = decision.state
    assert s.waiting is None and s.run is None and s.in_flight is None
    assert s.last_error == Failure(B, "2027-01-15T08:00:00Z", Stage.INTERNAL, "KeyError: 'web'")
    assert CountFailure(Stage.INTERNAL) in decision.actions and SaveStatus() in decision.actions
    assert next_wakeup(s, POLICY, T0) == T0 + 30
    assert not effects(step(s, Tick(T0 + 10)))  # paused
    assert effects(step(s, Tick(T0 + 30)))  # then on again


def test_stop_during_a_health_grace_leaves_the_commit_for_the_next_start() -> None:
    state = applied_state(head=head(B), run=verifying_run(next_probe=T0 + 2),
                          in_flight=Running(B, Cause.COMMIT, "x"))
    decision = step(state, Stopping(T0))
    assert Rule.STOP_ABANDONS_GRACE in decision.rules
    assert decision.state.run is None and decision.state.in_flight is None  # not counted as a crash
    assert SaveStatus() in decision.actions and decision.state.applied == state.applied


def test_stop_between_runs_changes_nothing() -> None:
    state = applied_state()
    decision = step(state, Stopping(T0))
    assert Rule.STOP in decision.rules and decision.state == state and not decision.actions


def test_tick_or_stop_while_an_effect_runs_is_ignored() -> None:
    state = waiting_state(Waiting.COMMIT_APPLY)
    for event in (Tick(T0), Stopping(T0)):
        decision = step(state, event)
        assert Rule.EVENT_WHILE_WAITING in decision.rules and decision.state == state


def test_result_nobody_waits_for_is_ignored() -> None:
    state = applied_state()
    for event in (fetched(B), loaded(B), Planned(T0, A, ok_plan()), applied(A, ok_apply())):
        decision = step(state, event)
        assert decision.rules == (Rule.RESULT_NOT_AWAITED,)
        assert decision.state == state and not decision.actions
    # A result for another revision than the run's is ignored too.
    decision = step(waiting_state(Waiting.CANDIDATE), loaded(A))
    assert decision.rules == (Rule.RESULT_NOT_AWAITED,)


def test_a_clock_set_back_does_not_stall_the_timers() -> None:
    state = applied_state(next_fetch_at=T0 + 3600, next_drift_at=T0 + 3600)
    decision = step(state, Tick(T0))
    assert decision.state.next_fetch_at == T0 + 30 and decision.state.next_drift_at == T0 + 60
    assert not [e for e in effects(decision) if isinstance(e, PlanRevision)]
