"""The transitions: ``decide(state, event, policy)`` and ``next_wakeup``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from reconciler.controller.core import jobs, rollout
from reconciler.controller.core.events import (
    Action,
    Applied,
    ApplyRevision,
    CheckSignature,
    Cleanup,
    CountFailure,
    CountRun,
    DriftRequested,
    Event,
    Fetch,
    Fetched,
    FetchFailed,
    FetchRequested,
    HealthProbed,
    LoadOutcome,
    LoadRevision,
    Log,
    LogLevel,
    Notify,
    Planned,
    PlanRevision,
    ProbeHealth,
    PublishApplied,
    RecordRun,
    RevisionLoaded,
    SaveStatus,
    SetCommitStatus,
    SignatureChecked,
    Started,
    StepFailed,
    Stopping,
    Tick,
    WatchRevision,
)
from reconciler.controller.core.model import (
    CONTESTED_KEEP,
    DETAIL_KEEP,
    INTERNAL_ERROR_PAUSE,
    QUARANTINE_KEEP,
    Attempt,
    CommitRun,
    Deferred,
    DriftRun,
    EngineOutcome,
    Failure,
    FetchRetry,
    Good,
    Head,
    Policy,
    Retry,
    Running,
    State,
    Waiting,
    backoff_step,
)
from reconciler.controller.core.rules import Decision, Rule
from reconciler.controller.core.tell import commit_notice, commit_pending, commit_status, drift_notice
from reconciler.controller.notices import Notice, NoticeKind
from reconciler.controller.records import (
    Cause,
    ChangeRecord,
    Contested,
    HealthResult,
    JobRecord,
    Result,
    Rollback,
    RunRecord,
    Stage,
    Summary,
    Trigger,
    utc_text,
)


class _Builder:
    """Accumulates one decision (local to a ``decide`` call, so ``decide`` stays pure)."""

    def __init__(self, state: State, policy: Policy, now: float) -> None:
        self.state = state
        self.policy = policy
        self.now = now
        self.actions: list[Action] = []
        self.rules: list[Rule] = []

    def set(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def emit(self, *actions: Action) -> None:
        self.actions.extend(actions)

    def rule(self, rule: Rule) -> None:
        self.rules.append(rule)

    def wait_for(self, waiting: Waiting, effect: Action) -> None:
        self.set(waiting=waiting)
        self.emit(effect)

    @property
    def stamp(self) -> str:
        return utc_text(self.now)

    def decision(self) -> Decision:
        return Decision(self.state, tuple(self.actions), tuple(self.rules))


# ---------------------------------------------------------------------------- decide
def decide(state: State, event: Event, policy: Policy) -> Decision:
    """The next state and the actions to perform for ``event`` (pure)."""
    b = _Builder(state, policy, event.now)
    if isinstance(event, Planned | Applied):
        _job_results(b, event.revision, event.outcome.jobs)
    elif isinstance(event, HealthProbed):
        _job_results(b, event.revision, event.jobs)
    match event:
        case Started():
            _started(b)
        case Tick():
            _tick(b)
        case FetchRequested():
            _fetch_requested(b, event)
        case DriftRequested():
            _drift_requested(b, event)
        case Stopping():
            _stopping(b)
        case StepFailed():
            _step_failed(b, event)
        case _:
            _result(b, event)
    return b.decision()


def _job_results(b: _Builder, revision: str, found: tuple[JobRecord, ...]) -> None:
    """Before the result itself is acted on (its effect must stay the last action):
    each scheduled job's result not seen before is recorded, counted and told, and
    remembered in the status; whoever waits for this result or not."""
    if not found:
        return
    new = jobs.new_results(b.state, found)
    if len(new) < len(found):
        b.rule(Rule.JOB_RESULT_ALREADY_SEEN)
    if not new:
        return
    b.rule(Rule.JOB_RESULT_RECORDED)
    for job, before in new:
        b.emit(*jobs.job_actions(job, before, b.now, revision))
        b.emit(Log(LogLevel.INFO if job.ok else LogLevel.WARNING, "job result", (
            ("host", job.host), ("address", job.address), ("job", job.job), ("result", job.result.value),
            ("finished_at", utc_text(job.finished_at)), ("detail", job.detail))))
    b.set(jobs=jobs.remember(b.state, (job for job, _ in new)))
    b.emit(SaveStatus())


def next_wakeup(state: State, policy: Policy, now: float) -> float:
    """When the runner should send the next ``Tick`` (Unix seconds; inf: only an event will do).

    A run that ends leaves the core idle rather than starting what is due next, so the
    runner serves requests that came in meanwhile (a webhook, a new commit) before the
    timers: a steady stream of drift corrections cannot starve a fetch."""
    if state.waiting is not None:
        return float("inf")
    if now < state.hold_until:
        return state.hold_until
    if state.run is not None:
        return state.run.next_probe
    times = [state.next_fetch_at, state.next_drift_at]
    if state.want_fetch is not None:
        times.append(now)
    if state.retry is not None:
        times.append(state.retry.next_at)
    if state.drift.wanted is not None:
        times.append(state.drift.not_before)
    if state.deferred is not None or state.drift.blocked:
        change = policy.windows(now).next_change
        if change is not None:
            times.append(max(now + 1.0, change.timestamp()))
    return min(times)


def pass_complete(state: State, policy: Policy, now: float) -> bool:
    """Nothing is running and nothing is due now (``watch --once`` ends here)."""
    return state.idle and next_wakeup(state, policy, now) > now


# ---------------------------------------------------------------------------- requests and timers
def _started(b: _Builder) -> None:
    s = b.state
    b.rule(Rule.START)
    b.set(want_fetch=Trigger.STARTUP, next_fetch_at=b.now, next_drift_at=b.now, hold_until=0.0,
          waiting=None, run=None, drift_run=None)
    if s.in_flight is not None:
        b.rule(Rule.START_AFTER_CRASH)
        flight = s.in_flight
        b.emit(Log(LogLevel.WARNING, "the controller stopped during a run; it is resumed",
                   (("revision", flight.revision), ("cause", flight.cause.value),
                    ("attempt", flight.attempts))),
               Notify(Notice(NoticeKind.CONTROLLER_RESTARTED, b.stamp, flight.revision,
                             f"the controller stopped during a {flight.cause.value} run of "
                             f"{flight.revision[:12]} (started {flight.started_at}, attempt "
                             f"{flight.attempts}) and was started again", tuple(sorted(s.resources)))))
    # Worktrees a crash left behind: only the revisions still in use are kept.
    keep = {r.revision for r in (s.applied, s.deferred, s.in_flight, s.head) if r is not None}
    b.emit(SaveStatus(), Cleanup(frozenset(keep)))
    if s.applied is not None:
        b.rule(Rule.START_LOADS_APPLIED)
        b.wait_for(Waiting.APPLIED_SPEC, LoadRevision(s.applied.revision))
        return
    _continue(b)


def _tick(b: _Builder) -> None:
    s = b.state
    if s.waiting is not None:
        b.rule(Rule.EVENT_WHILE_WAITING)
        return
    if s.run is not None:
        if b.now >= s.run.next_probe:
            b.rule(Rule.PROBE_DUE)
            _probe(b)
        else:
            b.rule(Rule.IDLE)
        return
    _continue(b)


def _fetch_requested(b: _Builder, event: FetchRequested) -> None:
    s = b.state
    b.set(want_fetch=s.want_fetch or event.trigger)
    if not s.idle:
        b.rule(Rule.FETCH_HELD_WHILE_BUSY)
        return
    _continue(b)


def _drift_requested(b: _Builder, event: DriftRequested) -> None:
    s = b.state
    detail = (s.drift.detail + event.detail)[-DETAIL_KEEP:]
    b.set(drift=replace(s.drift, wanted=s.drift.wanted or event.trigger, detail=detail))
    if s.waiting is not None:
        b.rule(Rule.DRIFT_REQUEST_QUEUED)
        return
    if b.now < s.drift.not_before:
        b.rule(Rule.DRIFT_REQUEST_DEBOUNCED)
        return
    if s.run is not None:
        b.rule(Rule.DRIFT_REQUEST_IN_GRACE_PROBES)
        _probe(b)
        return
    _continue(b)


def _stopping(b: _Builder) -> None:
    s = b.state
    if s.waiting is not None:
        b.rule(Rule.EVENT_WHILE_WAITING)
        return
    if s.run is None:
        b.rule(Rule.STOP)
        return
    b.rule(Rule.STOP_ABANDONS_GRACE)
    b.set(run=None, in_flight=None)
    b.emit(Log(LogLevel.INFO, "stopping during a health grace; the commit is verified again at the next "
                              "start",
               (("revision", s.run.revision[:12]),)), SaveStatus())


def _step_failed(b: _Builder, event: StepFailed) -> None:
    s = b.state
    b.rule(Rule.INTERNAL_ERROR_PAUSES)
    pause = min(b.policy.interval, b.policy.drift_interval, INTERNAL_ERROR_PAUSE)
    head = s.head.revision if s.head is not None else ""
    b.set(waiting=None, run=None, drift_run=None, in_flight=None, hold_until=b.now + pause,
          last_error=Failure(head, b.stamp, Stage.INTERNAL, event.error))
    b.emit(CountFailure(Stage.INTERNAL), SaveStatus(),
           Notify(Notice(NoticeKind.CONTROLLER_ERROR, b.stamp, head,
                         f"a controller step failed; it pauses {pause:g} s and goes on: {event.error}",
                         tuple(sorted(s.resources)), stage=Stage.INTERNAL)))


def _continue(b: _Builder, after_fetch: Trigger | None = None) -> None:
    """The scheduler, when nothing runs: a due fetch, then the head, then drift."""
    s = b.state
    if s.waiting is not None or s.run is not None:
        return
    if b.now < s.hold_until:
        b.rule(Rule.IDLE)
        return
    # A clock set back must not stall the timers for as long as it jumped.
    fetch_gap = b.policy.interval if s.fetch_retry is None else max(b.policy.interval, b.policy.backoff_max)
    if s.next_fetch_at - b.now > fetch_gap:
        b.set(next_fetch_at=b.now + fetch_gap)
    if s.next_drift_at - b.now > b.policy.drift_interval:
        b.set(next_drift_at=b.now + b.policy.drift_interval)
    s = b.state
    if after_fetch is None:
        trigger = s.want_fetch
        if trigger is None and s.retry is not None and b.now >= s.retry.next_at and s.fetch_retry is None:
            # (While fetches fail, a due retry goes on with the head already fetched.)
            trigger = Trigger.RETRY
        if trigger is None and b.now >= s.next_fetch_at:
            trigger = Trigger.INTERVAL
        if trigger is not None:
            b.rule(Rule.FETCH_DUE)
            b.set(want_fetch=None)
            b.wait_for(Waiting.FETCH, Fetch(trigger))
            return
    if _consider_head(b, after_fetch):
        return
    _consider_drift(b)


# ---------------------------------------------------------------------------- results
def _result(b: _Builder, event: Event) -> None:
    s = b.state
    match (s.waiting, event):
        case (Waiting.FETCH, Fetched()):
            _fetched(b, event)
        case (Waiting.FETCH, FetchFailed()):
            _fetch_failed(b, event)
        case (Waiting.APPLIED_SPEC, RevisionLoaded()):
            _applied_spec_loaded(b, event)
        case (Waiting.SIGNATURE, SignatureChecked()) if _for_run(s, event.revision):
            _signature_checked(b, event)
        case (Waiting.CANDIDATE, RevisionLoaded()) if _for_run(s, event.revision):
            _candidate_loaded(b, event)
        case (Waiting.DEFER_PLAN, Planned()) if _for_run(s, event.revision):
            _deferred_planned(b, event)
        case (Waiting.COMMIT_APPLY, Applied()) if _for_run(s, event.revision):
            if s.run is not None and s.run.rollout is not None:
                rollout.batch_applied(b, event)
            else:
                _commit_applied(b, event)
        case (Waiting.PROBE, HealthProbed()) if _for_run(s, event.revision):
            if s.run is not None and s.run.batch_probe:
                rollout.batch_probed(b, event)
            else:
                _probed(b, event)
        case (Waiting.ROLLBACK, Applied()) if s.run is not None:
            _rolled_back(b, event)
        case (Waiting.DRIFT_PLAN, Planned()) if s.drift_run is not None:
            _drift_planned(b, event)
        case (Waiting.DRIFT_APPLY, Applied()) if s.drift_run is not None:
            _drift_applied(b, event)
        case _:
            b.rule(Rule.RESULT_NOT_AWAITED)


def _for_run(state: State, revision: str) -> bool:
    return state.run is not None and state.run.revision == revision


def _fetched(b: _Builder, event: Fetched) -> None:
    s = b.state
    b.set(waiting=None, next_fetch_at=b.now + b.policy.interval, applied_load_failed=False, fetch_retry=None)
    if s.fetch_retry is not None:
        b.emit(Log(LogLevel.INFO, "fetch works again", (("failed", s.fetch_retry.attempt),
                                                         ("since", s.fetch_retry.since))), SaveStatus())
    if s.head is None or s.head.revision != event.revision:
        b.rule(Rule.NEW_REVISION_FETCHED)
        b.set(head=Head(event.revision, b.stamp, event.info))
        b.emit(Log(LogLevel.INFO, "new revision", (("revision", event.revision[:12]),
                                                   ("trigger", event.trigger.value))),
               SaveStatus())
    else:
        b.rule(Rule.SAME_REVISION_FETCHED)
    _continue(b, after_fetch=event.trigger)


def _fetch_failed(b: _Builder, event: FetchFailed) -> None:
    """A fetch that failed is retried with backoff, starting at the interval: a git server
    that hangs until the deadline then holds the loop for ever less of its time."""
    s = b.state
    b.rule(Rule.FETCH_FAILED)
    previous = s.fetch_retry
    attempt = previous.attempt + 1 if previous is not None else 1
    p = b.policy
    delay = backoff_step(attempt, p.interval, max(p.backoff_max, p.interval), event.jitter)
    since = previous.since if previous is not None else b.stamp
    retry = FetchRetry(attempt, b.now + delay, event.error, since)
    b.set(waiting=None, next_fetch_at=b.now + delay, fetch_retry=retry)
    b.emit(CountFailure(Stage.FETCH), SaveStatus(),
           Log(LogLevel.WARNING, "fetch failed", (("trigger", event.trigger.value), ("error", event.error),
                                                  ("attempt", attempt), ("retry_in", round(delay, 1)))))
    _continue(b, after_fetch=event.trigger)


def _applied_spec_loaded(b: _Builder, event: RevisionLoaded) -> None:
    s = b.state
    b.set(waiting=None)
    if event.outcome is LoadOutcome.LOADED and s.applied is not None and event.revision == s.applied.revision:
        b.rule(Rule.APPLIED_SPEC_LOADED)
        b.set(applied_loaded=True, applied_load_failed=False)
        b.emit(WatchRevision(event.revision))
    else:
        b.rule(Rule.APPLIED_SPEC_UNLOADABLE)
        b.set(applied_loaded=False, applied_load_failed=True)
        message = ("the applied revision no longer loads; drift checks wait for the next apply"
                   if event.outcome is LoadOutcome.SPEC_ERRORS else
                   "cannot load the applied revision; drift checks wait for the next apply")
        b.emit(Log(LogLevel.WARNING, message, (("revision", event.revision), ("error", event.message))))
    _continue(b)


# ---------------------------------------------------------------------------- commits
def _consider_head(b: _Builder, trigger: Trigger | None) -> bool:
    """Start a run for the head when it is due. True when an effect was started."""
    s = b.state
    if s.head is None:
        return False
    head = s.head.revision
    if s.applied is not None and head == s.applied.revision:
        if s.deferred is not None or s.retry is not None:
            b.rule(Rule.HEAD_APPLIED_CLEARS_RETRY)
            b.set(deferred=None, retry=None)
            b.emit(SaveStatus())
        if not s.applied_loaded and not s.applied_load_failed:
            b.rule(Rule.HEAD_APPLIED_LOADS_SPEC)
            b.wait_for(Waiting.APPLIED_SPEC, LoadRevision(head))
            return True
        b.rule(Rule.HEAD_ALREADY_APPLIED)
        return False
    if s.is_quarantined(head):
        b.rule(Rule.QUARANTINED_HEAD_IGNORED)
        return False
    retry = s.retry
    if retry is not None:
        if retry.revision != head:
            b.rule(Rule.NEWER_COMMIT_REPLACES_RETRY)
            b.set(retry=None)
        elif b.now < retry.next_at:
            b.rule(Rule.RETRY_WAITS_FOR_BACKOFF)
            return False
        else:
            b.rule(Rule.RETRY_DUE)
            trigger = Trigger.RETRY
    deferred = b.state.deferred
    if deferred is not None and deferred.revision == head:
        if not b.policy.windows(b.now).allowed:
            b.rule(Rule.DEFERRED_WAITS_FOR_WINDOW)
            return False
        b.rule(Rule.WINDOW_OPENS_FOR_DEFERRED)
        trigger = Trigger.WINDOW
    return _start_commit(b, head, trigger or Trigger.INTERVAL)


def _start_commit(b: _Builder, sha: str, trigger: Trigger) -> bool:
    s = b.state
    info = s.head.info if s.head is not None and s.head.revision == sha else None
    record = RunRecord(time=b.stamp, cause=Cause.COMMIT, revision=sha, trigger=trigger, commit=info)
    flight = s.in_flight
    crashed = flight.attempts if flight is not None and flight.revision == sha \
        and flight.cause is Cause.COMMIT else 0
    b.set(run=CommitRun(sha, trigger, b.now, record))
    if crashed >= b.policy.max_crashes:
        b.rule(Rule.CRASH_LOOPING_COMMIT_QUARANTINED)
        _refuse(b, Stage.CONTROLLER, f"the controller stopped {crashed} times while applying this revision; "
                "it is quarantined", result=Result.FAILED)
        return True
    b.set(in_flight=Running(sha, Cause.COMMIT, b.stamp, crashed + 1), attempted=Attempt(sha, b.stamp))
    attempt = s.retry.attempt + 1 if s.retry is not None and s.retry.revision == sha else 1
    b.emit(SetCommitStatus(commit_pending(sha, attempt)), SaveStatus())
    if b.policy.require_signed:
        b.rule(Rule.COMMIT_STARTS_WITH_SIGNATURE)
        b.wait_for(Waiting.SIGNATURE, CheckSignature(sha))
    else:
        b.rule(Rule.COMMIT_STARTS_WITH_CHECKOUT)
        b.wait_for(Waiting.CANDIDATE, LoadRevision(sha))
    return True


def _run(b: _Builder) -> CommitRun:
    run = b.state.run
    assert run is not None, "a commit result without a commit run"
    return run


def _signature_checked(b: _Builder, event: SignatureChecked) -> None:
    run = _run(b)
    b.set(waiting=None, run=replace(run, record=replace(run.record, signature=(event.ok, event.detail))))
    if not event.ok:
        b.rule(Rule.UNSIGNED_COMMIT_QUARANTINED)
        _refuse(b, Stage.SIGNATURE,
                f"commit {run.revision[:12]} refused: signature check failed: {event.detail}")
        return
    b.rule(Rule.SIGNED_COMMIT_CHECKED_OUT)
    b.wait_for(Waiting.CANDIDATE, LoadRevision(run.revision))


def _candidate_loaded(b: _Builder, event: RevisionLoaded) -> None:
    run = _run(b)
    sha = run.revision
    b.set(waiting=None)
    if event.outcome is LoadOutcome.SPEC_ERRORS:
        b.rule(Rule.INVALID_SPEC_QUARANTINED)
        message = (f"commit {sha[:12]} refused: {len(event.diagnostics)} error(s) in the spec; "
                   f"nothing was changed:\n{event.message}")
        _refuse(b, Stage.SPEC, message, diagnostics=event.diagnostics)
    elif event.outcome is LoadOutcome.CHECKOUT_FAILED:
        b.rule(Rule.CHECKOUT_FAILURE_QUARANTINED)
        _refuse(b, Stage.CHECKOUT, event.message)
    elif event.outcome is LoadOutcome.PROVIDERS_BROKEN:
        b.rule(Rule.BROKEN_INSTALLATION_RETRIED)
        _retry(b, Stage.PLAN, event.message, event.jitter)
    else:
        windows = b.policy.windows(b.now)
        if not windows.allowed:
            b.rule(Rule.COMMIT_OUTSIDE_WINDOW_PLANNED)
            b.set(run=replace(run, window_reason=windows.reason))
            b.wait_for(Waiting.DEFER_PLAN, PlanRevision(sha))
        elif rollout.starts_rollout(event):
            assert event.rollout is not None
            rollout.start(b, run, event.rollout)
        else:
            b.rule(Rule.VALID_COMMIT_APPLIED)
            b.wait_for(Waiting.COMMIT_APPLY, ApplyRevision(sha))
        return


def _deferred_planned(b: _Builder, event: Planned) -> None:
    run = _run(b)
    o = event.outcome
    b.rule(Rule.COMMIT_DEFERRED)
    record = replace(run.record, result=Result.DEFERRED, reason=run.window_reason, error=o.error)
    if o.planned:
        record = replace(record, summary=o.summary, changes=o.changes)
    b.set(waiting=None, deferred=Deferred(run.revision, b.stamp, o.summary or Summary(), run.window_reason))
    _finish(b, record)


def _commit_applied(b: _Builder, event: Applied) -> None:
    run = _run(b)
    o = event.outcome
    sha = run.revision
    b.set(waiting=None)
    record = run.record
    if o.planned:
        record = replace(record, summary=o.summary, changes=o.changes)
    b.set(run=replace(run, record=record))
    # What the commit changed is its own; a change the plan made because the host had
    # drifted at that moment is not (it is drift, and it stays drift). The first apply has
    # nothing to differ from: it brings the hosts to the spec, and owns nothing.
    own = frozenset(c.key for c in o.changes if c.reason != "drift") if b.state.applied else frozenset()
    if not o.ok and o.applied and not o.transient and _only_drift_failed(o, own):
        # The commit's own changes were made; a drift correction that rode along failed
        # (something changed that file again meanwhile). Drift, not the commit's fault:
        # the probes see it and correct it as drift.
        b.rule(Rule.RIDING_DRIFT_FAILURE_NOT_HELD)
        b.emit(Log(LogLevel.WARNING, "a drift correction made with the commit failed; it is corrected "
                                     "as drift", (("revision", sha[:12]), ("error", o.error))))
        o = replace(o, error="")
    if not o.ok:
        stage = Stage.APPLY if o.applied else Stage.PLAN
        if o.transient:
            b.rule(Rule.TRANSIENT_FAILURE_RETRIED)
            _retry(b, stage, o.error, event.jitter)
        elif not o.applied:
            # Planning failed: nothing was changed, so there is nothing to roll back.
            b.rule(Rule.PLAN_FAILURE_QUARANTINED)
            _refuse(b, stage, f"commit {sha[:12]} failed to plan: {o.error}", result=Result.FAILED)
        else:
            _rollback(b, stage, f"commit {sha[:12]} failed to apply: {o.error}",
                      Rule.APPLY_FAILURE_ROLLS_BACK)
        return
    b.rule(Rule.APPLIED_COMMIT_VERIFIED)
    b.set(run=replace(b.state.run or run, applied=o, changed=own, verify_until=b.now + b.policy.health_grace,
                      next_probe=b.now))
    _probe(b)


def _only_drift_failed(o: EngineOutcome, own: frozenset[str]) -> bool:
    """Every change that was not made is a drift correction (not the commit's own, and
    no whole host failed). False on a first apply, which owns nothing."""
    return bool(own) and bool(o.failed) and not any(k in own or k.endswith(": *") for k in o.failed)


def _probe(b: _Builder) -> None:
    run = _run(b)
    b.set(drift=replace(b.state.drift, wanted=None))
    b.wait_for(Waiting.PROBE, ProbeHealth(run.revision, hosts=run.probe_hosts))


def _probed(b: _Builder, event: HealthProbed) -> None:
    """A commit is judged by what it changed and by the checks it declares: healthy when
    every configured check passes and every host could be planned. Drift of other
    resources seen by the probe is corrected as drift; the commit's own resources
    changed again by something else are contested (corrected, reported); neither is
    held against the commit (issue 19: a drifting file rolled back 25 of 27 commits)."""
    run = _run(b)
    b.set(waiting=None)
    errors = dict(event.host_errors)
    own = tuple(c for c in event.differing if c.key in run.changed)
    other = tuple(c for c in event.differing if c.key not in run.changed)
    converged = tuple(HealthResult(host, "converged", host not in errors,
                                   errors.get(host) or _converged_note(host, own, other))
                      for host in event.hosts)
    results = converged + event.checks
    record = replace(run.record, health=results)
    b.set(health=results, run=replace(run, record=record))
    if all(r.ok for r in results):
        b.rule(Rule.HEALTHY_COMMIT_APPLIED)
        _finish_applied(b)
        if event.differing:
            b.rule(Rule.DRIFT_FOUND_BY_PROBE_CORRECTED)
            _drift_found(b, run.revision, event.differing, Trigger.HEALTH_PROBE, b.now, _take_detail(b))
        return
    if b.now >= run.verify_until:
        bad = "; ".join(f"{r.host}: {r.check}: {r.detail}" for r in results if not r.ok)
        _rollback(b, Stage.HEALTH, f"commit {run.revision[:12]} is unhealthy after "
                  f"{b.policy.health_grace:g} s: {bad}", Rule.UNHEALTHY_COMMIT_ROLLS_BACK)
        return
    b.rule(Rule.UNHEALTHY_COMMIT_PROBED_AGAIN)
    b.set(run=replace(b.state.run or run, next_probe=min(b.now + b.policy.health_interval, run.verify_until)))
    if event.differing:
        # Corrected now, in the grace: drift does not wait for the verdict.
        b.rule(Rule.DRIFT_FOUND_BY_PROBE_CORRECTED)
        _drift_found(b, run.revision, event.differing, Trigger.HEALTH_PROBE, b.now, _take_detail(b))


def _take_detail(b: _Builder) -> tuple[str, ...]:
    detail = b.state.drift.detail
    b.set(drift=replace(b.state.drift, detail=()))
    return detail


def _converged_note(host: str, own: tuple[ChangeRecord, ...], other: tuple[ChangeRecord, ...]) -> str:
    parts = []
    mine = [c.address for c in own if c.host == host]
    theirs = [c.address for c in other if c.host == host]
    if mine:
        parts.append("contested (changed again by something else): " + ", ".join(mine[:5]))
    if theirs:
        parts.append("drift of other resources: " + ", ".join(theirs[:5]))
    return "; ".join(parts)


def _finish_applied(b: _Builder) -> None:
    run = _run(b)
    o = run.applied or EngineOutcome()
    result = Result.APPLIED if o.changed else Result.UNCHANGED
    record = replace(run.record, result=result)
    s = b.state
    b.set(applied=Good(run.revision, b.stamp, o.summary or Summary(), result), applied_loaded=True,
          applied_load_failed=False, applied_changed=run.changed, last_error=None, deferred=None, retry=None,
          drift=replace(s.drift, pending=(), blocked=False), contested=(),
          resources=o.resources if o.resources is not None else s.resources)
    committed = run.record.commit.date if run.record.commit is not None else ""
    b.emit(PublishApplied(run.revision, b.now, committed), WatchRevision(run.revision))
    _finish(b, record)


def _refuse(b: _Builder, stage: Stage, message: str, *, result: Result = Result.REFUSED,
            diagnostics: tuple[Mapping[str, Any], ...] = ()) -> None:
    run = _run(b)
    record = replace(run.record, result=result, stage=stage, error=message, diagnostics=diagnostics)
    b.set(quarantined=_quarantine(b.state.quarantined, run.revision, f"{stage}: {message.splitlines()[0]}"),
          last_error=Failure(run.revision, b.stamp, stage, message, diagnostics), retry=None)
    b.emit(CountFailure(stage))
    _finish(b, record)


def _retry(b: _Builder, stage: Stage, message: str, jitter: float) -> None:
    run = _run(b)
    previous = b.state.retry
    attempt = previous.attempt + 1 if previous is not None and previous.revision == run.revision else 1
    delay = backoff_step(attempt, b.policy.backoff_base, b.policy.backoff_max, jitter)
    record = replace(run.record, result=Result.RETRYING, stage=stage, error=message, attempt=attempt,
                     retry_in=round(delay, 1))
    b.set(retry=Retry(run.revision, attempt, b.now + delay, message))
    b.emit(CountFailure(Stage.TRANSIENT))
    _finish(b, record)


def _rollback(b: _Builder, stage: Stage, message: str, rule: Rule) -> None:
    run = _run(b)
    s = b.state
    b.set(quarantined=_quarantine(s.quarantined, run.revision, f"{stage}: {message.splitlines()[0]}"),
          retry=None)
    b.emit(CountFailure(stage))
    record = replace(run.record, stage=stage, error=message)
    good = s.applied
    if good is None or not s.applied_loaded:
        b.rule(Rule.FAILURE_WITHOUT_GOOD_REVISION)
        record = replace(record, result=Result.FAILED, rollback=Rollback(
            False, detail="no earlier revision was applied by this controller; the hosts stay as the failed "
                          "run left them"))
        b.set(last_error=Failure(run.revision, b.stamp, stage, message))
        _finish(b, record)
        return
    b.rule(rule)
    b.set(run=replace(run, record=record))
    # A rollout restores the hosts it changed; the others were never touched.
    hosts = tuple(sorted(run.touched)) if run.rollout is not None else None
    b.emit(Log(LogLevel.WARNING, "rolling back", (("failed", run.revision[:12]), ("to", good.revision[:12]),
                                                  ("reason", message),
                                                  *((("hosts", list(hosts)),) if hosts is not None else ()))))
    b.wait_for(Waiting.ROLLBACK, ApplyRevision(good.revision, hosts=hosts))


def _rolled_back(b: _Builder, event: Applied) -> None:
    run = _run(b)
    o = event.outcome
    b.set(waiting=None)
    good = event.revision
    record = run.record
    stage = record.stage or Stage.APPLY
    if not o.ok and not o.transient and _only_drift_failed(
            o, frozenset(c.key for c in o.changes if c.reason != "drift")):
        o = replace(o, error="")  # what the failed commit changed is restored; a riding drift fix failed
    if o.ok:
        b.rule(Rule.ROLLBACK_RESTORED_LAST_GOOD)
        note = f"; rolled back to {good[:12]}"
    else:
        b.rule(Rule.ROLLBACK_FAILED)
        note = f"; the rollback to {good[:12]} failed too: {o.error}"
        b.emit(CountFailure(Stage.ROLLBACK))
    b.emit(CountRun("rollback", Result.APPLIED if o.ok else Result.FAILED))
    record = replace(record, result=Result.ROLLED_BACK if o.ok else Result.FAILED,
                     rollback=Rollback(True, good, o.ok, o.changes, o.error))
    b.set(last_error=Failure(run.revision, b.stamp, stage, record.error + note),
          resources=o.resources if o.resources is not None else b.state.resources)
    _finish(b, record)


def _finish(b: _Builder, record: RunRecord) -> None:
    """The end of a commit run, whatever its result."""
    run = _run(b)
    s = b.state
    seconds = round(max(0.0, b.now - run.started), 3)
    record = replace(record, seconds=seconds)
    in_flight = None if s.in_flight is not None and s.in_flight.cause is Cause.COMMIT else s.in_flight
    b.set(run=None, waiting=None, in_flight=in_flight)
    keep = {r for r in (b.state.applied.revision if b.state.applied else None,
                        b.state.deferred.revision if b.state.deferred else None) if r}
    fields: tuple[tuple[str, Any], ...] = (("revision", run.revision[:12]), ("seconds", seconds))
    if record.error:
        fields += (("error", record.error),)
    notice = commit_notice(record, b.state.resources)
    b.emit(RecordRun(record), CountRun(Cause.COMMIT.value, record.result, seconds), SaveStatus(),
           *([Notify(notice)] if notice is not None else []), SetCommitStatus(commit_status(record)),
           Cleanup(frozenset(keep)),
           Log(LogLevel.INFO if record.result.ok else LogLevel.ERROR, f"commit {record.result.value}",
               fields))


def _quarantine(current: tuple[tuple[str, str], ...], revision: str,
                reason: str) -> tuple[tuple[str, str], ...]:
    kept = (*(q for q in current if q[0] != revision), (revision, reason))
    return kept[-QUARANTINE_KEEP:]


# ---------------------------------------------------------------------------- drift
def _consider_drift(b: _Builder) -> None:
    s = b.state
    d = s.drift
    wanted = d.wanted if d.wanted is not None and b.now >= d.not_before else None
    window = d.blocked and wanted is None and b.policy.drift_allowed(b.now)[0]
    due = b.now >= s.next_drift_at
    if wanted is None and not window and not due:
        b.rule(Rule.IDLE)
        return
    trigger = wanted or (Trigger.WINDOW if window else Trigger.DRIFT_INTERVAL)
    if window:
        b.rule(Rule.WINDOW_OPENS_FOR_DRIFT)
    detail = d.detail
    b.set(next_drift_at=b.now + b.policy.drift_interval,
          drift=replace(d, wanted=None if wanted is not None else d.wanted, detail=()))
    applied = s.applied
    if applied is None or not s.applied_loaded:
        b.rule(Rule.DRIFT_CHECK_WITHOUT_APPLIED_SPEC)
        return
    if s.retry is not None and s.retry.revision != applied.revision:
        # A newer commit is half-way and will be retried; do not pull the hosts back.
        b.rule(Rule.DRIFT_CHECK_WAITS_FOR_RETRY)
        return
    b.rule(Rule.DRIFT_CHECK_STARTED)
    b.set(drift_run=DriftRun(applied.revision, trigger, b.now, (), s.applied_changed, detail),
          drift=replace(b.state.drift, blocked=False))
    b.wait_for(Waiting.DRIFT_PLAN, PlanRevision(applied.revision))


def _drift_planned(b: _Builder, event: Planned) -> None:
    s = b.state
    dr = s.drift_run
    assert dr is not None
    o = event.outcome
    seconds = round(max(0.0, b.now - dr.started), 3)
    b.set(waiting=None, drift=replace(s.drift, last_check=b.stamp),
          resources=o.resources if o.resources is not None else s.resources)
    if not o.ok or not o.planned:
        b.rule(Rule.DRIFT_CHECK_FAILED)
        b.set(drift_run=None)
        b.emit(CountFailure(Stage.DRIFT_PLAN), CountRun(Cause.DRIFT.value, Result.FAILED, seconds),
               Log(LogLevel.WARNING, "drift check failed", (("trigger", dr.trigger.value), ("error", o.error),
                                                            ("transient", o.transient))),
               SaveStatus())
    elif not o.changes:
        b.rule(Rule.HOSTS_IN_SYNC)
        b.set(drift_run=None, drift=replace(b.state.drift, streak=0, not_before=0.0, pending=()))
        b.emit(CountRun(Cause.DRIFT.value, Result.IN_SYNC, seconds), SaveStatus())
    else:
        b.set(drift_run=None)
        _drift_found(b, dr.revision, o.changes, dr.trigger, dr.started, dr.detail)


def _drift_found(b: _Builder, revision: str, changes: tuple[ChangeRecord, ...], trigger: Trigger,
                 started: float, detail: tuple[str, ...] = ()) -> None:
    """Drift of ``revision`` found: correct it when policy and windows allow, else record it once."""
    s = b.state
    own = s.run.changed if s.run is not None else s.applied_changed
    allowed, reason = b.policy.drift_allowed(b.now)
    if not allowed:
        digest = _digest(changes)
        b.set(drift=replace(s.drift, blocked=True, pending=changes))
        if digest == s.drift.reported:
            b.rule(Rule.SAME_DRIFT_REPORTED_ONCE)
            b.emit(SaveStatus())
            return
        b.rule(Rule.DRIFT_DETECTED_NOT_CORRECTED)
        b.set(drift=replace(b.state.drift, reported=digest))
        seconds = round(max(0.0, b.now - started), 3)
        record = RunRecord(time=b.stamp, cause=Cause.DRIFT, revision=revision, trigger=trigger,
                           result=Result.DETECTED, reason=reason, changes=changes,
                           contested=tuple(c.key for c in changes if c.key in own), seconds=seconds)
        b.emit(RecordRun(record), CountRun(Cause.DRIFT.value, Result.DETECTED, seconds, len(changes)),
               SaveStatus(), Notify(drift_notice(record)), Log(LogLevel.WARNING, "drift detected",
                                 (("revision", revision[:12]), ("changes", [c.to_json() for c in changes]))))
        return
    b.rule(Rule.DRIFT_CORRECTION_STARTED)
    if s.run is None:
        b.set(in_flight=Running(revision, Cause.DRIFT, b.stamp))
    contested = tuple(c.key for c in changes if c.key in own)
    b.set(drift_run=DriftRun(revision, trigger, started, changes, own, detail))
    b.emit(SaveStatus())
    b.wait_for(Waiting.DRIFT_APPLY, ApplyRevision(revision, explain=contested))


def _drift_applied(b: _Builder, event: Applied) -> None:
    s = b.state
    dr = s.drift_run
    assert dr is not None
    o = event.outcome
    in_flight = None if s.in_flight is not None and s.in_flight.cause is Cause.DRIFT else s.in_flight
    b.set(waiting=None, drift_run=None, in_flight=in_flight, drift=replace(s.drift, blocked=False))
    seconds = round(max(0.0, b.now - dr.started), 3)
    if o.ok and o.planned and not o.changes:
        b.rule(Rule.DRIFT_VANISHED)
        b.emit(CountRun(Cause.DRIFT.value, Result.IN_SYNC, seconds), SaveStatus())
        return
    changes = o.changes if o.planned and o.changes else dr.found
    contested = tuple(c.key for c in changes if c.key in dr.own)
    record = RunRecord(time=b.stamp, cause=Cause.DRIFT, revision=dr.revision, trigger=dr.trigger,
                       changes=changes, contested=contested, seconds=seconds)
    drift = b.state.drift
    if o.ok:
        b.rule(Rule.DRIFT_CORRECTED)
        record = replace(record, result=Result.CORRECTED)
        drift = replace(drift, pending=())
    else:
        b.rule(Rule.DRIFT_CORRECTION_FAILED)
        record = replace(record, result=Result.FAILED, error=o.error, transient=o.transient)
        drift = replace(drift, pending=changes)
        b.emit(CountFailure(Stage.DRIFT))
    # Someone (or something) fighting us: space event-driven checks out, up to the interval.
    streak = drift.streak + 1
    gap = 0.0 if streak <= 1 else min(b.policy.drift_interval, 2.0 ** (streak - 1))
    b.set(drift=replace(drift, streak=streak, not_before=b.now + gap, reported=""),
          resources=o.resources if o.resources is not None else b.state.resources,
          contested=_contest(b.state.contested, changes, contested, dr.revision, b.stamp,
                             dict(o.evidence), dr.detail))
    level = LogLevel.WARNING if o.ok else LogLevel.ERROR
    fields: tuple[tuple[str, Any], ...] = (("revision", dr.revision[:12]),
                                           ("changes", [c.to_json() for c in changes]))
    if contested:
        fields += (("contested", list(contested)),)
    if o.error:
        fields += (("error", o.error),)
    b.emit(RecordRun(record), CountRun(Cause.DRIFT.value, record.result, seconds, len(changes)), SaveStatus(),
           Notify(drift_notice(record)), Log(level, f"drift {record.result.value}", fields))


def _contest(current: tuple[Contested, ...], changes: Iterable[ChangeRecord], keys: Iterable[str],
             revision: str,
             stamp: str, evidence: Mapping[str, str], detail: tuple[str, ...]) -> tuple[Contested, ...]:
    wanted = set(keys)
    by_key = {c.key: c for c in current}
    for change in changes:
        if change.key not in wanted:
            continue
        ident = change.address.split(":", 1)[-1]
        seen = tuple(dict.fromkeys([*([evidence[change.key]] if change.key in evidence else []),
                                    *(line for line in detail if ident and ident in line)]))
        old = by_key.get(change.key)
        if old is not None and old.revision == revision:
            by_key[change.key] = replace(old, count=old.count + 1, last_seen=stamp,
                                         evidence=seen or old.evidence)
        else:
            by_key[change.key] = Contested(change.host, change.address, revision, 1, stamp, stamp, seen)
    ordered = sorted(by_key.values(), key=lambda c: c.last_seen)
    return tuple(ordered[-CONTESTED_KEEP:])


def _digest(changes: tuple[ChangeRecord, ...]) -> str:
    text = json.dumps([c.to_json() for c in changes], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


