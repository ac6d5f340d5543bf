"""Rate limits: a location's requests_per_minute becomes a per-site limit_req_zone and
a limit_req that nginx really enforces; a burst from one client is rejected with 429
while an unlimited location of the same site keeps answering."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.nginx.support import apply_ok, changes, plan_json, start_echo_upstream, write_spec

BURST_SCRIPT = r"""
for i in $(seq 20); do
  curl -s -o /dev/null -w '%{http_code}\n' -H 'Host: limited.test' "http://127.0.0.1$1"
done
"""


def burst(host: TestHost, path: str) -> list[int]:
    return [int(c) for c in host.exec(["sh", "-c", BURST_SCRIPT, "burst", path]).stdout.split()]


@pytest.mark.timeout(600)
def test_burst_is_rejected(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    start_echo_upstream(host, 9002, "api")
    spec = write_spec(tmp_path / "spec", host, nginx_sites=[{
        "name": "limited", "server_names": ["limited.test"],
        "upstreams": {"api": {"servers": ["127.0.0.1:9002"]}},
        "locations": [
            {"path": "/", "return": "200 ok"},
            {"path": "/api/", "proxy_pass": "api",
             "rate_limit": {"requests_per_minute": 6, "burst": 2, "nodelay": True}},
        ],
    }])
    apply_ok(spec)

    dump = host.exec(["nginx", "-T"]).stdout
    assert "limit_req_zone $binary_remote_addr zone=limited_api:10m rate=6r/m;" in dump
    assert "limit_req zone=limited_api burst=2 nodelay;" in dump

    codes = burst(host, "/api/")
    # 6/min leaves room for the first request plus a burst of 2; the rest are refused.
    assert codes[:3] == [200, 200, 200], codes
    assert codes.count(429) >= 15, codes
    assert set(codes) <= {200, 429}, codes
    assert set(burst(host, "/")) == {200}

    code, plan = plan_json(spec)
    assert code == 0 and changes(plan) == []
