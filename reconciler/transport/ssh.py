"""The SSH transport: one paramiko connection per host, many channels over it.

How the connection is made (``~/.ssh/config``, jump hosts, host keys, which keys
are tried) is in :mod:`reconciler.transport.sshconfig` (the settings) and
:mod:`reconciler.transport.sshconnect` (the connection). In short: host keys are
checked against known_hosts (the spec's file decides for a host it lists, else the
user's) and unknown hosts are refused unless ``host_key: accept-new`` is set, in
which case a new key is recorded and a changed key is still refused, as
OpenSSH's ``StrictHostKeyChecking=accept-new`` does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import paramiko

from reconciler.errors import LockBusy, TransportError
from reconciler.transport.base import LOCK_SCRIPT, CommandResult, HostLock, Transport
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


class SSHTransport(Transport):
    def __init__(self, host_name: str, url: str, *, identity_file: str | None = None,
                 known_hosts: str | None = None, host_key: str = "check",
                 connect_timeout: float = 15, via: str | None = None,
                 proxy_jump: str | list[str] | None = None,
                 peers: Mapping[str, HostAccess] | None = None, share_jumps: bool = True) -> None:
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
        self.route: Route | None = None
        self._jumps: JumpPool | None = None if share_jumps else JumpPool()
        self._client: paramiko.SSHClient | None = None
        self._connect_lock = threading.Lock()
        self._docker: docker.DockerClient | None = None
        self._docker_ssh: paramiko.SSHClient | None = None  # the connection _docker is bound to

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

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = 300,
            check: bool = True) -> CommandResult:
        self._count()
        channel = self._open_channel()
        try:
            channel.settimeout(timeout)
            channel.exec_command(self.quote(argv))
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
            code = channel.recv_exit_status()
        except TimeoutError as exc:
            raise TransportError(f"{self.target}: `{argv[0]}` timed out after {timeout} s") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"{self.target}: connection failed during `{argv[0]}`: {exc}") from exc
        finally:
            channel.close()
        result = CommandResult(tuple(argv), code, b"".join(out_chunks), b"".join(err_chunks))
        return result.check() if check else result

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

    def lock(self, wait_seconds: float) -> HostLock:
        self._count()
        channel = self._open_channel()
        channel.settimeout(wait_seconds + self.connect_timeout)
        channel.exec_command(self.quote(["sh", "-c", LOCK_SCRIPT, "reconciler", str(int(wait_seconds))]))
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

    def probe_new_connection(self, timeout: float = 10) -> bool:
        """A brand-new login the way an operator would make it: new connections to the
        jump hosts too (a pool of its own), not the shared ones."""
        a = self.access
        probe = SSHTransport(self.host_name, a.connect, identity_file=a.identity_file,
                             known_hosts=a.known_hosts, host_key=a.host_key, connect_timeout=timeout,
                             via=a.via, proxy_jump=a.proxy_jump, peers=self.peers, share_jumps=False)
        deadline = time.monotonic() + timeout
        try:
            probe.run(["true"], timeout=max(1.0, deadline - time.monotonic()))
            return True
        except Exception:
            return False
        finally:
            probe.close()

    def docker_client(self) -> docker.DockerClient:
        """A Docker client on the current connection. After a reconnect (the old
        connection died) a new client is made: one bound to the dead connection would
        fail every request, which matters for long-lived transports (the controller)."""
        client = self.client
        if self._docker is None or self._docker_ssh is not client:
            from reconciler.transport.docker_api import docker_client_over_paramiko

            if self._docker is not None:
                self._docker.close()
            self._docker = docker_client_over_paramiko(client, self.host_name)
            self._docker_ssh = client
        return self._docker

    def close(self) -> None:
        with self._connect_lock:
            if self._docker is not None:
                self._docker.close()
                self._docker = None
            if self._client is not None:
                self._client.close()
                self._client = None
