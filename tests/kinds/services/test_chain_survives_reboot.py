"""The ServQR dependency chain (database -> backend -> frontend) expressed with
after/requires: three stand-in services come up in order, and again, in the same
order, after the host restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.hosts import TestHost
from testbed.util import wait_until
from tests.kinds.services.support import (
    HOST_TIMEOUT,
    apply_ok,
    assert_no_changes,
    http_service,
    is_active,
    show,
    write_spec,
)

pytestmark = pytest.mark.timeout(HOST_TIMEOUT)

CHAIN = ("chain-db", "chain-backend", "chain-frontend")


def chain_services() -> list[dict[str, Any]]:
    db, backend, frontend = CHAIN
    return [
        # Listed out of order on purpose: the dependencies decide, not the spec's order.
        http_service(frontend, 8133, after=[backend], requires=[backend]),
        http_service(backend, 8132, after=[db], requires=[db]),
        http_service(db, 8131),
    ]


def activation_order(host: TestHost) -> list[str]:
    prop = "ActiveEnterTimestampMonotonic"
    entered = {name: int(show(host, name, prop)[prop]) for name in CHAIN}
    assert all(entered.values()), entered
    return sorted(CHAIN, key=lambda name: entered[name])


def test_chain_starts_in_order_and_after_a_host_restart(fresh_host: TestHost, tmp_path: Path) -> None:
    spec_dir = write_spec(tmp_path / "spec", fresh_host, services=chain_services())
    apply_ok(spec_dir)
    assert [is_active(fresh_host, name) for name in CHAIN] == ["active"] * 3
    assert activation_order(fresh_host) == list(CHAIN)
    deps = show(fresh_host, "chain-frontend", "Requires", "After")
    assert "chain-backend.service" in deps["Requires"] and "chain-backend.service" in deps["After"]

    fresh_host.restart()
    wait_until("the chain to come back after the restart",
               lambda: [is_active(fresh_host, name) for name in CHAIN] == ["active"] * 3, timeout=120)
    assert activation_order(fresh_host) == list(CHAIN)
    for port in (8131, 8132, 8133):
        status = fresh_host.exec(f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/").stdout
        assert status == "200"

    # The SSH port may have moved with the restart; nothing else has.
    write_spec(spec_dir, fresh_host, services=chain_services())
    assert_no_changes(spec_dir)
