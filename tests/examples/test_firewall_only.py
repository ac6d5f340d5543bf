"""examples/firewall-only on a real host: after apply, nft shows the example's rules in
our own table, a published port the policy closes (8080) stops answering from the
test runner while 80 still does, and a second plan is empty."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testbed.demo import point_hosts_at
from testbed.hosts import TestHost
from testbed.util import REPO_ROOT
from tests.kinds.firewall.support import answers, eventually_answers, nft_table, start_listener
from tests.support.harness import changes_by_address, plan_json, reconcile

EXAMPLE = REPO_ROOT / "examples" / "firewall-only"


@pytest.mark.timeout(600)
def test_firewall_only_example_converges(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = tmp_path / "firewall-only"
    shutil.copytree(EXAMPLE, spec)
    point_hosts_at(spec, {"web": host})
    start_listener(host, 8080)
    assert eventually_answers(host, 80) and answers(host, 8080), "both ports must answer before the firewall"

    change = changes_by_address(plan_json(spec))["firewall:host"]
    assert change["action"] == "create"
    assert nft_table(host) is None, "plan must not touch the host"

    reconcile("apply", spec, check_code=0)

    table = nft_table(host)
    assert table is not None
    for line in ("type filter hook input priority filter; policy drop;",
                 "type filter hook output priority filter; policy accept;",
                 'tcp dport 22 accept comment "ssh"',
                 'tcp dport { 80, 443 } accept comment "web"',
                 'ip saddr 10.0.0.0/8 tcp dport 9100 accept comment "node exporter (private network)"',
                 'tcp dport 9100 log prefix "[reconciler] " drop comment "node exporter (elsewhere)"'):
        assert line in table, f"{line!r} not in:\n{table}"
    # The CIDR rule comes before the catch-all drop for the same port.
    assert table.index("ip saddr 10.0.0.0/8") < table.index("log prefix")

    # Through the host's firewall from outside: 80 is open, the listener on 8080 is not.
    assert answers(host, 80)
    assert not answers(host, 8080)

    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
