"""A damaged inventory on a host (the owner index or the stack's own file) is a clear
error for that host, never read as "owns nothing" (which would silently stop pruning),
and the file is left as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import cat, reconcile, write_spec

OWNERS = "/var/lib/reconciler/owners.json"
STACK = "/var/lib/reconciler/stacks/spec.json"


@pytest.mark.timeout(300)
def test_damaged_inventory_stops_the_host(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, {"files": [{"path": "/srv/inv/a", "content": "a\n"}]})
    reconcile("apply", spec, check_code=0)

    for path in (STACK, OWNERS):
        good = cat(host, path)
        host.exec(f"printf '{{\"objects\": {{\"files:/srv/inv/a\": ' > {path}")  # cut short mid-write
        for command in ("plan", "apply"):
            proc = reconcile(command, spec, check_code=1)
            assert (f"Error: host web: {path} on web is damaged (Expecting value: line 1 column 34 "
                    "(char 33)); repair it, or move it away to start over (the reconciler then owns nothing "
                    "on this host)") in proc.stdout
        assert cat(host, path) == '{"objects": {"files:/srv/inv/a": '
        host.exec(["sh", "-c", 'cat > "$1"', "sh", path], input=good)
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)  # repaired: nothing to do
