"""Scheduled host jobs' results (backups, offsite copies, restore drills): each one
recorded, counted and told once (pure).

Every plan, apply and probe observes the hosts, and the providers report the last
recorded run of each scheduled job (``Provider.job_results``). A result is new when
its ``finished_at`` is later than that of the last result seen for the same job
(host, resource address, job name); the state keeps that last result per job
(``State.jobs``, saved in ``status.json``), so neither another check nor a restart
records it twice. The clock of the host decides the order: a result whose host
clock went backwards is taken as already seen.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.controller.core.events import CountJob, Notify, RecordJob
from reconciler.controller.core.model import JOBS_KEEP, State
from reconciler.controller.core.tell import job_notice
from reconciler.controller.records import JobRecord, utc_text

JobKey = tuple[str, str, str]


def new_results(state: State, found: Iterable[JobRecord]) -> list[tuple[JobRecord, JobRecord | None]]:
    """The results in ``found`` not seen before, each with the job's previous result
    (None: the first one seen), in the order found; a result reported twice counts once."""
    last: dict[JobKey, JobRecord] = {j.key: j for j in state.jobs}
    out: list[tuple[JobRecord, JobRecord | None]] = []
    for job in found:
        before = last.get(job.key)
        if before is not None and job.finished_at <= before.finished_at:
            continue
        out.append((job, before))
        last[job.key] = job
    return out


def remember(state: State, new: Iterable[JobRecord]) -> tuple[JobRecord, ...]:
    """``state.jobs`` with ``new`` replacing the results of the same jobs; the
    ``JOBS_KEEP`` most recently finished are kept."""
    kept: dict[JobKey, JobRecord] = {j.key: j for j in state.jobs}
    for job in new:
        kept[job.key] = job
    ordered = sorted(kept.values(), key=lambda j: (j.finished_at, j.key))
    return tuple(ordered[-JOBS_KEEP:])


def job_actions(job: JobRecord, before: JobRecord | None, now: float,
                revision: str) -> list[RecordJob | CountJob | Notify]:
    """What one new result leads to: its history entry, its count, and a notice when
    it failed or recovered."""
    actions: list[RecordJob | CountJob | Notify] = [RecordJob(job, utc_text(now), revision), CountJob(job)]
    notice = job_notice(job, before, revision)
    if notice is not None:
        actions.append(Notify(notice))
    return actions
