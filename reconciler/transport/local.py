"""The local transport: subprocess with argument lists on this machine."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING

from reconciler.errors import LockBusy, TransportError
from reconciler.transport.base import LOCK_SCRIPT, CommandResult, HostLock, Transport

if TYPE_CHECKING:
    import docker


class _LocalLock(HostLock):
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    def release(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()


class LocalTransport(Transport):
    @property
    def description(self) -> str:
        return "local"

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = 300,
            check: bool = True) -> CommandResult:
        self._count()
        try:
            proc = subprocess.run(list(argv), input=stdin if stdin is not None else b"",
                                  capture_output=True, timeout=timeout, check=False)
        except FileNotFoundError as exc:
            result = CommandResult(tuple(argv), 127, b"", str(exc).encode())
        except subprocess.TimeoutExpired as exc:
            raise TransportError(f"{argv[0]} timed out after {timeout} s") from exc
        else:
            result = CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
        return result.check() if check else result

    def lock(self, wait_seconds: float) -> HostLock:
        self._count()
        proc = subprocess.Popen(["sh", "-c", LOCK_SCRIPT, "reconciler", str(int(wait_seconds))],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != b"LOCKED":
            proc.kill()
            raise LockBusy(f"another reconciler run holds the lock on {self.host_name} "
                           f"(waited {wait_seconds:.0f} s)")
        return _LocalLock(proc)

    def probe_new_connection(self, timeout: float = 10) -> bool:
        return True

    def docker_client(self) -> docker.DockerClient:
        import docker

        try:
            return docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=120)
        except docker.errors.DockerException as exc:
            raise TransportError(f"cannot reach the Docker engine on {self.host_name}: {exc}") from exc
