"""A client that goes away mid-request (connection reset) is one log line, not a
traceback on stderr. Before the fix socketserver printed the whole traceback of the
ConnectionResetError for every such client."""

from __future__ import annotations

import json
import time

import pytest

from reconciler.logs import configure
from tests.controller.http_support import get, raw_connection, reset, serving


@pytest.mark.timeout(60)
def test_a_reset_connection_is_logged_once_without_a_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    configure(fmt="json")
    with serving() as server:
        for _ in range(3):
            reset(raw_connection(server, b"GET /metr"))  # half a request line, then RST
        time.sleep(1.0)
        assert get(server) == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    gone = [json.loads(line) for line in err.splitlines()
            if line.startswith("{") and "http client went away" in line]
    assert len(gone) == 3, err
    assert gone[0]["client"] == "127.0.0.1" and "ConnectionResetError" in gone[0]["error"]
