"""Offline checks of nginx sites: every mistake is reported at its path, before any
host is touched, and no modelled value can inject nginx syntax."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from reconciler_providers.nginx.model import NginxSite, validate_site

PROXY = {"path": "/", "proxy_pass": "http://127.0.0.1:3000"}


def issues(spec: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    return [(i.path, i.message) for i in validate_site(NginxSite.model_validate(spec))]


@pytest.mark.parametrize(("spec", "path", "fragment"), [
    ({"name": "default", "locations": [PROXY]}, ("name",), "Debian's own default site"),
    ({"name": "../etc", "locations": [PROXY]}, ("name",), "may use letters"),
    ({"name": "a", "server_names": ["a.com; include /etc/passwd"]}, ("server_names", 0), "one word"),
    ({"name": "a", "server_names": ["a.com\nb.com"]}, ("server_names", 0), "one word"),
    ({"name": "a", "listen": [70000]}, ("listen", 0), "expected a port"),
    ({"name": "a", "listen": []}, ("listen",), "at least one port"),
    ({"name": "a", "tls": {}}, ("tls",), "certificate and key, or self_signed"),
    ({"name": "a", "tls": {"certificate": "rel.pem", "key": "/k"}}, ("tls", "certificate"), "absolute"),
    ({"name": "a", "tls": {"self_signed": True, "listen": [80]}},
     ("tls", "listen"), "both a plain and a TLS"),
    ({"name": "a", "listen": [], "tls": {"self_signed": True, "redirect_http": True}},
     ("tls", "redirect_http"), "needs a plain-HTTP port"),
    ({"name": "a", "tls": {"self_signed": True, "protocols": ["SSLv3"]}}, ("tls", "protocols", 0), "unknown"),
    ({"name": "a", "locations": [{"path": "/", "proxy_pass": "nope"}]},
     ("locations", 0, "proxy_pass"), "neither a URL nor an upstream"),
    ({"name": "a", "locations": [{"path": "/", "proxy_pass": "ftp://x"}]},
     ("locations", 0, "proxy_pass"), "http:// or https://"),
    ({"name": "a", "locations": [{"path": "/", "root": "/srv", "return": 404}]},
     ("locations", 0), "only one of"),
    ({"name": "a", "locations": [{"path": "/"}]}, ("locations", 0), "needs proxy_pass"),
    ({"name": "a", "locations": [{"path": "api", "return": 404}]}, ("locations", 0, "path"), "expected"),
    ({"name": "a", "locations": [{"path": "~", "return": 404}]}, ("locations", 0, "path"), "followed by"),
    ({"name": "a", "locations": [PROXY, PROXY]}, ("locations", 1, "path"), "already location 0"),
    ({"name": "a", "locations": [{"path": "/", "root": "/srv; evil"}]}, ("locations", 0, "root"), "must not"),
    ({"name": "a", "locations": [{"path": "/", "root": "/srv", "expires": "soon"}]},
     ("locations", 0, "expires"), "expected a time"),
    ({"name": "a", "locations": [{"path": "/", "return": "200 two words"}]},
     ("locations", 0, "return"), "must be quoted"),
    ({"name": "a", "locations": [{"path": "/", "return": 404, "extra": ["if ($x) {"]}]},
     ("locations", 0, "extra", 0), "unbalanced braces"),
    ({"name": "a", "extra": ["}", "server {"]}, ("extra", 0), "unbalanced braces"),
    ({"name": "a", "rate_limit": {"requests_per_minute": 5, "key": "remote_addr"}},
     ("rate_limit", "key"), "nginx variable"),
    ({"name": "a", "rate_limit": {"requests_per_minute": 5, "zone_size": "lots"}},
     ("rate_limit", "zone_size"), "size"),
    ({"name": "a", "client_max_body_size": "big"}, ("client_max_body_size",), "size"),
    ({"name": "a", "upstreams": {"b.c": {"servers": ["127.0.0.1:1"]}}},
     ("upstreams", "b.c"), "upstream name"),
    ({"name": "a", "upstreams": {"b": {"servers": []}}}, ("upstreams", "b", "servers"), "at least one"),
    ({"name": "a", "upstreams": {"b": {"method": "ip_hash",
                                       "servers": [{"address": "127.0.0.1:1", "backup": True}]}}},
     ("upstreams", "b", "servers", 0, "backup"), "backup"),
    ({"name": "a", "config": "server {}", "server_names": ["x"]}, ("config",), "cannot be combined"),
])
def test_mistake_is_reported_at_its_path(spec: dict[str, Any], path: tuple[str | int, ...],
                                         fragment: str) -> None:
    found = issues(spec)
    assert any(p == path and fragment in m for p, m in found), found


@pytest.mark.parametrize("spec", [
    {"name": "a", "locations": [PROXY]},
    {"name": "a.b-c_d", "server_names": ["*.example.com", "~^www\\d+\\.example\\.net$"],
     "listen": ["127.0.0.1:8080"],
     "locations": [{"path": "~* \\.(png|jpg){1}$", "root": "/srv", "expires": "max"},
                   {"path": "@fallback", "return": "302 https://example.com$request_uri"}]},
    {"name": "a", "tls": {"self_signed": True, "hsts": 300}, "listen": [], "gzip": False},
    {"name": "a", "config": "server { listen 8080; }"},
])
def test_good_sites_have_no_issues(spec: dict[str, Any]) -> None:
    assert issues(spec) == []


def test_unknown_field_and_wrong_type_are_refused_by_the_model() -> None:
    with pytest.raises(ValidationError, match="server_name"):
        NginxSite.model_validate({"name": "a", "server_name": "x"})
    with pytest.raises(ValidationError, match="round_robin"):
        NginxSite.model_validate({"name": "a", "upstreams": {"b": {"servers": ["x:1"], "method": "fastest"}}})


def test_cli_validate_points_at_the_spec_line(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(
        "hosts:\n  web: {connect: local}\n"
        "nginx_sites:\n"
        "  - name: shop\n"
        "    locations:\n"
        "      - path: /\n"
        "        proxy_pass: backend\n")
    proc = subprocess.run([str(Path(sys.executable).with_name("reconcile")), "validate", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "spec.yaml:7:" in proc.stderr
    assert "nginx_sites[0].locations[0].proxy_pass" in proc.stderr
    assert "neither a URL nor an upstream" in proc.stderr


def test_references_pass_offline_and_values_are_checked_after_substitution(tmp_path: Path) -> None:
    from reconciler.spec import load_spec

    (tmp_path / "spec.yaml").write_text(
        "hosts:\n"
        "  good: {connect: local, vars: {domain: example.org}}\n"
        "  evil: {connect: local, vars: {domain: 'x.org; include /etc/shadow'}}\n"
        "secrets:\n"
        "  - {name: token, path: /etc/nginx/token}\n"
        "nginx_sites:\n"
        "  - name: shop\n"
        "    server_names: ['${domain}', 'www.${domain}']\n"
        "    locations:\n"
        "      - {path: /, return: '301 https://${domain}$request_uri',\n"
        "         extra: ['proxy_set_header X-Token ${secret:token}']}\n")
    spec, diags = load_spec(str(tmp_path))
    assert spec is not None and not diags.has_errors(), diags.sorted()
    [entry] = [e for e in spec.entries if e.kind == "nginx_sites"]
    assert isinstance(entry.resource, NginxSite) and validate_site(entry.resource) == []
    good = spec.resource_for_host(entry, "good")
    assert isinstance(good, NginxSite) and good.server_names == ["example.org", "www.example.org"]
    assert validate_site(good) == []
    evil = spec.resource_for_host(entry, "evil")
    assert isinstance(evil, NginxSite)
    assert ("server_names", 0) in [i.path for i in validate_site(evil)]
