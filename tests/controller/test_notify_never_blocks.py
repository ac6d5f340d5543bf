"""A receiver that hangs never holds up the controller: publishing returns at once,
each target's queue is bounded (the oldest waiting notice is dropped first), and a
controller whose receiver hangs goes on refusing, recording and saving commits
while the first notice is still held. When the receiver answers again, what is
queued goes out in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.controller.notifications import Outcome
from tests.controller.notify_support import Outcomes, config, drift_corrected, notifications, rolled_back
from tests.controller.receivers import Receiver, notices
from tests.controller.support import LocalRepo, WatchProcess, read_history, read_status, wait_for

BROKEN_SPEC = "files:\n  - path: relative/path\n    content: x\n"


@pytest.mark.timeout(120)
def test_a_hung_receiver_fills_a_bounded_queue_and_blocks_nothing(tmp_path: Path) -> None:
    outcomes = Outcomes()
    with Receiver(hang=True) as receiver:
        settings = {"targets": [{"name": "ops", "kind": "webhook", "url": f"{receiver.url}/hook"}],
                    "queue_size": 3, "timeout": 60}
        hub = notifications(config(tmp_path, notifications=settings), outcomes)
        hub.publish(rolled_back())
        receiver.wait(1)  # held by the receiver, unanswered
        # Ten more, drift on ten hosts (not rate-limited together): none of these calls waits.
        for n in range(10):
            hub.publish(drift_corrected(f"host{n}"))
        assert len(receiver.requests) == 1
        assert outcomes.count(Outcome.DROPPED) == 7  # three fit in the queue
        receiver.release()
        assert hub.wait_idle(30)
        hub.close(10)
        sent = [n["hosts"] for n in notices(receiver)]
    # The first, then the newest three, in order.
    assert sent == [["web"], ["host7"], ["host8"], ["host9"]]
    assert outcomes.count(Outcome.SENT) == 4


@pytest.mark.timeout(300)
def test_a_controller_whose_receiver_hangs_goes_on(tmp_path: Path) -> None:
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", 'hosts:\n  web:\n    connect: "ssh://root@127.0.0.1:1"\n')
    repo.write("specs/app.yaml", BROKEN_SPEC)
    first = repo.commit("broken one")
    state = tmp_path / "state"
    with Receiver(hang=True) as receiver:
        cfg = tmp_path / "controller.yaml"
        cfg.write_text(f"notifications:\n  timeout: 60s\n  targets:\n"
                       f"    - {{name: ops, kind: webhook, url: '{receiver.url}/hook'}}\n")
        with WatchProcess(repo.path, state, "--listen", "off", "--interval", "1s", config=cfg) as proc:
            receiver.wait(1, what="the first notice (held)")
            repo.write("specs/app.yaml", BROKEN_SPEC.replace("relative", "still/relative"))
            second = repo.commit("broken two")
            # Refused, recorded and saved while the first notice is still unanswered.
            wait_for("the second commit to be refused",
                     lambda: first in read_status(state).get("quarantined", {})
                     and second in read_status(state).get("quarantined", {}), timeout=60, explain=proc.log)
            assert [e["revision"] for e in read_history(state)] == [first, second]
            assert len(receiver.requests) == 1 and receiver.hang
            receiver.release()
            receiver.wait(2, what="the second notice once the receiver answers")
            assert proc.stop() == 0
    assert [(n["event"], n["revision"]) for n in notices(receiver)] == [("commit-refused", first),
                                                                        ("commit-refused", second)]
