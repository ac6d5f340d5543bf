"""The SSH transport: one paramiko connection per host, many channels over it.

Host keys are checked against known_hosts (the user's, plus a file the spec
names) and unknown hosts are refused unless ``host_key: accept-new`` is set, in
which case a new key is recorded and a changed key is still refused, as
OpenSSH's ``StrictHostKeyChecking=accept-new`` does.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import paramiko

from reconciler.errors import LockBusy, TransportError
from reconciler.transport.base import LOCK_SCRIPT, CommandResult, HostLock, Transport

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


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """Record an unknown host's key; a *changed* key still fails in paramiko itself."""

    def __init__(self, save_to: Path | None) -> None:
        self.save_to = save_to

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        if self.save_to is not None:
            self.save_to.parent.mkdir(parents=True, exist_ok=True)
            with self.save_to.open("a") as fh:
                fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


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
                 connect_timeout: float = 15) -> None:
        super().__init__(host_name)
        self.target = SSHTarget.parse(url)
        self.identity_file = identity_file
        self.known_hosts = known_hosts
        self.host_key = host_key
        self.connect_timeout = connect_timeout
        self._client: paramiko.SSHClient | None = None
        self._connect_lock = threading.Lock()
        self._docker: docker.DockerClient | None = None
        self._docker_ssh: paramiko.SSHClient | None = None  # the connection _docker is bound to

    @property
    def description(self) -> str:
        return str(self.target)

    def _new_client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        user_known = Path(os.path.expanduser("~/.ssh/known_hosts"))
        if user_known.exists():
            client.load_host_keys(str(user_known))
        extra = Path(self.known_hosts).expanduser() if self.known_hosts else None
        if extra is not None and extra.exists():
            client.get_host_keys().load(str(extra))
        if self.host_key == "accept-new":
            client.set_missing_host_key_policy(_AcceptNew(extra or user_known))
        else:
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                self.target.hostname, port=self.target.port, username=self.target.user,
                key_filename=os.path.expanduser(self.identity_file) if self.identity_file else None,
                timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout, allow_agent=True, look_for_keys=self.identity_file is None,
            )
        except paramiko.ssh_exception.NoValidConnectionsError as exc:
            # paramiko's own text is "[Errno None] Unable to connect to port N on ADDR";
            # the per-address errors say why (connection refused, no route to host).
            reasons = sorted({getattr(e, "strerror", None) or str(e)
                              for e in exc.errors.values()}) or [str(exc)]
            raise TransportError(f"{self.target}: cannot connect: {'; '.join(reasons)}") from exc
        except paramiko.BadHostKeyException as exc:
            raise TransportError(
                f"{self.target}: host key CHANGED (possible man-in-the-middle): {exc}") from exc
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise TransportError(
                    f"{self.target}: unknown host key; add it to known_hosts or set "
                    f"`host_key: accept-new` on host {self.host_name}") from exc
            raise TransportError(f"{self.target}: SSH failed: {exc}") from exc
        except OSError as exc:  # TimeoutError is an OSError
            raise TransportError(f"{self.target}: cannot connect: {exc}") from exc
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        return client

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
        probe = SSHTransport(self.host_name, str(self.target), identity_file=self.identity_file,
                             known_hosts=self.known_hosts, host_key=self.host_key, connect_timeout=timeout)
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
