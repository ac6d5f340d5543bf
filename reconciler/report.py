"""What an apply did, per change and per host: plain data that serialises to JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.plan import Change
from reconciler.sensitive import public


class Status(StrEnum):
    APPLIED = "applied"
    FAILED = "failed"
    SKIPPED = "skipped"          # a change it depends on failed
    INTERRUPTED = "interrupted"  # not started: the run was interrupted (Ctrl-C) before it


@dataclass
class ChangeOutcome:
    change: Change
    status: Status
    error: str = ""
    seconds: float = 0.0
    transient: bool = False
    """The failure came from the connection (host or engine unreachable, host lock
    busy), not from the change itself: retrying later may succeed."""

    def to_json(self) -> dict[str, Any]:
        return {**self.change.to_json(), "status": self.status.value, "error": public(self.error),
                "seconds": round(self.seconds, 3)}


@dataclass
class HostReport:
    host: str
    outcomes: list[ChangeOutcome] = field(default_factory=list)
    error: str = ""
    transient: bool = False  # see ChangeOutcome.transient

    @property
    def ok(self) -> bool:
        return not self.error and all(o.status is Status.APPLIED for o in self.outcomes)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "ok": self.ok, "error": public(self.error),
                "outcomes": [o.to_json() for o in self.outcomes]}


@dataclass
class ApplyReport:
    hosts: list[HostReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts)

    @property
    def interrupted(self) -> bool:
        """The run was stopped (Ctrl-C) before every change was tried."""
        return any(o.status is Status.INTERRUPTED for h in self.hosts for o in h.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "interrupted": self.interrupted, "hosts": [h.to_json() for h in self.hosts]}
