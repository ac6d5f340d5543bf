"""Many threads' requests to one host, sent as one ``batch`` request.

The engine observes every kind of a host in parallel threads; each provider calls
the transport as if it were alone (``run``, ``stat``...). Inside ``run_coalesced``
those calls are held back until every participating thread is either waiting for a
reply or finished, or until ``WINDOW`` seconds passed since the last call (a
provider busy with the Docker API does not hold the others back for long); then
all held calls travel as one request and each thread gets its own reply. A
provider that makes two calls in a row simply takes part in two rounds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from reconciler.errors import TransportError

if TYPE_CHECKING:
    from reconciler.transport.base import Transport

T = TypeVar("T")
WINDOW = 0.025

_local = threading.local()


class _Slot:
    __slots__ = ("done", "error", "message", "reply", "timeout")

    def __init__(self, message: dict[str, Any], timeout: float) -> None:
        self.message = message
        self.timeout = timeout
        self.reply: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.done = False


class Coalescer:
    def __init__(self, transport: Transport, participants: int) -> None:
        self.transport = transport
        self.active = participants
        self.pending: list[_Slot] = []
        self.cond = threading.Condition()
        self.last_submit = time.monotonic()

    def submit(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        slot = _Slot(message, timeout)
        with self.cond:
            self.pending.append(slot)
            self.last_submit = time.monotonic()
            self.cond.notify_all()
            while not slot.done:
                if slot in self.pending and (len(self.pending) >= self.active
                                             or time.monotonic() - self.last_submit >= WINDOW):
                    self._flush_locked()
                    continue
                self.cond.wait(WINDOW)
        if slot.error is not None:
            raise slot.error
        assert slot.reply is not None
        return slot.reply

    def leave(self) -> None:
        with self.cond:
            self.active -= 1
            if self.pending and len(self.pending) >= self.active:
                self._flush_locked()

    def _flush_locked(self) -> None:
        slots, self.pending = self.pending, []
        self.cond.release()
        try:
            self._send(slots)
        finally:
            self.cond.acquire()
            for slot in slots:
                slot.done = True
            self.cond.notify_all()

    def _send(self, slots: list[_Slot]) -> None:
        try:
            if len(slots) == 1:
                slots[0].reply = self.transport.send_request(slots[0].message, slots[0].timeout)
                return
            reply = self.transport.send_request(
                {"op": "batch", "ops": [s.message for s in slots]}, max(s.timeout for s in slots))
            if not reply.get("ok"):
                raise TransportError(f"{self.transport.host_name}: batch failed on the host: "
                                     f"{reply.get('error')}")
            for slot, sub in zip(slots, reply["result"]["results"], strict=True):
                slot.reply = sub
        except BaseException as exc:
            for slot in slots:
                slot.error = exc


def current(transport: Transport) -> Coalescer | None:
    groups: dict[int, Coalescer] | None = getattr(_local, "groups", None)
    return None if groups is None else groups.get(id(transport))


def run_coalesced(transport: Transport, calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run ``calls`` in parallel threads, their requests to ``transport`` coalesced.
    Results in order; the first exception is raised once all calls are done."""
    if not calls:
        return []
    group = Coalescer(transport, len(calls))

    def participate(call: Callable[[], T]) -> T:
        groups: dict[int, Coalescer] = getattr(_local, "groups", None) or {}
        _local.groups = {**groups, id(transport): group}
        try:
            return call()
        finally:
            _local.groups = groups
            group.leave()

    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="observe") as pool:
        futures = [pool.submit(participate, c) for c in calls]
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]
