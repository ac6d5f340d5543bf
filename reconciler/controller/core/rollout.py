"""A commit rolled out in batches: the transitions of the decision core that drive it.

When a revision's spec asks for a rolling apply (``rollout:``; the batches come with
``RevisionLoaded.rollout``, computed by ``reconciler.rollout`` exactly as ``reconcile
apply`` computes them), the commit is not applied in one ``ApplyRevision`` but batch
by batch:

1. ``ApplyRevision(hosts=batch)``; the result comes back as ``Applied``. A transient
   failure retries the whole commit later (as any commit). Hosts with a failed or
   skipped change, or that failed as a whole, are the batch's failures.
2. ``ProbeHealth(hosts=batch)`` every ``health_interval`` until the batch's checks
   pass or its grace ends (the spec's ``rollout.health.grace``, else the policy's).
3. A batch with more failed hosts than ``max_fail_percentage`` stops the rollout: the
   hosts changed so far are rolled back to the last good revision (the others were
   never touched). Fewer: they are recorded and the next batch starts, told what
   failed so that what depends on it elsewhere is skipped.
4. After the last batch the commit enters its ordinary health grace
   (``decide._probed``) on every host but those that failed within the threshold.

Pure like the rest of the core; each transition is named in ``Rule``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from reconciler.controller.core.events import (
    Applied,
    ApplyRevision,
    HealthProbed,
    Log,
    LogLevel,
    RevisionLoaded,
)
from reconciler.controller.core.model import CommitRun, EngineOutcome, Waiting
from reconciler.controller.core.rules import Rule
from reconciler.controller.records import Stage, Summary, resource_key
from reconciler.rollout import RolloutPlan, too_many_failed

if TYPE_CHECKING:
    from reconciler.controller.core.decide import _Builder

# decide.py dispatches to this module and this module uses decide's shared steps
# (_probe, _retry, _rollback): those are imported inside the functions, after both
# modules are loaded.


def starts_rollout(event: RevisionLoaded) -> bool:
    return event.rollout is not None and event.rollout.rolling and bool(event.rollout.batches)


def start(b: _Builder, run: CommitRun, rollout: RolloutPlan) -> None:
    """The first batch of a valid commit inside the windows."""
    b.rule(Rule.ROLLOUT_STARTED)
    b.set(run=replace(run, rollout=rollout, batch=0, batch_probe=False, probe_hosts=None))
    b.emit(Log(LogLevel.INFO, "rolling out", (("revision", run.revision[:12]),
                                              ("batches", [list(x) for x in rollout.batches]),
                                              ("max_fail_percentage", rollout.max_fail_percentage))))
    b.wait_for(Waiting.COMMIT_APPLY, ApplyRevision(run.revision, hosts=rollout.batches[0]))


def merged(before: EngineOutcome | None, after: EngineOutcome) -> EngineOutcome:
    """Two batches' outcomes as one (what the commit's record and rollback see)."""
    if before is None:
        return after
    a, b = before.summary or Summary(), after.summary or Summary()
    resources = {**(before.resources or {}), **(after.resources or {})}
    return EngineOutcome(
        error="; ".join(e for e in (before.error, after.error) if e), transient=after.transient,
        planned=before.planned or after.planned, applied=before.applied or after.applied,
        changed=before.changed or after.changed,
        summary=Summary(a.add + b.add, a.change + b.change, a.destroy + b.destroy),
        changes=before.changes + after.changes, resources=resources, failed=before.failed + after.failed,
        evidence=before.evidence + after.evidence)


def _batch(run: CommitRun) -> tuple[str, ...]:
    assert run.rollout is not None
    return run.rollout.batches[run.batch]


def _failed_hosts(o: EngineOutcome, batch: tuple[str, ...]) -> set[str]:
    """The batch's hosts the outcome says failed: a change not made, the host failed,
    or (an error naming no key: the run itself failed) all of them."""
    hosts = {key.partition(": ")[0] for key in o.failed}
    if o.error and not o.failed:
        return set(batch)
    return hosts & set(batch)


def batch_applied(b: _Builder, event: Applied) -> None:
    from reconciler.controller.core.decide import _retry

    run = b.state.run
    assert run is not None and run.rollout is not None
    o = event.outcome
    b.set(waiting=None)
    batch = _batch(run)
    total = merged(run.applied, o)
    record = run.record
    if total.planned:
        record = replace(record, summary=total.summary, changes=total.changes)
    # As for a commit applied at once: its own changes are those not made for drift;
    # the first apply owns nothing.
    own = frozenset(c.key for c in o.changes if c.reason != "drift") if b.state.applied else frozenset()
    failed = _failed_hosts(o, batch)
    touched = run.touched | {c.host for c in o.changes if c.host in batch} | failed
    run = replace(run, applied=total, changed=run.changed | own, touched=frozenset(touched), record=record)
    b.set(run=run)
    if not o.ok and o.transient:
        b.rule(Rule.TRANSIENT_FAILURE_RETRIED)
        _retry(b, Stage.APPLY, o.error, event.jitter)
        return
    _judge(b, run, failed, o.error)


def batch_probed(b: _Builder, event: HealthProbed) -> None:
    run = b.state.run
    assert run is not None and run.rollout is not None
    b.set(waiting=None)
    batch = _batch(run)
    bad = {r.host for r in event.checks if not r.ok} | {h for h, _ in event.host_errors}
    b.set(health=event.checks, run=replace(run, record=replace(run.record, health=event.checks)))
    run = b.state.run
    assert run is not None
    if not bad:
        b.rule(Rule.BATCH_HEALTHY)
        _next(b, run)
        return
    if b.now < run.verify_until:
        b.rule(Rule.BATCH_PROBED_AGAIN)
        b.set(run=replace(run, next_probe=min(b.now + b.policy.health_interval, run.verify_until)))
        return
    problems = [f"{r.host}: {r.check}: {r.detail}" for r in event.checks if not r.ok]
    problems += [f"{h}: {e}" for h, e in event.host_errors]
    _judge(b, run, bad | (set(run.failed_hosts) & set(batch)), "; ".join(problems), checked=True)


def _judge(b: _Builder, run: CommitRun, failed: set[str], error: str, *, checked: bool = False) -> None:
    """A batch's verdict: stop and roll back, or go on (probing it first when it was
    only applied)."""
    from reconciler.controller.core.decide import _probe, _rollback

    plan = run.rollout
    assert plan is not None
    batch = _batch(run)
    number, count = run.batch + 1, len(plan.batches)
    if too_many_failed(len(failed), len(batch), plan.max_fail_percentage):
        b.rule(Rule.BATCH_FAILED_ROLLS_BACK)
        what = "did not become healthy" if checked else "failed to apply"
        _rollback(b, Stage.HEALTH if checked else Stage.APPLY,
                  f"commit {run.revision[:12]}: batch {number} of {count} {what} on "
                  f"{', '.join(sorted(failed))} (more than max_fail_percentage "
                  f"{plan.max_fail_percentage}%): {error}; the rollout stopped",
                  Rule.BATCH_FAILED_ROLLS_BACK)
        return
    if failed:
        b.rule(Rule.BATCH_FAILURES_WITHIN_THRESHOLD)
        kept = tuple(sorted(set(run.failed_hosts) | failed))
        run = replace(run, failed_hosts=kept)
        b.set(run=run)
        b.emit(Log(LogLevel.WARNING, "hosts failed within max_fail_percentage; the rollout goes on",
                   (("revision", run.revision[:12]), ("batch", number), ("failed", sorted(failed)),
                    ("error", error))))
    healthy = tuple(h for h in batch if h not in failed)
    if checked or not healthy:
        _next(b, run)
        return
    b.rule(Rule.BATCH_APPLIED_PROBED)
    grace = plan.grace or b.policy.health_grace
    b.set(run=replace(run, batch_probe=True, probe_hosts=healthy, verify_until=b.now + grace,
                      next_probe=b.now))
    _probe(b)


def _next(b: _Builder, run: CommitRun) -> None:
    """The next batch, or after the last one the commit's own health grace."""
    from reconciler.controller.core.decide import _probe

    plan = run.rollout
    assert plan is not None
    if run.batch + 1 < len(plan.batches):
        upstream = tuple(resource_key(h, "*") for h in run.failed_hosts)
        if run.applied is not None:
            upstream += tuple(k for k in run.applied.failed if k.partition(": ")[0] in run.failed_hosts)
        run = replace(run, batch=run.batch + 1, batch_probe=False, probe_hosts=None)
        b.set(run=run)
        b.wait_for(Waiting.COMMIT_APPLY, ApplyRevision(run.revision, hosts=_batch(run),
                                                      upstream_failed=tuple(dict.fromkeys(upstream))))
        return
    b.rule(Rule.LAST_BATCH_VERIFIED)
    everyone = tuple(h for batch in plan.batches for h in batch)
    probed = tuple(h for h in everyone if h not in run.failed_hosts) if run.failed_hosts else None
    record = run.record
    if run.failed_hosts:
        record = replace(record, error=f"rolled out; {', '.join(run.failed_hosts)} failed within "
                                       f"max_fail_percentage {plan.max_fail_percentage}%")
    b.set(run=replace(run, batch_probe=False, probe_hosts=probed, record=record,
                      verify_until=b.now + b.policy.health_grace, next_probe=b.now))
    _probe(b)


