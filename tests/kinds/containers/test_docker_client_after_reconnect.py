"""A long-lived SSH transport (the controller keeps them between runs) that lost its
connection gives a Docker client on the new connection, not one bound to the dead one."""

from __future__ import annotations

import pytest
import requests

from reconciler.transport.ssh import SSHTransport
from testbed.hosts import TestHost


@pytest.mark.timeout(300)
def test_docker_client_follows_the_reconnected_transport(fresh_host: TestHost) -> None:
    host = fresh_host
    host.wait_docker()
    transport = SSHTransport("web", host.ssh_url, identity_file=str(host.key_path),
                             known_hosts=str(host.known_hosts_path))
    try:
        before = transport.docker_client()
        assert before.api.containers(all=True) == []
        assert transport.docker_client() is before, "one client per connection"

        transport.client.get_transport().close()  # type: ignore[union-attr]  # the connection drops
        with pytest.raises(requests.exceptions.ConnectionError, match="SSH connection to the host is closed"):
            before.api.containers(all=True)

        after = transport.docker_client()
        assert after is not before
        assert after.api.containers(all=True) == []
        assert after.version()["Components"], "the engine answers on the new connection"
    finally:
        transport.close()
