"""What an apply did, per change and per host: plain data that serialises to JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.plan import Change
from reconciler.rollout import CheckResult
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
class BatchOutcome:
    """One batch of a rollout: its hosts, those that failed (a change failed or was
    skipped, the host failed, or a check did not pass in time) and its checks."""

    number: int
    hosts: list[str]
    failed: list[str] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.number, "hosts": self.hosts, "failed": self.failed,
                "checks": [c.to_json() for c in self.checks]}


@dataclass
class RolloutReport:
    """How a rolling apply went, host by host: changed, failed, unchanged, and the
    hosts left untouched because the rollout stopped (``stopped`` says why)."""

    serial: str
    max_fail_percentage: int
    batches: list[BatchOutcome] = field(default_factory=list)
    total_batches: int = 0
    stopped: str = ""
    changed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"serial": self.serial, "max_fail_percentage": self.max_fail_percentage,
                "batches": [b.to_json() for b in self.batches], "total_batches": self.total_batches,
                "stopped": self.stopped or None, "changed": self.changed, "failed": self.failed,
                "unchanged": self.unchanged, "untouched": self.untouched}


@dataclass
class ApplyReport:
    hosts: list[HostReport] = field(default_factory=list)
    rollout: RolloutReport | None = None

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts) and not (self.rollout is not None and
                                                       (self.rollout.stopped or self.rollout.failed))

    @property
    def interrupted(self) -> bool:
        """The run was stopped (Ctrl-C) before every change was tried."""
        return any(o.status is Status.INTERRUPTED for h in self.hosts for o in h.outcomes)

    def to_json(self) -> dict[str, Any]:
        out = {"ok": self.ok, "interrupted": self.interrupted, "hosts": [h.to_json() for h in self.hosts]}
        if self.rollout is not None:
            out["rollout"] = self.rollout.to_json()
        return out
