"""A site may embed a generated secret (${secret:NAME}): nginx gets the real value,
the site file is private to root, and neither plans, apply reports nor nginx's
quoted error messages ever show it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.nginx.support import (
    apply_ok,
    changes,
    curl,
    echo_of,
    plan_json,
    reconcile,
    start_echo_upstream,
    write_spec,
)

SECRET = {"name": "upstream_token", "path": "/etc/nginx/upstream-token", "length": 40}


def site(directive: str) -> dict[str, object]:
    return {"name": "sec", "listen": [8085], "ipv6": False,
            "locations": [{"path": "/", "proxy_pass": "http://127.0.0.1:9001", "extra": [directive]}]}


@pytest.mark.timeout(600)
def test_secret_reaches_nginx_but_never_output(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    start_echo_upstream(host, 9001, "front")
    spec = write_spec(tmp_path / "spec", host, secrets=[SECRET],
                      nginx_sites=[site("proxy_set_header X-Token ${secret:upstream_token}")])
    code, plan = plan_json(spec)
    [site_change] = [c for c in changes(plan) if c["kind"] == "nginx_sites"]
    content = next(f for f in site_change["fields"] if f["path"] == "content")
    assert content["known_after_apply"] and content["new"] == "(known after apply)"

    applied = apply_ok(spec)
    token = host.exec(["cat", SECRET["path"]]).stdout.strip()
    assert len(token) == 40
    status, body = curl(host, "http://127.0.0.1:8085/")
    assert status == 200 and echo_of(body)["headers"]["x-token"] == token
    assert host.exec(["stat", "-c", "%a", "/etc/nginx/sites-available/sec"]).stdout.strip() == "600"
    assert token not in applied.stdout + applied.stderr
    code, plan = plan_json(spec)
    assert code == 0 and changes(plan) == []

    # nginx quotes the offending value in its message: the secret must be scrubbed.
    write_spec(tmp_path / "spec", host, secrets=[SECRET],
               nginx_sites=[site("proxy_buffering ${secret:upstream_token}")])
    code, plan = plan_json(spec)
    [site_change] = changes(plan)
    assert [(f["path"], f["sensitive"]) for f in site_change["fields"]] == [("content", True)]
    assert token not in json.dumps(plan)
    for output in ("text", "json"):
        proc = reconcile("apply", str(spec), "--output", output)
        shown = (proc.stdout + proc.stderr).replace('\\"', '"')  # JSON escapes the quotes
        assert proc.returncode == 1, shown
        assert "nginx -t refused the new version of site 'sec'" in shown
        assert 'invalid value "(sensitive)" in "proxy_buffering" directive' in shown
        assert token not in shown
    status, body = curl(host, "http://127.0.0.1:8085/")
    assert status == 200 and echo_of(body)["headers"]["x-token"] == token
