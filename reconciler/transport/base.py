"""The transport contract: how the reconciler runs commands and writes files on a host.

Commands are argument lists; shell is only ever used as ``sh -c CONSTANT_SCRIPT
arg...`` with spec data passed as positional arguments, never spliced into the
script. Every transport counts the remote commands it runs, so benchmarks and
tests can check that observation is batched.
"""

from __future__ import annotations

import shlex
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.errors import CommandFailed
from reconciler.sensitive import REDACTOR

if TYPE_CHECKING:
    import docker

# Writes a file atomically: a temporary name in the same directory (so rename is
# atomic on the same filesystem), owner and mode set before the content becomes
# visible, fsync, then rename over the target. A crash leaves old or new, never half.
ATOMIC_WRITE_SCRIPT = r"""
set -eu
target=$1; mode=$2; owner=$3; group=$4
dir=$(dirname -- "$target")
[ -d "$dir" ] || mkdir -p -- "$dir"
tmp=$(mktemp -- "$dir/.reconciler.XXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
chown -- "$owner:$group" "$tmp"
chmod -- "$mode" "$tmp"
sync -- "$tmp" 2>/dev/null || sync
mv -f -- "$tmp" "$target"
trap - EXIT
"""

# Holds the host lock for as long as stdin stays open. If the reconciler dies,
# the connection drops, cat sees EOF and flock lets go: no stale lock files.
LOCK_SCRIPT = r"""
mkdir -p /run/lock 2>/dev/null || true
exec flock -w "$1" /run/lock/reconciler.lock sh -c 'echo LOCKED; exec cat >/dev/null'
"""


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


class HostLock(ABC):
    @abstractmethod
    def release(self) -> None: ...

    def __enter__(self) -> HostLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Transport(ABC):
    """One connection to one host, reused for a whole run and safe to share between threads."""

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

    @abstractmethod
    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = 300,
            check: bool = True) -> CommandResult:
        """Run one command on the host. Raises CommandFailed on non-zero exit when check
        is set, TransportError when the host cannot be reached."""

    def run_script(self, script: str, args: Sequence[str] = (), *, stdin: bytes | None = None,
                   timeout: float | None = 300, check: bool = True) -> CommandResult:
        """Run a constant shell script with data as positional parameters ($1...)."""
        return self.run(["sh", "-c", script, "reconciler", *args], stdin=stdin, timeout=timeout, check=check)

    def write_file(self, path: str, data: bytes, *, mode: str = "0644", owner: str = "root",
                   group: str = "root") -> None:
        """Write a file atomically (temp file, owner and mode, fsync, rename). On failure the
        temporary file is removed and CommandFailed names the path and carries stderr."""
        try:
            self.run_script(ATOMIC_WRITE_SCRIPT, [path, mode, owner, group], stdin=data)
        except CommandFailed as exc:
            raise CommandFailed(["write", path], exc.exit_code, exc.stderr, exc.stdout) from exc

    def read_file(self, path: str) -> bytes | None:
        result = self.run(["cat", "--", path], check=False)
        if result.exit_code != 0:
            return None
        return result.stdout

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
