"""A bounded queue and one delivery thread per target, so that nothing a receiver
does (refuse, fail, hang) can hold up the controller's loop.

``Outbox.put`` never blocks: when the queue is full the oldest waiting delivery is
dropped (and counted). The worker sends in order (a commit's ``pending`` status
never overtakes its ``success``), retries what may succeed later (a refused or
timed-out connection, 408, 429, 5xx) with exponential backoff and jitter up to
``retries`` times, and gives up at once on what will not (another 4xx, a bad
URL). Every attempt has a deadline (``timeout``), enforced by the target.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog

from reconciler.errors import ReconcilerError
from reconciler.sensitive import REDACTOR

log = structlog.get_logger("reconciler.controller.notifications")


class DeliveryError(ReconcilerError):
    """One attempt failed. ``retry``: a later attempt may succeed."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class Outcome(StrEnum):
    """How a delivery ended (the ``result`` label of the notifications metric)."""

    SENT = "sent"
    FAILED = "failed"     # retries used up, or a terminal refusal
    DROPPED = "dropped"   # the queue was full, or it was still waiting when the controller stopped
    HELD = "held"         # rate-limited (counted by the caller; never queued)


@dataclass(frozen=True)
class Delivery:
    """One message for one target: ``send(deadline_seconds)`` makes one attempt and
    raises ``DeliveryError`` when it fails. ``what`` names it in logs (no URL, no secret)."""

    what: str
    send: Callable[[float], None]


class Outbox:
    """The queue and worker of one target (``start`` before use, ``close`` at the end)."""

    def __init__(self, target: str, *, size: int, retries: int, timeout: float, backoff_base: float,
                 backoff_max: float, on_outcome: Callable[[str, Outcome], None] = lambda _t, _o: None,
                 rng: random.Random | None = None) -> None:
        self.target = target
        self.size = size
        self.retries = retries
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.on_outcome = on_outcome
        self._rng = rng or random.Random()
        self._queue: deque[Delivery] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._give_up_at = float("inf")
        self._busy = False
        self._thread = threading.Thread(target=self._work, name=f"notify-{target}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, delivery: Delivery) -> None:
        """Queue ``delivery`` (never blocks; drops the oldest waiting one when full)."""
        dropped: Delivery | None = None
        with self._cond:
            if self._closing:
                dropped = delivery
            else:
                if len(self._queue) >= self.size:
                    dropped = self._queue.popleft()
                self._queue.append(delivery)
                self._cond.notify_all()
        if dropped is not None:
            log.warning("notification dropped: the queue is full or closing", target=self.target,
                        what=dropped.what, queue=self.size)
            self.on_outcome(self.target, Outcome.DROPPED)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + (1 if self._busy else 0)

    def close(self, timeout: float) -> int:
        """Stop taking deliveries, give those queued up to ``timeout`` seconds, then
        abandon the rest (the worker is a daemon thread). Returns how many were left."""
        with self._cond:
            self._closing = True
            self._give_up_at = time.monotonic() + timeout
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            busy = self._busy
        for delivery in left:
            log.warning("notification not sent: the controller stopped", target=self.target,
                        what=delivery.what)
            self.on_outcome(self.target, Outcome.DROPPED)
        return len(left) + (1 if busy else 0)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or being sent (tests, ``watch --once``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ------------------------------------------------------------------ the worker
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                delivery = self._queue.popleft()
                self._busy = True
            try:
                self.on_outcome(self.target, self._deliver(delivery))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, delivery: Delivery) -> Outcome:
        attempt = 0
        while True:
            attempt += 1
            deadline = min(self.timeout, max(0.1, self._give_up_at - time.monotonic()))
            try:
                delivery.send(deadline)
            except DeliveryError as exc:
                error = REDACTOR.scrub(str(exc))
                if not exc.retry or attempt > self.retries:
                    log.error("notification failed", target=self.target, what=delivery.what, attempts=attempt,
                              error=error)
                    return Outcome.FAILED
                delay = self._backoff(attempt)
                log.warning("notification attempt failed; retrying", target=self.target, what=delivery.what,
                            attempt=attempt, retry_in=round(delay, 1), error=error)
                if not self._pause(delay):
                    log.warning("notification not sent: the controller stopped", target=self.target,
                                what=delivery.what)
                    return Outcome.DROPPED
            except Exception as exc:  # a bug in a target must not end the worker
                log.exception("notification failed", target=self.target, what=delivery.what,
                              error=REDACTOR.scrub(f"{type(exc).__name__}: {exc}"))
                return Outcome.FAILED
            else:
                log.debug("notification sent", target=self.target, what=delivery.what, attempts=attempt)
                return Outcome.SENT

    def _backoff(self, attempt: int) -> float:
        step: float = min(self.backoff_max, self.backoff_base * 2.0 ** (attempt - 1))
        return step / 2 + self._rng.random() * step / 2

    def _pause(self, seconds: float) -> bool:
        """Sleep before a retry; False when the controller stops and the grace is over first."""
        end = time.monotonic() + seconds
        with self._cond:
            while True:
                now = time.monotonic()
                if now >= self._give_up_at:
                    return False
                if now >= end:
                    return True
                self._cond.wait(min(end, self._give_up_at) - now)
