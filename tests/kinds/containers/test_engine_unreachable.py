"""A host whose Docker engine is down: the plan fails for that host with the host's own
explanation (exit 1), not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.containers.support import reconcile, write_spec


@pytest.mark.timeout(600)
def test_engine_down_is_a_clear_host_error(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    host.wait_docker()
    host.exec("systemctl stop docker.socket docker.service")
    spec = write_spec(tmp_path / "spec", host,
                      containers=[{"name": "api", "image": "busybox", "pull": "never"}])

    result = reconcile("plan", spec)

    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "cannot reach the Docker engine on web" in output
    assert "Cannot connect to the Docker daemon" in output, "the host's own words"
    assert "Traceback" not in output
