"""A service the reconciler created and the spec dropped is stopped, disabled and
deleted (unit and environment file); a unit it never owned is left alone, even one
with the same shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.services.support import (
    HOST_TIMEOUT,
    apply_ok,
    assert_no_changes,
    changes,
    file_digest,
    http_service,
    is_active,
    is_enabled,
    plan_json,
    write_spec,
)

pytestmark = pytest.mark.timeout(HOST_TIMEOUT)

NEIGHBOUR = """\
[Unit]
Description=hand-made unit the reconciler does not own
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
"""


def test_dropped_service_is_removed_and_neighbour_kept(fresh_host: TestHost, tmp_path: Path) -> None:
    fresh_host.exec("cat > /etc/systemd/system/neighbour.service && systemctl daemon-reload "
                    "&& systemctl enable --now neighbour", input=NEIGHBOUR)
    spec_dir = write_spec(tmp_path / "spec", fresh_host, services=[
        http_service("keep", 8141), http_service("drop", 8142, environment={"A": "1"})])
    apply_ok(spec_dir)
    assert is_active(fresh_host, "drop") == "active"

    write_spec(spec_dir, fresh_host, services=[http_service("keep", 8141)])
    code, plan = plan_json(spec_dir)
    assert code == 2
    [delete] = changes(plan)
    assert (delete["address"], delete["action"], delete["reason"]) == (
        "services:drop", "delete", "removed-from-spec")
    apply_ok(spec_dir)

    assert is_active(fresh_host, "drop") == "inactive"
    assert is_enabled(fresh_host, "drop") in ("not-found", "")  # is-enabled prints nothing on older systemd
    assert file_digest(fresh_host, "/etc/systemd/system/drop.service") is None
    assert file_digest(fresh_host, "/etc/reconciler/services/drop.env") is None
    assert fresh_host.exec("systemctl show -p LoadState drop.service").stdout.strip() == "LoadState=not-found"
    assert "drop.service" not in fresh_host.exec("ls /etc/systemd/system/multi-user.target.wants/").stdout

    assert is_active(fresh_host, "keep") == "active"
    assert is_active(fresh_host, "neighbour") == "active"
    assert is_enabled(fresh_host, "neighbour") == "enabled"
    assert_no_changes(spec_dir)
