"""A Docker SDK client that talks to a host's engine over an existing paramiko connection.

docker-py's own ``ssh://`` support opens SSH connections of its own (paramiko, or
the ``ssh`` binary). To keep ONE connection per host, every HTTP connection of
this client is a channel on the transport's connection running ``docker system
dial-stdio``: the docker CLI on the host relays the channel's bytes to the local
engine socket, so the host needs the docker CLI but no exposed engine port.

Channels are kept alive between requests (HTTP keep-alive) in ONE small pool for
every URL, so a run of many API calls reuses one channel. The pool is capped and
blocking because sshd allows only ``MaxSessions`` (default 10) channels per
connection, and the transport's own commands need them too: past the cap, sshd
answers "no more sessions". The SSH connection itself belongs to the transport;
closing this client never closes it.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import docker
import docker.errors
import paramiko
import requests
import urllib3
import urllib3.connection
import urllib3.connectionpool
from docker.transport.basehttpadapter import BaseHTTPAdapter

from reconciler.errors import TransportError

DIAL_STDIO = "docker system dial-stdio"
# API version for the first request only; the engine's own is adopted right after.
_BOOTSTRAP_API_VERSION = "1.41"
_BASE_URL = "http+docker://ssh"  # docker-py recognises this prefix for raw-socket access
_DEFAULT_TIMEOUT = 120.0
# Requests beyond this many at once wait for a free channel instead of opening more.
_MAX_CHANNELS = 2
_PROBE_TIMEOUT = 15.0


class _DialStdioConnection(urllib3.connection.HTTPConnection):
    """HTTP over one SSH channel whose remote end is ``docker system dial-stdio``."""

    def __init__(self, ssh: paramiko.SSHClient, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._ssh = ssh
        self._channel_timeout = timeout

    def connect(self) -> None:
        transport = self._ssh.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionError("the SSH connection to the host is closed")
        try:
            channel = transport.open_session(timeout=_PROBE_TIMEOUT)
            channel.settimeout(self._channel_timeout)
            channel.exec_command(DIAL_STDIO)
        except (paramiko.SSHException, EOFError) as exc:
            # An OSError makes urllib3/requests report a ConnectionError like any socket failure.
            raise ConnectionError(f"cannot open an SSH channel for `{DIAL_STDIO}`: {exc}") from exc
        # A paramiko Channel is socket-like enough for http.client (sendall, makefile, settimeout).
        self.sock = channel

    def is_stale(self) -> bool:
        """True when the channel can no longer carry a request (dial-stdio exited).
        Checked without ``fileno()``: on a paramiko channel that creates a pipe pair."""
        channel = self.sock
        return isinstance(channel, paramiko.Channel) and bool(channel.closed or channel.eof_received)


class _DialStdioPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, ssh: paramiko.SSHClient, timeout: float, maxsize: int) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=maxsize, block=True)
        self._ssh = ssh
        self._channel_timeout = timeout

    def _new_conn(self) -> _DialStdioConnection:
        return _DialStdioConnection(self._ssh, self._channel_timeout)

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
    """A requests adapter handing out one pool of dial-stdio channels on one SSH connection."""

    def __init__(self, ssh: paramiko.SSHClient, timeout: float) -> None:
        self._ssh = ssh
        self.timeout = timeout
        self._pool: _DialStdioPool | None = None
        self._pool_lock = threading.Lock()
        super().__init__()

    def get_connection(self, url: str | bytes, proxies: Any = None) -> _DialStdioPool:
        # One pool whatever the URL: docker-py's adapters key pools by the full URL,
        # path included, so each endpoint would hold a channel (and a session) of its own.
        with self._pool_lock:
            if self._pool is None:
                self._pool = _DialStdioPool(self._ssh, self.timeout, _MAX_CHANNELS)
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


def docker_client_over_paramiko(client: paramiko.SSHClient, host_name: str,
                                timeout: float = _DEFAULT_TIMEOUT) -> docker.DockerClient:
    """A DockerClient whose every request goes over ``client``'s connection.

    Talks to the engine once, to adopt its API version; raises TransportError with
    the host's own explanation when the engine cannot be reached.
    """
    # use_ssh_client=True builds docker-py's shell-out adapter, which connects lazily;
    # it is replaced below before any request, so no ssh process is ever started.
    api = docker.APIClient(base_url="ssh://reconciler", version=_BOOTSTRAP_API_VERSION, timeout=int(timeout),
                           use_ssh_client=True)
    adapter = _DialStdioAdapter(client, timeout)
    api.mount(_BASE_URL, adapter)
    # Private attributes the SDK itself sets for its ssh:// adapter (docker/api/client.py);
    # the stubs do not declare them.
    api._custom_adapter = adapter  # type: ignore[attr-defined]
    api.base_url = _BASE_URL
    try:
        api._version = api._retrieve_server_version()  # type: ignore[attr-defined]
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise TransportError(f"cannot reach the Docker engine on {host_name}: {_engine_problem(client)}") \
            from exc
    docker_client = docker.DockerClient.__new__(docker.DockerClient)
    docker_client.api = api
    return docker_client
