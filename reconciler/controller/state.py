"""The controller's state directory: status, history and the repository clone.

Layout of ``STATE_DIR``::

    status.json         what `reconcile status` shows (replaced atomically)
    history.jsonl       the history's open segment, one JSON object per run (history.py)
    history/            its sealed segments and index; history.burst.json: the open burst
    controller.lock     flock: one controller per state directory
    repo/               bare clone of the spec repository (``git gc --auto`` now and then)
    worktrees/SHA/      checked-out revisions (the applied one, a deferred or running one)

Everything here is bounded: the history by size and age, the worktrees to the
revisions in use, the status by the spec's size (quarantine: the newest 50).

Crash safety: ``status.json`` is written to a temporary file, fsynced and
renamed over the old one, so a SIGKILL leaves the old or the new status, never
half of one (a temporary file a crash left behind is removed by ``prepare``).
History lines are appended with one ``write`` and fsynced; a line cut short by a
crash is dropped by the reader and trimmed on the next start.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.controller.atomic import write_atomic as write_atomic  # re-exported
from reconciler.controller.history import History, HistoryLimits
from reconciler.errors import ReconcilerError
from reconciler.sensitive import scrub_data

STATUS_FILE = "status.json"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = "controller.lock"
STATUS_FORMAT = 1
QUARANTINE_KEEP = 50


class StateError(ReconcilerError):
    """The state directory cannot be used (permissions, another controller holds it)."""


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Revision:
    """A revision and what happened to it."""

    revision: str
    at: str = ""
    summary: dict[str, int] = field(default_factory=dict)
    result: str = ""
    message: str = ""


@dataclass
class ErrorRecord:
    """The last error a user must see: with the commit and, for spec errors, file:line."""

    revision: str
    at: str
    cause: str
    message: str
    diagnostics: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class InFlight:
    """A run that started and has not finished. Still present after a restart, it
    means the controller died during that run."""

    revision: str
    cause: str
    started_at: str
    attempts: int = 1


@dataclass
class RetryState:
    revision: str
    attempt: int
    next_at: float  # epoch seconds
    error: str


@dataclass
class ControllerStatus:
    repo: str = ""
    branch: str = ""
    path: str = ""
    pid: int = 0
    version: str = ""
    updated_at: str = ""
    head: Revision | None = None
    last_applied: Revision | None = None
    last_attempted: Revision | None = None
    last_error: ErrorRecord | None = None
    in_flight: InFlight | None = None
    retry: RetryState | None = None
    fetch_failing: dict[str, Any] | None = None
    """Fetches failing in a row: attempt, since, next_at (epoch seconds), error."""
    pending: Revision | None = None
    pending_drift: list[dict[str, Any]] = field(default_factory=list)
    last_drift_check: str = ""
    quarantined: dict[str, str] = field(default_factory=dict)
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    health: list[dict[str, Any]] = field(default_factory=list)
    applied_changes: list[str] = field(default_factory=list)
    """``host: address`` of what the applied commit changed (drift of these is contested)."""
    contested: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    """The last result seen of each scheduled host job (``JobRecord.to_json``): host,
    address, job, result, finished_at (Unix seconds), detail, artefact."""
    verifying: dict[str, str] | None = None
    """The commit in its health grace: revision, since, until."""
    history: dict[str, Any] = field(default_factory=dict)
    """Totals of the history, compacted parts included (``History.summary``)."""

    def to_json(self) -> dict[str, Any]:
        """The status as stored and shown (status.json, ``reconcile status``, ``/status``),
        with secrets and URL credentials scrubbed from every string."""
        data: dict[str, Any] = scrub_data({"format": STATUS_FORMAT, **asdict(self)})
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ControllerStatus:
        def rev(key: str) -> Revision | None:
            raw = data.get(key)
            return Revision(**raw) if isinstance(raw, dict) else None

        err = data.get("last_error")
        flight = data.get("in_flight")
        retry = data.get("retry")
        return cls(
            repo=data.get("repo", ""), branch=data.get("branch", ""), path=data.get("path", ""),
            pid=int(data.get("pid", 0)), version=data.get("version", ""),
            updated_at=data.get("updated_at", ""),
            head=rev("head"), last_applied=rev("last_applied"), last_attempted=rev("last_attempted"),
            last_error=ErrorRecord(**err) if isinstance(err, dict) else None,
            in_flight=InFlight(**flight) if isinstance(flight, dict) else None,
            retry=RetryState(**retry) if isinstance(retry, dict) else None,
            fetch_failing=dict(fetch_failing) if isinstance(fetch_failing := data.get("fetch_failing"), dict)
            else None,
            pending=rev("pending"), pending_drift=list(data.get("pending_drift", [])),
            last_drift_check=data.get("last_drift_check", ""),
            quarantined=dict(data.get("quarantined", {})), resources=dict(data.get("resources", {})),
            health=list(data.get("health", [])),
            applied_changes=[str(k) for k in data.get("applied_changes", [])],
            contested=list(data.get("contested", [])),
            jobs=[j for j in data.get("jobs", []) if isinstance(j, dict)],
            verifying=dict(data["verifying"]) if isinstance(data.get("verifying"), dict) else None,
            history=dict(data.get("history", {})),
        )

    def quarantine(self, revision: str, reason: str) -> None:
        self.quarantined[revision] = reason
        while len(self.quarantined) > QUARANTINE_KEEP:
            self.quarantined.pop(next(iter(self.quarantined)))


class StateStore:
    """Reads and writes the files of one state directory."""

    def __init__(self, root: Path, history_limits: HistoryLimits | None = None) -> None:
        self.root = root
        self.history = History(root, history_limits)
        self._lock_fd: int | None = None

    @property
    def status_path(self) -> Path:
        return self.root / STATUS_FILE

    @property
    def history_path(self) -> Path:
        """The history's open segment."""
        return self.history.open_path

    @property
    def repo_dir(self) -> Path:
        return self.root / "repo"

    @property
    def worktrees_dir(self) -> Path:
        return self.root / "worktrees"

    def prepare(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.worktrees_dir.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StateError(f"cannot create the state directory {self.root}: {exc.strerror}") from exc
        for leftover in self.root.glob(".*.json.*"):
            # A temporary file of an atomic write the process died in (see write_atomic).
            leftover.unlink(missing_ok=True)

    def acquire(self) -> None:
        """Take the state directory's lock for the life of the process (StateError if held)."""
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(f"another controller is running with state directory {self.root}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- status ------------------------------------------------------------------------
    def read_status(self) -> ControllerStatus | None:
        try:
            raw = self.status_path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {self.status_path}: {exc.strerror}") from exc
        try:
            return ControllerStatus.from_json(json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise StateError(f"{self.status_path} is not a controller status file: {exc}") from exc

    def write_status(self, status: ControllerStatus) -> None:
        status.updated_at = utc_now()
        write_atomic(self.status_path, (json.dumps(status.to_json(), indent=2) + "\n").encode())

    # -- history -----------------------------------------------------------------------
    def append_history(self, entry: dict[str, Any], *, keep: Collection[str] = ()) -> None:
        """Record one run (``keep``: revisions whose entries must survive compaction), with
        secrets and URL credentials scrubbed."""
        self.history.record(scrub_data(json.loads(json.dumps(entry, default=str))), keep=keep)

    def repair_history(self) -> bool:
        """Open the history for recording; True when a line cut short by a crash was trimmed."""
        return self.history.open()

    def iter_history(self) -> Iterator[dict[str, Any]]:
        """Entries oldest first; lines that are not complete JSON objects are skipped."""
        return self.history.entries()

    def read_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` entries (all when None or 0), oldest first."""
        return self.history.tail(limit or 0)
