"""The decision core (pure logic), scheduled host jobs (backups, offsite copies,
restore drills): each result a host reports is recorded, counted and told once,
whatever run observed it, and the last one seen per job outlives a restart
(through ``status.json``). One test per behaviour."""

from __future__ import annotations

from dataclasses import replace

from reconciler.controller.core import (
    JOBS_KEEP,
    CountJob,
    EngineOutcome,
    Notify,
    Planned,
    RecordJob,
    Rule,
    SaveStatus,
    State,
    Waiting,
    state_from_status,
    status_from_state,
)
from reconciler.controller.notices import NoticeKind, Severity
from reconciler.controller.records import JobRecord, Trigger, utc_text
from reconciler.controller.state import ControllerStatus
from reconciler.provider import JobOutcome, JobResult
from reconciler.sensitive import REDACTOR
from tests.controller.core_support import (
    T0,
    A,
    B,
    applied,
    applied_state,
    effects,
    of,
    ok_apply,
    ok_plan,
    probed,
    step,
    waiting_state,
)

ADDRESS = "backups:appdb"
FINISHED = T0 - 3600


def job(name: str = "drill", ok: bool = True, finished: float = FINISHED, detail: str = "",
        host: str = "web") -> JobRecord:
    return JobRecord(host, ADDRESS, name, JobOutcome.OK if ok else JobOutcome.FAILED, finished, detail,
                     "appdb-20270115T010000Z.tar.gz")


def drift_check(*jobs: JobRecord) -> Planned:
    """A drift check's plan that found the hosts in sync and reported ``jobs``."""
    return Planned(T0, A, replace(ok_plan(), jobs=jobs))


def in_drift_check(state: State) -> State:
    return waiting_state(Waiting.DRIFT_PLAN, jobs=state.jobs)


def test_a_new_job_result_is_recorded_counted_and_remembered() -> None:
    drill = job(ok=False, detail="appdb-x.tar.gz: checksum mismatch")
    decision = step(in_drift_check(applied_state()), drift_check(drill))
    assert Rule.JOB_RESULT_RECORDED in decision.rules
    assert of(decision, RecordJob) == [RecordJob(drill, utc_text(T0), A)]
    assert of(decision, CountJob) == [CountJob(drill)]
    assert decision.state.jobs == (drill,)
    assert SaveStatus() in decision.actions
    # The drift check itself goes on as ever: found in sync.
    assert Rule.HOSTS_IN_SYNC in decision.rules


def test_a_failed_job_is_told_with_host_job_resource_time_and_detail() -> None:
    drill = job(ok=False, detail="appdb-x.tar.gz: checksum mismatch")
    [notify] = of(step(in_drift_check(applied_state()), drift_check(drill)), Notify)
    notice = notify.notice
    assert notice.kind is NoticeKind.JOB_FAILED and notice.severity is Severity.ERROR
    assert notice.hosts == ("web",) and notice.job == "drill" and notice.resources == ("web: backups:appdb",)
    assert notice.time == utc_text(FINISHED) and notice.detail == "appdb-x.tar.gz: checksum mismatch"
    assert notice.trigger is Trigger.HOST_JOB
    assert notice.summary == "drill failed on web: backups:appdb (appdb-20270115T010000Z.tar.gz)"
    payload = notice.to_json()
    assert (payload["event"], payload["job"], payload["hosts"]) == ("job-failed", "drill", ["web"])


def test_a_success_is_told_only_when_the_job_recovers() -> None:
    first_ok = step(in_drift_check(applied_state()), drift_check(job()))
    assert of(first_ok, Notify) == [] and len(of(first_ok, RecordJob)) == 1
    failed = job(ok=False, finished=FINISHED + 10)
    state = applied_state(jobs=(failed,))
    recovered = step(in_drift_check(state), drift_check(job(finished=FINISHED + 20)))
    [notify] = of(recovered, Notify)
    assert notify.notice.kind is NoticeKind.JOB_RECOVERED and notify.notice.severity is Severity.SUCCESS
    assert notify.notice.summary.startswith("drill ok again on web: backups:appdb")
    again = step(in_drift_check(recovered.state), drift_check(job(finished=FINISHED + 30)))
    assert of(again, Notify) == [] and len(of(again, RecordJob)) == 1


def test_a_result_seen_before_is_not_recorded_again() -> None:
    drill = job(ok=False)
    state = applied_state(jobs=(drill,))
    decision = step(in_drift_check(state), drift_check(drill))
    assert Rule.JOB_RESULT_ALREADY_SEEN in decision.rules and Rule.JOB_RESULT_RECORDED not in decision.rules
    assert of(decision, RecordJob) == [] and of(decision, CountJob) == [] and of(decision, Notify) == []
    assert decision.state.jobs == (drill,)
    # An older result (the host clock went back, or a stale observation) is not new either.
    older = step(in_drift_check(state), drift_check(job(finished=FINISHED - 60)))
    assert of(older, RecordJob) == [] and older.state.jobs == (drill,)


