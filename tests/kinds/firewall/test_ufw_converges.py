"""ufw backend on a real host: the seed's policy converges through ufw commands (ufw
status confirms it, the closed port stops answering while 80 does), a rule the
reconciler does not own is listed as unmanaged and kept, and a second run finds
nothing to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.firewall.support import (
    answers,
    eventually_answers,
    firewall_spec,
    nft_table,
    seed,
    start_listener,
    ufw_status,
)
from tests.support.harness import changes_by_address, plan_json, reconcile

UNOWNED = "ufw rule: allow in proto tcp from any to any port 9999"


@pytest.mark.timeout(600)
def test_seed_policy_converges_with_ufw(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    start_listener(host, 8080)
    host.exec("ufw allow 9999/tcp")  # the admin's own rule, made while ufw is still inactive
    assert "Status: inactive" in ufw_status(host)
    spec = firewall_spec(tmp_path, host, seed(backend="ufw"))

    plan = plan_json(spec)
    [host_plan] = plan["hosts"]
    assert host_plan["unmanaged"] == [UNOWNED]
    fields = {f["path"]: f["new"] for f in changes_by_address(plan)["firewall:host"]["fields"]}
    assert fields["backend"] == "ufw" and fields["enabled"] is True
    assert fields["rules"]["incoming"] == [
        "allow in proto tcp from any to any port 22 comment 'reconciler: ssh'",
        "allow in proto tcp from any to any port 80,443 comment 'reconciler: web'"]
    assert "Status: inactive" in ufw_status(host), "plan must not change the host"

    reconcile("apply", spec, check_code=0)

    status = ufw_status(host)
    assert "Status: active" in status
    assert "Default: deny (incoming), allow (outgoing)" in status
    assert "22/tcp                     ALLOW IN    Anywhere                   # reconciler: ssh" in status
    assert "80,443/tcp                 ALLOW IN    Anywhere                   # reconciler: web" in status
    assert "9999/tcp                   ALLOW IN    Anywhere" in status
    assert nft_table(host) is None, "the ufw backend leaves nftables to ufw"
    assert eventually_answers(host, 80)
    assert not answers(host, 8080)
    assert "reconciler-firewall-rollback" not in host.exec("systemctl list-timers --all --no-pager").stdout

    proc = reconcile("plan", spec, "--detailed-exitcode", check_code=0)
    assert f"Unmanaged on web (left alone): {UNOWNED}" in proc.stdout
    reconcile("apply", spec, check_code=0)
    assert ufw_status(host) == status
