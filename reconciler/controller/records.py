"""The controller's vocabulary: why a run happened, how it ended, and the record it leaves.

These are the words of ``history.jsonl``, ``status.json``, the metrics' labels and the
log lines, and the words anything built on the controller (notifications, a status
page) should match on. docs/controller-internals.md lists them with their meaning.

* ``Cause``: why the hosts were touched: a *commit* (an intended change) or *drift*
  (the hosts moved away from the applied revision).
* ``Result``: how a run ended. ``in-sync`` is counted in the metrics only: a drift
  check that found nothing leaves no history entry.
* ``Trigger``: what woke the controller for the run.
* ``Stage``: where a run failed; also the ``stage`` label of the failures metric and
  ``last_error.cause`` in the status.
* ``RunRecord``: one history entry (``to_json`` is the stored form).
* ``JobRecord``: the result of a scheduled job a host ran (a backup, an offsite
  copy, a restore drill), as a provider reported it; its history entry has cause
  ``job`` and trigger ``host-job``.

Everything here is frozen data; values pass through ``public`` (secrets redacted)
before they are built, so a record never holds a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from reconciler.provider import JobOutcome, JobResult
from reconciler.sensitive import REDACTOR


class Cause(StrEnum):
    COMMIT = "commit"  # an intended change: a new revision of the spec
    DRIFT = "drift"    # the hosts moved away from the applied revision
    JOB = "job"        # a scheduled job on a host (backup, offsite copy, restore drill) ended


class Result(StrEnum):
    APPLIED = "applied"          # the commit's changes were made and are healthy
    UNCHANGED = "unchanged"      # the commit needed no change on any host
    REFUSED = "refused"          # not run (signature or spec error); nothing touched
    ROLLED_BACK = "rolled-back"  # apply or health failed; the last good revision was restored
    FAILED = "failed"            # failed, and nothing (more) could be restored
    DEFERRED = "deferred"        # planned only: the sync windows are closed
    RETRYING = "retrying"        # transient fault; the same revision is retried later
    CORRECTED = "corrected"      # drift corrected
    DETECTED = "detected"        # drift found and left alone (policy or windows)
    IN_SYNC = "in-sync"          # a drift check found nothing (metrics only, no history entry)

    @property
    def ok(self) -> bool:
        """The run ended as intended (the log line is INFO, not ERROR)."""
        return self in (Result.APPLIED, Result.UNCHANGED, Result.DEFERRED, Result.CORRECTED,
                        Result.DETECTED, Result.IN_SYNC)


class Trigger(StrEnum):
    STARTUP = "startup"
    INTERVAL = "interval"
    WEBHOOK = "webhook"
    LOCAL_REPO = "local-repo"
    RETRY = "retry"
    WINDOW = "window"
    DRIFT_INTERVAL = "drift-interval"
    FILE_EVENT = "file-event"
    DOCKER_EVENT = "docker-event"
    SERVICE_EVENT = "service-event"
    HEALTH_PROBE = "health-probe"  # drift found by a probe in a commit's health grace
    HOST_JOB = "host-job"  # a scheduled job's result, found when the controller observed the host


class Stage(StrEnum):
    """Where something failed (the ``stage`` of a history entry, the failures metric's label)."""

    FETCH = "fetch"
    SIGNATURE = "signature"
    CHECKOUT = "checkout"
    SPEC = "spec"
    PLAN = "plan"
    APPLY = "apply"
    HEALTH = "health"
    ROLLBACK = "rollback"
    CONTROLLER = "controller"  # the controller died during this revision's runs too often
    TRANSIENT = "transient"    # a connection fault: the revision is retried
    DRIFT_PLAN = "drift-plan"
    DRIFT = "drift"
    INTERNAL = "internal"      # a bug in the controller; logged with its traceback


def utc_text(epoch: float) -> str:
    """The timestamp format of status and history (UTC, seconds)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Summary:
    add: int = 0
    change: int = 0
    destroy: int = 0

    def to_json(self) -> dict[str, int]:
        return {"add": self.add, "change": self.change, "destroy": self.destroy}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Summary:
        data = data or {}
        return cls(int(data.get("add", 0)), int(data.get("change", 0)), int(data.get("destroy", 0)))


@dataclass(frozen=True)
class FieldRecord:
    """One field's value before and after (already redacted)."""

    path: str
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class ChangeRecord:
    """One resource that differs (or differed) from the spec on one host."""

    host: str
    address: str
    action: str
    reason: str
    fields: tuple[FieldRecord, ...] = ()

    @property
    def key(self) -> str:
        """``host: address``, how a resource on a host is named in status and records."""
        return resource_key(self.host, self.address)

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "address": self.address, "action": self.action, "reason": self.reason,
                "fields": [f.to_json() for f in self.fields]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChangeRecord:
        return cls(str(data["host"]), str(data["address"]), str(data["action"]), str(data.get("reason", "")),
                   tuple(FieldRecord(str(f["path"]), f.get("before"), f.get("after"))
                         for f in data.get("fields", [])))


def resource_key(host: str, address: str) -> str:
    return f"{host}: {address}"


def intent_of(cause: Cause) -> str:
    """The ``intent`` of a history entry, in words."""
    return {Cause.COMMIT: "intended change", Cause.DRIFT: "drift correction"}.get(cause, "scheduled job")


JOB_DETAIL_MAX = 300
"""Characters of a job's detail kept (history, status, notices)."""


@dataclass(frozen=True)
class JobRecord:
    """The last run of one scheduled job on a host (``Provider.job_results``, with the
    host): ``host``, ``address`` and ``job`` name the job; ``finished_at`` (Unix
    seconds, as the host recorded it) tells one run from the next. ``detail`` (why
    it failed) and ``artefact`` (the backup file) pass through the redactor here."""

    host: str
    address: str
    job: str
    result: JobOutcome
    finished_at: float
    detail: str = ""
    artefact: str = ""

    @classmethod
    def of(cls, host: str, found: JobResult) -> JobRecord:
        detail = REDACTOR.scrub(" ".join(found.detail.split()))[:JOB_DETAIL_MAX]
        return cls(host, found.address, found.job, found.result, float(found.finished_at), detail,
                   REDACTOR.scrub(found.artefact)[:JOB_DETAIL_MAX])

    @property
    def ok(self) -> bool:
        return self.result is JobOutcome.OK

    @property
    def key(self) -> tuple[str, str, str]:
        """(host, address, job): one job; its newest result replaces the one before."""
        return (self.host, self.address, self.job)

    @property
    def summary(self) -> str:
        """``drill failed on web: backups:appdb (checksum mismatch)``: one line for people."""
        text = f"{self.job} {self.result.value} on {self.host}: {self.address}"
        return text + (f" ({self.detail})" if self.detail else "")

    def to_json(self) -> dict[str, Any]:
        """The form ``status.json`` keeps (``jobs``: the last result seen per job)."""
        out: dict[str, Any] = {"host": self.host, "address": self.address, "job": self.job,
                               "result": self.result.value, "finished_at": self.finished_at}
        if self.detail:
            out["detail"] = self.detail
        if self.artefact:
            out["artefact"] = self.artefact
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobRecord:
        result = JobOutcome.OK if data.get("result") == JobOutcome.OK.value else JobOutcome.FAILED
        return cls(str(data["host"]), str(data["address"]), str(data["job"]), result,
                   float(data["finished_at"]), str(data.get("detail", "")), str(data.get("artefact", "")))

    def history_entry(self, time: str, revision: str) -> dict[str, Any]:
        """The history entry: seen at ``time`` by the controller, which had ``revision`` applied."""
        out: dict[str, Any] = {"time": time, "cause": Cause.JOB.value, "intent": intent_of(Cause.JOB),
                               "revision": revision, "trigger": Trigger.HOST_JOB.value,
                               "result": self.result.value, "host": self.host, "address": self.address,
                               "job": self.job, "finished_at": utc_text(self.finished_at)}
        if self.detail:
            out["detail"] = self.detail
        if self.artefact:
            out["artefact"] = self.artefact
        return out


@dataclass(frozen=True)
class HealthResult:
    host: str
    check: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "check": self.check, "ok": self.ok, "detail": REDACTOR.scrub(self.detail)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HealthResult:
        return cls(str(data.get("host", "")), str(data.get("check", "")), bool(data.get("ok")),
                   str(data.get("detail", "")))


@dataclass(frozen=True)
class CommitInfo:
    summary: str
    author: str
    date: str

    def to_json(self) -> dict[str, str]:
        return {"summary": self.summary, "author": self.author, "date": self.date}


@dataclass(frozen=True)
class Rollback:
    """What a rollback did: ``attempted`` is False when there was no good revision to go back to."""

    attempted: bool
    revision: str = ""
    ok: bool = False
    changes: tuple[ChangeRecord, ...] = ()
    error: str = ""
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        if not self.attempted:
            return {"attempted": False, "detail": self.detail}
        out: dict[str, Any] = {"attempted": True, "revision": self.revision, "ok": self.ok,
                               "changes": [c.to_json() for c in self.changes]}
        if self.error:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class Contested:
    """A resource the latest commit changed that something else keeps changing.

    ``evidence`` is what the host could tell about who or what changed it (the
    watcher event that saw it, the file's modification time and owner)."""

    host: str
    address: str
    revision: str
    count: int
    first_seen: str
    last_seen: str
    evidence: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return resource_key(self.host, self.address)

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "address": self.address, "revision": self.revision, "count": self.count,
                "first_seen": self.first_seen, "last_seen": self.last_seen, "evidence": list(self.evidence)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Contested:
        return cls(str(data["host"]), str(data["address"]), str(data.get("revision", "")),
                   int(data.get("count", 1)), str(data.get("first_seen", "")), str(data.get("last_seen", "")),
                   tuple(str(e) for e in data.get("evidence", [])))


@dataclass(frozen=True)
class RunRecord:
    """One history entry. Optional parts are left out of the JSON when unset.

    Commit runs: ``commit`` (summary, author, date), ``signature``, ``summary`` and
    ``changes`` (the plan), ``health`` (the last probe), ``stage``/``error``/
    ``diagnostics`` on failure, ``rollback``, ``attempt``/``retry_in`` while retrying,
    ``reason`` when deferred. Drift runs: ``changes`` (before and after per field),
    ``reason`` when only detected, ``contested`` (keys of resources the latest commit
    changed), ``error``/``transient`` when the correction failed. ``count`` and
    ``last_time`` appear when the store merged a burst of identical corrections."""

    time: str
    cause: Cause
    revision: str
    trigger: Trigger
    result: Result = Result.FAILED
    commit: CommitInfo | None = None
    signature: tuple[bool, str] | None = None
    stage: Stage | None = None
    error: str = ""
    diagnostics: tuple[Mapping[str, Any], ...] = ()
    reason: str = ""
    summary: Summary | None = None
    changes: tuple[ChangeRecord, ...] | None = None
    health: tuple[HealthResult, ...] | None = None
    rollback: Rollback | None = None
    attempt: int | None = None
    retry_in: float | None = None
    transient: bool | None = None
    contested: tuple[str, ...] = ()
    seconds: float | None = None

    @property
    def intent(self) -> str:
        return intent_of(self.cause)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"time": self.time, "cause": self.cause.value, "intent": self.intent,
                               "revision": self.revision, "trigger": self.trigger.value}
        if self.commit is not None:
            out["commit"] = self.commit.to_json()
        if self.signature is not None:
            out["signature"] = {"ok": self.signature[0], "detail": self.signature[1]}
        out["result"] = self.result.value
        if self.stage is not None:
            out["stage"] = self.stage.value
        if self.error:
            out["error"] = self.error
        if self.diagnostics:
            out["diagnostics"] = [dict(d) for d in self.diagnostics]
        if self.reason:
            out["reason"] = self.reason
        if self.summary is not None:
            out["summary"] = self.summary.to_json()
        if self.changes is not None:
            out["changes"] = [c.to_json() for c in self.changes]
        if self.contested:
            out["contested"] = list(self.contested)
        if self.health is not None:
            out["health"] = [h.to_json() for h in self.health]
        if self.rollback is not None:
            out["rollback"] = self.rollback.to_json()
        if self.attempt is not None:
            out["attempt"] = self.attempt
        if self.retry_in is not None:
            out["retry_in"] = self.retry_in
        if self.transient is not None:
            out["transient"] = self.transient
        if self.seconds is not None:
            out["seconds"] = self.seconds
        return out
