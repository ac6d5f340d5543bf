"""The SSH transport: one paramiko connection per host, one host agent on it.

The agent (``agent_program.py``) is started once over an exec channel of the
connection, through ``sudo`` when the host spec says ``become: sudo``; every
command, file operation, lock and Docker API request then travels as a framed
request on that one channel. Hosts without python3 get plain exec channels.

How the connection is made (``~/.ssh/config``, jump hosts, host keys, which keys
are tried) is in :mod:`reconciler.transport.sshconfig` (the settings) and
:mod:`reconciler.transport.sshconnect` (the connection). In short: host keys are
checked against known_hosts (the spec's file decides for a host it lists, else the
user's) and unknown hosts are refused unless ``host_key: accept-new`` is set, in
which case a new key is recorded and a changed key is still refused, as
OpenSSH's ``StrictHostKeyChecking=accept-new`` does.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import paramiko

from reconciler.errors import LockBusy, TransportError
from reconciler.transport.agent import SUDO_PROMPT, StartFailed
from reconciler.transport.agent_program import BOOTSTRAP
from reconciler.transport.base import LOCK_SCRIPT, HostLock
from reconciler.transport.ops import CommandResult
from reconciler.transport.session import AgentLaunch, SessionTransport, StderrTail
from reconciler.transport.sshconfig import Access, HostAccess, Route, SSHSettingsError, resolve_route
from reconciler.transport.sshconnect import JumpPool, connect

if TYPE_CHECKING:
    import docker


@dataclass(frozen=True)
class SSHTarget:
    user: str
    hostname: str
    port: int

    @classmethod
    def parse(cls, url: str) -> SSHTarget:
        parsed = urlparse(url)
        if parsed.scheme != "ssh" or not parsed.hostname:
            raise ValueError(f"expected ssh://user@host[:port], got {url!r}")
        return cls(parsed.username or "root", parsed.hostname, parsed.port or 22)

    def __str__(self) -> str:
        return f"ssh://{self.user}@{self.hostname}:{self.port}"


class _SSHLock(HostLock):
    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel

    def release(self) -> None:
        try:
            self._channel.shutdown_write()
            self._channel.recv_exit_status()
        finally:
            self._channel.close()


class _ChannelStream:
    """A paramiko channel as the agent's ByteChannel (stdin/stdout of the remote agent)."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel

    def send(self, data: bytes) -> None:
        self._channel.sendall(data)

    def recv(self, n: int) -> bytes:
        data: bytes = self._channel.recv(n)
        return data

    def is_open(self) -> bool:
        transport = self._channel.get_transport()
        return not self._channel.closed and transport is not None and transport.is_active()

    def close(self) -> None:
        # EOF first: the agent sees it, kills what it started and lets go of its locks.
        with contextlib.suppress(Exception):
            self._channel.shutdown_write()
        self._channel.close()


