"""Transports that talk to a host agent when they can, plain shell when they must.

``SessionTransport`` starts the agent on first use (one remote command), keeps it
for every later request, and starts a new one when the old one died (the
connection dropped). When the host has no python3 (>= 3.9) it logs that once and
answers every request with plain commands instead (``shell.ShellOps``). Setting
``RECONCILER_AGENT=off`` in the environment forces the plain-shell path (to test
it on hosts that do have python3).
"""

from __future__ import annotations

import contextlib
import os
import threading
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from reconciler.errors import LockBusy, TransportError
from reconciler.transport.agent import SUDO_PROMPT, AgentClient, ByteChannel, NoPython, StartFailed
from reconciler.transport.base import LOCK_PATH, HostLock, Transport
from reconciler.transport.ops import CommandResult
from reconciler.transport.shell import ShellOps

log = structlog.get_logger("reconciler.transport")

_TAIL = 64 * 1024


@dataclass
class AgentLaunch:
    """A freshly started ``python3 -c BOOTSTRAP`` on the host, before the handshake."""

    channel: ByteChannel
    stderr: StderrTail
    exit_status: Callable[[], int | None]
    password: bytes | None = None


class StderrTail:
    """Drains a stderr stream in a thread; keeps its tail and counts sudo prompts."""

    def __init__(self, recv: Callable[[int], bytes], name: str) -> None:
        self._recv = recv
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.prompts = 0
        threading.Thread(target=self._drain, daemon=True, name=name).start()

    def _drain(self) -> None:
        marker = SUDO_PROMPT.encode()
        while True:
            try:
                chunk = self._recv(4096)
            except (OSError, EOFError):
                return
            if not chunk:
                return
            with self._lock:
                self._buf += chunk
                self.prompts = self._buf.count(marker)
                if len(self._buf) > _TAIL:
                    kept = self._buf[-_TAIL:]
                    # Keep the prompt count right after trimming.
                    self.prompts -= (self._buf.count(marker) - kept.count(marker))
                    self._buf = kept

    def text(self) -> str:
        with self._lock:
            return self._buf.decode("utf-8", "replace").replace(SUDO_PROMPT, "")

    def prompt_count(self) -> int:
        with self._lock:
            return self.prompts


class _AgentLock(HostLock):
    def __init__(self, client: AgentClient, token: int) -> None:
        self._client = client
        self._token = token
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._client.alive:
            with contextlib.suppress(TransportError):
                self._client.request({"op": "unlock", "lock": self._token}, 10)


class SessionTransport(Transport):
    """A transport whose requests go to a host agent, or to ``ShellOps`` without one."""

    def __init__(self, host_name: str) -> None:
        super().__init__(host_name)
        self._session_lock = threading.Lock()
        self._agent: AgentClient | None = None
        self._shell: ShellOps | None = None
        self._no_python = os.environ.get("RECONCILER_AGENT", "").lower() in ("off", "0", "no")

    # ------------------------------------------------------------------ for subclasses
    @abstractmethod
    def _launch_agent(self) -> AgentLaunch:
        """Start ``python3 -I -S -c BOOTSTRAP`` on the host (through sudo when configured)."""

    @abstractmethod
    def _exec_plain(self, argv: Sequence[str], stdin: bytes | None, timeout: float) -> CommandResult:
        """Run one command without the agent (the plain-shell path)."""

    @abstractmethod
    def _shell_lock(self, wait_seconds: float) -> HostLock:
        """The plain-shell path's host lock (``LOCK_SCRIPT``)."""

    def _start_failed(self, exc: StartFailed) -> TransportError:
        """Explain an agent that did not start (sudo refused, ...)."""
        return TransportError(f"{self.description}: the host agent did not start: {exc}")

    # ------------------------------------------------------------------ the session
    @property
    def uses_agent(self) -> bool:
        """True when requests go to the host agent (starts it when needed)."""
        return self._session() is not None

    def _session(self) -> AgentClient | None:
        with self._session_lock:
            if self._no_python:
                return None
            if self._agent is not None and self._agent.alive:
                return self._agent
            launch = self._launch_agent()
            self._count()  # starting the agent is one remote command
            client = AgentClient(launch.channel, self.host_name)
            try:
                client.start(stderr_tail=launch.stderr.text, prompts=launch.stderr.prompt_count,
                             exit_status=launch.exit_status, password=launch.password)
            except NoPython as exc:
                self._no_python = True
                log.warning("no python3 (>= 3.9) on the host; using plain shell commands, whose file "
                            "writes are not safe against symlinks planted by non-root users",
                            host=self.host_name, detail=str(exc)[:200])
                return None
            except StartFailed as exc:
                raise self._start_failed(exc) from None
            self._agent = client
            log.debug("host agent started", host=self.host_name, **client.hello)
            return client

    def _shell_ops(self) -> ShellOps:
        if self._shell is None:
            self._shell = ShellOps(self._exec_plain, self.host_name)
        return self._shell

    def _request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        agent = self._session()
        if agent is None:
            return self._shell_ops().request(message, timeout)
        return agent.request(message, timeout)

    def lock(self, wait_seconds: float) -> HostLock:
        self._count()
        agent = self._session()
        if agent is None:
            return self._shell_lock(wait_seconds)
        reply = agent.request({"op": "lock", "path": LOCK_PATH, "wait": wait_seconds}, wait_seconds + 5)
        if not reply.get("ok"):
            raise TransportError(f"{self.host_name}: cannot take the host lock: {reply.get('error')}")
        if reply["result"].get("busy"):
            raise LockBusy(f"another reconciler run holds the lock on {self.host_name} "
                           f"(waited {wait_seconds:.0f} s)")
        return _AgentLock(agent, int(reply["result"]["lock"]))

    def _close_agent(self) -> None:
        with self._session_lock:
            agent, self._agent = self._agent, None
        if agent is not None:
            agent.close()
