"""A container that never becomes healthy fails the apply with its last log lines, and
what depends on it is not started; the next plan still shows it as unconverged."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from tests.kinds.containers.support import container_names, planned_changes, reconcile, write_spec


@pytest.mark.timeout(600)
def test_unhealthy_container_fails_apply_and_blocks_dependents(fresh_host: TestHost, testbed_images: Images,
                                                                tmp_path: Path) -> None:
    host = fresh_host
    host.load_image(testbed_images.busybox)
    image = testbed_images.busybox
    spec = write_spec(tmp_path / "spec", host, containers=[
        {"name": "backend", "image": image, "pull": "never", "command": ["sleep", "3600"],
         "depends_on": ["containers:db"]},
        {"name": "db", "image": image, "pull": "never",
         "command": ["sh", "-c", "echo 'FATAL: could not open data dir (marker 7f3a)'; exec sleep 3600"],
         "healthcheck": {"test": "exit 1", "interval": "1s", "retries": 2}, "wait_timeout": "120s"},
    ])

    result = reconcile("apply", spec)

    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "container db is unhealthy" in output
    assert "FATAL: could not open data dir (marker 7f3a)" in output, "the failure shows the container's logs"
    assert "skipped: depends on containers:db, which failed" in output
    assert "Traceback" not in output
    assert container_names(host) == {"db"}, "the dependent was not started"

    changes = {c["address"]: c for c in planned_changes(spec)}
    assert changes["containers:db"]["action"] == "update"
    assert [(f["path"], f["old"], f["new"]) for f in changes["containers:db"]["fields"]] == [
        ("health", "unhealthy", "healthy")]
    assert changes["containers:backend"]["action"] == "create"
