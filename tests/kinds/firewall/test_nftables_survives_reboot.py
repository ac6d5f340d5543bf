"""The confirmed nftables rules survive a reboot: reconciler-firewall.service loads our
table at boot, and the user's own /etc/nftables.conf is never touched."""

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
from tests.support.harness import reconcile


@pytest.mark.timeout(600)
def test_table_is_back_after_reboot(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    conf_before = host.exec(["sha256sum", "/etc/nftables.conf"]).stdout
    spec = firewall_spec(tmp_path, host, seed())
    reconcile("apply", spec, check_code=0)
    table = nft_table(host)
    assert table is not None

    host.restart()
    spec = firewall_spec(tmp_path, host, seed())  # Docker publishes SSH on a new port

    assert nft_table(host) == table
    assert host.exec(["systemctl", "is-active", "reconciler-firewall.service"]).stdout.strip() == "active"
    assert host.exec(["sha256sum", "/etc/nftables.conf"]).stdout == conf_before
    start_listener(host, 8080)
    assert eventually_answers(host, 80)
    assert not answers(host, 8080)
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
