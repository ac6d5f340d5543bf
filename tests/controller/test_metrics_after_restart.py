"""A restarted controller whose head is already applied still counts its start-up
run: ``last_run_timestamp_seconds`` moves and ``runs_total`` counts the start-up
drift check (``in-sync``), while ``last_applied_timestamp_seconds`` keeps the time
of the apply itself, not of the restart (issue 17)."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from testbed.hosts import TestHost
from tests.controller.support import (
    LocalRepo,
    WatchProcess,
    files_yaml,
    free_port,
    read_status,
    ssh_hosts_yaml,
    wait_for,
)

APP = "/srv/metrics-restart/app.conf"


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:  # not listening yet
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.timeout(300)
def test_the_start_up_run_of_a_restart_is_counted(shared_host: TestHost, tmp_path: Path) -> None:
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(shared_host))
    repo.write("specs/app.yaml", files_yaml({APP: "v1\n"}))
    sha = repo.commit("app")
    state = tmp_path / "state"
    with WatchProcess(repo.path, state, "--listen", "off") as proc:
        wait_for("the commit to be applied",
                 lambda: (read_status(state).get("last_applied") or {}).get("revision") == sha, timeout=120,
                 explain=proc.log)
        assert proc.stop() == 0
    applied_at = datetime.strptime(read_status(state)["last_applied"]["at"], "%Y-%m-%dT%H:%M:%SZ")
    applied_epoch = applied_at.replace(tzinfo=UTC).timestamp()

    port = free_port()
    # Long intervals: anything counted comes from the start-up pass itself.
    with WatchProcess(repo.path, state, "--listen", f"127.0.0.1:{port}", "--interval", "1h",
                      "--drift-interval", "1h") as proc:
        runs = "reconciler_controller_runs_total"
        in_sync = (runs, (("cause", "drift"), ("result", "in-sync")))
        values = wait_for("the start-up run in /metrics",
                          lambda: (v := samples(port)).get(in_sync) and v, timeout=60, explain=proc.log)
        assert values[in_sync] == 1
        assert values[("reconciler_controller_last_run_timestamp_seconds", ())] > applied_epoch
        assert values[("reconciler_controller_last_applied_timestamp_seconds", ())] == applied_epoch
        info = ("reconciler_controller_last_applied_info", (("branch", "main"), ("revision", sha)))
        assert values[info] == 1
        assert (runs, (("cause", "commit"), ("result", "applied"))) not in values  # nothing applied again
        assert proc.stop() == 0