def test_each_job_is_told_apart_by_host_resource_and_name() -> None:
    backup, drill, offsite = job("backup"), job("drill", ok=False), job("offsite:vault")
    other_host = job("drill", ok=False, host="db")
    state = applied_state(jobs=(backup,))
    decision = step(in_drift_check(state), drift_check(backup, drill, offsite, other_host))
    assert [a.job for a in of(decision, RecordJob)] == [drill, offsite, other_host]
    assert {j.key for j in decision.state.jobs} == {backup.key, drill.key, offsite.key, other_host.key}
    assert [n.notice.hosts for n in of(decision, Notify)] == [("web",), ("db",)]


def test_a_newer_result_replaces_the_one_before() -> None:
    state = applied_state(jobs=(job(ok=False),))
    newer = job(finished=FINISHED + 86400)
    decision = step(in_drift_check(state), drift_check(newer))
    assert decision.state.jobs == (newer,)


def test_results_come_from_applies_and_probes_too_and_the_effect_stays_last() -> None:
    drill = job(ok=False)
    commit = step(waiting_state(Waiting.COMMIT_APPLY), applied(B, replace(ok_apply(), jobs=(drill,))))
    assert of(commit, RecordJob) == [RecordJob(drill, utc_text(T0), B)]
    assert commit.actions[-1] == effects(commit)[-1]  # the probe it starts is still the last action
    probe = replace(probed(B), jobs=(drill,))
    probing = step(waiting_state(Waiting.PROBE), probe)
    assert of(probing, RecordJob) == [RecordJob(drill, utc_text(T0), B)]


def test_a_result_nobody_waits_for_still_records_its_jobs() -> None:
    drill = job(ok=False)
    decision = step(applied_state(), drift_check(drill))
    assert Rule.RESULT_NOT_AWAITED in decision.rules and Rule.JOB_RESULT_RECORDED in decision.rules
    assert of(decision, RecordJob) == [RecordJob(drill, utc_text(T0), A)]
    assert effects(decision) == []


def test_a_failed_plan_reports_no_jobs_and_changes_nothing() -> None:
    state = applied_state(jobs=(job(),))
    decision = step(in_drift_check(state), Planned(T0, A, EngineOutcome(error="web: down", transient=True)))
    assert of(decision, RecordJob) == [] and decision.state.jobs == state.jobs


def test_the_last_results_outlive_a_restart_through_the_status() -> None:
    drill, backup = job(ok=False, detail="checksum mismatch"), job("backup")
    status = status_from_state(applied_state(jobs=(backup, drill)), ControllerStatus())
    restored = state_from_status(ControllerStatus.from_json(status.to_json()))
    assert restored.jobs == (backup, drill)
    decision = step(in_drift_check(restored), drift_check(backup, drill))
    assert of(decision, RecordJob) == [] and of(decision, Notify) == []
    # A damaged entry is dropped, not fatal: that job's next result is taken as new.
    damaged = ControllerStatus(jobs=[{"host": "web"}, backup.to_json()])
    assert state_from_status(damaged).jobs == (backup,)


def test_the_remembered_jobs_are_bounded() -> None:
    many = tuple(job(f"offsite:t{i}", finished=FINISHED + i) for i in range(JOBS_KEEP + 5))
    decision = step(in_drift_check(applied_state()), drift_check(*many))
    assert len(decision.state.jobs) == JOBS_KEEP
    assert decision.state.jobs[0].job == "offsite:t5"  # the least recently finished went first


def test_job_records_scrub_and_cut_what_the_host_wrote() -> None:
    secret = "hunter2-not-for-logs"
    REDACTOR.register(secret)
    found = JobResult(ADDRESS, "offsite:vault", JobOutcome.FAILED, FINISHED,
                      f"rsync failed\twith {secret}\n" + "x" * 1000, "appdb.tar.gz")
    record = JobRecord.of("web", found)
    assert secret not in record.detail and "\n" not in record.detail and len(record.detail) <= 300
    entry = record.history_entry(utc_text(T0), A)
    assert (entry["cause"], entry["trigger"], entry["result"], entry["job"]) == (
        "job", "host-job", "failed", "offsite:vault")
    assert entry["finished_at"] == utc_text(FINISHED) and entry["intent"] == "scheduled job"
    assert secret not in str(entry)


def test_job_results_do_not_start_or_stop_runs() -> None:
    """A drift check that only reports jobs behaves exactly as one that reports none."""
    base = in_drift_check(applied_state())
    with_jobs = step(base, drift_check(job(ok=False)))
    without = step(base, drift_check())
    assert [r for r in with_jobs.rules if not r.name.startswith("JOB_")] == list(without.rules)
    assert effects(with_jobs) == effects(without)
    assert replace(with_jobs.state, jobs=()) == without.state
