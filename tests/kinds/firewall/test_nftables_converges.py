"""nftables backend on a real host: the seed's policy converges (nft confirms it, the
port it closes stops answering while 80 still does), plan alone changes nothing, and
a second run finds nothing to do."""

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
)
from tests.support.harness import changes_by_address, plan_json, reconcile


@pytest.mark.timeout(600)
def test_seed_policy_converges_with_nftables(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    start_listener(host, 8080)
    assert eventually_answers(host, 80) and answers(host, 8080), "both ports must answer before the firewall"
    spec = firewall_spec(tmp_path, host, seed())
    tables_before = host.exec("nft list tables").stdout

    # Plan: one create, and the host is untouched.
    plan = plan_json(spec)
    change = changes_by_address(plan)["firewall:host"]
    assert (change["action"], change["reason"]) == ("create", "absent")
    assert {f["path"]: f["new"] for f in change["fields"]}["backend"] == "nftables"
    assert host.exec("nft list tables").stdout == tables_before
    assert nft_table(host) is None

    proc = reconcile("apply", spec, check_code=0)
    assert "Apply complete! 1 applied, 0 failed, 0 skipped." in proc.stdout

    # nft itself confirms the table; other tables (Docker's) are still there.
    table = nft_table(host)
    assert table is not None
    assert "type filter hook input priority filter; policy drop;" in table
    assert "type filter hook output priority filter; policy accept;" in table
    assert "ct state established,related accept" in table
    assert 'tcp dport 22 accept comment "ssh"' in table
    assert 'tcp dport { 80, 443 } accept comment "web"' in table
    assert set(tables_before.splitlines()) <= set(host.exec("nft list tables").stdout.splitlines())

    # The closed port no longer answers from outside; the open one does.
    assert answers(host, 80)
    assert not answers(host, 8080)
    assert host.exec("curl -sf -o /dev/null http://127.0.0.1:8080/", check=False).returncode == 0, \
        "loopback traffic inside the host is always accepted"

    # Confirmed: the rollback timer is gone; persisted for boot.
    assert "reconciler-firewall-rollback" not in host.exec("systemctl list-timers --all --no-pager").stdout
    assert host.exec(["systemctl", "is-enabled", "reconciler-firewall.service"]).stdout.strip() == "enabled"
    assert "tcp dport 22 accept" in host.exec(["cat", "/etc/reconciler/firewall.nft"]).stdout

    # A second run changes nothing.
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
    proc = reconcile("apply", spec, check_code=0)
    assert "No changes. The hosts match the spec." in proc.stdout
    assert nft_table(host) == table
