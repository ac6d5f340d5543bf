"""A Docker SDK client that talks to a host's engine over the transport's connection.

docker-py's own ``ssh://`` support opens SSH connections of its own (paramiko, or
the ``ssh`` binary). To keep ONE connection per host, every HTTP connection of
this client is either a stream relayed by the host agent to the engine's socket
(``docker_client_over_agent``: the agent runs as root, through sudo when the host
is reached as another user), or, on hosts without the agent, a channel on the
transport's connection running ``docker system dial-stdio`` (the docker CLI on the
host relays the channel's bytes to the local engine socket). Either way the host
needs no exposed engine port.

Channels are kept alive between requests (HTTP keep-alive) in ONE small pool for
every URL, so a run of many API calls reuses one channel. The pool is capped and
blocking because sshd allows only ``MaxSessions`` (default 10) channels per
connection, and the transport's own commands need them too: past the cap, sshd
answers "no more sessions". The SSH connection itself belongs to the transport;
closing this client never closes it.
"""

from __future__ import annotations

import queue
import select
import socket
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import paramiko
import requests
import urllib3
import urllib3.connection
import urllib3.connectionpool
from docker.transport.basehttpadapter import BaseHTTPAdapter

from reconciler.errors import TransportError

if TYPE_CHECKING:
    from reconciler.transport.agent import AgentClient

DIAL_STDIO = "docker system dial-stdio"
DOCKER_SOCKET = "/var/run/docker.sock"
# API version for the first request only; the engine's own is adopted right after.
_BOOTSTRAP_API_VERSION = "1.41"
_BASE_URL = "http+docker://ssh"  # docker-py recognises this prefix for raw-socket access
_DEFAULT_TIMEOUT = 120.0
# Requests beyond this many at once wait for a free channel instead of opening more.
_MAX_CHANNELS = 2
_PROBE_TIMEOUT = 15.0


SocketOpener = Callable[[], Any]
"""Opens one new socket-like connection to the engine (a paramiko channel or a socket)."""


class _DialStdioConnection(urllib3.connection.HTTPConnection):
    """HTTP over one socket-like connection to the engine (see ``SocketOpener``)."""

    def __init__(self, opener: SocketOpener, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._opener = opener
        self._channel_timeout = timeout

    def connect(self) -> None:
        sock = self._opener()
        sock.settimeout(self._channel_timeout)
        # A paramiko Channel is socket-like enough for http.client (sendall, makefile, settimeout).
        self.sock = sock

    def is_stale(self) -> bool:
        """True when the connection can no longer carry a request (its peer closed).
        Checked without ``fileno()`` on a paramiko channel: that creates a pipe pair."""
        sock = self.sock
        if isinstance(sock, paramiko.Channel):
            return bool(sock.closed or sock.eof_received)
        if isinstance(sock, socket.socket):
            if not getattr(self._opener, "alive", lambda: True)():
                return True
            try:
                readable, _, _ = select.select([sock], [], [], 0)
                return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
            except (OSError, ValueError):
                return True
        return False


def _paramiko_opener(ssh: paramiko.SSHClient, timeout: float, prefix: Sequence[str]) -> SocketOpener:
    command = " ".join([*prefix, DIAL_STDIO])

    def open_channel() -> paramiko.Channel:
        transport = ssh.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionError("the SSH connection to the host is closed")
        try:
            channel = transport.open_session(timeout=_PROBE_TIMEOUT)
            channel.settimeout(timeout)
            channel.exec_command(command)
        except (paramiko.SSHException, EOFError) as exc:
            # An OSError makes urllib3/requests report a ConnectionError like any socket failure.
            raise ConnectionError(f"cannot open an SSH channel for `{command}`: {exc}") from exc
        return channel

    return open_channel


class _DialStdioPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, opener: SocketOpener, timeout: float, maxsize: int) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=maxsize, block=True)
        self._opener = opener
        self._channel_timeout = timeout

    def _new_conn(self) -> _DialStdioConnection:
        return _DialStdioConnection(self._opener, self._channel_timeout)

    def _get_conn(self, timeout: float | None = None) -> Any:
        # urllib3's own liveness check polls the socket's fileno(), which costs a pipe
        # pair per paramiko channel (docker-py's sshconn avoids it the same way).
        # requests never passes a pool timeout; waiting forever for a channel that a
        # leaked streaming response holds would hang the run, so wait a request's time.
        conn = None
        if self.pool is None:
            raise urllib3.exceptions.ClosedPoolError(self, "Pool is closed.")
        try:
            conn = self.pool.get(block=self.block, timeout=timeout or self._channel_timeout)
        except queue.Empty:
            if self.block:
                raise urllib3.exceptions.EmptyPoolError(
                    self, f"all {_MAX_CHANNELS} Docker API channels stayed busy") from None
        if isinstance(conn, _DialStdioConnection) and conn.sock is not None and conn.is_stale():
            conn.close()
        return conn or self._new_conn()


