"""ufw drift: one of the reconciler's rules deleted by hand shows in the plan as that
rule missing and is put back on apply; the admin's own rule is never touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.firewall.support import answers, eventually_answers, firewall_spec, seed, ufw_status
from tests.support.harness import changes_by_address, plan_json, reconcile

WEB = "allow in proto tcp from any to any port 80,443 comment 'reconciler: web'"


@pytest.mark.timeout(600)
def test_deleted_rule_is_drift_and_repaired(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = firewall_spec(tmp_path, host, seed(backend="ufw"))
    reconcile("apply", spec, check_code=0)
    host.exec("ufw allow 9999/tcp")
    assert eventually_answers(host, 80)

    host.exec("ufw delete allow 80,443/tcp")
    assert not answers(host, 80)

    plan = plan_json(spec)
    change = changes_by_address(plan)["firewall:host"]
    assert (change["action"], change["reason"]) == ("update", "drift")
    assert [(f["path"], f["old"], f["new"]) for f in change["fields"]] == [("rules.incoming[1]", None, WEB)]
    assert plan["hosts"][0]["unmanaged"] == ["ufw rule: allow in proto tcp from any to any port 9999"]

    reconcile("apply", spec, check_code=0)
    assert eventually_answers(host, 80)
    status = ufw_status(host)
    assert "# reconciler: web" in status and "9999/tcp" in status
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
