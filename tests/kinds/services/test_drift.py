"""Outside changes to a managed service show as exactly that drift and are reverted:
``systemctl stop``, ``systemctl disable``, a hand edit of the unit file, a hand edit
of its environment file."""

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
    show,
    write_spec,
)

pytestmark = pytest.mark.timeout(HOST_TIMEOUT)

UNIT = "/etc/systemd/system/hello.service"


def drift(spec_dir: Path) -> dict[str, tuple[object, object]]:
    """The one planned change, as {field: (old, new)}; it must be reported as drift."""
    code, plan = plan_json(spec_dir)
    assert code == 2
    [change] = changes(plan)
    assert change["address"] == "services:hello" and change["reason"] == "drift", change
    return {f["path"]: (f["old"], f["new"]) for f in change["fields"]}


def test_outside_changes_are_drift_and_reverted(fresh_host: TestHost, tmp_path: Path) -> None:
    spec_dir = write_spec(tmp_path / "spec", fresh_host, services=[
        http_service("hello", 8101, environment={"GREETING": "hi"})])
    apply_ok(spec_dir)
    managed_unit = file_digest(fresh_host, UNIT)

    fresh_host.exec("systemctl stop hello")
    assert drift(spec_dir) == {"active": ("inactive", "active")}
    apply_ok(spec_dir)
    assert is_active(fresh_host, "hello") == "active"
    assert_no_changes(spec_dir)

    fresh_host.exec("systemctl disable hello")
    assert drift(spec_dir) == {"enabled": ("disabled", "enabled")}
    apply_ok(spec_dir)
    assert is_enabled(fresh_host, "hello") == "enabled"
    assert_no_changes(spec_dir)

    # A hand edit, not yet loaded: systemd runs the old text, and the file is newer than
    # the running process. All three are consequences of the one edit.
    fresh_host.exec(f"sed -i 's/^Restart=on-failure/Restart=always/' {UNIT}")
    before = show(fresh_host, "hello", "InvocationID")["InvocationID"]
    found = drift(spec_dir)
    assert set(found) == {"unit", "need_daemon_reload", "changed_since_start"}
    assert found["need_daemon_reload"] == (True, False)
    assert found["changed_since_start"] == ([UNIT], [])
    apply_ok(spec_dir)
    assert file_digest(fresh_host, UNIT) == managed_unit
    assert show(fresh_host, "hello", "Restart", "NeedDaemonReload") == {"Restart": "on-failure",
                                                                        "NeedDaemonReload": "no"}
    assert show(fresh_host, "hello", "InvocationID")["InvocationID"] != before
    assert_no_changes(spec_dir)

    # A hand edit of the environment: the value is shown (the spec declares it plainly).
    fresh_host.exec("sed -i 's/^GREETING=.*/GREETING=\"edited\"/' /etc/reconciler/services/hello.env")
    found = drift(spec_dir)
    assert found["environment.GREETING"] == ("edited", "hi")
    apply_ok(spec_dir)
    pid = show(fresh_host, "hello", "MainPID")["MainPID"]
    assert "GREETING=hi" in fresh_host.exec(f"tr '\\0' '\\n' < /proc/{pid}/environ").stdout.splitlines()
    assert_no_changes(spec_dir)
