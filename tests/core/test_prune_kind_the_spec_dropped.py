"""Prune still works for a kind the spec no longer names at all: load_spec loads only
the spec's kinds, and the engine loads the providers of the kinds the host's
inventory holds (reconciler.engine, HostSession._load_inventory_kinds). First the
``directories`` key leaves the spec, then every kind does (a spec of hosts only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import changes_by_address, exists, inventory, plan_json, reconcile, write_spec

KEEP = {"path": "/srv/dropped-kind.conf", "content": "keep\n"}
MADE_DIR = {"path": "/srv/dropped-kind"}


@pytest.mark.timeout(300)
def test_kind_that_left_the_spec_is_pruned(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, {"directories": [MADE_DIR], "files": [KEEP]})
    reconcile("apply", spec, check_code=0)
    assert exists(host, "/srv/dropped-kind")
    assert set(inventory(host)["objects"]) == {"directories:/srv/dropped-kind",
                                               "files:/srv/dropped-kind.conf"}

    write_spec(spec, {"web": host}, {"files": [KEEP]})
    changes = changes_by_address(plan_json(spec))
    assert set(changes) == {"directories:/srv/dropped-kind"}
    assert changes["directories:/srv/dropped-kind"]["action"] == "delete"
    assert changes["directories:/srv/dropped-kind"]["reason"] == "removed-from-spec"
    reconcile("apply", spec, check_code=0)
    assert not exists(host, "/srv/dropped-kind")
    assert exists(host, "/srv/dropped-kind.conf")

    write_spec(spec, {"web": host}, {})
    changes = changes_by_address(plan_json(spec))
    assert set(changes) == {"files:/srv/dropped-kind.conf"}
    assert changes["files:/srv/dropped-kind.conf"]["action"] == "delete"
    reconcile("apply", spec, check_code=0)
    assert not exists(host, "/srv/dropped-kind.conf")
    assert inventory(host)["objects"] == {}
