"""A failed health check is not forgotten. Before the fix the service was "converged"
as soon as it ran: the next plan showed nothing and the next apply exited 0 while
the service was still unhealthy. Now the failure is remembered on the host: the next
plan shows the service pending (``health: unhealthy -> healthy``), every apply
restarts and checks it again and fails until the check passes, and then the plan is
empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.services.support import (
    HOST_TIMEOUT,
    assert_no_changes,
    changes,
    plan_json,
    reconcile,
    write_spec,
)

pytestmark = pytest.mark.timeout(HOST_TIMEOUT)

MARKER = "/var/lib/reconciler/services/gated.unhealthy"


def test_unhealthy_service_stays_pending_until_healthy(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec_dir = write_spec(tmp_path / "spec", host, services=[
        {"name": "gated", "exec": ["/bin/sleep", "infinity"],
         "health": {"command": ["/usr/bin/test", "-e", "/run/gated-ok"], "timeout": 3}}])

    first = reconcile("apply", str(spec_dir))
    assert first.returncode == 1, first.stdout + first.stderr
    assert "gated.service is unhealthy after 3s" in first.stdout
    assert host.exec(["test", "-e", MARKER], check=False).returncode == 0

    code, plan = plan_json(spec_dir)
    assert code == 2
    [change] = changes(plan)
    assert change["address"] == "services:gated"
    assert [(f["path"], f["old"], f["new"]) for f in change["fields"]] == [("health", "unhealthy", "healthy")]

    again = reconcile("apply", str(spec_dir))
    assert again.returncode == 1, again.stdout + again.stderr
    assert "gated.service is unhealthy after 3s" in again.stdout

    host.exec(["touch", "/run/gated-ok"])
    healed = reconcile("apply", str(spec_dir))
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert host.exec(["test", "-e", MARKER], check=False).returncode != 0
    assert_no_changes(spec_dir)
