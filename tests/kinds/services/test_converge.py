"""A service converges on a real host: installed with the ownership header, enabled,
running and answering; the next plan is empty; planning changes nothing on the host."""

from __future__ import annotations

import re
import shlex
import time
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
    journal_cursor,
    plan_json,
    reconcile,
    show,
    write_spec,
)

pytestmark = pytest.mark.timeout(HOST_TIMEOUT)


def snapshot(host: TestHost) -> dict[str, object]:
    """What a plan must not touch."""
    return {"unit": file_digest(host, "/etc/systemd/system/hello.service"),
            "env": file_digest(host, "/etc/reconciler/services/hello.env"),
            "show": show(host, "hello", "InvocationID", "ActiveState", "UnitFileState", "NRestarts")}


def test_service_converges_and_second_plan_is_empty(fresh_host: TestHost, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec", fresh_host, services=[
        http_service("hello", 8101, environment={"GREETING": "hi", "PORT": 8101},
                     limits={"memory_max": "128M", "nofile": 4096})])

    code, plan = plan_json(spec)
    assert code == 2
    [create] = changes(plan)
    assert create["address"] == "services:hello" and create["action"] == "create"
    assert is_active(fresh_host, "hello") == "inactive"  # a plan changes nothing

    apply_ok(spec)
    assert is_active(fresh_host, "hello") == "active"
    assert is_enabled(fresh_host, "hello") == "enabled"
    assert fresh_host.exec("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8101/").stdout == "200"
    unit = fresh_host.exec("cat /etc/systemd/system/hello.service").stdout
    assert unit.startswith("# Managed by reconciler; do not edit.")
    # Limits and sandboxing are in force, not just written down.
    props = show(fresh_host, "hello", "MemoryMax", "LimitNOFILE", "ProtectSystem", "NoNewPrivileges",
                 "PrivateUsers", "CapabilityBoundingSet")
    assert props == {"MemoryMax": str(128 << 20), "LimitNOFILE": "4096", "ProtectSystem": "strict",
                     "NoNewPrivileges": "yes", "PrivateUsers": "yes", "CapabilityBoundingSet": ""}
    # The environment is in a root-only file and reaches the process.
    assert fresh_host.exec("stat -c '%a %U' /etc/reconciler/services/hello.env").stdout.strip() == "600 root"
    pid = show(fresh_host, "hello", "MainPID")["MainPID"]
    environ = fresh_host.exec(f"tr '\\0' '\\n' < /proc/{pid}/environ").stdout.splitlines()
    assert "GREETING=hi" in environ and "PORT=8101" in environ

    assert_no_changes(spec)


def test_plan_leaves_the_host_untouched(fresh_host: TestHost, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec", fresh_host, services=[
        http_service("hello", 8101, environment={"GREETING": "hi"})])
    apply_ok(spec)
    before = snapshot(fresh_host)

    # A spec that changes everything it can: unit, environment, enablement, state.
    write_spec(tmp_path / "spec", fresh_host, services=[
        http_service("hello", 8102, environment={"GREETING": "bye"}, enabled=False, state="stopped")])
    proc = reconcile("plan", str(spec), "--detailed-exitcode")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    for expected in (r"~ services:hello", r'environment\.GREETING\s+= "hi" -> "bye"',
                     r'enabled\s+= "enabled" -> "disabled"', r'active\s+= "active" -> "inactive"'):
        assert re.search(expected, proc.stdout), proc.stdout
    proc = reconcile("apply", "--dry-run", str(spec))
    assert proc.returncode == 0, proc.stdout + proc.stderr

    assert snapshot(fresh_host) == before


def daemon_reloads_since(host: TestHost, cursor: str) -> int:
    """systemd logs "Reloading." once per daemon-reload (its own or one hidden in
    systemctl enable/disable)."""
    time.sleep(1.5)  # journald receives PID 1's messages asynchronously
    # Not filtered with _PID=1: that entry sometimes lacks the trusted _PID field.
    out = host.exec(f"journalctl --after-cursor={shlex.quote(cursor)} -o short --no-pager").stdout
    return sum(1 for line in out.splitlines() if line.endswith(" systemd[1]: Reloading."))


def test_one_daemon_reload_per_run(fresh_host: TestHost, tmp_path: Path) -> None:
    names = ("one", "two", "three")
    spec = write_spec(tmp_path / "spec", fresh_host,
                      services=[http_service(n, 8111 + i) for i, n in enumerate(names)])
    cursor = journal_cursor(fresh_host)
    apply_ok(spec)
    assert [is_enabled(fresh_host, n) for n in names] == ["enabled"] * 3
    assert daemon_reloads_since(fresh_host, cursor) == 1

    # Every unit changes, one is also disabled: still one reload.
    write_spec(tmp_path / "spec", fresh_host, services=[
        http_service(n, 8111 + i, description=f"renamed {n}", enabled=n != "two")
        for i, n in enumerate(names)])
    cursor = journal_cursor(fresh_host)
    apply_ok(spec)
    assert is_enabled(fresh_host, "two") == "disabled"
    assert daemon_reloads_since(fresh_host, cursor) == 1
    assert_no_changes(spec)
