"""The loopback endpoint serves Prometheus text on /metrics (runs, run duration, drift
events, failures, the last applied revision) and /healthz, for a controller on this
machine managing a test host over SSH."""

from __future__ import annotations

import urllib.request
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

APP = "/srv/metrics/app.conf"


def get(port: int, path: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.mark.timeout(300)
def test_metrics_and_healthz(shared_host: TestHost, tmp_path: Path) -> None:
    host = shared_host
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))
    repo.write("specs/app.yaml", files_yaml({APP: "metrics\n"}))
    sha = repo.commit("app")
    port = free_port()
    state = tmp_path / "state"
    with WatchProcess(repo.path, state, "--listen", f"127.0.0.1:{port}", "--drift-interval", "2s") as proc:
        wait_for("the commit to be applied",
                 lambda: (read_status(state).get("last_applied") or {}).get("revision") == sha, timeout=120,
                 explain=proc.log)
        host.exec(["sh", "-c", f"echo changed > {APP}"])
        wait_for("the drift to be corrected",
                 lambda: host.exec(["cat", APP]).stdout == "metrics\n", timeout=60, explain=proc.log)

        code, content_type, body = get(port, "/healthz")
        assert code == 200 and body.startswith("ok")
        code, content_type, text = get(port, "/metrics")
        assert code == 200 and content_type.startswith("text/plain; version=")
        corrected = ("reconciler_controller_drift_events_total", (("outcome", "corrected"),))
        values = wait_for("the drift event in /metrics",
                          lambda: (v := samples(get(port, "/metrics")[2])).get(corrected) and v, timeout=30)
        runs = "reconciler_controller_runs_total"
        assert values[(runs, (("cause", "commit"), ("result", "applied")))] == 1
        assert values[(runs, (("cause", "drift"), ("result", "corrected")))] >= 1
        assert values[corrected] >= 1
        assert values[("reconciler_controller_run_duration_seconds_count", (("cause", "commit"),))] == 1
        assert values[("reconciler_controller_last_applied_info",
                       (("branch", "main"), ("revision", sha)))] == 1
        assert values[("reconciler_controller_last_applied_timestamp_seconds", ())] > 0
        assert "# TYPE reconciler_controller_failures_total counter" in text
        assert proc.stop() == 0
