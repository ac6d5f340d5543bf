"""A configuration that passes `nginx -t` can still fail to load (a port held by
another program). Apply says so with nginx's error instead of claiming success, the
site shows as `reload pending` until nginx has really loaded it, and once the port
is free the next apply completes the reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.nginx.support import (
    apply_ok,
    changes,
    curl,
    plan_json,
    reconcile,
    start_echo_upstream,
    write_spec,
)


@pytest.mark.timeout(600)
def test_failed_reload_is_reported_and_retried(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    start_echo_upstream(host, 9005, "squatter")  # holds 127.0.0.1:9005
    spec = write_spec(tmp_path / "spec", host, nginx_sites=[{
        "name": "late", "listen": [9005], "ipv6": False,
        "locations": [{"path": "/", "return": "200 'late'"}]}])
    proc = reconcile("apply", str(spec))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "nginx did not take the new configuration and still serves the old one" in output
    assert "bind() to 0.0.0.0:9005 failed (98: Address already in use)" in output
    assert host.exec(["systemctl", "is-active", "nginx"]).stdout.strip() == "active"

    code, plan = plan_json(spec)
    assert code == 2
    assert [(c["id"], [(f["path"], f["old"], f["new"]) for f in c["fields"]]) for c in changes(plan)] == [
        ("late", [("nginx", "reload pending", "running")])]

    host.exec(["systemctl", "stop", "echo-upstream-9005"])
    apply_ok(spec)
    assert curl(host, "http://127.0.0.1:9005/") == (200, "late")
    code, plan = plan_json(spec)
    assert code == 0 and changes(plan) == []
