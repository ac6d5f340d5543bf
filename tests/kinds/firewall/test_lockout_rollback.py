"""Commit-confirmed apply: rules that cut the reconciler's own SSH path (allowed by the
override) are rolled back by the host itself within the confirm window; SSH works
again, the previous rules are back, and apply exits 1 saying exactly that."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.firewall.support import eventually_answers, firewall_spec, nft_table, seed, ufw_status
from tests.support.harness import changes_by_address, plan_json, reconcile

CONFIRM_SECONDS = 10
# Drops every new incoming connection but web: 22 included.
CUTS_SSH = seed(allow_management_port_block=True, confirm_seconds=CONFIRM_SECONDS,
                rules=[{"port": [80, 443], "comment": "web"}])


def firewall_state(host: TestHost, backend: str) -> str:
    if backend == "nftables":
        return (nft_table(host) or "") + host.exec(["sha256sum", "/etc/reconciler/firewall.nft"]).stdout
    return ufw_status(host) + host.exec("cat /etc/ufw/user.rules /etc/ufw/user6.rules").stdout


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["nftables", "ufw"])
def test_rules_that_cut_ssh_are_rolled_back_by_the_host(fresh_host: TestHost, tmp_path: Path,
                                                        backend: str) -> None:
    host = fresh_host
    reconcile("apply", firewall_spec(tmp_path, host, seed(backend=backend)), check_code=0)
    before = firewall_state(host, backend)

    spec = firewall_spec(tmp_path, host, {**CUTS_SSH, "backend": backend})
    proc = reconcile("plan", spec, "--detailed-exitcode", check_code=2)
    assert "warning:" in proc.stderr and "allow_management_port_block is true" in proc.stderr

    started = time.monotonic()
    proc = reconcile("apply", spec, check_code=1)
    elapsed = time.monotonic() - started
    out = " ".join(proc.stdout.split())
    assert "FAILED" in out
    assert "the new firewall rules cut new SSH logins to port 22" in out
    assert (f"the host restored the previous rules by itself after {CONFIRM_SECONDS} s and SSH logins work "
            "again") in out
    assert "Traceback" not in proc.stdout + proc.stderr
    assert elapsed >= CONFIRM_SECONDS, "apply must wait for the host's own restore"

    # The host restored the previous rules on its own, and persisted nothing new.
    assert firewall_state(host, backend) == before
    assert host.ssh_exec("true", check=False).returncode == 0
    assert eventually_answers(host, 80)
    # The refused change is still pending: the next plan shows it again.
    change = changes_by_address(plan_json(spec))["firewall:host"]
    assert change["action"] == "update"