class _DialStdioAdapter(BaseHTTPAdapter):
    """A requests adapter handing out one pool of engine connections on one host connection."""

    def __init__(self, opener: SocketOpener, timeout: float) -> None:
        self._opener = opener
        self.timeout = timeout
        self._pool: _DialStdioPool | None = None
        self._pool_lock = threading.Lock()
        super().__init__()

    def get_connection(self, url: str | bytes, proxies: Any = None) -> _DialStdioPool:
        # One pool whatever the URL: docker-py's adapters key pools by the full URL,
        # path included, so each endpoint would hold a channel (and a session) of its own.
        with self._pool_lock:
            if self._pool is None:
                self._pool = _DialStdioPool(self._opener, self.timeout, _MAX_CHANNELS)
            return self._pool

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        # No proxies on a channel; requests' proxy lookup also chokes on the fake host.
        return str(request.path_url)

    def close(self) -> None:
        # Close our channels, never the SSH connection: it belongs to the transport.
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def _engine_problem(ssh: paramiko.SSHClient) -> str:
    """Why the engine does not answer, in the host's own words (``docker version``'s stderr)."""
    transport = ssh.get_transport()
    if transport is None or not transport.is_active():
        return "the SSH connection is closed"
    try:
        channel = transport.open_session(timeout=_PROBE_TIMEOUT)
        channel.settimeout(_PROBE_TIMEOUT)
        channel.exec_command("docker version --format '{{.Server.Version}}'")
        stdout = channel.makefile("rb").read()
        stderr = channel.makefile_stderr("rb").read()
        code = channel.recv_exit_status()
        channel.close()
    except (TimeoutError, paramiko.SSHException, OSError, EOFError) as exc:
        return f"probing with `docker version` failed: {exc}"
    text = (stderr or stdout).decode("utf-8", "replace").strip()
    if code == 127:
        return "the docker command is not installed on the host (`docker system dial-stdio` needs it)"
    return f"`docker version` exited {code}: {text}" if code else f"`docker version` says {text!r}"


def docker_client_over_paramiko(client: paramiko.SSHClient, host_name: str, timeout: float = _DEFAULT_TIMEOUT,
                                prefix: Sequence[str] = ()) -> docker.DockerClient:
    """A DockerClient whose every request is a ``dial-stdio`` channel on ``client``'s
    connection (``prefix``: e.g. ``sudo -n --``). Talks to the engine once, to adopt its
    API version; raises TransportError with the host's own explanation when the engine
    cannot be reached."""
    return _client(_paramiko_opener(client, timeout, prefix), host_name, lambda: _engine_problem(client),
                   timeout)


def docker_client_over_agent(agent: AgentClient, host_name: str, explain: Callable[[], str],
                             timeout: float = _DEFAULT_TIMEOUT) -> docker.DockerClient:
    """A DockerClient whose every connection is a stream the host agent relays to the
    engine's socket (``DOCKER_SOCKET``)."""
    def open_stream() -> socket.socket:
        if not agent.alive:
            raise ConnectionError("the SSH connection to the host is closed (its host agent is gone)")
        try:
            return agent.open_stream(DOCKER_SOCKET)
        except TransportError as exc:
            raise ConnectionError(str(exc)) from exc

    open_stream.alive = lambda: agent.alive  # type: ignore[attr-defined]  # read by is_stale
    return _client(open_stream, host_name, explain, timeout)


def _client(opener: SocketOpener, host_name: str, explain: Callable[[], str],
            timeout: float) -> docker.DockerClient:
    # use_ssh_client=True builds docker-py's shell-out adapter, which connects lazily;
    # it is replaced below before any request, so no ssh process is ever started.
    api = docker.APIClient(base_url="ssh://reconciler", version=_BOOTSTRAP_API_VERSION, timeout=int(timeout),
                           use_ssh_client=True)
    adapter = _DialStdioAdapter(opener, timeout)
    api.mount(_BASE_URL, adapter)
    # Private attributes the SDK itself sets for its ssh:// adapter (docker/api/client.py);
    # the stubs do not declare them.
    api._custom_adapter = adapter  # type: ignore[attr-defined]
    api.base_url = _BASE_URL
    try:
        api._version = api._retrieve_server_version()  # type: ignore[attr-defined]
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise TransportError(f"cannot reach the Docker engine on {host_name}: {explain()}") from exc
    docker_client = docker.DockerClient.__new__(docker.DockerClient)
    docker_client.api = api
    return docker_client
