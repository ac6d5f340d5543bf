"""The last backup, offsite copy and restore drill of a backup, as data.

The host's script records each attempt in ``/var/lib/reconciler/backups/NAME.WHAT``;
the provider's observation carries them as ``last_backup``, ``last_offsite``
(target -> attempt) and ``last_drill``. This module turns one observed state into
``BackupStatus`` for anything that shows it: ``reconcile backup status``, and the
controller's history, metrics and notifications (``job_results(address, state)``,
what ``BackupsProvider.job_results`` reports, on the state its engine already
observed; ``read_status(transport, names)`` to ask a host directly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.provider import JobOutcome, JobResult, State
from reconciler.transport.base import Transport

from .provider import OBSERVE_SH, parse_observation


@dataclass(frozen=True)
class Attempt:
    """One recorded attempt: ``ok`` or ``failed`` at ``time`` (epoch seconds)."""

    result: str
    time: int | None
    file: str
    message: str

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    @property
    def when(self) -> str:
        if self.time is None:
            return "an unknown time"
        return datetime.fromtimestamp(self.time, UTC).strftime("%Y-%m-%d %H:%M:%SZ")

    def describe(self) -> str:
        """``ok at 2024-05-01 02:00:03Z (servqr-backup-...sql.gz)``, or with the failure."""
        text = f"{self.result} at {self.when}"
        if self.file:
            text += f" ({self.file})"
        if not self.ok and self.message:
            text += f": {self.message}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"result": self.result, "time": self.time, "file": self.file, "message": self.message}


@dataclass(frozen=True)
class BackupStatus:
    last_backup: Attempt | None = None
    last_drill: Attempt | None = None
    last_offsite: dict[str, Attempt] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        """No recorded failure in the last backup, drill or any offsite copy."""
        attempts = [self.last_backup, self.last_drill, *self.last_offsite.values()]
        return all(a is None or a.ok for a in attempts)

    def to_json(self) -> dict[str, Any]:
        return {"last_backup": self.last_backup and self.last_backup.to_json(),
                "last_drill": self.last_drill and self.last_drill.to_json(),
                "last_offsite": {k: v.to_json() for k, v in self.last_offsite.items()},
                "healthy": self.healthy}


def _attempt(data: Any) -> Attempt | None:
    if not isinstance(data, Mapping) or "result" not in data:
        return None
    when = data.get("time")
    return Attempt(str(data["result"]), when if isinstance(when, int) else None, str(data.get("file", "")),
                   str(data.get("message", "")))


def status_of(state: State | None) -> BackupStatus:
    """The status in one observed ``backups`` state (None: not installed, nothing recorded)."""
    if state is None:
        return BackupStatus()
    offsite = state.get("last_offsite") or {}
    return BackupStatus(_attempt(state.get("last_backup")), _attempt(state.get("last_drill")),
                        {k: a for k, v in sorted(offsite.items()) if (a := _attempt(v)) is not None})


DETAIL_MAX = 300
"""Characters of an attempt's message a job result carries (the status file keeps more)."""


def job_results(address: str, state: State | None) -> list[JobResult]:
    """The recorded attempts of one observed backup as the provider contract's job
    results: ``backup``, ``offsite:TARGET`` per target, ``drill``. An attempt without
    a readable time cannot be told from the one before it, so it is left out."""
    status = status_of(state)
    jobs = [("backup", status.last_backup),
            *((f"offsite:{name}", a) for name, a in status.last_offsite.items()),
            ("drill", status.last_drill)]
    out: list[JobResult] = []
    for job, attempt in jobs:
        if attempt is None or attempt.time is None:
            continue
        detail = "" if attempt.ok else " ".join(attempt.message.split())[:DETAIL_MAX]
        out.append(JobResult(address, job, JobOutcome.OK if attempt.ok else JobOutcome.FAILED,
                             float(attempt.time), detail, attempt.file))
    return out


def read_status(transport: Transport, names: Sequence[str]) -> dict[str, BackupStatus]:
    """Ask a host for the status of its backups ``names`` (one remote command)."""
    if not names:
        return {}
    states = parse_observation(transport.run_script(OBSERVE_SH, list(names)).out, names)
    return {name: status_of(states.get(name)) for name in names}
