"""``pull: never`` with an image the host does not have fails the apply (exit 1) with a
message saying what to do, not a traceback, and creates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.containers.support import container_names, reconcile, write_spec


@pytest.mark.timeout(600)
def test_missing_image_with_pull_never_is_a_clear_error(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    host.wait_docker()
    spec = write_spec(tmp_path / "spec", host, containers=[
        {"name": "api", "image": "reconciler-testbed/not-loaded:1.0", "pull": "never"}])

    result = reconcile("apply", spec)

    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert ("image reconciler-testbed/not-loaded:1.0 is not on host web and pull is never; "
            "load it with docker load") in output
    assert "Traceback" not in output
    assert container_names(host) == set()
