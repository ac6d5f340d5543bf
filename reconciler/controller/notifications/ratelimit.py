"""Rate limit of notices that repeat without a new commit (pure; the clock is passed in)."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

MAX_KEYS = 1000
"""Keys remembered; idle ones are forgotten first."""


class RateLimiter:
    """At most ``burst`` admissions per ``period`` seconds for each key (a sliding window).

    ``admit(key, now)`` returns (admitted, held): ``held`` is how many were refused for
    that key since its last admission, so the next message can say so."""

    def __init__(self, burst: int, period: float) -> None:
        self.burst = burst
        self.period = period
        self._sent: dict[Hashable, deque[float]] = {}
        self._held: dict[Hashable, int] = {}

    def admit(self, key: Hashable, now: float) -> tuple[bool, int]:
        sent = self._sent.setdefault(key, deque())
        while sent and sent[0] <= now - self.period:
            sent.popleft()
        if len(sent) >= self.burst:
            self._held[key] = self._held.get(key, 0) + 1
            return False, 0
        sent.append(now)
        held = self._held.pop(key, 0)
        if len(self._sent) > MAX_KEYS:
            self._forget(now)
        return True, held

    def _forget(self, now: float) -> None:
        idle = [k for k, sent in self._sent.items() if not sent or sent[-1] <= now - self.period]
        for key in idle:
            if key not in self._held:
                del self._sent[key]
        while len(self._sent) > MAX_KEYS:
            oldest = min(self._sent, key=lambda k: self._sent[k][-1] if self._sent[k] else 0.0)
            self._sent.pop(oldest)
            self._held.pop(oldest, None)
