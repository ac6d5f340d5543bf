"""The backups provider reports its scheduled jobs' last results (the provider
contract's ``job_results``) from a real observation captured on a test host: the
backup, each offsite copy and the drill, with when each finished, what it used,
and why it failed (only for a failure); a record without a time is left out."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler_providers.backups.provider import BackupsProvider, parse_observation

from reconciler.provider import JobOutcome, JobResult

FIXTURES = Path(__file__).parent / "fixtures"


def test_backup_offsite_and_drill_results_come_from_the_observed_state() -> None:
    text = (FIXTURES / "observe-offsite-drill-output.txt").read_text()
    state = parse_observation(text, ["data"])["data"]
    assert state == json.loads((FIXTURES / "observe-offsite-drill-state.json").read_text())["data"]
    results = BackupsProvider().job_results("data", state)
    artefact = "data-20261201T200932Z.tar.gz"
    assert [(r.address, r.job, r.result, r.finished_at, r.artefact) for r in results] == [
        ("backups:data", "backup", JobOutcome.OK, 1796155772.0, artefact),
        ("backups:data", "offsite:vault", JobOutcome.FAILED, 1796155773.0, artefact),
        ("backups:data", "drill", JobOutcome.OK, 1796155778.0, artefact)]
    backup, vault, drill = results
    assert backup.detail == "" and drill.detail == ""  # a success needs no reason
    assert vault.detail.startswith("rsync failed: ssh: connect to host 127.0.0.2 port 1: Connection refused")
    assert "  " not in vault.detail and len(vault.detail) <= 300


def test_records_without_a_time_and_jobs_never_run_are_left_out() -> None:
    state = {"last_backup": {"result": "ok", "time": None, "file": "x.tar.gz", "message": ""},
             "last_drill": None, "last_offsite": {}}
    assert BackupsProvider().job_results("data", state) == []
    failed = {"last_backup": None, "last_offsite": {},
              "last_drill": {"result": "failed", "time": 1796155778, "file": "", "message": "no backup"}}
    assert BackupsProvider().job_results("data", failed) == [
        JobResult("backups:data", "drill", JobOutcome.FAILED, 1796155778.0, "no backup", "")]
