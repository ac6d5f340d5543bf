"""What the controller does next, as a pure function: ``decide(state, event, policy)``.

``decide`` returns the next ``State`` and the ``Action`` s to perform. It does no
I/O, starts no thread, reads no clock and draws no random number: the time comes
in every event (``now``, Unix seconds) and the jitter of a retry in the result
that schedules it. State, events and actions are small frozen dataclasses, so
every transition can be tested on its own (tests/controller/test_core_*.py).

The runner (``loop.Controller``) performs the actions in order. At most one
action of a decision yields a result (``Fetch``, ``CheckSignature``,
``LoadRevision``, ``PlanRevision``, ``ApplyRevision``, ``ProbeHealth``); it is
always the last one, and the runner feeds its result back as the next event.
``State.waiting`` says which result is awaited; a result nobody waits for is
ignored. Requests (``FetchRequested``, ``DriftRequested``) and ``Tick`` arrive
only between runs; what they ask for while a commit is in its health grace is
held (a fetch) or folded into the next probe (a drift check).

Each decision names the transitions it took (``Decision.rules``); ``Rule`` is
the complete list, and the table test walks every (state, event) pair.
"""

from __future__ import annotations

from reconciler.controller.core.decide import (
    decide,
    next_wakeup,
    pass_complete,
)
from reconciler.controller.core.events import (
    EFFECTS,
    Action,
    Applied,
    ApplyRevision,
    CheckSignature,
    Cleanup,
    CountFailure,
    CountJob,
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
    RecordJob,
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
    JOBS_KEEP,
    MAX_CRASHES,
    QUARANTINE_KEEP,
    Attempt,
    CommitRun,
    Deferred,
    DriftRun,
    DriftState,
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
from reconciler.controller.core.rules import (
    Decision,
    Rule,
)
from reconciler.controller.core.status import (
    state_from_status,
    status_from_state,
)

__all__ = [
    "CONTESTED_KEEP",
    "DETAIL_KEEP",
    "EFFECTS",
    "INTERNAL_ERROR_PAUSE",
    "JOBS_KEEP",
    "MAX_CRASHES",
    "QUARANTINE_KEEP",
    "Action",
    "Applied",
    "ApplyRevision",
    "Attempt",
    "CheckSignature",
    "Cleanup",
    "CommitRun",
    "CountFailure",
    "CountJob",
    "CountRun",
    "Decision",
    "Deferred",
    "DriftRequested",
    "DriftRun",
    "DriftState",
    "EngineOutcome",
    "Event",
    "Failure",
    "Fetch",
    "FetchFailed",
    "FetchRequested",
    "FetchRetry",
    "Fetched",
    "Good",
    "Head",
    "HealthProbed",
    "LoadOutcome",
    "LoadRevision",
    "Log",
    "LogLevel",
    "Notify",
    "PlanRevision",
    "Planned",
    "Policy",
    "ProbeHealth",
    "PublishApplied",
    "RecordJob",
    "RecordRun",
    "Retry",
    "RevisionLoaded",
    "Rule",
    "Running",
    "SaveStatus",
    "SetCommitStatus",
    "SignatureChecked",
    "Started",
    "State",
    "StepFailed",
    "Stopping",
    "Tick",
    "Waiting",
    "WatchRevision",
    "backoff_step",
    "decide",
    "next_wakeup",
    "pass_complete",
    "state_from_status",
    "status_from_state",
]
