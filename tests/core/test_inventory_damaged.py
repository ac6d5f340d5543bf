"""A damaged inventory on a host is a clear error for that host, never read as "owns
nothing" (which would silently stop pruning), and the file is left as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import cat, reconcile, write_spec

INVENTORY = "/var/lib/reconciler/inventory.json"


@pytest.mark.timeout(300)
def test_damaged_inventory_stops_the_host(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, {"files": [{"path": "/srv/inv/a", "content": "a\n"}]})
    reconcile("apply", spec, check_code=0)
    host.exec(f"printf '{{\"objects\": {{\"files:/srv/inv/a\": ' > {INVENTORY}")  # cut short mid-write

    for command in ("plan", "apply"):
        proc = reconcile(command, spec, check_code=1)
        assert (f"Error: host web: {INVENTORY} on web is damaged (Expecting value: line 1 column 34 "
                "(char 33)); repair it, or move it away to start over (the reconciler then owns nothing on "
                "this host)") in proc.stdout
    assert cat(host, INVENTORY) == '{"objects": {"files:/srv/inv/a": '
