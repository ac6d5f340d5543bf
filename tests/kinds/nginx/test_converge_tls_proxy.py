"""Converge: two TLS sites (a self-signed pair generated on the host, and a certificate
the test makes with openssl) proxy / and /api/ to two upstreams on the host; plain
HTTP redirects to HTTPS; the certificates verify for their names; a plan changes
nothing on the host; the second plan is empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.nginx.support import (
    apply_ok,
    changes,
    curl_https,
    echo_of,
    etc_nginx_snapshot,
    openssl_pair,
    plan_json,
    start_echo_upstream,
    write_spec,
)

UPSTREAMS = {"front": {"servers": ["127.0.0.1:9001"]}, "api": {"servers": ["127.0.0.1:9002"]}}
LOCATIONS = [{"path": "/", "proxy_pass": "front"}, {"path": "/api/", "proxy_pass": "api"}]


@pytest.mark.timeout(600)
def test_tls_sites_serve_both_upstreams(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    start_echo_upstream(host, 9001, "front")
    start_echo_upstream(host, 9002, "api")
    openssl_pair(host, "/etc/ssl/shop/cert.pem", "/etc/ssl/shop/key.pem", "shop.test")
    spec = write_spec(tmp_path / "spec", host, nginx_sites=[
        {"name": "app", "server_names": ["app.test"], "upstreams": UPSTREAMS, "locations": LOCATIONS,
         "tls": {"self_signed": True, "redirect_http": True, "hsts": True}},
        {"name": "shop", "server_names": ["shop.test"], "upstreams": UPSTREAMS, "locations": LOCATIONS,
         "tls": {"certificate": "/etc/ssl/shop/cert.pem", "key": "/etc/ssl/shop/key.pem",
                 "redirect_http": True}},
    ])

    # Dry-run safety: planning touches nothing on the host.
    before = etc_nginx_snapshot(host)
    code, plan = plan_json(spec)
    assert code == 2
    assert etc_nginx_snapshot(host) == before
    # The host-wide `nginx` settings come along (implied by the sites); tested on their own.
    by_id = {c["id"]: c for c in changes(plan) if c["kind"] == "nginx_sites"}
    assert set(by_id) == {"app", "shop"} and {c["action"] for c in by_id.values()} == {"create"}
    assert [f["path"] for f in by_id["app"]["fields"]] == ["content", "enabled", "nginx", "key_pair"]
    assert "nginx site /etc/nginx/sites-enabled/default (default_server)" in plan["hosts"][0]["unmanaged"]

    apply_ok(spec)

    cafiles = {"app.test": "/etc/nginx/reconciler-tls/app.crt", "shop.test": "/etc/ssl/shop/cert.pem"}
    for name, cafile in cafiles.items():
        # --cacert instead of -k: the certificate nginx serves for this name verifies.
        status, body = curl_https(host, name, "/", "--cacert", cafile)
        assert status == 200, body
        front = echo_of(body)
        assert front["upstream"] == "front"
        assert front["headers"]["host"] == name
        assert front["headers"]["x-forwarded-proto"] == "https"
        assert front["headers"]["x-real-ip"] == "127.0.0.1"
        assert front["headers"]["x-forwarded-for"] == "127.0.0.1"
        status, body = curl_https(host, name, "/api/v1/tickets?open=1", "--cacert", cafile)
        assert status == 200, body
        assert echo_of(body)["upstream"] == "api" and echo_of(body)["path"] == "/api/v1/tickets?open=1"
        # Plain HTTP answers with a redirect to the same URL over HTTPS.
        redirect = host.exec(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                              "-H", f"Host: {name}", "http://127.0.0.1/login?next=/"]).stdout
        assert redirect == f"301 https://{name}/login?next=/"
    headers = host.exec(["curl", "-skI", "--resolve", "app.test:443:127.0.0.1", "https://app.test/"]).stdout
    assert "strict-transport-security: max-age=31536000" in headers.lower()
    # Websocket upgrade headers reach the upstream.
    status, body = curl_https(host, "app.test", "/", "-H", "Connection: Upgrade", "-H", "Upgrade: websocket")
    assert echo_of(body)["headers"]["upgrade"] == "websocket"
    assert echo_of(body)["headers"]["connection"].lower() == "upgrade"

    # Debian layout, ownership mark, key pair modes.
    link = host.exec(["readlink", "/etc/nginx/sites-enabled/app"]).stdout.strip()
    assert link == "/etc/nginx/sites-available/app"
    first_line = host.exec(["head", "-n1", "/etc/nginx/sites-available/shop"]).stdout
    assert first_line.startswith("# Managed by reconciler (nginx_sites:shop)")
    assert host.exec(["stat", "-c", "%a", "/etc/nginx/reconciler-tls/app.key"]).stdout.strip() == "600"
    assert host.exec(["systemctl", "is-active", "nginx"]).stdout.strip() == "active"

    # Idempotence: nothing left to do, and nginx's own view agrees.
    code, plan = plan_json(spec)
    assert code == 0 and changes(plan) == []
    dump = host.exec(["nginx", "-T"]).stdout
    assert "upstream front.app" in dump and "upstream front.shop" in dump
