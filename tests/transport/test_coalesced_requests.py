"""Requests of parallel threads to one host travel as one batch (``run_coalesced``):
observing N kinds costs one request, whatever N; a thread busy elsewhere (the Docker
API) holds the others back at most a short window; a thread's second call is a second
round. Tested with the real local agent, counting requests at the transport."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.transport import LocalTransport
from reconciler.transport.coalesce import run_coalesced


class Recording(LocalTransport):
    def __init__(self) -> None:
        super().__init__("local")
        self.sent: list[dict[str, Any]] = []

    def _request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.sent.append(message)
        return super()._request(message, timeout)


@pytest.fixture
def transport() -> Iterator[Recording]:
    t = Recording()
    t.run(["true"])  # the agent is started
    t.sent.clear()
    try:
        yield t
    finally:
        t.close()


def test_parallel_calls_are_one_request(transport: Recording) -> None:
    outs = run_coalesced(transport, [lambda n=n: transport.run(["echo", str(n)]).out for n in range(8)])
    assert outs == [f"{n}\n" for n in range(8)]
    assert [m["op"] for m in transport.sent] == ["batch"]
    assert len(transport.sent[0]["ops"]) == 8


def test_a_busy_thread_holds_the_others_back_only_briefly(transport: Recording) -> None:
    def busy() -> str:
        time.sleep(1.0)  # e.g. talking to the Docker API
        return transport.run(["echo", "late"]).out

    started = time.monotonic()
    outs = run_coalesced(transport, [busy, *[lambda n=n: transport.run(["echo", str(n)]).out
                                             for n in range(3)]])
    assert outs == ["late\n", "0\n", "1\n", "2\n"]
    assert [len(m.get("ops", [m])) for m in transport.sent] == [3, 1]
    assert time.monotonic() - started < 5


def test_calls_in_a_row_are_rounds(transport: Recording) -> None:
    def two_calls(n: int) -> str:
        first = transport.run(["echo", str(n)]).out
        return first + transport.run(["echo", str(n * 10)]).out

    before = transport.commands_run
    outs = run_coalesced(transport, [lambda n=n: two_calls(n) for n in range(4)])
    assert outs == [f"{n}\n{n * 10}\n" for n in range(4)]
    assert [len(m["ops"]) for m in transport.sent] == [4, 4]
    assert transport.commands_run - before == 2  # a batch counts once


def test_an_error_in_one_call_is_raised_after_all_finished(transport: Recording) -> None:
    finished: list[int] = []

    def ok(n: int) -> None:
        transport.run(["true"])
        finished.append(n)

    def fails() -> None:
        transport.run(["false"])  # CommandFailed

    with pytest.raises(Exception, match="`false` exited 1"):
        run_coalesced(transport, [fails, *[lambda n=n: ok(n) for n in range(3)]])
    assert sorted(finished) == [0, 1, 2]
