"""Results of scheduled host jobs reach the controller: a `backups` resource (a tarball
of a directory) on a real test host, its backup and restore drill run by hand as
cron runs them. The controller (`reconcile watch` on this machine) records each
result once in its history, shows the failed drill in its metrics and sends a
`job-failed` notice to a real webhook receiver on 127.0.0.1; neither further drift
checks nor a restart of the controller record or tell the same result again."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from testbed.hosts import TestHost
from tests.controller.receivers import Receiver, notices
from tests.controller.support import (
    RECONCILE,
    LocalRepo,
    WatchProcess,
    free_port,
    read_history,
    read_status,
    ssh_hosts_yaml,
    wait_for,
)

NAME = "jobdata"
SOURCE = "/srv/jobdata"
DEST = "/var/backups/jobdata"
SCRIPT = f"/usr/local/lib/reconciler/backup-{NAME}"
ADDRESS = f"backups:{NAME}"
CRON_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SECRET = "hook-secret-0123456789"


def backups_yaml() -> str:
    return yaml.safe_dump({"backups": [{
        "name": NAME, "schedule": "0 2 * * *", "source": {"paths": [SOURCE]}, "destination": DEST,
        "keep": {"count": 5},
        "verify": {"schedule": "0 4 1 * *", "paths": [f"{SOURCE}/data.txt"]}}]}, sort_keys=False)


def job_entries(state: Path) -> list[dict[str, Any]]:
    return [e for e in read_history(state) if e.get("cause") == "job"]


def job_samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("reconciler_controller_job_")}


def run_as_cron(host: TestHost, *args: str, check: bool = True) -> int:
    """The script as its cron entry runs it: ``sh -c`` as root with cron's PATH."""
    command = " ".join([SCRIPT, *args])
    proc = host.exec(["env", "-i", CRON_PATH, "sh", "-c", command], check=check)
    return proc.returncode


def drift_checks_after(state: Path, mark: str) -> bool:
    """A drift check finished after ``mark`` (a ``last_drift_check`` seen before)."""
    return read_status(state).get("last_drift_check", "") > mark


