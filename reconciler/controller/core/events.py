"""What happens to the core (events, each with its time) and what it asks for (actions)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.controller.core.model import EngineOutcome
from reconciler.controller.notices import CommitStatus, Notice
from reconciler.controller.records import (
    ChangeRecord,
    CommitInfo,
    HealthResult,
    JobRecord,
    Result,
    RunRecord,
    Stage,
    Trigger,
)
from reconciler.rollout import RolloutPlan


@dataclass(frozen=True)
class Started:
    now: float


@dataclass(frozen=True)
class Tick:
    """A timer the core asked for (``next_wakeup``) is due, or the runner woke up anyway."""

    now: float


@dataclass(frozen=True)
class FetchRequested:
    now: float
    trigger: Trigger


@dataclass(frozen=True)
class DriftRequested:
    now: float
    trigger: Trigger
    detail: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stopping:
    now: float


@dataclass(frozen=True)
class Fetched:
    now: float
    trigger: Trigger
    revision: str
    info: CommitInfo | None = None


@dataclass(frozen=True)
class FetchFailed:
    """git failed, or its deadline passed (a server that accepts and never answers)."""

    now: float
    trigger: Trigger
    error: str
    jitter: float = 0.5


@dataclass(frozen=True)
class SignatureChecked:
    now: float
    revision: str
    ok: bool
    detail: str


class LoadOutcome(StrEnum):
    LOADED = "loaded"
    SPEC_ERRORS = "spec-errors"            # the commit's spec does not validate: terminal
    CHECKOUT_FAILED = "checkout-failed"    # git cannot check it out: terminal
    PROVIDERS_BROKEN = "providers-broken"  # the installation is broken, not the commit: retried


@dataclass(frozen=True)
class RevisionLoaded:
    now: float
    revision: str
    outcome: LoadOutcome
    message: str = ""
    diagnostics: tuple[Mapping[str, Any], ...] = ()
    jitter: float = 0.5
    rollout: RolloutPlan | None = None
    """The revision's batches (its spec's ``rollout:``), when it asks for a rolling apply."""


@dataclass(frozen=True)
class Planned:
    now: float
    revision: str
    outcome: EngineOutcome


@dataclass(frozen=True)
class Applied:
    now: float
    revision: str
    outcome: EngineOutcome
    jitter: float = 0.5


@dataclass(frozen=True)
class HealthProbed:
    """One probe in the health grace: the declared checks, which hosts could not be
    planned, and every resource that differs from the revision's spec."""

    now: float
    revision: str
    hosts: tuple[str, ...]
    checks: tuple[HealthResult, ...] = ()
    host_errors: tuple[tuple[str, str], ...] = ()
    differing: tuple[ChangeRecord, ...] = ()
    jobs: tuple[JobRecord, ...] = ()


@dataclass(frozen=True)
class StepFailed:
    """An action raised (a bug): the runner logged the traceback."""

    now: float
    error: str


Event = (Started | Tick | FetchRequested | DriftRequested | Stopping | Fetched | FetchFailed
         | SignatureChecked
         | RevisionLoaded | Planned | Applied | HealthProbed | StepFailed)


@dataclass(frozen=True)
class Fetch:
    trigger: Trigger


@dataclass(frozen=True)
class CheckSignature:
    revision: str


@dataclass(frozen=True)
class LoadRevision:
    """Check the revision out and load its spec (the runner keeps the loaded spec)."""

    revision: str


@dataclass(frozen=True)
class PlanRevision:
    revision: str


@dataclass(frozen=True)
class ApplyRevision:
    """Apply a loaded revision under the host locks. ``explain``: keys of resources
    whose change the host should account for first (who or what changed them).
    ``hosts``: only these (a batch of a rollout, or the hosts a rollback restores; a
    host the revision does not have is left out); None: every host. ``upstream_failed``:
    keys (``host: address``, ``host: *``) that failed in earlier batches, so what
    depends on them is skipped."""

    revision: str
    explain: tuple[str, ...] = ()
    hosts: tuple[str, ...] | None = None
    upstream_failed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeHealth:
    """Probe the revision's health on ``hosts`` (a batch), or on every host (None)."""

    revision: str
    hosts: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SaveStatus:
    pass


@dataclass(frozen=True)
class RecordRun:
    record: RunRecord


@dataclass(frozen=True)
class CountRun:
    """One run for the metrics (``cause`` is a Cause value or ``rollback``)."""

    cause: str
    result: Result
    seconds: float | None = None
    drifted: int = 0
    """Resources drifted in this run (the drift events metric, labelled by result)."""


@dataclass(frozen=True)
class RecordJob:
    """Append a scheduled host job's new result to the history (cause ``job``), seen
    at ``time`` with ``revision`` applied."""

    job: JobRecord
    time: str
    revision: str


@dataclass(frozen=True)
class CountJob:
    """One new job result for the metrics (the results counter)."""

    job: JobRecord


@dataclass(frozen=True)
class CountFailure:
    stage: Stage


@dataclass(frozen=True)
class PublishApplied:
    """``revision`` became the applied one at ``at``; ``committed``: its commit date
    (ISO 8601, "" when unknown), for the commit-to-applied latency."""

    revision: str
    at: float
    committed: str = ""


@dataclass(frozen=True)
class Notify:
    """Tell the configured targets (webhooks, chat) what happened. Queued: never blocks."""

    notice: Notice


@dataclass(frozen=True)
class SetCommitStatus:
    """Set the commit's status in the forge (pending, then success or failure). Queued."""

    status: CommitStatus


@dataclass(frozen=True)
class WatchRevision:
    """Point the file and Docker watchers at this revision's managed resources."""

    revision: str


@dataclass(frozen=True)
class Cleanup:
    """Drop worktrees and loaded specs of revisions not in ``keep``."""

    keep: frozenset[str]


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Log:
    level: LogLevel
    message: str
    fields: tuple[tuple[str, Any], ...] = ()


Action = (Fetch | CheckSignature | LoadRevision | PlanRevision | ApplyRevision | ProbeHealth | SaveStatus
          | RecordRun | RecordJob | CountRun | CountJob | CountFailure | PublishApplied | Notify
          | SetCommitStatus | WatchRevision | Cleanup | Log)
EFFECTS = (Fetch, CheckSignature, LoadRevision, PlanRevision, ApplyRevision, ProbeHealth)
"""Actions whose result comes back as an event."""


