"""The transport contract: how the reconciler talks to a host.

A transport is ONE conversation with one host. On hosts with python3 (>= 3.9) it
starts the host agent (``agent_program.py``) once over its connection and sends it
framed requests; on hosts without python3 it runs plain shell commands instead
(``shell.py``), with the same results. Either way callers use the typed methods
below and never see the difference, except that only the agent's file operations
are descriptor-safe on a hostile host.

Commands are argument lists; shell is only ever used as ``sh -c CONSTANT_SCRIPT
arg...`` with spec data passed as positional arguments, never spliced into the
script. ``commands_run`` counts the requests sent to the host (a ``batch`` counts
once, so does the agent's start), so benchmarks and tests can check that work is
batched.
"""

from __future__ import annotations

import shlex
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from reconciler.errors import CommandFailed, ReconcilerError
from reconciler.transport import coalesce
from reconciler.transport.ops import (
    CommandResult,
    DirEnsure,
    EnsureDirs,
    Exec,
    FileWrite,
    Op,
    PathError,
    PathStat,
    ReadFiles,
    Remove,
    Stat,
    WriteFiles,
)

if TYPE_CHECKING:
    import docker

__all__ = ["ATOMIC_WRITE_SCRIPT", "LOCK_SCRIPT", "CommandResult", "DirEnsure", "FileWrite", "HostLock",
           "PathError", "PathStat", "Transport"]

T = TypeVar("T")

# The shell fallback's write (hosts without python3): a temporary name in the same
# directory (so rename is atomic), owner and mode set before the content becomes
# visible, fsync, then rename over the target. NOT safe against a non-root user who
# can write the directory (it follows symlinks); the agent's write is.
ATOMIC_WRITE_SCRIPT = r"""
set -eu
target=$1; mode=$2; owner=$3; group=$4; dir_mode=${5:-0755}
dir=$(dirname -- "$target")
[ -d "$dir" ] || mkdir -p -m "$dir_mode" -- "$dir"
tmp=$(mktemp -- "$dir/.reconciler.XXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
chown -- "$owner:$group" "$tmp"
chmod -- "$mode" "$tmp"
sync -- "$tmp" 2>/dev/null || sync
mv -f -- "$tmp" "$target"
trap - EXIT
"""

# The shell fallback's host lock: held for as long as stdin stays open. If the
# reconciler dies, the connection drops, cat sees EOF and flock lets go.
LOCK_SCRIPT = r"""
mkdir -p /run/lock 2>/dev/null || true
exec flock -w "$1" /run/lock/reconciler.lock sh -c 'echo LOCKED; exec cat >/dev/null'
"""

LOCK_PATH = "/run/lock/reconciler.lock"


