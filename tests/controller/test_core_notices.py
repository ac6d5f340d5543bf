"""The decision core (pure logic) tells people what happened: each transition that
ends a run emits its notice (``Notify``) and each commit run its forge status
(``SetCommitStatus``: pending when it starts, success or failure when it ends).
One test per transition, named for the behaviour (issue 17)."""

from __future__ import annotations

import json
from dataclasses import replace

from reconciler.controller.core import (
    CountFailure,
    DriftRun,
    EngineOutcome,
    LoadOutcome,
    LoadRevision,
    Notify,
    Planned,
    PublishApplied,
    Retry,
    RevisionLoaded,
    Running,
    SaveStatus,
    SetCommitStatus,
    SignatureChecked,
    Started,
    StepFailed,
    Waiting,
)
from reconciler.controller.notices import CommitState, CommitStatus, Notice, NoticeKind, Severity
from reconciler.controller.records import Cause, HealthResult, Stage, Summary, Trigger
from tests.controller.core_support import (
    INFO,
    SIGNED,
    T0,
    WINDOWED,
    A,
    B,
    applied,
    applied_state,
    change,
    commit_run,
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

HOSTS = {"web": {"files:/srv/app.conf": "ok"}, "db": {"files:/srv/db.conf": "ok"}}
DRIFT = change(reason="drift", before="by hand", after="listen 8080")


def notices(decision: object) -> list[Notice]:
    return [a.notice for a in of(decision, Notify)]  # type: ignore[arg-type]


def statuses(decision: object) -> list[CommitStatus]:
    return [a.status for a in of(decision, SetCommitStatus)]  # type: ignore[arg-type]


def test_a_commit_run_starts_with_a_pending_status() -> None:
    decision = step(applied_state(waiting=Waiting.FETCH), fetched(B))
    assert statuses(decision) == [CommitStatus(B, CommitState.PENDING, "validating and applying")]
    assert not notices(decision)
    # Set before the run in flight is saved and its first effect starts.
    assert [type(a) for a in decision.actions][-3:] == [SetCommitStatus, SaveStatus, LoadRevision]


def test_a_retried_commit_is_pending_again_with_its_attempt() -> None:
    state = applied_state(head=head(B), retry=Retry(B, 2, T0 - 1, "down"), waiting=Waiting.FETCH)
    decision = step(state, fetched(B, trigger=Trigger.RETRY))
    assert statuses(decision) == [CommitStatus(B, CommitState.PENDING, "trying again (attempt 3)")]


def test_a_healthy_commit_is_announced_applied_with_a_success_status() -> None:
    record = replace(commit_run().record, commit=INFO, summary=Summary(change=1), changes=(change(),))
    state = waiting_state(Waiting.PROBE, resources=HOSTS, run=verifying_run(record=record))
    decision = step(state, probed(B, T0 + 1, checks=(HealthResult("web", "http", True),)))
    [notice] = notices(decision)
    assert notice.kind is NoticeKind.COMMIT_APPLIED and notice.severity is Severity.SUCCESS
    assert notice.revision == B and notice.commit == INFO and notice.hosts == ("web",)
    assert notice.summary == f"commit {B[:12]} applied (+0 ~1 -0)"
    assert notice.resources == ("web: files:/srv/app.conf",) and notice.trigger is Trigger.LOCAL_REPO
    assert statuses(decision) == [CommitStatus(B, CommitState.SUCCESS, "applied (+0 ~1 -0)")]
    # The commit date goes with the apply, for the commit-to-applied latency.
    assert PublishApplied(B, T0 + 1, INFO.date) in decision.actions


def test_a_commit_that_changed_nothing_is_announced_with_every_host() -> None:
    nothing = replace(ok_apply(), resources=HOSTS)
    state = waiting_state(Waiting.PROBE, run=verifying_run(applied=nothing, own=frozenset()))
    [notice] = notices(step(state, probed(B)))
    assert notice.kind is NoticeKind.COMMIT_APPLIED and notice.hosts == ("db", "web")
    assert notice.summary.endswith("applied (no change)")


def test_an_unsigned_commit_is_announced_refused_with_a_failure_status() -> None:
    state = waiting_state(Waiting.SIGNATURE, resources=HOSTS)
    decision = step(state, SignatureChecked(T0, B, False, "the commit is not signed"), SIGNED)
    [notice] = notices(decision)
    assert notice.kind is NoticeKind.COMMIT_REFUSED and notice.stage is Stage.SIGNATURE
    assert notice.summary == f"commit {B[:12]} refused: signature check failed: the commit is not signed"
    assert notice.hosts == ("db", "web")  # no host was touched: every managed host is concerned
    [status] = statuses(decision)
    assert status.state is CommitState.FAILURE
    assert status.description == "refused: signature check failed: the commit is not signed"


def test_a_commit_with_spec_errors_is_announced_refused_with_file_and_line() -> None:
    event = RevisionLoaded(T0, B, LoadOutcome.SPEC_ERRORS, "specs/app.yaml:4:5: files[0].mode: bad mode",
                           ({"file": "specs/app.yaml", "line": 4},))
    [notice] = notices(step(waiting_state(Waiting.CANDIDATE), event))
    assert notice.kind is NoticeKind.COMMIT_REFUSED and notice.stage is Stage.SPEC
    assert "1 error(s) in the spec" in notice.summary
    assert "specs/app.yaml:4:5: files[0].mode: bad mode" in notice.detail


def test_a_commit_outside_the_windows_is_announced_deferred_and_stays_pending() -> None:
    state = waiting_state(Waiting.DEFER_PLAN, run=commit_run(window_reason="outside every allow window"))
    decision = step(state, Planned(T0, B, ok_plan(change())), WINDOWED)
    [notice] = notices(decision)
    assert notice.kind is NoticeKind.COMMIT_DEFERRED and notice.severity is Severity.INFO
    assert notice.summary == f"commit {B[:12]} deferred (+0 ~1 -0): outside every allow window"
    [status] = statuses(decision)
    assert status.state is CommitState.PENDING and status.description.startswith("held by the sync windows")


def test_a_transient_failure_is_not_announced_and_stays_pending() -> None:
    outcome = EngineOutcome(error="web: cannot connect", transient=True)
    decision = step(waiting_state(Waiting.COMMIT_APPLY), applied(B, outcome))
    assert not notices(decision)
    assert statuses(decision) == [CommitStatus(B, CommitState.PENDING,
                                               "retrying (attempt 1): web: cannot connect")]


def test_a_rollback_is_announced_with_the_revision_it_restored() -> None:
    failed = EngineOutcome(error="web: files:/srv/x: parent is a file", planned=True, applied=True,
                           changed=True, summary=Summary(change=2), changes=(change(),))
    decision = step(waiting_state(Waiting.COMMIT_APPLY), applied(B, failed))
    assert not notices(decision) and not statuses(decision)  # told once the rollback is done
    done = step(decision.state, applied(A, ok_apply(change(before="half", after="good")), now=T0 + 2))
    [notice] = notices(done)
    assert notice.kind is NoticeKind.ROLLED_BACK and notice.rollback_to == A and notice.stage is Stage.APPLY
    assert notice.summary == f"commit {B[:12]} rolled back to {A[:12]}: apply failed"
    assert "parent is a file" in notice.detail and notice.resources == ("web: files:/srv/app.conf",)
    assert statuses(done) == [CommitStatus(B, CommitState.FAILURE, f"apply failed; rolled back to {A[:12]}")]


def test_an_unhealthy_commit_rolled_back_is_announced_with_the_failed_check() -> None:
    failing = (HealthResult("web", "http", False, "curl exited 7"),)
    decision = step(waiting_state(Waiting.PROBE), probed(B, T0 + 25, checks=failing))
    done = step(decision.state, applied(A, ok_apply(), now=T0 + 26))
    [notice] = notices(done)
    assert notice.kind is NoticeKind.ROLLED_BACK and notice.stage is Stage.HEALTH
    assert "web: http: curl exited 7" in notice.detail


def test_a_failed_rollback_is_announced_as_a_failed_apply() -> None:
    state = waiting_state(Waiting.ROLLBACK, run=verifying_run(record=replace(
        commit_run().record, stage=Stage.APPLY, error="commit bbb failed to apply: x")))
    decision = step(state, applied(A, EngineOutcome(error="web: cannot write")))
    [notice] = notices(decision)
    assert notice.kind is NoticeKind.APPLY_FAILED and notice.rollback_to == A
    assert notice.summary == f"commit {B[:12]} failed (apply); the rollback to {A[:12]} failed too"
    assert notice.detail.endswith("rollback: web: cannot write")
    assert statuses(decision)[0].state is CommitState.FAILURE


def test_a_failure_with_nothing_to_go_back_to_is_announced_as_a_failed_apply() -> None:
    failed = EngineOutcome(error="web: boom", planned=True, applied=True, changes=(change(),))
    state = replace(waiting_state(Waiting.COMMIT_APPLY), applied=None, applied_loaded=False)
    [notice] = notices(step(state, applied(B, failed)))
    assert notice.kind is NoticeKind.APPLY_FAILED and notice.summary.endswith("nothing was restored")
    assert "no earlier revision was applied" in notice.detail


def test_a_commit_that_cannot_be_planned_is_announced_as_a_failed_apply() -> None:
    decision = step(waiting_state(Waiting.COMMIT_APPLY), applied(B, EngineOutcome(error="web: bad path")))
    [notice] = notices(decision)
    assert notice.kind is NoticeKind.APPLY_FAILED and notice.stage is Stage.PLAN
    assert statuses(decision)[0].description == f"plan failed: commit {B[:12]} failed to plan: web: bad path"


def test_a_commit_that_crashed_the_controller_is_announced_as_a_crash_loop() -> None:
    state = applied_state(head=head(A), in_flight=Running(B, Cause.COMMIT, "x", attempts=3),
                          waiting=Waiting.FETCH)
    decision = step(state, fetched(B))
    [notice] = notices(decision)
    assert notice.kind is NoticeKind.CONTROLLER_CRASH_LOOP and notice.severity is Severity.ERROR
    assert "stopped 3 times" in notice.summary
    assert statuses(decision)[0].state is CommitState.FAILURE


def test_a_restart_after_a_crash_is_announced() -> None:
    state = applied_state(in_flight=Running(B, Cause.COMMIT, "2027-01-15T07:58:00Z", attempts=2),
                          resources=HOSTS)
    [notice] = notices(step(state, Started(T0)))
    assert notice.kind is NoticeKind.CONTROLLER_RESTARTED and notice.revision == B
    assert "stopped during a commit run" in notice.summary and "attempt 2" in notice.summary
    assert notice.hosts == ("db", "web")


def test_a_clean_start_is_not_announced() -> None:
    assert not notices(step(applied_state(), Started(T0)))


def test_a_failed_step_is_announced_as_a_controller_error() -> None:
    [notice] = notices(step(applied_state(), StepFailed(T0, "KeyError: 'x'")))
    assert notice.kind is NoticeKind.CONTROLLER_ERROR and "KeyError: 'x'" in notice.summary


def test_corrected_drift_is_announced_with_its_resources_but_not_their_values() -> None:
    decision = step(waiting_state(Waiting.DRIFT_APPLY), applied(A, ok_apply(DRIFT), now=T0 + 1))
    [notice] = notices(decision)
    assert notice.kind is NoticeKind.DRIFT_CORRECTED and notice.revision == A
    assert notice.summary == "drift corrected on web: files:/srv/app.conf" and notice.hosts == ("web",)
    assert notice.resources == ("web: files:/srv/app.conf",)
    text = json.dumps(notice.to_json())
    assert "by hand" not in text and "listen 8080" not in text
    assert not statuses(decision)  # drift is not a commit


def test_contested_drift_says_so() -> None:
    own = frozenset({DRIFT.key})
    state = waiting_state(Waiting.DRIFT_APPLY, drift_run=DriftRun(A, Trigger.FILE_EVENT, T0, (DRIFT,), own))
    [notice] = notices(step(state, applied(A, ok_apply(DRIFT))))
    assert "contested" in notice.detail and DRIFT.key in notice.detail


def test_a_failed_drift_correction_is_announced() -> None:
    failed = EngineOutcome(error="web: files:/srv/app.conf: read-only file system", planned=True,
                           applied=True, changes=(DRIFT,))
    [notice] = notices(step(waiting_state(Waiting.DRIFT_APPLY), applied(A, failed)))
    assert notice.kind is NoticeKind.DRIFT_NOT_CORRECTED and "read-only" in notice.detail


def test_drift_left_alone_is_announced_once() -> None:
    first = step(waiting_state(Waiting.DRIFT_PLAN), Planned(T0, A, ok_plan(DRIFT)), WINDOWED)
    [notice] = notices(first)
    assert notice.kind is NoticeKind.DRIFT_DETECTED and "outside every allow window" in notice.summary
    again_state = replace(first.state, waiting=Waiting.DRIFT_PLAN,
                          drift_run=DriftRun(A, Trigger.DRIFT_INTERVAL, T0 + 59, (), frozenset()))
    assert not notices(step(again_state, Planned(T0 + 60, A, ok_plan(DRIFT)), WINDOWED))


def test_no_drift_or_vanished_drift_is_not_announced() -> None:
    in_sync = step(waiting_state(Waiting.DRIFT_PLAN), Planned(T0, A, ok_plan()))
    vanished = step(waiting_state(Waiting.DRIFT_APPLY), applied(A, ok_apply()))
    failed_check = step(waiting_state(Waiting.DRIFT_PLAN), Planned(T0, A, EngineOutcome(error="down")))
    for decision in (in_sync, vanished, failed_check):
        assert not notices(decision) and not statuses(decision)
    assert CountFailure(Stage.DRIFT_PLAN) in failed_check.actions


def test_a_valid_commit_on_its_way_is_not_announced_yet() -> None:
    decision = step(waiting_state(Waiting.CANDIDATE), loaded(B))
    assert not notices(decision) and not statuses(decision)
