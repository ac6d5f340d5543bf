"""A service restarts exactly once when what it runs with changes: its environment,
or a resource named in restart_on (a config file managed by files:). A change to
something it does not depend on leaves it running."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.services.support import (
    HOST_TIMEOUT,
    apply_ok,
    assert_no_changes,
    changes,
    http_service,
    journal_cursor,
    plan_json,
    show,
    starts_since,
    write_spec,
)

pytestmark = pytest.mark.timeout(HOST_TIMEOUT)


def process_environment(host: TestHost, unit: str) -> list[str]:
    pid = show(host, unit, "MainPID")["MainPID"]
    return host.exec(f"tr '\\0' '\\n' < /proc/{pid}/environ").stdout.splitlines()


def test_environment_change_restarts_exactly_once(fresh_host: TestHost, tmp_path: Path) -> None:
    spec_dir = tmp_path / "spec"
    write_spec(spec_dir, fresh_host, services=[http_service("hello", 8101, environment={"GREETING": "hi"})])
    apply_ok(spec_dir)
    before = show(fresh_host, "hello", "InvocationID", "NRestarts")
    cursor = journal_cursor(fresh_host)

    write_spec(spec_dir, fresh_host,
               services=[http_service("hello", 8101, environment={"GREETING": "hello"})])
    code, plan = plan_json(spec_dir)
    assert code == 2
    [change] = changes(plan)
    fields = [(f["path"], f["old"], f["new"]) for f in change["fields"]]
    assert fields == [("environment.GREETING", "hi", "hello")]
    apply_ok(spec_dir)

    after = show(fresh_host, "hello", "InvocationID", "NRestarts")
    assert after["InvocationID"] != before["InvocationID"]
    assert after["NRestarts"] == before["NRestarts"] == "0"  # restarted by us, not by a crash
    assert starts_since(fresh_host, "hello", cursor) == 1
    assert "GREETING=hello" in process_environment(fresh_host, "hello")
    assert_no_changes(spec_dir)


def test_restart_on_file_change_triggers_one_restart(fresh_host: TestHost, tmp_path: Path) -> None:
    spec_dir = tmp_path / "spec"

    def spec(motd: str, unrelated: str) -> None:
        write_spec(spec_dir, fresh_host,
                   files=[{"path": "/etc/hello/motd.txt", "content": motd},
                          {"path": "/etc/hello/unrelated.txt", "content": unrelated}],
                   services=[http_service("hello", 8101, restart_on=["files:/etc/hello/motd.txt"])])

    spec("v1\n", "a\n")
    apply_ok(spec_dir)
    first = show(fresh_host, "hello", "InvocationID")["InvocationID"]

    # A file the service does not name: it keeps running.
    spec("v1\n", "b\n")
    code, plan = plan_json(spec_dir)
    assert code == 2
    assert [c["address"] for c in changes(plan)] == ["files:/etc/hello/unrelated.txt"]
    apply_ok(spec_dir)
    assert show(fresh_host, "hello", "InvocationID")["InvocationID"] == first

    # The file it names: the plan says the service will restart, and why.
    spec("v2\n", "b\n")
    code, plan = plan_json(spec_dir)
    assert code == 2
    planned = {c["address"]: c for c in changes(plan)}
    assert list(planned) == ["files:/etc/hello/motd.txt", "services:hello"]
    assert planned["services:hello"]["reason"] == "triggered"
    assert planned["services:hello"]["note"] == "triggered by files:/etc/hello/motd.txt"
    cursor = journal_cursor(fresh_host)
    apply_ok(spec_dir)
    assert show(fresh_host, "hello", "InvocationID")["InvocationID"] != first
    assert starts_since(fresh_host, "hello", cursor) == 1
    assert_no_changes(spec_dir)