class HostLock(ABC):
    @abstractmethod
    def release(self) -> None: ...

    def __enter__(self) -> HostLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Transport(ABC):
    """One connection to one host, reused for a whole run and safe to share between threads.

    Contract:

    * ``send_request(message, timeout)`` is the one primitive (``_request`` in a
      subclass): one request to the host, its reply ``{"ok", "result" | "error"}``.
      The transport waits at most ``timeout`` plus a grace, then raises
      TransportError; it never blocks forever.
    * ``run``/``run_script`` run one command with a deadline (its whole process group
      is killed on expiry, and TransportError says so). CommandFailed on a non-zero
      exit when ``check``; TransportError when the host cannot be reached.
    * ``stat``, ``read_files``, ``write_files``, ``ensure_dirs``, ``remove`` take any
      number of paths in one request (paths travel in the message, never on a command
      line). They never follow a symlink that a non-root user could have planted,
      at the path or at any parent (on the agent path); they report per path.
    * ``batch(ops)`` sends several ops as one request (run in parallel on the host,
      or in order with ``sequential``); one result per op, in order.
    * Inside ``coalesce.run_coalesced`` the requests of many threads are merged into
      batches automatically (``request`` routes them).
    * ``lock`` takes the host-wide lock, held until released or the connection dies.
    """

    def __init__(self, host_name: str) -> None:
        self.host_name = host_name
        self._count_lock = threading.Lock()
        self.commands_run = 0

    def _count(self) -> None:
        with self._count_lock:
            self.commands_run += 1

    @property
    @abstractmethod
    def description(self) -> str:
        """Where this transport goes, for messages (``ssh://root@web1:22``, ``local``)."""

    # ------------------------------------------------------------------ requests
    @abstractmethod
    def _request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request to the host and return its reply."""

    def send_request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One request to the host, counted in ``commands_run``."""
        self._count()
        return self._request(message, timeout)

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Like ``send_request``, but merged with other threads' requests when the
        calling thread takes part in ``coalesce.run_coalesced``."""
        group = coalesce.current(self)
        if group is not None:
            return group.submit(message, timeout)
        return self.send_request(message, timeout)

    def _result(self, reply: dict[str, Any], op: Op[Any]) -> dict[str, Any]:
        if not reply.get("ok"):
            raise ReconcilerError(f"{self.host_name}: {op.describe()}: {reply.get('error')}")
        result: dict[str, Any] = reply["result"]
        return result

    def perform(self, op: Op[T]) -> T:
        """Send one op and return its parsed result."""
        return op.parse(self._result(self.request(op.message(), op.timeout), op), self.host_name)

    def batch(self, ops: Sequence[Op[Any]], *, sequential: bool = False) -> list[Any]:
        """Several ops in one request; their results in order. ``sequential`` runs
        them one after the other on the host (else in parallel)."""
        if not ops:
            return []
        if len(ops) == 1:
            return [self.perform(ops[0])]
        timeout = (sum if sequential else max)(op.timeout for op in ops)
        reply = self.request({"op": "batch", "ops": [op.message() for op in ops], "sequential": sequential},
                             timeout)
        if not reply.get("ok"):
            raise ReconcilerError(f"{self.host_name}: batch: {reply.get('error')}")
        return [op.parse(self._result(sub, op), self.host_name)
                for op, sub in zip(ops, reply["result"]["results"], strict=True)]

    # ------------------------------------------------------------------ commands
    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = 300,
            check: bool = True) -> CommandResult:
        """Run one command on the host (see the class docstring)."""
        return self.perform(Exec(argv, stdin=stdin, timeout=timeout, check=check))

    def run_script(self, script: str, args: Sequence[str] = (), *, stdin: bytes | None = None,
                   timeout: float | None = 300, check: bool = True) -> CommandResult:
        """Run a constant shell script with data as positional parameters ($1...)."""
        return self.run(["sh", "-c", script, "reconciler", *args], stdin=stdin, timeout=timeout, check=check)

    # ------------------------------------------------------------------ files
    def stat(self, paths: Sequence[str], *, sha256: bool = False) -> dict[str, PathStat | None]:
        """``lstat`` of every path (None when absent), with the SHA-256 of regular files
        when asked."""
        return self.perform(Stat(paths, sha256=sha256)) if paths else {}

    def read_files(self, paths: Sequence[str]) -> dict[str, bytes | PathError | None]:
        """Contents of regular files; None when absent; PathError for a symlink, a
        non-regular file or an unsafe parent (never followed)."""
        return self.perform(ReadFiles(paths)) if paths else {}

    def read_file(self, path: str) -> bytes | None:
        """One file's content (None when absent); ReconcilerError when it cannot be read safely."""
        data = self.read_files([path])[path]
        if isinstance(data, PathError):
            raise ReconcilerError(f"{self.host_name}: cannot read {path}: {data.message}")
        return data

    def write_files(self, files: Sequence[FileWrite]) -> list[str | None]:
        """Write every file atomically, in order, in one request; per file None or the error."""
        return self.perform(WriteFiles(files)) if files else []

    def write_file(self, path: str, data: bytes, *, mode: str = "0644", owner: str = "root",
                   group: str = "root") -> None:
        """Write one file atomically (temporary file, owner and mode, fsync, rename). On
        failure CommandFailed names the path and says why."""
        [error] = self.write_files([FileWrite(path, data, mode, owner, group)])
        if error is not None:
            raise CommandFailed(["write", path], 1, error)

    def ensure_dirs(self, dirs: Sequence[DirEnsure]) -> list[str | None]:
        """Create missing directories and set owner and mode; per directory None or the error."""
        return self.perform(EnsureDirs(dirs)) if dirs else []

    def remove(self, paths: Sequence[str], *, kind: str = "file") -> list[str | None]:
        """Delete paths (absent is fine); ``kind`` ``file``, ``directory`` (empty only) or ``any``."""
        return self.perform(Remove(paths, kind=kind)) if paths else []

    # ------------------------------------------------------------------ the rest
    @abstractmethod
    def lock(self, wait_seconds: float) -> HostLock:
        """Take the host-wide reconciler lock, waiting at most wait_seconds (LockBusy after)."""

    @abstractmethod
    def probe_new_connection(self, timeout: float = 10) -> bool:
        """Open a brand-new connection the way an operator would and run a no-op.
        Used to confirm that a firewall change did not cut the management path."""

    @abstractmethod
    def docker_client(self) -> docker.DockerClient:
        """A Docker SDK client for the host's own engine, over this transport."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""

    @staticmethod
    def quote(argv: Sequence[str]) -> str:
        return shlex.join(argv)
