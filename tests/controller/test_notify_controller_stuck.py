"""A controller whose run hangs (here: a git server that accepts the fetch and never
answers, and git has no deadline of its own) is reported stuck: /healthz answers
503 and a ``controller-stuck`` notice reaches the receiver, sent by a monitor
thread since the loop thread is the one that hangs. When the fetch ends, the
controller goes on and stops cleanly."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.controller.receivers import Receiver, wait_notice
from tests.controller.support import WatchProcess, free_port, wait_for


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.mark.timeout(300)
def test_a_hung_run_is_reported_stuck(tmp_path: Path) -> None:
    with Receiver(hang=True) as git_server, Receiver() as receiver:
        config = tmp_path / "controller.yaml"
        config.write_text(f"stuck_after: 2s\nnotifications:\n  targets:\n"
                          f"    - {{name: ops, kind: webhook, url: '{receiver.url}/hook'}}\n")
        port = free_port()
        state = tmp_path / "state"
        with WatchProcess(f"{git_server.url}/ops/servqr.git", state, "--listen", f"127.0.0.1:{port}",
                          config=config) as proc:
            git_server.wait(1, what="the controller's fetch (held)")
            notice = wait_notice(receiver, "controller-stuck", timeout=60)
            assert notice["severity"] == "error"
            assert notice["summary"].startswith("the controller is stuck: a run has been busy for ")
            wait_for("/healthz to answer 503", lambda: healthz(port) == 503, timeout=30, explain=proc.log)
            git_server.release()  # the fetch fails; the loop turns again
            wait_for("/healthz to answer 200 again", lambda: healthz(port) == 200, timeout=60,
                     explain=proc.log)
            assert proc.stop() == 0
        assert [r.json()["event"] for r in receiver.requests] == ["controller-stuck"]
