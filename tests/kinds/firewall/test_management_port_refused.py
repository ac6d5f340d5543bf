"""A spec that would block the SSH port the reconciler manages the host over is refused
at plan time with a message that says why and what to do; nothing is changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.firewall.support import firewall_spec, nft_table, seed, ufw_status
from tests.support.harness import reconcile

WEB_ONLY = [{"port": [80, 443], "comment": "web"}]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["auto", "ufw"])
def test_blocking_the_management_port_is_refused(shared_host: TestHost, tmp_path: Path, backend: str) -> None:
    host = shared_host
    spec = firewall_spec(tmp_path, host, seed(backend=backend, rules=WEB_ONLY))
    for command in ("plan", "apply"):
        proc = reconcile(command, spec, "--detailed-exitcode", check_code=1)
        assert ("firewall: refusing a spec that would block new SSH logins on port 22, the port the "
                "reconciler manages this host over: policy.incoming is drop and no rule accepts tcp port 22 "
                "from ") in proc.stdout
        assert "allow_management_port_block: true" in proc.stdout
        assert "Traceback" not in proc.stdout + proc.stderr
    assert nft_table(host) is None
    assert "Status: inactive" in ufw_status(host)


@pytest.mark.timeout(600)
def test_a_drop_rule_before_the_ssh_rule_is_named(shared_host: TestHost, tmp_path: Path) -> None:
    rules = [{"port": "1-1024", "action": "drop"}, {"port": 22}]
    spec = firewall_spec(tmp_path, shared_host, seed(rules=rules))
    proc = reconcile("plan", spec, check_code=1)
    assert "rules[0] (drop tcp port 1-1024) matches new connections to port 22" in proc.stdout
