"""What the controller tells people: notices (webhooks, chat) and commit statuses (the forge).

The decision core emits a ``Notice`` when something worth telling happened (a commit
applied, refused, deferred, rolled back or failed; drift corrected, detected or not
corrected; the controller restarted after a crash, crash-looping or stuck; a
scheduled job on a host failed or succeeded again after a failure) and a
commit status for each commit it runs (``pending`` when the run starts, ``success``
or ``failure`` when it ends). Both are pure data built from the run's record; the
runner hands them to the delivery queues (``notifications/``), which never block
the loop.

A notice never holds a secret: it names resources (``host: address``), never their
values, and its texts come from the history record, whose values pass through
``public`` (secrets redacted) before the record is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.controller.records import CommitInfo, Stage, Trigger


class NoticeKind(StrEnum):
    """What happened (the ``event`` of a webhook payload, the ``events`` filter of a target)."""

    COMMIT_APPLIED = "commit-applied"            # applied and healthy (or nothing to change)
    COMMIT_REFUSED = "commit-refused"            # invalid spec, bad signature, cannot check out: untouched
    COMMIT_DEFERRED = "commit-deferred"          # outside the sync windows: planned, held for a window
    APPLY_FAILED = "apply-failed"                # failed (plan, apply or health) and nothing was restored
    ROLLED_BACK = "rolled-back"                  # failed; the last good revision was applied again
    DRIFT_CORRECTED = "drift-corrected"          # hosts moved away from the applied revision; put back
    DRIFT_DETECTED = "drift-detected"            # drift found and left alone (policy or windows)
    DRIFT_NOT_CORRECTED = "drift-not-corrected"  # the correction failed; the drift stays
    CONTROLLER_RESTARTED = "controller-restarted"  # it died during a run and was started again
    CONTROLLER_CRASH_LOOP = "controller-crash-loop"  # it died on one commit too often: quarantined
    CONTROLLER_STUCK = "controller-stuck"        # a run is busy far too long, or the loop stopped turning
    CONTROLLER_ERROR = "controller-error"        # a bug in a step; it pauses and goes on
    JOB_FAILED = "job-failed"                    # a scheduled host job (backup, offsite copy, drill) failed
    JOB_RECOVERED = "job-recovered"              # a scheduled host job succeeded after a failure

    @property
    def severity(self) -> Severity:
        return _SEVERITY[self]

    @property
    def repeats(self) -> bool:
        """Can happen again and again without a new commit (rate-limited when delivered)."""
        return self in _REPEATING


class Severity(StrEnum):
    SUCCESS = "success"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


_SEVERITY = {
    NoticeKind.COMMIT_APPLIED: Severity.SUCCESS,
    NoticeKind.COMMIT_REFUSED: Severity.ERROR,
    NoticeKind.COMMIT_DEFERRED: Severity.INFO,
    NoticeKind.APPLY_FAILED: Severity.ERROR,
    NoticeKind.ROLLED_BACK: Severity.ERROR,
    NoticeKind.DRIFT_CORRECTED: Severity.WARNING,
    NoticeKind.DRIFT_DETECTED: Severity.WARNING,
    NoticeKind.DRIFT_NOT_CORRECTED: Severity.ERROR,
    NoticeKind.CONTROLLER_RESTARTED: Severity.WARNING,
    NoticeKind.CONTROLLER_CRASH_LOOP: Severity.ERROR,
    NoticeKind.CONTROLLER_STUCK: Severity.ERROR,
    NoticeKind.CONTROLLER_ERROR: Severity.ERROR,
    NoticeKind.JOB_FAILED: Severity.ERROR,
    NoticeKind.JOB_RECOVERED: Severity.SUCCESS,
}
_REPEATING = frozenset({NoticeKind.DRIFT_CORRECTED, NoticeKind.DRIFT_DETECTED, NoticeKind.DRIFT_NOT_CORRECTED,
                        NoticeKind.CONTROLLER_RESTARTED, NoticeKind.CONTROLLER_STUCK,
                        NoticeKind.CONTROLLER_ERROR})


@dataclass(frozen=True)
class Notice:
    """One thing that happened, for people. ``summary`` is one line; ``detail`` the
    error as recorded (spec errors with file:line), possibly several lines.
    ``hosts``: the hosts it concerns (those changed, else every host the controller
    manages). ``resources``: ``host: address`` of what was corrected, restored or
    found drifted. ``rollback_to``: the revision a rollback restored. ``job``: for a
    scheduled host job, its name (``drill``, ``backup``, ``offsite:TARGET``); its
    host is ``hosts``, its resource ``resources`` and ``time`` when it finished."""

    kind: NoticeKind
    time: str
    revision: str
    summary: str
    hosts: tuple[str, ...] = ()
    commit: CommitInfo | None = None
    detail: str = ""
    stage: Stage | None = None
    trigger: Trigger | None = None
    rollback_to: str = ""
    resources: tuple[str, ...] = ()
    job: str = ""

    @property
    def severity(self) -> Severity:
        return self.kind.severity

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.kind.value, "severity": self.severity.value, "time": self.time,
                               "revision": self.revision, "summary": self.summary, "hosts": list(self.hosts)}
        if self.commit is not None:
            out["commit"] = self.commit.to_json()
        if self.detail:
            out["detail"] = self.detail
        if self.stage is not None:
            out["stage"] = self.stage.value
        if self.trigger is not None:
            out["trigger"] = self.trigger.value
        if self.rollback_to:
            out["rollback_to"] = self.rollback_to
        if self.resources:
            out["resources"] = list(self.resources)
        if self.job:
            out["job"] = self.job
        return out


class CommitState(StrEnum):
    """A commit status as Gitea, Forgejo and GitHub name it."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


@dataclass(frozen=True)
class CommitStatus:
    revision: str
    state: CommitState
    description: str
