"""A container someone else made, with the name the spec wants, is reported and never
touched: creating ours fails with a clear message, and the stranger keeps running."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from tests.kinds.containers.support import inspect, plan_json, reconcile, write_spec


@pytest.mark.timeout(600)
def test_unowned_container_with_the_spec_name_is_left_alone(fresh_host: TestHost, testbed_images: Images,
                                                           tmp_path: Path) -> None:
    host = fresh_host
    host.load_image(testbed_images.busybox)
    host.exec(["docker", "run", "-d", "--name", "app", testbed_images.busybox, "sleep", "3600"])
    theirs = inspect(host, "app")
    assert theirs is not None
    spec = write_spec(tmp_path / "spec", host, containers=[
        {"name": "app", "image": testbed_images.busybox, "pull": "never", "command": ["sleep", "60"]}])

    plan = plan_json(spec)["hosts"][0]
    assert [(c["address"], c["action"]) for c in plan["changes"]] == [("containers:app", "create")]
    [note] = [u for u in plan["unmanaged"] if u.startswith("container app ")]
    assert "has the name of containers:app in the spec" in note

    result = reconcile("apply", spec)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert ("a container named app already exists on web, owned by someone else: it has no "
            "io.reconciler.managed label, so it is left alone") in output
    assert "Traceback" not in output
    after = inspect(host, "app")
    assert after is not None
    assert (after["Id"], after["State"]["Running"], after["Config"]["Cmd"]) == (theirs["Id"], True,
                                                                                 ["sleep", "3600"])
