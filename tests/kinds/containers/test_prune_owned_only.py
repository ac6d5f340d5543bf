"""Prune removes the containers the reconciler created and nothing else: an unowned
container (started by hand) is shown and left alone, named volumes are kept unless
the container was created with ``remove_volumes_on_prune``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from tests.kinds.containers.support import (
    SLEEP_COMMAND,
    applied,
    assert_no_changes,
    container_names,
    inspect,
    plan_json,
    write_spec,
)


def sleeper(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "pull": "never", "command": SLEEP_COMMAND, **extra}


@pytest.mark.timeout(600)
def test_prune_removes_owned_containers_only(fresh_host: TestHost, testbed_images: Images,
                                             tmp_path: Path) -> None:
    host = fresh_host
    host.load_image(testbed_images.busybox)
    image = testbed_images.busybox
    keep = sleeper("keep", image)
    spec = write_spec(tmp_path / "spec", host, containers=[
        keep,
        sleeper("old-worker", image, volumes=[{"name": "worker-cache", "target": "/cache"}]),
        sleeper("old-cache", image, volumes=[{"name": "scratch", "target": "/scratch"}],
                remove_volumes_on_prune=True),
    ])
    applied(spec)
    host.exec(["docker", "run", "-d", "--name", "by-hand", image, "sleep", "3600"])
    by_hand = inspect(host, "by-hand")
    assert by_hand is not None

    write_spec(tmp_path / "spec", host, containers=[keep])
    plan = plan_json(spec)["hosts"][0]
    assert sorted((c["address"], c["action"]) for c in plan["changes"]) == [
        ("containers:old-cache", "delete"), ("containers:old-worker", "delete")]
    assert any(u.startswith("container by-hand ") for u in plan["unmanaged"])

    applied(spec)
    assert container_names(host) == {"keep", "by-hand"}
    still = inspect(host, "by-hand")
    assert still is not None and still["Id"] == by_hand["Id"] and still["State"]["Running"]
    volumes = set(host.exec(["docker", "volume", "ls", "-q"]).stdout.split())
    assert "worker-cache" in volumes, "named volumes outlive a pruned container by default"
    assert "scratch" not in volumes, "remove_volumes_on_prune deletes the volume the reconciler created"
    assert_no_changes(spec)
