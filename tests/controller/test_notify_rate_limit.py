"""Notices that repeat without a new commit (drift, controller trouble) are rate-limited
per event and hosts, so a flapping drift does not flood a channel: at most ``burst``
per ``period``; the next one sent says how many were held back. Commit notices are
never held (each commit is told)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from reconciler.controller.notices import NoticeKind
from reconciler.controller.notifications import Outcome
from reconciler.controller.notifications.ratelimit import RateLimiter
from tests.controller.notify_support import Outcomes, config, drift_corrected, notifications, rolled_back
from tests.controller.receivers import Receiver, notices

T0 = 1_800_000_000.0


def test_the_limiter_admits_a_burst_per_period_and_counts_what_it_held() -> None:
    limiter = RateLimiter(burst=2, period=60)
    assert [limiter.admit("web", T0 + i) for i in range(5)] == [(True, 0), (True, 0), (False, 0), (False, 0),
                                                                (False, 0)]
    assert limiter.admit("db", T0 + 5) == (True, 0)  # another key has its own budget
    assert limiter.admit("web", T0 + 60) == (True, 3)  # the window slid past the first: three were held
    assert limiter.admit("web", T0 + 60.5) == (False, 0)


def test_a_flapping_drift_does_not_flood_the_receiver(tmp_path: Path) -> None:
    outcomes = Outcomes()
    with Receiver() as receiver:
        settings = {"targets": [{"name": "ops", "kind": "webhook", "url": f"{receiver.url}/hook"}],
                    "rate_limit": {"burst": 2, "period": "10m"}}
        hub = notifications(config(tmp_path, notifications=settings), outcomes)
        for second in range(20):
            hub.publish(drift_corrected(), now=T0 + second)
        hub.publish(drift_corrected("db"), now=T0 + 20)
        for n in range(3):  # commits are each told, however many
            hub.publish(replace(rolled_back(), revision=f"{n}" * 40), now=T0 + 21)
        hub.publish(drift_corrected(), now=T0 + 601)  # the period is over
        assert hub.wait_idle(30)
        hub.close(10)
    sent = [(n["event"], n["hosts"], n.get("held", 0)) for n in notices(receiver)]
    assert sent == [("drift-corrected", ["web"], 0), ("drift-corrected", ["web"], 0),
                    ("drift-corrected", ["db"], 0)] + [("rolled-back", ["web"], 0)] * 3 + [
                   ("drift-corrected", ["web"], 18)]
    assert outcomes.count(Outcome.HELD) == 18


def test_only_notices_that_repeat_without_a_commit_are_limited() -> None:
    repeating = {k for k in NoticeKind if k.repeats}
    assert repeating == {NoticeKind.DRIFT_CORRECTED, NoticeKind.DRIFT_DETECTED,
                         NoticeKind.DRIFT_NOT_CORRECTED, NoticeKind.CONTROLLER_RESTARTED,
                         NoticeKind.CONTROLLER_STUCK, NoticeKind.CONTROLLER_ERROR}
