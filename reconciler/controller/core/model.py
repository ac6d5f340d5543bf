"""The core's state and policy: small frozen data, no behaviour beyond derived properties."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from reconciler.controller.config import ControllerConfig, DriftCorrection, SyncWindow
from reconciler.controller.records import (
    Cause,
    ChangeRecord,
    CommitInfo,
    Contested,
    HealthResult,
    JobRecord,
    Result,
    RunRecord,
    Stage,
    Summary,
    Trigger,
)
from reconciler.controller.windows import WindowDecision
from reconciler.controller.windows import decide as decide_windows
from reconciler.rollout import RolloutPlan

MAX_CRASHES = 3
"""A commit whose run the controller died in this many times is quarantined."""
QUARANTINE_KEEP = 50
"""Quarantined revisions remembered (the oldest are forgotten first)."""
CONTESTED_KEEP = 100
DETAIL_KEEP = 20
"""Watcher events remembered for the next drift check (evidence of who changed what)."""
JOBS_KEEP = 1000
"""Scheduled host jobs whose last result is remembered (the least recently finished go first)."""
INTERNAL_ERROR_PAUSE = 60.0
"""After a bug in a step, the controller pauses this long (at most) before it goes on."""


@dataclass(frozen=True)
class Policy:
    """The settings decisions depend on (a frozen extract of ``ControllerConfig``)."""

    require_signed: bool = False
    drift_correction: DriftCorrection = DriftCorrection.WINDOWS
    sync_windows: tuple[SyncWindow, ...] = ()
    timezone: str = "UTC"
    interval: float = 30.0
    drift_interval: float = 60.0
    health_grace: float = 30.0
    health_interval: float = 2.0
    backoff_base: float = 2.0
    backoff_max: float = 300.0
    max_crashes: int = MAX_CRASHES

    @classmethod
    def from_config(cls, config: ControllerConfig) -> Policy:
        return cls(require_signed=config.require_signed, drift_correction=config.drift_correction,
                   sync_windows=tuple(config.sync_windows), timezone=config.timezone,
                   interval=config.interval, drift_interval=config.drift_interval,
                   health_grace=config.health.grace, health_interval=config.health.interval,
                   backoff_base=config.backoff_base, backoff_max=config.backoff_max)

    def windows(self, now: float) -> WindowDecision:
        return decide_windows(self.sync_windows, datetime.fromtimestamp(now, UTC), ZoneInfo(self.timezone))

    def drift_allowed(self, now: float) -> tuple[bool, str]:
        if self.drift_correction is DriftCorrection.NEVER:
            return False, "drift_correction is never"
        if self.drift_correction is DriftCorrection.ALWAYS:
            return True, "drift_correction is always"
        decision = self.windows(now)
        return decision.allowed, decision.reason


def backoff_step(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with "equal jitter": half the step is fixed, half random
    (``jitter`` in [0, 1)), so retries never synchronise across controllers yet still grow."""
    step: float = min(cap, base * 2.0 ** max(0, attempt - 1))
    return step / 2 + min(max(jitter, 0.0), 1.0) * step / 2


@dataclass(frozen=True)
class Head:
    """The newest revision of the branch, as last fetched."""

    revision: str
    at: str
    info: CommitInfo | None = None


@dataclass(frozen=True)
class Good:
    """The last revision applied and found healthy: what a rollback goes back to."""

    revision: str
    at: str
    summary: Summary = field(default_factory=Summary)
    result: Result = Result.APPLIED


@dataclass(frozen=True)
class Attempt:
    revision: str
    at: str


@dataclass(frozen=True)
class Failure:
    """The last error a user must see: with the commit and, for spec errors, file:line."""

    revision: str
    at: str
    stage: Stage
    message: str
    diagnostics: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Running:
    """A run that started and has not finished. Still present after a restart, it
    means the controller died during that run (``attempts`` counts those deaths + 1)."""

    revision: str
    cause: Cause
    started_at: str
    attempts: int = 1


@dataclass(frozen=True)
class Retry:
    revision: str
    attempt: int
    next_at: float
    error: str


@dataclass(frozen=True)
class FetchRetry:
    """Fetches failing in a row (git failed, or its deadline passed): the next one waits
    for its backoff. ``since``: when the first of them failed."""

    attempt: int
    next_at: float
    error: str
    since: str


@dataclass(frozen=True)
class Deferred:
    """A commit planned and reported but held by the sync windows."""

    revision: str
    at: str
    summary: Summary
    message: str


