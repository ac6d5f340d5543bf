"""A client that starts a request and never finishes it is cut off when the request
deadline passes. Before the fix the server waited on it forever: one stuck thread
(and socket) per such client."""

from __future__ import annotations

import time

import pytest

from tests.controller.http_support import get, raw_connection, serving


@pytest.mark.timeout(60)
def test_a_stalled_request_is_closed_after_the_deadline() -> None:
    with serving(request_deadline=1.0) as server:
        sock = raw_connection(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line: never ends
        started = time.monotonic()
        data = sock.recv(4096)  # blocks until the server closes (or 30 s socket timeout)
        waited = time.monotonic() - started
        sock.close()
        assert data == b"", data
        assert waited < 25, f"closed only after {waited:.1f} s"  # the socket's own timeout is 30 s
        assert get(server) == 200


@pytest.mark.timeout(60)
def test_a_stalled_body_is_closed_after_the_deadline() -> None:
    with serving(request_deadline=1.0) as server:
        request = b"POST /hooks/git HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"
        sock = raw_connection(server, request)
        data = sock.recv(4096)
        sock.close()
        assert data == b""
