"""What the core tells people about a run: its notice and the commit status (pure).

Built from the run's ``RunRecord`` (the same words as the history), so a notice
says nothing the history does not: no field values, only resource names, and
texts that passed through ``public`` already.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.controller.notices import CommitState, CommitStatus, Notice, NoticeKind
from reconciler.controller.records import (
    Cause,
    ChangeRecord,
    JobRecord,
    Result,
    RunRecord,
    Stage,
    Summary,
    Trigger,
    resource_key,
    utc_text,
)

MAX_RESOURCES = 50
"""Resources named in one notice (a drift of a whole host is summed up, not listed)."""


def commit_pending(revision: str, attempt: int = 1) -> CommitStatus:
    text = "validating and applying" if attempt <= 1 else f"trying again (attempt {attempt})"
    return CommitStatus(revision, CommitState.PENDING, text)


def commit_status(record: RunRecord) -> CommitStatus:
    """The forge status a finished commit run leaves."""
    sha, first = record.revision, _first_line(record.error)
    match record.result:
        case Result.APPLIED:
            return CommitStatus(sha, CommitState.SUCCESS, f"applied ({_summary(record.summary)})")
        case Result.UNCHANGED:
            return CommitStatus(sha, CommitState.SUCCESS, "applied: no change was needed")
        case Result.DEFERRED:
            return CommitStatus(sha, CommitState.PENDING, f"held by the sync windows: {record.reason}")
        case Result.RETRYING:
            return CommitStatus(sha, CommitState.PENDING, f"retrying (attempt {record.attempt}): {first}")
        case Result.REFUSED:
            return CommitStatus(sha, CommitState.FAILURE, f"refused: {_after_refused(first)}")
        case Result.ROLLED_BACK:
            to = record.rollback.revision[:12] if record.rollback is not None else "?"
            return CommitStatus(sha, CommitState.FAILURE, f"{_stage(record)} failed; rolled back to {to}")
        case _:
            return CommitStatus(sha, CommitState.FAILURE, f"{_stage(record)} failed: {first}")


def commit_notice(record: RunRecord, known_hosts: Iterable[str]) -> Notice | None:
    """The notice of a finished commit run (None while it is only being retried)."""
    short = record.revision[:12]
    changes = [*(record.changes or ()), *(record.rollback.changes if record.rollback else ())]
    hosts = _hosts(changes) or tuple(sorted(known_hosts))
    first = _first_line(record.error)
    rollback = record.rollback

    def notice(kind: NoticeKind, summary: str, *, detail: str = "", rollback_to: str = "",
               resources: Iterable[ChangeRecord] = ()) -> Notice:
        return Notice(kind, record.time, record.revision, summary, hosts, record.commit, detail, record.stage,
                      record.trigger, rollback_to, _keys(resources))

    match record.result:
        case Result.APPLIED | Result.UNCHANGED:
            return notice(NoticeKind.COMMIT_APPLIED, f"commit {short} applied ({_summary(record.summary)})",
                          resources=record.changes or ())
        case Result.DEFERRED:
            return notice(NoticeKind.COMMIT_DEFERRED,
                          f"commit {short} deferred ({_summary(record.summary)}): {record.reason}",
                          detail=record.error, resources=record.changes or ())
        case Result.REFUSED:
            return notice(NoticeKind.COMMIT_REFUSED, f"commit {short} refused: {_after_refused(first)}",
                          detail=record.error)
        case Result.ROLLED_BACK:
            to = rollback.revision if rollback is not None else ""
            return notice(NoticeKind.ROLLED_BACK,
                          f"commit {short} rolled back to {to[:12]}: {_stage(record)} failed",
                          detail=record.error, rollback_to=to,
                          resources=rollback.changes if rollback else ())
        case Result.FAILED if record.stage is Stage.CONTROLLER:
            return notice(NoticeKind.CONTROLLER_CRASH_LOOP, first, detail=record.error)
        case Result.FAILED:
            why, detail = "nothing was restored", record.error
            if rollback is not None and rollback.attempted:
                why = f"the rollback to {rollback.revision[:12]} failed too"
                detail += f"\nrollback: {rollback.error}" if rollback.error else ""
            elif rollback is not None and rollback.detail:
                detail += f"\n{rollback.detail}"
            return notice(NoticeKind.APPLY_FAILED, f"commit {short} failed ({_stage(record)}); {why}",
                          detail=detail, rollback_to=rollback.revision if rollback else "")
    return None


def drift_notice(record: RunRecord) -> Notice:
    """The notice of a drift run that corrected, detected or failed to correct drift."""
    changes = record.changes or ()
    hosts = _hosts(changes)
    names = _names(changes)
    where = ", ".join(hosts) or "no host"
    if record.result is Result.CORRECTED:
        kind, summary = NoticeKind.DRIFT_CORRECTED, f"drift corrected on {where}: {names}"
    elif record.result is Result.DETECTED:
        kind, summary = NoticeKind.DRIFT_DETECTED, f"drift on {where} left alone ({record.reason}): {names}"
    else:
        kind, summary = NoticeKind.DRIFT_NOT_CORRECTED, f"drift on {where} could not be corrected: {names}"
    detail = record.error
    if record.contested:
        detail = (detail + "\n" if detail else "") + ("changed again after the latest commit set it "
                                                      "(contested): " + ", ".join(record.contested))
    return Notice(kind, record.time, record.revision, summary, hosts, detail=detail, stage=record.stage,
                  trigger=record.trigger, resources=_keys(changes))


def job_notice(job: JobRecord, before: JobRecord | None, revision: str) -> Notice | None:
    """The notice of a new job result: every failure, and a success right after a
    failure (the job recovered); None for a success after a success (or the first)."""
    if job.ok and (before is None or before.ok):
        return None
    kind = NoticeKind.JOB_RECOVERED if job.ok else NoticeKind.JOB_FAILED
    summary = (f"{job.job} {'ok again' if job.ok else 'failed'} on {job.host}: {job.address}"
               + (f" ({job.artefact})" if job.artefact else ""))
    return Notice(kind, utc_text(job.finished_at), revision, summary, (job.host,), detail=job.detail,
                  trigger=Trigger.HOST_JOB, resources=(resource_key(job.host, job.address),), job=job.job)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _after_refused(first: str) -> str:
    """``commit abc refused: why`` -> ``why`` (the message already names the commit)."""
    head, sep, rest = first.partition(" refused: ")
    return rest if sep and head.startswith("commit ") else first


def _stage(record: RunRecord) -> str:
    return record.stage.value if record.stage is not None else Cause.COMMIT.value


def _summary(summary: Summary | None) -> str:
    if summary is None or (summary.add, summary.change, summary.destroy) == (0, 0, 0):
        return "no change"
    return f"+{summary.add} ~{summary.change} -{summary.destroy}"


def _hosts(changes: Iterable[ChangeRecord]) -> tuple[str, ...]:
    return tuple(sorted({c.host for c in changes}))


def _keys(changes: Iterable[ChangeRecord]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c.key for c in changes))[:MAX_RESOURCES]


def _names(changes: Iterable[ChangeRecord], shown: int = 3) -> str:
    addresses = list(dict.fromkeys(c.address for c in changes))
    text = ", ".join(addresses[:shown])
    return text + (f" and {len(addresses) - shown} more" if len(addresses) > shown else "")
