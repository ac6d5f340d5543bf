"""``--host`` limits a run to the named hosts; an unreachable host (a closed port on
127.0.0.1) is a clear error for that host and exit 1, while the other hosts are still
planned and applied."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from testbed.hosts import HostFactory, TestHost
from tests.support.harness import cat, exists, host_entry, reconcile, write_spec

FILES = {"files": [{"path": "/srv/sel/hello.txt", "content": "hello ${host}\n"}]}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.timeout(400)
def test_host_option_limits_the_run(host_factory: HostFactory, tmp_path: Path) -> None:
    web, db = host_factory.many(2, names=["sel-web", "sel-db"])
    spec = write_spec(tmp_path / "spec", {"web": web, "db": db}, FILES)

    plan = json.loads(reconcile("plan", spec, "--host", "db", "--output", "json", check_code=0).stdout)
    assert [h["host"] for h in plan["hosts"]] == ["db"]

    proc = reconcile("apply", spec, "--host", "web", check_code=0)
    assert "web: files:/srv/sel/hello.txt (create)" in proc.stdout
    assert "db" not in proc.stdout
    assert cat(web, "/srv/sel/hello.txt") == "hello web\n"
    assert not exists(db, "/srv/sel")
    assert not exists(db, "/var/lib/reconciler")

    # Without --host every host is planned; only db has work left.
    plan = json.loads(reconcile("plan", spec, "--output", "json", check_code=0).stdout)
    assert {h["host"]: len(h["changes"]) for h in plan["hosts"]} == {"web": 0, "db": 1}

    proc = reconcile("plan", spec, "--host", "cache", check_code=1)
    assert proc.stderr.strip() == "error: unknown host(s): cache; the spec defines web, db"


@pytest.mark.timeout(300)
def test_unreachable_host_fails_alone(fresh_host: TestHost, tmp_path: Path) -> None:
    port = closed_port()
    dead = {**host_entry(fresh_host), "connect": f"ssh://root@127.0.0.1:{port}"}
    spec = write_spec(tmp_path / "spec", {"web": fresh_host, "dead": dead}, FILES)
    refused = f"host dead: ssh://root@127.0.0.1:{port}: cannot connect: Connection refused"

    proc = reconcile("plan", spec, "--detailed-exitcode", check_code=1)
    assert f"Error: {refused}" in proc.stdout
    assert "  + files:/srv/sel/hello.txt" in proc.stdout  # web is still planned
    plan = json.loads(reconcile("plan", spec, "--output", "json", check_code=1).stdout)
    hosts = {h["host"]: h for h in plan["hosts"]}
    assert hosts["dead"]["error"] == refused.removeprefix("host dead: ")
    assert hosts["dead"]["changes"] == []
    assert [c["address"] for c in hosts["web"]["changes"]] == ["files:/srv/sel/hello.txt"]

    proc = reconcile("apply", spec, check_code=1)
    assert "✓ web: files:/srv/sel/hello.txt (create)" in proc.stdout
    # The error is printed once (with the plan); the result list points at it and the
    # summary counts the unreachable host as failed.
    assert proc.stdout.count(f"ssh://root@127.0.0.1:{port}: cannot connect") == 1
    assert f"Error: {refused}" in proc.stdout
    assert "✗ dead: not applied (the error is above, in the plan)" in proc.stdout
    assert "Apply FAILED. 1 applied, 1 failed (including host dead), 0 skipped." in proc.stdout
    assert "cannot connect" not in proc.stderr  # not a log line too
    assert "Traceback" not in proc.stderr
    assert cat(fresh_host, "/srv/sel/hello.txt") == "hello web\n"

    # Leaving the dead host out makes the run clean again.
    reconcile("plan", spec, "--host", "web", "--detailed-exitcode", check_code=0)