class SSHTransport(SessionTransport):
    """Every request goes to one host agent, started over one exec channel of the connection.

    ``become="sudo"`` starts the agent through ``sudo -n`` (or ``sudo -S`` with the
    password from ``become_password_file``, written to sudo's stdin after its prompt,
    never on a command line), so every command, write, lock and Docker API request runs
    as root on a host reached as another user.
    """

    def __init__(self, host_name: str, url: str, *, identity_file: str | None = None,
                 known_hosts: str | None = None, host_key: str = "check",
                 connect_timeout: float = 15, via: str | None = None,
                 proxy_jump: str | list[str] | None = None,
                 peers: Mapping[str, HostAccess] | None = None, share_jumps: bool = True,
                 become: str | None = None, become_password_file: str | None = None) -> None:
        """``via`` names another entry of ``peers`` (the spec's hosts) to jump through;
        ``proxy_jump`` is a jump URL or chain. With ``share_jumps`` the connection to a
        jump host is shared with other targets behind it (process-wide pool)."""
        super().__init__(host_name)
        self.target = SSHTarget.parse(url)  # as written; the route (config applied) is resolved on connect
        self.access = Access(url, identity_file, known_hosts, host_key, via, proxy_jump)
        self.peers: Mapping[str, HostAccess] = dict(peers or {})
        self.identity_file = identity_file
        self.known_hosts = known_hosts
        self.host_key = host_key
        self.connect_timeout = connect_timeout
        self.become = become
        self.become_password_file = become_password_file
        self.route: Route | None = None
        self._jumps: JumpPool | None = None if share_jumps else JumpPool()
        self._client: paramiko.SSHClient | None = None
        self._connect_lock = threading.Lock()
        self._docker: docker.DockerClient | None = None
        self._docker_bound: object | None = None  # the agent or connection _docker is bound to

    @property
    def description(self) -> str:
        return self.route.description if self.route is not None else str(self.target)

    def _new_client(self) -> paramiko.SSHClient:
        """Resolve the route (spec, then ~/.ssh/config) and log in along it. A previous,
        dead client is closed first, which gives back its hold on a shared jump host."""
        if self._client is not None:
            self._client.close()
            self._client = None
        try:
            self.route = resolve_route(self.host_name, self.access, self.peers)
        except SSHSettingsError as exc:
            raise TransportError(str(exc)) from exc
        target = self.route.target
        self.target = SSHTarget(target.user, target.name, target.port)
        return connect(self.route, host_name=self.host_name, timeout=self.connect_timeout, pool=self._jumps)

    @property
    def client(self) -> paramiko.SSHClient:
        with self._connect_lock:
            if self._client is None or not self._alive(self._client):
                self._client = self._new_client()
            return self._client

    @staticmethod
    def _alive(client: paramiko.SSHClient) -> bool:
        transport = client.get_transport()
        return transport is not None and transport.is_active()

    def _open_channel(self) -> paramiko.Channel:
        transport = self.client.get_transport()
        if transport is None:
            raise TransportError(f"{self.target}: connection lost")
        try:
            return transport.open_session(timeout=self.connect_timeout)
        except (paramiko.SSHException, OSError) as exc:
            raise TransportError(f"{self.target}: cannot open a channel: {exc}") from exc

    # ------------------------------------------------------------------ the agent
    def _sudo_password(self) -> bytes | None:
        if self.become != "sudo" or not self.become_password_file:
            return None
        try:
            return Path(self.become_password_file).expanduser().read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise TransportError(f"host {self.host_name}: cannot read become_password_file: "
                                 f"{exc.strerror or exc}") from exc

    def _become_prefix(self, password: bool) -> list[str]:
        if self.become != "sudo":
            return []
        # -S reads the password from stdin after printing our own prompt on stderr; -n
        # fails at once instead of asking. Either way nothing secret is on a command line.
        return ["sudo", "-S", "-p", SUDO_PROMPT, "--"] if password else ["sudo", "-n", "--"]

    def _launch_agent(self) -> AgentLaunch:
        password = self._sudo_password()
        channel = self._open_channel()
        channel.settimeout(None)
        command = self.quote([*self._become_prefix(password is not None), "python3", "-I", "-S", "-c",
                              BOOTSTRAP])
        try:
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            channel.close()
            raise TransportError(f"{self.target}: cannot start the host agent: {exc}") from exc

        def exit_status() -> int | None:
            deadline = time.monotonic() + 5
            while not channel.exit_status_ready():
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.02)
            return int(channel.recv_exit_status())

        return AgentLaunch(_ChannelStream(channel),
                           StderrTail(channel.recv_stderr, f"agent-stderr-{self.host_name}"),
                           exit_status, password)

    def _start_failed(self, exc: StartFailed) -> TransportError:
        text = exc.problem.stderr.strip()
        user = self.target.user
        if exc.password_rejected:
            return TransportError(f"host {self.host_name}: sudo did not accept the password in "
                                  f"become_password_file for user {user}")
        if "a password is required" in text or (self.become == "sudo" and exc.problem.exit_code is None):
            return TransportError(f"host {self.host_name}: user {user} cannot become root without a "
                                  "password; set become_password_file or allow NOPASSWD")
        if "not in the sudoers" in text or "not allowed to execute" in text:
            return TransportError(f"host {self.host_name}: user {user} may not become root with sudo "
                                  f"({text})")
        return TransportError(f"{self.target}: the host agent did not start: {text or exc}")

    # ------------------------------------------------------------------ plain shell path
    def _exec_plain(self, argv: Sequence[str], stdin: bytes | None, timeout: float) -> CommandResult:
        if self.become == "sudo" and self.become_password_file:
            raise TransportError(f"host {self.host_name}: become_password_file needs python3 on the host "
                                 "(the plain-shell path can only use passwordless sudo)")
        full = [*self._become_prefix(False), *argv]
        channel = self._open_channel()
        try:
            channel.settimeout(timeout)
            channel.exec_command(self.quote(full))
            # Drain stderr in a thread: a full stderr window would otherwise stall stdout.
            err_chunks: list[bytes] = []
            err_thread = threading.Thread(target=self._drain, args=(channel.recv_stderr, err_chunks),
                                          daemon=True)
            err_thread.start()
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            out_chunks: list[bytes] = []
            self._drain(channel.recv, out_chunks)
            err_thread.join(timeout)
            deadline = time.monotonic() + timeout
            while not channel.exit_status_ready():
                if time.monotonic() > deadline:
                    raise TimeoutError
                time.sleep(0.01)
            code = channel.recv_exit_status()
        except TimeoutError as exc:
            raise TransportError(f"{self.target}: `{argv[0]}` timed out after {timeout:g} s") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"{self.target}: connection failed during `{argv[0]}`: {exc}") from exc
        finally:
            channel.close()
        return CommandResult(tuple(argv), code, b"".join(out_chunks), b"".join(err_chunks))

    @staticmethod
    def _drain(recv: object, sink: list[bytes]) -> None:
        assert callable(recv)
        while True:
            try:
                chunk = recv(65536)
            except OSError:  # TimeoutError included
                return
            if not chunk:
                return
            sink.append(chunk)

    def _shell_lock(self, wait_seconds: float) -> HostLock:
        channel = self._open_channel()
        channel.settimeout(wait_seconds + self.connect_timeout)
        channel.exec_command(self.quote([*self._become_prefix(False), "sh", "-c", LOCK_SCRIPT, "reconciler",
                                         str(int(wait_seconds))]))
        buf = b""
        try:
            while b"\n" not in buf:
                chunk = channel.recv(64)
                if not chunk:
                    break
                buf += chunk
        except TimeoutError:
            pass
        if buf.strip() != b"LOCKED":
            channel.close()
            raise LockBusy(f"another reconciler run holds the lock on {self.host_name} "
                           f"(waited {wait_seconds:.0f} s)")
        channel.settimeout(None)
        return _SSHLock(channel)

    # ------------------------------------------------------------------ the rest
    def probe_new_connection(self, timeout: float = 10) -> bool:
        """A brand-new login the way an operator would make it, running ``true`` (no agent,
        no sudo: just the login): new connections to the jump hosts too (a pool of its
        own), not the shared ones."""
        a = self.access
        probe = SSHTransport(self.host_name, a.connect, identity_file=a.identity_file,
                             known_hosts=a.known_hosts, host_key=a.host_key, connect_timeout=timeout,
                             via=a.via, proxy_jump=a.proxy_jump, peers=self.peers, share_jumps=False)
        deadline = time.monotonic() + timeout
        try:
            probe._exec_plain(["true"], None, max(1.0, deadline - time.monotonic()))
            return True
        except Exception:
            return False
        finally:
            probe.close()

    def docker_client(self) -> docker.DockerClient:
        """A Docker client over this transport: through the host agent (which relays the
        engine's socket, as root) when there is one, else ``docker system dial-stdio``
        channels. After a reconnect a new client is made: one bound to a dead agent or
        connection would fail every request (this matters for the controller)."""
        from reconciler.transport import docker_api

        agent = self._session()
        bound: object = agent if agent is not None else self.client
        if self._docker is None or self._docker_bound is not bound:
            if self._docker is not None:
                self._docker.close()
            if agent is not None:
                self._docker = docker_api.docker_client_over_agent(agent, self.host_name,
                                                                   self._docker_problem)
            else:
                self._docker = docker_api.docker_client_over_paramiko(
                    self.client, self.host_name, prefix=self._become_prefix(False))
            self._docker_bound = bound
        return self._docker

    def _docker_problem(self) -> str:
        try:
            result = self.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False,
                              timeout=15)
        except TransportError as exc:
            return f"probing with `docker version` failed: {exc}"
        text = (result.err or result.out).strip()
        if result.exit_code == 127:
            return f"the Docker engine socket {docker_api_socket()} does not answer and the docker command " \
                   "is not installed"
        return f"`docker version` exited {result.exit_code}: {text}" if result.exit_code else \
            f"`docker version` says {text!r}"

    def close(self) -> None:
        self._close_agent()
        with self._connect_lock:
            if self._docker is not None:
                self._docker.close()
                self._docker = None
            if self._client is not None:
                self._client.close()
                self._client = None


def docker_api_socket() -> str:
    from reconciler.transport.docker_api import DOCKER_SOCKET

    return DOCKER_SOCKET
