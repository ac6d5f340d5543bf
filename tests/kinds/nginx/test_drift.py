"""Drift: an outside change shows as exactly that change and apply repairs it: a hand
edit of the site file (content), a removed sites-enabled link (enabled), a stopped
nginx (nginx: inactive -> running, and apply starts it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.nginx.support import (
    apply_ok,
    changes,
    curl,
    echo_of,
    file_digest,
    plan_json,
    start_echo_upstream,
    write_spec,
)

SITE = {"name": "app", "server_names": ["app.test"], "upstreams": {"front": {"servers": ["127.0.0.1:9001"]}},
        "locations": [{"path": "/", "proxy_pass": "front"}]}
FILE = "/etc/nginx/sites-available/app"


def single_drift(spec: Path) -> list[tuple[str, object, object]]:
    code, plan = plan_json(spec)
    assert code == 2
    [change] = changes(plan)
    assert (change["id"], change["action"], change["reason"]) == ("app", "update", "drift")
    return [(f["path"], f["old"], f["new"]) for f in change["fields"]]


def serves_front(host: TestHost) -> bool:
    status, body = curl(host, "http://127.0.0.1/", "-H", "Host: app.test")
    return status == 200 and echo_of(body)["upstream"] == "front"


@pytest.mark.timeout(600)
def test_outside_changes_are_drift_and_repaired(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    start_echo_upstream(host, 9001, "front")
    start_echo_upstream(host, 9009, "intruder")
    spec = write_spec(tmp_path / "spec", host, nginx_sites=[SITE])
    apply_ok(spec)
    good = "sha256:" + file_digest(host, FILE)

    # A hand edit that points the site elsewhere, made live by the editor.
    host.exec(f"sed -i 's/127.0.0.1:9001/127.0.0.1:9009/' {FILE} && systemctl reload nginx")
    edited = "sha256:" + file_digest(host, FILE)
    assert single_drift(spec) == [("content", edited, good)]
    apply_ok(spec)
    assert "sha256:" + file_digest(host, FILE) == good
    assert serves_front(host)  # repaired *and* reloaded

    host.exec("rm /etc/nginx/sites-enabled/app")
    assert single_drift(spec) == [("enabled", False, True)]
    apply_ok(spec)
    assert host.exec(["readlink", "/etc/nginx/sites-enabled/app"]).stdout.strip() == FILE
    assert serves_front(host)

    host.exec("systemctl stop nginx")
    assert single_drift(spec) == [("nginx", "inactive", "running")]
    apply_ok(spec)
    assert host.exec(["systemctl", "is-active", "nginx"]).stdout.strip() == "active"
    assert serves_front(host)

    code, plan = plan_json(spec)
    assert code == 0 and changes(plan) == []
