"""The transitions of the core, by name, and the decision that lists the ones taken."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reconciler.controller.core.events import Action
from reconciler.controller.core.model import State


class Rule(StrEnum):
    """Every transition of the core, as a sentence (docs/controller-internals.md lists them)."""

    START = "at start the state is restored, a fetch and a drift check are due at once"
    START_AFTER_CRASH = "a run left in flight by a crash is logged and resumed"
    START_LOADS_APPLIED = "at start the applied revision's spec is loaded first"
    APPLIED_SPEC_LOADED = "the applied spec is loaded: watchers follow it, drift checks can run"
    APPLIED_SPEC_UNLOADABLE = "the applied spec cannot be loaded: drift checks wait for a fetch or an apply"
    FETCH_DUE = "a requested or due fetch is started"
    FETCH_HELD_WHILE_BUSY = "a fetch requested during a run is held until the run ends"
    NEW_REVISION_FETCHED = "a new head is recorded"
    SAME_REVISION_FETCHED = "the head did not move"
    FETCH_FAILED = ("a failed fetch (git failed or its deadline passed) is counted and retried with backoff: "
                    "the interval, doubling up to backoff_max")
    HEAD_ALREADY_APPLIED = "the head is the applied revision: nothing to do"
    HEAD_APPLIED_CLEARS_RETRY = "the head is applied: a stale retry or deferral is dropped"
    HEAD_APPLIED_LOADS_SPEC = "the head is applied but its spec is not loaded: load it"
    QUARANTINED_HEAD_IGNORED = "a quarantined head is never retried; only a newer commit is tried"
    NEWER_COMMIT_REPLACES_RETRY = "a newer commit replaces a pending retry and is tried at once"
    RETRY_WAITS_FOR_BACKOFF = "a retried commit waits for its backoff"
    RETRY_DUE = "a retried commit is tried again when its backoff is over"
    DEFERRED_WAITS_FOR_WINDOW = "a deferred commit waits for a sync window"
    WINDOW_OPENS_FOR_DEFERRED = "a sync window opened: the deferred commit is applied"
    CRASH_LOOPING_COMMIT_QUARANTINED = "a commit the controller died on MAX_CRASHES times is quarantined"
    COMMIT_STARTS_WITH_SIGNATURE = "a new commit starts with its signature check (require_signed)"
    COMMIT_STARTS_WITH_CHECKOUT = "a new commit starts with its checkout and spec validation"
    UNSIGNED_COMMIT_QUARANTINED = "an unsigned or untrusted commit is refused and quarantined"
    SIGNED_COMMIT_CHECKED_OUT = "a trusted signature leads to the checkout"
    INVALID_SPEC_QUARANTINED = "a commit whose spec has errors is refused with file:line and quarantined"
    CHECKOUT_FAILURE_QUARANTINED = "a commit git cannot check out is refused and quarantined"
    BROKEN_INSTALLATION_RETRIED = "a provider that cannot load is the installation's fault: retried"
    COMMIT_OUTSIDE_WINDOW_PLANNED = "outside the sync windows a commit is only planned"
    COMMIT_DEFERRED = "the plan of a deferred commit is recorded; it waits for a window"
    VALID_COMMIT_APPLIED = "a valid commit inside the windows is applied"
    TRANSIENT_FAILURE_RETRIED = "a transient failure retries the same commit with backoff and jitter"
    PLAN_FAILURE_QUARANTINED = "a commit that cannot be planned (terminal) fails and is quarantined"
    RIDING_DRIFT_FAILURE_NOT_HELD = ("a drift correction that rode along with a commit's apply and failed is "
                                     "drift, not the commit's failure")
    APPLY_FAILURE_ROLLS_BACK = "a failed apply is rolled back to the last good revision"
    FAILURE_WITHOUT_GOOD_REVISION = "a failure with no good revision to go back to is reported as failed"
    APPLIED_COMMIT_VERIFIED = "an applied commit enters its health grace and is probed at once"
    HEALTHY_COMMIT_APPLIED = ("a commit whose checks pass and whose hosts can be planned becomes the applied "
                              "revision")
    DRIFT_FOUND_BY_PROBE_CORRECTED = ("drift seen by a probe is corrected as drift (the commit's own "
                                      "resources as contested), not held against the commit")
    UNHEALTHY_COMMIT_PROBED_AGAIN = "an unhealthy commit is probed again until its grace ends"
    UNHEALTHY_COMMIT_ROLLS_BACK = "a commit still unhealthy at the end of its grace is rolled back"
    ROLLBACK_RESTORED_LAST_GOOD = "the rollback restored the last good revision; the commit is quarantined"
    ROLLBACK_FAILED = "the rollback failed too: reported as failed"
    ROLLOUT_STARTED = "a valid commit whose spec rolls out in batches is applied to its first batch"
    BATCH_APPLIED_PROBED = "an applied batch is probed (its hosts' checks) before the next one starts"
    BATCH_PROBED_AGAIN = "an unhealthy batch is probed again until its grace ends"
    BATCH_HEALTHY = "a healthy batch lets the next batch start"
    BATCH_FAILURES_WITHIN_THRESHOLD = ("hosts of a batch that failed within max_fail_percentage are recorded "
                                       "and the rollout goes on")
    BATCH_FAILED_ROLLS_BACK = ("a batch with more failed hosts than max_fail_percentage stops the rollout; "
                               "the hosts it changed are rolled back")
    LAST_BATCH_VERIFIED = "after the last batch the commit enters its health grace on every host"
    PROBE_DUE = "the next probe of the health grace is due"
    DRIFT_REQUEST_IN_GRACE_PROBES = "a drift event during a health grace brings the next probe forward"
    DRIFT_REQUEST_DEBOUNCED = "drift events while corrections keep coming are spaced out"
    DRIFT_REQUEST_QUEUED = "a drift event during a run is checked when the run ends"
    DRIFT_CHECK_STARTED = "a requested or due drift check plans the applied revision"
    DRIFT_CHECK_WITHOUT_APPLIED_SPEC = "no drift check before a revision is applied and loaded"
    DRIFT_CHECK_WAITS_FOR_RETRY = "no drift check while a newer commit waits for its retry"
    WINDOW_OPENS_FOR_DRIFT = "a sync window opened over drift left alone: checked again"
    DRIFT_CHECK_FAILED = "a drift check that cannot plan is counted and logged"
    HOSTS_IN_SYNC = "a drift check that finds nothing clears pending drift and counts as a run"
    DRIFT_DETECTED_NOT_CORRECTED = ("drift outside the windows (or with drift_correction never) is recorded, "
                                    "not corrected")
    SAME_DRIFT_REPORTED_ONCE = "the same uncorrected drift is recorded once, not on every check"
    DRIFT_CORRECTION_STARTED = "drift inside the windows is corrected by applying the revision again"
    DRIFT_VANISHED = "drift that went away before the hosts were locked is not recorded"
    DRIFT_CORRECTED = "a drift correction is recorded with before and after; own resources as contested"
    DRIFT_CORRECTION_FAILED = "a failed drift correction is recorded and stays pending"
    INTERNAL_ERROR_PAUSES = "a bug in a step is recorded; the controller pauses, then goes on"
    STOP_ABANDONS_GRACE = "a stop during a health grace leaves the commit to be verified at the next start"
    STOP = "a stop outside a health grace changes nothing"
    JOB_RESULT_RECORDED = ("a scheduled host job's result not seen before is recorded in the history, "
                           "counted, and told when it failed or recovered")
    JOB_RESULT_ALREADY_SEEN = ("a job result already recorded (same host, resource, job and finish time) "
                               "is skipped")
    IDLE = "nothing is due"
    RESULT_NOT_AWAITED = "a result nobody waits for is ignored"
    EVENT_WHILE_WAITING = "a tick or stop while an effect runs is ignored"


@dataclass(frozen=True)
class Decision:
    state: State
    actions: tuple[Action, ...]
    rules: tuple[Rule, ...]


