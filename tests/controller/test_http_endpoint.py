"""The controller's HTTP endpoint, served for real on 127.0.0.1: the webhook's HMAC
check (GitHub's X-Hub-Signature-256), healthz, metrics and status."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from reconciler.controller.httpserver import ControlServer, sign, verify_signature
from reconciler.controller.metrics import Metrics

SECRET = b"It's a Secret to Everybody"


def test_signature_matches_githubs_documented_example() -> None:
    # The example from GitHub's "Validating webhook deliveries" documentation.
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(SECRET, b"Hello, World!") == expected
    assert verify_signature(SECRET, b"Hello, World!", expected)
    assert not verify_signature(SECRET, b"Hello, World?", expected)
    assert not verify_signature(SECRET, b"Hello, World!", expected.replace("sha256=", "sha1="))
    assert not verify_signature(SECRET, b"Hello, World!", None)


class Endpoint:
    def __init__(self, secret: bytes | None) -> None:
        self.pushes: list[str] = []
        self.healthy = (True, "ok")
        self.server = ControlServer("127.0.0.1", 0, metrics=Metrics(), secret=secret,
                                    on_push=self.pushes.append, healthy=lambda: self.healthy,
                                    status=lambda: {"last_applied": {"revision": "abc"}})
        self.server.start()

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(*self.server.address, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint(SECRET)
    yield ep
    ep.server.stop()


def test_webhook_accepts_only_a_valid_signature(endpoint: Endpoint) -> None:
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    good = {"X-Hub-Signature-256": sign(SECRET, body), "X-GitHub-Event": "push"}
    assert endpoint.request("POST", "/hooks/git", body)[0] == 401
    wrong = {"X-Hub-Signature-256": sign(b"guess", body)}
    assert endpoint.request("POST", "/hooks/git", body, wrong)[0] == 401
    assert endpoint.request("POST", "/hooks/git", body + b" ", good)[0] == 401
    assert endpoint.pushes == []
    assert endpoint.request("POST", "/hooks/git", body, good) == (202, b"fetch scheduled\n")
    assert endpoint.pushes == ["push"]
    ping = {"X-Hub-Signature-256": sign(SECRET, b"{}"), "X-GitHub-Event": "ping"}
    assert endpoint.request("POST", "/hooks/git", b"{}", ping) == (200, b"pong\n")
    assert endpoint.pushes == ["push"]
    # Refused on the header alone, before reading (or authenticating) a huge body.
    assert endpoint.request("POST", "/hooks/git", b"{}", {"Content-Length": str(2 << 20)})[0] == 413


def test_webhook_is_off_without_a_secret() -> None:
    ep = Endpoint(None)
    try:
        body = b"{}"
        status, text = ep.request("POST", "/hooks/git", body, {"X-Hub-Signature-256": sign(b"", body)})
        assert status == 404 and b"no secret" in text
        assert ep.pushes == []
    finally:
        ep.server.stop()


def test_healthz_metrics_status(endpoint: Endpoint) -> None:
    assert endpoint.request("GET", "/healthz") == (200, b"ok\n")
    endpoint.healthy = (False, "the loop has not turned for 300 s")
    assert endpoint.request("GET", "/healthz") == (503, b"the loop has not turned for 300 s\n")
    status, text = endpoint.request("GET", "/metrics")
    assert status == 200 and b"# TYPE reconciler_controller_runs_total counter" in text
    status, text = endpoint.request("GET", "/status")
    assert status == 200 and json.loads(text) == {"last_applied": {"revision": "abc"}}
    assert endpoint.request("GET", "/nope")[0] == 404
