"""A notice reaches a generic JSON webhook (a real HTTP receiver on 127.0.0.1), signed
with HMAC-SHA256 under the target's secret; a receiver answering 5xx is retried
with the same delivery (id and body), a refusal (4xx) is not, and retries end."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from reconciler.controller.notifications import Outcome
from reconciler.controller.notifications.webhook import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign
from tests.controller.notify_support import (
    INFO,
    A,
    B,
    Outcomes,
    config,
    drift_corrected,
    notifications,
    rolled_back,
)
from tests.controller.receivers import Receiver

SECRET = "hook-secret-0123456789"
TOKEN = "glpat-repo-token-abcdef"


def webhook_config(tmp_path: Path, receiver: Receiver, **extra: object) -> dict[str, object]:
    (tmp_path / "secret").write_text(SECRET + "\n")
    return {"targets": [{"name": "ops", "kind": "webhook", "url": f"{receiver.url}/hook",
                         "secret_file": str(tmp_path / "secret")}],
            "link": "https://git.example.com/ops/servqr/commit/{revision}", "backoff_base": 0.05,
            "backoff_max": 0.2, **extra}


def test_a_notice_reaches_the_webhook_signed(tmp_path: Path) -> None:
    with Receiver() as receiver:
        cfg = config(tmp_path, repo=f"https://deploy:{TOKEN}@git.example.com/ops/servqr.git",
                     notifications=webhook_config(tmp_path, receiver))
        hub = notifications(cfg)
        hub.publish(rolled_back())
        [request] = receiver.wait(1)
        hub.close(10)
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers[EVENT_HEADER.lower()] == "rolled-back"
    # The signature is HMAC-SHA256 of the raw body under the secret, as GitHub signs.
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER.lower()] == expected == sign(SECRET.encode(), request.body)
    payload = request.json()
    assert payload["id"] == request.headers[DELIVERY_HEADER.lower()]
    keys = ("version", "event", "severity", "revision", "hosts", "rollback_to", "stage", "trigger")
    assert {k: payload[k] for k in keys} == {
        "version": 1, "event": "rolled-back", "severity": "error", "revision": B, "hosts": ["web"],
        "rollback_to": A, "stage": "health", "trigger": "webhook"}
    assert payload["summary"] == f"commit {B[:12]} rolled back to {A[:12]}: health failed"
    assert payload["commit"] == {"summary": INFO.summary, "author": INFO.author, "date": INFO.date}
    assert payload["resources"] == ["web: files:/srv/app.conf"]
    assert payload["detail"] == "web: http: curl exited 7"
    assert payload["link"] == f"https://git.example.com/ops/servqr/commit/{B}"
    assert payload["controller"]["repo"] == "https://git.example.com/ops/servqr.git"
    assert payload["controller"]["branch"] == "main"
    # Never a secret: neither the signing key nor the repository's credentials.
    assert SECRET not in request.body.decode() and TOKEN not in request.body.decode()


def test_a_failing_receiver_is_retried_with_the_same_delivery(tmp_path: Path) -> None:
    outcomes = Outcomes()
    with Receiver(answers=[500, 503, 429]) as receiver:
        hub = notifications(config(tmp_path, notifications=webhook_config(tmp_path, receiver)), outcomes)
        hub.publish(rolled_back())
        requests = receiver.wait(4)
        assert hub.wait_idle(10)
        hub.close(10)
    assert len({r.body for r in requests}) == 1
    assert len({r.headers[DELIVERY_HEADER.lower()] for r in requests}) == 1
    assert outcomes.seen == [("ops", Outcome.SENT)]


def test_a_refusal_is_not_retried(tmp_path: Path) -> None:
    outcomes = Outcomes()
    with Receiver(answers=[404]) as receiver:
        hub = notifications(config(tmp_path, notifications=webhook_config(tmp_path, receiver)), outcomes)
        hub.publish(rolled_back())
        receiver.wait(1)
        assert hub.wait_idle(10)
        hub.close(10)
        assert len(receiver.requests) == 1
    assert outcomes.seen == [("ops", Outcome.FAILED)]


def test_retries_end_after_the_configured_count(tmp_path: Path) -> None:
    outcomes = Outcomes()
    with Receiver(answers=[500] * 10) as receiver:
        hub = notifications(config(tmp_path, notifications=webhook_config(tmp_path, receiver, retries=2)),
                            outcomes)
        hub.publish(rolled_back())
        receiver.wait(3)
        assert hub.wait_idle(10)
        hub.close(10)
        assert len(receiver.requests) == 3  # the first attempt and two retries
    assert outcomes.seen == [("ops", Outcome.FAILED)]


def test_a_target_gets_only_the_events_it_asks_for(tmp_path: Path) -> None:
    with Receiver() as receiver:
        settings = webhook_config(tmp_path, receiver)
        settings["targets"][0]["events"] = ["drift-corrected"]  # type: ignore[index]
        hub = notifications(config(tmp_path, notifications=settings))
        hub.publish(rolled_back())
        hub.publish(drift_corrected())
        assert hub.wait_idle(10)
        hub.close(10)
        assert [json.loads(r.body)["event"] for r in receiver.requests] == ["drift-corrected"]