class Waiting(StrEnum):
    """The result the core waits for (the effect the runner is performing)."""

    FETCH = "fetch"
    SIGNATURE = "signature"
    CANDIDATE = "load-candidate"
    APPLIED_SPEC = "load-applied"
    DEFER_PLAN = "plan-deferred"
    COMMIT_APPLY = "apply-commit"
    PROBE = "probe"
    ROLLBACK = "rollback"
    DRIFT_PLAN = "plan-drift"
    DRIFT_APPLY = "correct-drift"


@dataclass(frozen=True)
class EngineOutcome:
    """How a plan or apply went, as data (``runner.outcome`` builds it from the engine's report).

    ``planned``: a plan was made (``summary`` and ``changes`` are its content).
    ``applied``: the apply ran (a report exists). ``changed``: something was changed.
    ``transient``: every failure came from the connection, so retrying may help.
    ``failed``: keys of the changes that were not made (failed or skipped); ``host: *``
    when a whole host failed. ``evidence``: (resource key, what the host could tell
    about who changed it). ``jobs``: the scheduled jobs' results the hosts reported."""

    error: str = ""
    transient: bool = False
    planned: bool = False
    applied: bool = False
    changed: bool = False
    summary: Summary | None = None
    changes: tuple[ChangeRecord, ...] = ()
    resources: Mapping[str, Mapping[str, str]] | None = None
    failed: tuple[str, ...] = ()
    evidence: tuple[tuple[str, str], ...] = ()
    jobs: tuple[JobRecord, ...] = ()
    """The scheduled host jobs' last results, as the hosts observed in this run recorded them."""

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class CommitRun:
    """A commit on its way through signature, checkout, windows, apply and health."""

    revision: str
    trigger: Trigger
    started: float
    record: RunRecord
    window_reason: str = ""
    changed: frozenset[str] = frozenset()
    """Keys (``host: address``) of what the commit's apply changed: its own resources."""
    applied: EngineOutcome | None = None
    verify_until: float = 0.0
    next_probe: float = 0.0
    # A rolling apply (reconciler.controller.core.rollout): the batches, the one being
    # applied or probed, whether the probe under way is that batch's, the hosts the
    # probes check (None: all), the hosts changed or failed so far (what a rollback
    # restores) and those that failed within max_fail_percentage.
    rollout: RolloutPlan | None = None
    batch: int = 0
    batch_probe: bool = False
    probe_hosts: tuple[str, ...] | None = None
    touched: frozenset[str] = frozenset()
    failed_hosts: tuple[str, ...] = ()

    @property
    def verifying(self) -> bool:
        return self.applied is not None


@dataclass(frozen=True)
class DriftRun:
    revision: str
    trigger: Trigger
    started: float
    found: tuple[ChangeRecord, ...]
    own: frozenset[str]
    """Keys of the resources the latest commit changed: drift of these is contested."""
    detail: tuple[str, ...] = ()


@dataclass(frozen=True)
class DriftState:
    pending: tuple[ChangeRecord, ...] = ()
    """Drift found and not (yet) corrected."""
    last_check: str = ""
    streak: int = 0
    """Corrections in a row; event-driven checks are spaced out as it grows (someone fights us)."""
    not_before: float = 0.0
    reported: str = ""
    """Digest of the drift last recorded as detected (each distinct drift is recorded once)."""
    blocked: bool = False
    """Drift was found and left alone; checked again as soon as the windows allow."""
    wanted: Trigger | None = None
    detail: tuple[str, ...] = ()


@dataclass(frozen=True)
class State:
    head: Head | None = None
    applied: Good | None = None
    applied_loaded: bool = False
    """The runner holds the applied revision's loaded spec (drift checks and rollbacks need it)."""
    applied_load_failed: bool = False
    applied_changed: frozenset[str] = frozenset()
    attempted: Attempt | None = None
    last_error: Failure | None = None
    in_flight: Running | None = None
    retry: Retry | None = None
    fetch_retry: FetchRetry | None = None
    deferred: Deferred | None = None
    quarantined: tuple[tuple[str, str], ...] = ()
    """(revision, reason), oldest first."""
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    health: tuple[HealthResult, ...] = ()
    contested: tuple[Contested, ...] = ()
    jobs: tuple[JobRecord, ...] = ()
    """The last result seen of each scheduled host job (one per ``JobRecord.key``), so a
    result is recorded once, across restarts; at most ``JOBS_KEEP``."""
    drift: DriftState = DriftState()
    waiting: Waiting | None = None
    run: CommitRun | None = None
    drift_run: DriftRun | None = None
    want_fetch: Trigger | None = None
    next_fetch_at: float = 0.0
    next_drift_at: float = 0.0
    hold_until: float = 0.0

    def is_quarantined(self, revision: str) -> bool:
        return any(sha == revision for sha, _ in self.quarantined)

    @property
    def idle(self) -> bool:
        """Nothing awaited and no commit in its health grace."""
        return self.waiting is None and self.run is None


