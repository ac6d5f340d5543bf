"""The controller's state directory: status, history and the repository clone.

Layout of ``STATE_DIR``::

    status.json      what `reconcile status` shows (replaced atomically)
    history.jsonl    one JSON object per run, appended and fsynced
    controller.lock  flock: one controller per state directory
    repo/            bare clone of the spec repository
    worktrees/SHA/   checked-out revisions (the applied one, the last good one)

Crash safety: ``status.json`` is written to a temporary file, fsynced and
renamed over the old one, so a SIGKILL leaves the old or the new status, never
half of one. History lines are appended with one ``write`` and fsynced; a line
cut short by a crash is dropped by the reader and trimmed on the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: temp file in the same directory, fsync, rename, fsync dir."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
    pending: Revision | None = None
    pending_drift: list[dict[str, Any]] = field(default_factory=list)
    last_drift_check: str = ""
    quarantined: dict[str, str] = field(default_factory=dict)
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    health: list[dict[str, Any]] = field(default_factory=list)

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
            pending=rev("pending"), pending_drift=list(data.get("pending_drift", [])),
            last_drift_check=data.get("last_drift_check", ""),
            quarantined=dict(data.get("quarantined", {})), resources=dict(data.get("resources", {})),
            health=list(data.get("health", [])),
        )

    def quarantine(self, revision: str, reason: str) -> None:
        self.quarantined[revision] = reason
        while len(self.quarantined) > QUARANTINE_KEEP:
            self.quarantined.pop(next(iter(self.quarantined)))


class StateStore:
    """Reads and writes the files of one state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock_fd: int | None = None

    @property
    def status_path(self) -> Path:
        return self.root / STATUS_FILE

    @property
    def history_path(self) -> Path:
        return self.root / HISTORY_FILE

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

    def acquire(self) -> None:
        """Take the state directory's lock for the life of the process (StateError if held)."""
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
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
    def append_history(self, entry: dict[str, Any]) -> None:
        """Append one entry (secrets and URL credentials scrubbed), fsynced."""
        line = (json.dumps(scrub_data(json.loads(json.dumps(entry, default=str))),
                           separators=(",", ":")) + "\n").encode()
        fd = os.open(self.history_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def repair_history(self) -> bool:
        """Trim a last line cut short by a crash. Returns True when something was trimmed."""
        try:
            with self.history_path.open("rb+") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                if size == 0:
                    return False
                fh.seek(max(0, size - 1))
                if fh.read(1) == b"\n":
                    return False
                fh.seek(0)
                data = fh.read()
                keep = data.rfind(b"\n") + 1
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())
                return True
        except FileNotFoundError:
            return False

    def iter_history(self) -> Iterator[dict[str, Any]]:
        """Entries oldest first; lines that are not complete JSON objects are skipped."""
        try:
            fh = self.history_path.open("rb")
        except FileNotFoundError:
            return
        with fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # cut short by a crash
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    yield entry

    def read_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        entries = list(self.iter_history())
        return entries[-limit:] if limit else entries
