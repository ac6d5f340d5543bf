"""nftables drift: a rule added by hand into the reconciler's table shows in the plan
as exactly that line and is removed on apply; a table the reconciler does not own
is never touched."""

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

USER_TABLE = """table inet mine {
	chain watch {
		type filter hook input priority 10; policy accept;
		tcp dport 9999 counter accept
	}
}
"""


@pytest.mark.timeout(600)
def test_hand_added_rule_is_drift_and_repaired(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    start_listener(host, 8080)
    spec = firewall_spec(tmp_path, host, seed())
    reconcile("apply", spec, check_code=0)
    table = nft_table(host)
    assert table is not None and eventually_answers(host, 80) and not answers(host, 8080)

    # Someone opens 8080 by hand in our table, and adds a table of their own.
    host.exec("nft add rule inet reconciler input tcp dport 8080 accept")
    host.exec("nft -f -", input=USER_TABLE)
    assert answers(host, 8080)

    plan = plan_json(spec)
    change = changes_by_address(plan)["firewall:host"]
    assert (change["action"], change["reason"]) == ("update", "drift")
    assert [(f["path"], f["old"], f["new"]) for f in change["fields"]] == [
        ("rules.incoming[6]", "tcp dport 8080 accept", None)]

    reconcile("apply", spec, check_code=0)
    assert nft_table(host) == table
    assert not answers(host, 8080)
    assert "tcp dport 9999 counter" in host.exec("nft list table inet mine").stdout
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