@pytest.mark.timeout(400)
def test_backup_and_drill_results_reach_history_metrics_and_notices(fresh_host: TestHost,
                                                                     tmp_path: Path) -> None:
    host = fresh_host
    host.exec(["sh", "-c", f"mkdir -p {SOURCE} && echo payload > {SOURCE}/data.txt"])
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))
    repo.write("specs/backups.yaml", backups_yaml())
    sha = repo.commit("back up jobdata, with a drill")
    state = tmp_path / "state"
    port = free_port()
    (tmp_path / "secret").write_text(SECRET + "\n")
    with Receiver() as receiver:
        config = tmp_path / "controller.yaml"
        config.write_text(f"""notifications:
  targets:
    - {{name: ops, kind: webhook, url: "{receiver.url}/hook", secret_file: "{tmp_path / 'secret'}"}}
""")
        flags = ("--listen", f"127.0.0.1:{port}", "--drift-interval", "2s")
        with WatchProcess(repo.path, state, *flags, config=config) as proc:
            wait_for("the commit to be applied",
                     lambda: (read_status(state).get("last_applied") or {}).get("revision") == sha,
                     timeout=120, explain=proc.log)
            assert job_entries(state) == []  # nothing has run yet

            # The nightly backup, as cron runs it.
            run_as_cron(host, "run")
            [backup] = wait_for("the backup's result in the history", lambda: job_entries(state),
                                timeout=60, explain=proc.log)
            assert (backup["job"], backup["result"], backup["host"], backup["address"]) == (
                "backup", "ok", "web", ADDRESS)
            assert backup["trigger"] == "host-job" and backup["revision"] == sha
            newest = backup["artefact"]
            assert newest.startswith(f"{NAME}-") and newest.endswith(".tar.gz")

            # Bytes flipped in the backup; the monthly drill, run as cron runs it, catches it.
            host.exec(["sh", "-c", f"printf XXXX | dd of={DEST}/{newest} bs=1 seek=20 conv=notrunc "
                                   "status=none"])
            assert run_as_cron(host, "verify", check=False) == 1
            entries = wait_for("the drill's result in the history",
                               lambda: (e := job_entries(state)) and len(e) == 2 and e, timeout=60,
                               explain=proc.log)
            drill = entries[1]
            assert (drill["job"], drill["result"], drill["host"], drill["address"]) == (
                "drill", "failed", "web", ADDRESS)
            assert "checksum" in drill["detail"] and newest in drill["detail"], drill

            # The metrics show the failed drill and the good backup.
            labels = (("host", "web"), ("job_name", "drill"), ("resource", ADDRESS))
            backup_labels = (("host", "web"), ("job_name", "backup"), ("resource", ADDRESS))
            values = wait_for("the job series", lambda: (v := job_samples(port)) and v, timeout=30,
                              explain=proc.log)
            assert values[("reconciler_controller_job_last_result", labels)] == 0
            assert values[("reconciler_controller_job_last_result", backup_labels)] == 1
            finished = values[("reconciler_controller_job_last_finished_timestamp_seconds", labels)]
            assert finished > 0
            assert values[("reconciler_controller_job_results_total", (*labels, ("result", "failed")))] == 1

            # The webhook got the failure, with host, job, resource, time and detail; no secret.
            [failed] = wait_for("the job-failed notice",
                                lambda: [n for n in notices(receiver) if n["event"] == "job-failed"],
                                timeout=30, explain=proc.log)
            assert (failed["hosts"], failed["job"], failed["resources"]) == (
                ["web"], "drill", [f"web: {ADDRESS}"])
            assert failed["severity"] == "error" and failed["trigger"] == "host-job"
            assert failed["time"] == drill["finished_at"] and "checksum" in failed["detail"]
            assert failed["summary"].startswith(f"drill failed on web: {ADDRESS}")
            assert SECRET not in json.dumps(notices(receiver))
            # A good backup after a good (first) one is not worth a message.
            assert [n["event"] for n in notices(receiver) if n["event"].startswith("job-")] == ["job-failed"]

            # More drift checks see the same results: nothing is recorded twice.
            mark = read_status(state)["last_drift_check"]
            wait_for("two more drift checks", lambda: drift_checks_after(state, mark), timeout=60,
                     explain=proc.log)
            mark = read_status(state)["last_drift_check"]
            wait_for("another drift check", lambda: drift_checks_after(state, mark), timeout=60,
                     explain=proc.log)
            assert len(job_entries(state)) == 2
            # A failed drill is no drift: nothing was corrected or found drifted.
            assert [e for e in read_history(state) if e.get("cause") == "drift"] == []
            assert proc.stop() == 0
        shown = subprocess.run([RECONCILE, "history", "--state-dir", str(state)], capture_output=True,
                               text=True, timeout=60, check=True).stdout
        assert f"drill failed: web {ADDRESS}" in shown and f"backup ok: web {ADDRESS}" in shown, shown

        # A restart: the status remembers the last result of each job.
        mark = read_status(state)["last_drift_check"]
        jobs = {(j["job"], j["result"]) for j in read_status(state)["jobs"]}
        assert jobs == {("backup", "ok"), ("drill", "failed")}
        with WatchProcess(repo.path, state, *flags, config=config) as proc:
            wait_for("a drift check after the restart", lambda: drift_checks_after(state, mark), timeout=120,
                     explain=proc.log)
            values = wait_for("the job series after the restart", lambda: (v := job_samples(port)) and v,
                              timeout=30, explain=proc.log)
            assert values[("reconciler_controller_job_last_result", labels)] == 0
            assert len(job_entries(state)) == 2
            assert proc.stop() == 0
        assert [n["event"] for n in notices(receiver) if n["event"].startswith("job-")] == ["job-failed"]
