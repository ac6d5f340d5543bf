"""The decision core rolls a commit out in batches (pure logic, transition by
transition): first batch, probe of each batch, next batch, failures within the
threshold, a failed batch stopping the rollout and rolling back only the hosts it
changed, and the commit's own health grace after the last batch. Then the rollout
states meet every event of the core's table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.controller.core import (
    ApplyRevision,
    EngineOutcome,
    HealthProbed,
    LoadOutcome,
    ProbeHealth,
    RevisionLoaded,
    Rule,
    State,
    Tick,
    Waiting,
)
from reconciler.controller.records import HealthResult, Result, Stage
from reconciler.rollout import RolloutPlan
from tests.controller.core_support import (
    POLICY,
    T0,
    A,
    B,
    applied,
    applied_state,
    change,
    commit_run,
    effects,
    head,
    ok_apply,
    records,
    step,
    waiting_state,
)
from tests.controller.test_core_table import EVENTS, POLICIES, check

PLAN = RolloutPlan(batches=(("db",), ("web-1",), ("web-2",), ("lb",)), max_fail_percentage=0, grace=20.0,
                   interval=2.0, stages=(("db",), ("web-1", "web-2"), ("lb",)), serial="1")
TOLERANT = replace(PLAN, batches=(("db",), ("web-1", "web-2", "web-3"), ("lb",)), max_fail_percentage=40)


def on(host: str, address: str = "files:/srv/app.conf") -> EngineOutcome:
    return ok_apply(change(address, host=host))


def failed_on(host: str, address: str = "files:/srv/app.conf") -> EngineOutcome:
    return EngineOutcome(error=f"{host}: {address}: boom", planned=True, applied=True,
                         changes=(change(address, host=host),), failed=(f"{host}: {address}",))


def rolling(plan: RolloutPlan = PLAN, batch: int = 0, **changes: object) -> State:
    """Waiting for batch ``batch`` to be applied."""
    run = commit_run(rollout=plan, batch=batch, **changes)
    return applied_state(head=head(B), run=run, waiting=Waiting.COMMIT_APPLY)


def batch_in_grace(plan: RolloutPlan = PLAN, batch: int = 1, **changes: object) -> State:
    settings: dict[str, object] = {"rollout": plan, "batch": batch, "batch_probe": True,
                                   "probe_hosts": plan.batches[batch], "applied": on("web-1"),
                                   "touched": frozenset({"db", "web-1"}), "verify_until": T0 + 20,
                                   "next_probe": T0, **changes}
    return applied_state(head=head(B), run=commit_run(**settings), waiting=Waiting.PROBE)


def batch_probed(hosts: tuple[str, ...], now: float = T0, bad: tuple[str, ...] = ()) -> HealthProbed:
    checks = tuple(HealthResult(h, "api", h not in bad, "exit 7" if h in bad else "") for h in hosts)
    return HealthProbed(now, B, hosts, checks)


def test_a_commit_with_a_rollout_starts_with_its_first_batch() -> None:
    state = waiting_state(Waiting.CANDIDATE)
    d = step(state, RevisionLoaded(T0, B, LoadOutcome.LOADED, rollout=PLAN))
    assert Rule.ROLLOUT_STARTED in d.rules
    assert effects(d) == [ApplyRevision(B, hosts=("db",))]
    assert d.state.waiting is Waiting.COMMIT_APPLY and d.state.run is not None
    assert d.state.run.rollout == PLAN


def test_an_applied_batch_is_probed_on_its_hosts() -> None:
    d = step(rolling(), applied(B, on("db")))
    assert Rule.BATCH_APPLIED_PROBED in d.rules
    assert effects(d) == [ProbeHealth(B, hosts=("db",))]
    run = d.state.run
    assert run is not None and run.batch_probe and run.touched == {"db"}
    assert run.verify_until == T0 + PLAN.grace


def test_a_healthy_batch_starts_the_next_one() -> None:
    d = step(batch_in_grace(), batch_probed(("web-1",)))
    assert Rule.BATCH_HEALTHY in d.rules
    assert effects(d) == [ApplyRevision(B, hosts=("web-2",))]
    assert d.state.run is not None and d.state.run.batch == 2 and not d.state.run.batch_probe


def test_an_unhealthy_batch_is_probed_again_within_its_grace() -> None:
    d = step(batch_in_grace(), batch_probed(("web-1",), bad=("web-1",)))
    assert Rule.BATCH_PROBED_AGAIN in d.rules
    assert effects(d) == []
    assert d.state.waiting is None and d.state.run is not None and d.state.run.next_probe == T0 + 2
    due = step(d.state, Tick(T0 + 2))
    assert effects(due) == [ProbeHealth(B, hosts=("web-1",))]


def test_a_batch_still_unhealthy_at_the_end_of_its_grace_rolls_back_the_changed_hosts() -> None:
    d = step(batch_in_grace(), batch_probed(("web-1",), T0 + 20, bad=("web-1",)))
    assert Rule.BATCH_FAILED_ROLLS_BACK in d.rules
    assert effects(d) == [ApplyRevision(A, hosts=("db", "web-1"))]
    assert d.state.waiting is Waiting.ROLLBACK
    assert d.state.is_quarantined(B)
    done = step(d.state, applied(A, on("web-1")))
    assert Rule.ROLLBACK_RESTORED_LAST_GOOD in done.rules
    [record] = records(done)
    assert record.result is Result.ROLLED_BACK and record.stage is Stage.HEALTH
    assert "batch 2 of 4 did not become healthy on web-1" in record.error


def test_a_batch_that_fails_to_apply_stops_the_rollout() -> None:
    d = step(rolling(batch=1, applied=on("db"), touched=frozenset({"db"})), applied(B, failed_on("web-1")))
    assert Rule.BATCH_FAILED_ROLLS_BACK in d.rules
    assert effects(d) == [ApplyRevision(A, hosts=("db", "web-1"))]
    run = d.state.run
    assert run is not None and "batch 2 of 4 failed to apply on web-1" in run.record.error


def test_failures_within_the_threshold_are_recorded_and_the_rollout_goes_on() -> None:
    d = step(rolling(TOLERANT, batch=1, applied=on("db"), touched=frozenset({"db"})),
             applied(B, failed_on("web-2")))
    assert Rule.BATCH_FAILURES_WITHIN_THRESHOLD in d.rules and Rule.BATCH_APPLIED_PROBED in d.rules
    assert effects(d) == [ProbeHealth(B, hosts=("web-1", "web-3"))]
    run = d.state.run
    assert run is not None and run.failed_hosts == ("web-2",)
    # Healthy: the next batch is told what failed, so what depends on it is skipped.
    nxt = step(d.state, batch_probed(("web-1", "web-3")))
    [apply] = effects(nxt)
    assert isinstance(apply, ApplyRevision) and apply.hosts == ("lb",)
    assert set(apply.upstream_failed) == {"web-2: *", "web-2: files:/srv/app.conf"}


def test_after_the_last_batch_the_commit_is_verified_on_every_host_but_the_failed() -> None:
    state = batch_in_grace(TOLERANT, batch=2, probe_hosts=("lb",), failed_hosts=("web-2",))
    d = step(state, batch_probed(("lb",)))
    assert Rule.LAST_BATCH_VERIFIED in d.rules
    assert effects(d) == [ProbeHealth(B, hosts=("db", "web-1", "web-3", "lb"))]
    run = d.state.run
    assert run is not None and not run.batch_probe and "web-2 failed within max_fail_percentage" in \
        run.record.error
    healthy = step(d.state, HealthProbed(T0, B, ("db", "web-1", "web-3", "lb")))
    assert Rule.HEALTHY_COMMIT_APPLIED in healthy.rules
    assert healthy.state.applied is not None and healthy.state.applied.revision == B


def test_a_transient_failure_in_a_batch_retries_the_commit() -> None:
    d = step(rolling(batch=1), applied(B, EngineOutcome(error="web-1: cannot connect", transient=True)))
    assert Rule.TRANSIENT_FAILURE_RETRIED in d.rules
    assert d.state.retry is not None and d.state.run is None


ROLLOUT_STATES: dict[str, State] = {
    "rollout, waiting for a batch": rolling(batch=1, applied=on("db"), touched=frozenset({"db"})),
    "rollout, batch in grace": replace(batch_in_grace(), waiting=None, run=replace(
        batch_in_grace().run, next_probe=T0 + 2)),  # type: ignore[type-var]
    "rollout, batch probe due": replace(batch_in_grace(), waiting=None),
    "rollout, probing a batch": batch_in_grace(),
}
ROLLOUT_EVENTS = {**EVENTS, "batch healthy": batch_probed(("web-1",)),
                  "batch unhealthy": batch_probed(("web-1",), bad=("web-1",)),
                  "batch applied": applied(B, on("web-1")), "batch failed": applied(B, failed_on("web-1"))}


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize("state_name", ROLLOUT_STATES)
def test_rollout_states_have_a_defined_result_for_every_event(state_name: str, policy_name: str) -> None:
    for event_name, event in ROLLOUT_EVENTS.items():
        try:
            check(ROLLOUT_STATES[state_name], event, POLICIES[policy_name])
        except AssertionError as exc:
            raise AssertionError(f"{state_name} + {event_name} ({policy_name}): {exc}") from exc


def test_a_commit_without_a_rollout_is_applied_at_once() -> None:
    d = step(waiting_state(Waiting.CANDIDATE), RevisionLoaded(T0, B, LoadOutcome.LOADED), POLICY)
    assert Rule.VALID_COMMIT_APPLIED in d.rules and effects(d) == [ApplyRevision(B)]
