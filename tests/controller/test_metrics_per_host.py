"""Per-host metrics of a controller managing a real test host: the result of the last
run that touched the host, its pending drift, its resources by state, the revision
applied to it (as a label), and the time from a commit to its apply (a histogram)."""

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

APP = "/srv/metrics-host/app.conf"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(port: int) -> Samples:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def host_series(values: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in values.items() if n == f"reconciler_controller_host_{name}"}


@pytest.mark.timeout(300)
def test_per_host_gauges_and_commit_latency(shared_host: TestHost, tmp_path: Path) -> None:
    host = shared_host
    host.exec(["rm", "-f", APP])
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))
    repo.write("specs/app.yaml", files_yaml({APP: "v1\n"}))
    sha = repo.commit("app")
    state = tmp_path / "state"
    port = free_port()
    with WatchProcess(repo.path, state, "--listen", f"127.0.0.1:{port}", "--drift-interval", "2s",
                      "--drift-correction", "never") as proc:
        wait_for("the commit to be applied",
                 lambda: (read_status(state).get("last_applied") or {}).get("revision") == sha, timeout=120,
                 explain=proc.log)
        values = wait_for("the per-host series",
                          lambda: (v := samples(port)) and host_series(v, "last_result") and v, timeout=30,
                          explain=proc.log)
        assert host_series(values, "last_result") == {(("host", "web"), ("result", "applied")): 1}
        assert host_series(values, "applied_info") == {(("host", "web"), ("revision", sha)): 1}
        assert host_series(values, "pending_drift") == {(("host", "web"),): 0}
        resources = host_series(values, "resources")
        assert resources[(("host", "web"), ("state", "ok"))] == 1
        assert resources[(("host", "web"), ("state", "differs"))] == 0
        latency = "reconciler_controller_commit_to_applied_seconds"
        assert values[(f"{latency}_count", ())] == 1 and values[(f"{latency}_sum", ())] > 0

        # Drift left alone (drift_correction never): pending on the host, its last result moves.
        host.exec(["sh", "-c", f"echo by hand > {APP}"])
        values = wait_for("the drift in the per-host series",
                          lambda: (v := samples(port)) and host_series(v, "pending_drift").get(
                              (("host", "web"),)) == 1 and v, timeout=60, explain=proc.log)
        assert host_series(values, "last_result") == {(("host", "web"), ("result", "detected")): 1}
        assert host_series(values, "resources")[(("host", "web"), ("state", "differs"))] == 1
        assert proc.stop() == 0
