"""Prune: when the firewall leaves the spec, the reconciler's table, its boot copy and
unit are removed (the host is open again); nothing else is touched."""

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
def test_firewall_removed_from_spec_is_deleted(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    start_listener(host, 8080)
    reconcile("apply", firewall_spec(tmp_path, host, seed()), check_code=0)
    assert nft_table(host) is not None and not answers(host, 8080)
    tables = set(host.exec("nft list tables").stdout.splitlines())

    spec = firewall_spec(tmp_path, host, None)
    change = changes_by_address(plan_json(spec))["firewall:host"]
    assert (change["action"], change["reason"]) == ("delete", "removed-from-spec")
    reconcile("apply", spec, check_code=0)

    assert nft_table(host) is None
    assert set(host.exec("nft list tables").stdout.splitlines()) == tables - {"table inet reconciler"}
    for path in ("/etc/reconciler/firewall.nft", "/etc/systemd/system/reconciler-firewall.service"):
        assert host.exec(["test", "-e", path], check=False).returncode != 0, path
    assert eventually_answers(host, 8080)
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
