"""The local transport: the host agent as a subprocess of this process.

The same agent program as over SSH (started with this interpreter), so a local run
behaves exactly like a remote one: descriptor-safe writes, batches, deadlines.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from reconciler.errors import LockBusy, TransportError
from reconciler.transport.agent_program import BOOTSTRAP
from reconciler.transport.base import LOCK_SCRIPT, HostLock
from reconciler.transport.ops import CommandResult
from reconciler.transport.session import AgentLaunch, SessionTransport, StderrTail

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


class _PipeChannel:
    """The agent subprocess's stdin/stdout as a ByteChannel."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self._in = proc.stdin.fileno()
        self._out = proc.stdout.fileno()
        self._closed = False

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._in, view):]

    def recv(self, n: int) -> bytes:
        return os.read(self._out, n)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        assert self._proc.stdin is not None
        with contextlib.suppress(OSError):
            self._proc.stdin.close()
        # Reap it in the background: the agent exits as soon as it sees EOF.
        threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self) -> None:
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


class LocalTransport(SessionTransport):
    def __init__(self, host_name: str) -> None:
        super().__init__(host_name)

    @property
    def description(self) -> str:
        return "local"

    def _launch_agent(self) -> AgentLaunch:
        try:
            proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", BOOTSTRAP], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        except OSError as exc:
            raise TransportError(f"cannot start the local agent: {exc}") from exc
        assert proc.stderr is not None
        stderr_fd = proc.stderr.fileno()
        stderr = StderrTail(lambda n: os.read(stderr_fd, n), "agent-stderr-local")
        return AgentLaunch(_PipeChannel(proc), stderr, lambda: proc.wait(timeout=10))

    def _exec_plain(self, argv: Sequence[str], stdin: bytes | None, timeout: float) -> CommandResult:
        try:
            proc = subprocess.run(list(argv), input=stdin if stdin is not None else b"",
                                  capture_output=True, timeout=timeout, check=False, start_new_session=True)
        except FileNotFoundError as exc:
            return CommandResult(tuple(argv), 127, b"", str(exc).encode())
        except subprocess.TimeoutExpired as exc:
            raise TransportError(f"{argv[0]} timed out after {timeout:g} s") from exc
        return CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def _shell_lock(self, wait_seconds: float) -> HostLock:
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

    def close(self) -> None:
        self._close_agent()
