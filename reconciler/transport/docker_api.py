"""A Docker SDK client that talks to a remote engine over an existing paramiko connection.

docker-py's own ``ssh://`` support opens a second SSH connection of its own. To keep
one connection per host we reuse its adapter but hand it our client: every HTTP
connection becomes a channel running ``docker system dial-stdio`` on the host.
"""

from __future__ import annotations

from typing import Any

import docker
import paramiko
from docker.transport.sshconn import SSHHTTPAdapter

from reconciler.errors import TransportError

# Any API version works for the bootstrap request; the real one is negotiated below.
_BOOTSTRAP_API_VERSION = "1.41"


class _SharedParamikoAdapter(SSHHTTPAdapter):  # type: ignore[misc]
    def __init__(self, client: paramiko.SSHClient, timeout: int = 120) -> None:
        self._shared = client
        super().__init__("ssh://reconciler", timeout=timeout)

    def _create_paramiko_client(self, base_url: str) -> None:
        self.ssh_client = self._shared
        self.ssh_params: dict[str, Any] = {}

    def _connect(self) -> None:
        # The connection belongs to the transport; it is already open.
        return None

    def close(self) -> None:
        # Close our pools but never the shared SSH connection.
        self.pools.clear()


def docker_client_over_paramiko(client: paramiko.SSHClient, host_name: str) -> docker.DockerClient:
    api = docker.APIClient(base_url="tcp://127.0.0.1:9", version=_BOOTSTRAP_API_VERSION, timeout=120)
    adapter = _SharedParamikoAdapter(client)
    api.mount("http+docker://ssh", adapter)
    api._custom_adapter = adapter
    api.base_url = "http+docker://ssh"
    try:
        api._version = api._retrieve_server_version()
    except docker.errors.DockerException as exc:
        raise TransportError(f"cannot reach the Docker engine on {host_name}: {exc}") from exc
    dc = docker.DockerClient.__new__(docker.DockerClient)
    dc.api = api
    return dc
