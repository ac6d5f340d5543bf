"""A controller whose git server accepts connections and never answers is not held:
each fetch ends at ``git_timeout`` and is retried with backoff, the loop stays healthy
(never stuck), the status, ``reconcile status`` and the failures metric say what is
wrong, and the repository's token appears nowhere."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.controller.support import (
    RECONCILE,
    HangingServer,
    WatchProcess,
    free_port,
    read_status,
    wait_for,
)

TOKEN = "ghp-hung-T0ken-abcdef0123"


def fetch_failures(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "reconciler_controller_failures_total" and sample.labels == {"stage": "fetch"}:
                return float(sample.value)
    return 0.0


def healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
        return int(resp.status)


def get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return str(resp.read().decode())


@pytest.mark.timeout(300)
def test_a_hung_git_server_is_retried_with_backoff_and_never_sticks_the_loop(tmp_path: Path) -> None:
    config = tmp_path / "controller.yaml"
    config.write_text("git_timeout: 2s\ninterval: 1s\nstuck_after: 10s\n")
    state = tmp_path / "state"
    port = free_port()
    with HangingServer() as server:
        url = f"http://x-access-token:{TOKEN}@127.0.0.1:{server.port}/ops/specs.git"
        with WatchProcess(url, state, "--listen", f"127.0.0.1:{port}", config=config) as proc:
            failing = wait_for("three fetches in a row to fail",
                               lambda: (f := read_status(state).get("fetch_failing")) and f["attempt"] >= 3
                               and f, timeout=120, explain=proc.log)
            assert healthz(port) == 200  # busy at most git_timeout at a time: never stuck
            assert fetch_failures(port) >= 3
            page = get(port, "/")
            served_status = get(port, "/status")
            text = subprocess.run([RECONCILE, "status", "--state-dir", str(state)], capture_output=True,
                                  text=True, check=True).stdout
            log = proc.log()
    assert server.accepted >= 3
    assert failing["error"] == (f"cannot clone http://(sensitive)@127.0.0.1:{server.port}/ops/specs.git "
                                "(branch main): no answer within 2 s (git_timeout); git was stopped")
    assert failing["next_at"] > 0 and failing["since"]
    assert "Fetch failing: since" in text and "no answer within 2 s" in text
    assert "<dt>Fetch failing</dt>" in page
    assert "in a row): cannot clone http://(sensitive)@127.0.0.1" in page and "no answer within 2 s" in page
    assert '"fetch_failing"' in served_status
    retry_in = [line for line in log.splitlines() if '"fetch failed"' in line]
    assert len(retry_in) >= 3 and '"attempt": 3' in log
    on_disk = (state / "status.json").read_text()
    for shown in (on_disk, log, text, page, served_status):
        assert TOKEN not in shown
