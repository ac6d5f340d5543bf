"""Typed requests to a host: what the agent (or the shell fallback) is asked, and what
comes back. Each op builds its wire message and parses the result; a ``batch`` sends
several in one request (see ``Transport.batch``)."""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from reconciler.errors import CommandFailed, TransportError
from reconciler.sensitive import REDACTOR

T = TypeVar("T")

DEFAULT_TIMEOUT = 300.0
# run(timeout=None) means "as long as it takes", but every request has a deadline.
NO_TIMEOUT = 24 * 3600.0


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self) -> CommandResult:
        if self.exit_code != 0:
            raise CommandFailed(self.argv, self.exit_code, REDACTOR.scrub(self.err), REDACTOR.scrub(self.out))
        return self


@dataclass(frozen=True)
class PathStat:
    """``lstat`` of a path (a symlink is described, never followed). ``error`` is set,
    and ``type`` is ``"error"``, when the path could not be examined safely (for
    example a parent is a symlink a non-root user could have planted)."""

    type: str
    owner: str = ""
    group: str = ""
    mode: str = ""
    size: int = 0
    uid: int = -1
    gid: int = -1
    sha256: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class PathError:
    """A path that could not be read safely; ``message`` says why."""

    message: str


@dataclass(frozen=True)
class FileWrite:
    """One file to write atomically. Missing parents are made root-owned with
    ``dir_mode``. ``after``: index of an earlier file of the same request that must
    have been written, else this one is skipped."""

    path: str
    data: bytes
    mode: str = "0644"
    owner: str = "root"
    group: str = "root"
    dir_mode: str = "0755"
    after: int | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "data": _b64(self.data), "mode": self.mode,
                               "owner": self.owner, "group": self.group, "dir_mode": self.dir_mode}
        if self.after is not None:
            out["after"] = self.after
        return out


@dataclass(frozen=True)
class DirEnsure:
    path: str
    owner: str = "root"
    group: str = "root"
    mode: str = "0755"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Op(ABC, Generic[T]):
    """One request. ``timeout`` is the host-side deadline (the controller waits that
    plus a grace)."""

    name: str = ""
    timeout: float = DEFAULT_TIMEOUT

    @abstractmethod
    def message(self) -> dict[str, Any]: ...

    @abstractmethod
    def parse(self, result: dict[str, Any], host: str) -> T: ...

    def describe(self) -> str:
        return self.name


class Exec(Op[CommandResult]):
    name = "exec"

    def __init__(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = 300,
                 check: bool = True) -> None:
        self.argv = tuple(str(a) for a in argv)
        self.stdin = stdin
        self.timeout = NO_TIMEOUT if timeout is None else float(timeout)
        self.check = check

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "exec", "argv": list(self.argv), "timeout": self.timeout}
        if self.stdin:
            msg["stdin"] = _b64(self.stdin)
        return msg

    def parse(self, result: dict[str, Any], host: str) -> CommandResult:
        if result.get("timed_out"):
            raise TransportError(f"{host}: `{self.argv[0]}` timed out after {self.timeout:g} s "
                                 "(its process group was killed)")
        out = CommandResult(self.argv, int(result["exit_code"]), base64.b64decode(result.get("stdout") or ""),
                            base64.b64decode(result.get("stderr") or ""))
        return out.check() if self.check else out

    def describe(self) -> str:
        return self.argv[0] if self.argv else "exec"


class Stat(Op[dict[str, PathStat | None]]):
    name = "stat"

    def __init__(self, paths: Sequence[str], *, sha256: bool = False) -> None:
        self.paths = list(dict.fromkeys(paths))
        self.sha256 = sha256
        self.timeout = DEFAULT_TIMEOUT + len(self.paths) / 100

    def message(self) -> dict[str, Any]:
        return {"op": "stat", "paths": self.paths, "sha256": self.sha256}

    def parse(self, result: dict[str, Any], host: str) -> dict[str, PathStat | None]:
        out: dict[str, PathStat | None] = {}
        for path, entry in result["paths"].items():
            if entry is None:
                out[path] = None
            elif "error" in entry:
                out[path] = PathStat("error", error=str(entry["error"]))
            else:
                out[path] = PathStat(entry["type"], entry["owner"], entry["group"], entry["mode"],
                                     int(entry["size"]), int(entry["uid"]), int(entry["gid"]),
                                     entry.get("sha256"))
        return out


class ReadFiles(Op[dict[str, bytes | PathError | None]]):
    """Contents of regular files (None when absent). A symlink, a non-regular file or
    an unsafe parent is a PathError, never followed."""

    name = "read_files"

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(dict.fromkeys(paths))
        self.timeout = DEFAULT_TIMEOUT + len(self.paths) / 100

    def message(self) -> dict[str, Any]:
        return {"op": "read_files", "paths": self.paths}

    def parse(self, result: dict[str, Any], host: str) -> dict[str, bytes | PathError | None]:
        out: dict[str, bytes | PathError | None] = {}
        for path, entry in result["files"].items():
            if entry is None:
                out[path] = None
            elif "error" in entry:
                out[path] = PathError(str(entry["error"]))
            else:
                out[path] = base64.b64decode(entry["data"])
        return out


class WriteFiles(Op[list[str | None]]):
    """Per file, None when written or the error text."""

    name = "write_files"

    def __init__(self, files: Sequence[FileWrite]) -> None:
        self.files = list(files)
        self.timeout = DEFAULT_TIMEOUT + len(self.files) / 20

    def message(self) -> dict[str, Any]:
        return {"op": "write_files", "files": [f.wire() for f in self.files]}

    def parse(self, result: dict[str, Any], host: str) -> list[str | None]:
        return list(result["errors"])


class EnsureDirs(Op[list[str | None]]):
    name = "ensure_dirs"

    def __init__(self, dirs: Sequence[DirEnsure]) -> None:
        self.dirs = list(dirs)
        self.timeout = DEFAULT_TIMEOUT + len(self.dirs) / 20

    def message(self) -> dict[str, Any]:
        return {"op": "ensure_dirs", "dirs": [{"path": d.path, "owner": d.owner, "group": d.group,
                                               "mode": d.mode} for d in self.dirs]}

    def parse(self, result: dict[str, Any], host: str) -> list[str | None]:
        return list(result["errors"])


class Remove(Op[list[str | None]]):
    """``kind``: ``file`` (anything but a directory), ``directory`` (empty ones) or ``any``."""

    name = "remove"

    def __init__(self, paths: Sequence[str], *, kind: str = "file") -> None:
        self.paths = list(paths)
        self.kind = kind
        self.timeout = DEFAULT_TIMEOUT + len(self.paths) / 20

    def message(self) -> dict[str, Any]:
        return {"op": "remove", "paths": self.paths, "kind": self.kind}

    def parse(self, result: dict[str, Any], host: str) -> list[str | None]:
        return list(result["errors"])
