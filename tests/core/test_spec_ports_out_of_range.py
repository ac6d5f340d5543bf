"""Every port field of every kind refuses a port outside 1-65535, naming the file,
line and field. Before the fix a port could pass in an SSH URL, an nginx
``address:port``, an upstream server, a proxy_pass URL and an http health check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.specs import errors, validate, write_files

LOCATION = {"path": "/", "return": 200}
# case -> (resources, the field the error must name, the bad text it must quote)
CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "ssh_connect": ({"hosts": {"web": {"connect": "ssh://root@web.example:99999"}}},
                    "hosts.web.connect", "port 99999 is out of range"),
    "ssh_connect_zero": ({"hosts": {"web": {"connect": "ssh://root@web.example:0"}}},
                         "hosts.web.connect", "port 0 is out of range"),
    "ssh_proxy_jump": ({"hosts": {"web": {"connect": "ssh://root@web.example",
                                          "proxy_jump": "ops@bastion.example:70000"}}},
                       "hosts.web.proxy_jump", "port 70000"),
    "ssh_proxy_jump_url": ({"hosts": {"web": {"connect": "ssh://root@web.example",
                                              "proxy_jump": ["ssh://ops@bastion.example:0"]}}},
                           "hosts.web.proxy_jump", "port 0"),
    "container_ports": ({"containers": [{"name": "c", "image": "x", "ports": ["127.0.0.1:70000:80"]}]},
                        "containers[0].ports[0]", "port 70000"),
    "firewall_port": ({"firewall": {"rules": [{"port": 70000}]}}, "firewall.rules[0].port", "port 70000"),
    "firewall_range": ({"firewall": {"rules": [{"port": "8000-70000"}]}}, "firewall.rules[0].port",
                       "port 70000"),
    "nginx_listen": ({"nginx_sites": [{"name": "a", "listen": [70000], "locations": [LOCATION]}]},
                     "nginx_sites[0].listen[0]", "got 70000"),
    "nginx_listen_address": ({"nginx_sites": [{"name": "a", "listen": ["127.0.0.1:70000"],
                                               "locations": [LOCATION]}]},
                             "nginx_sites[0].listen[0]", "port 70000"),
    "nginx_tls_listen": ({"nginx_sites": [{"name": "a", "tls": {"self_signed": True, "listen": [0]},
                                           "locations": [LOCATION]}]},
                         "nginx_sites[0].tls.listen[0]", "got 0"),
    "nginx_upstream": ({"nginx_sites": [{"name": "a", "upstreams": {"b": {"servers": ["127.0.0.1:70000"]}},
                                         "locations": [{"path": "/", "proxy_pass": "b"}]}]},
                       "nginx_sites[0].upstreams.b.servers[0]", "port 70000"),
    "nginx_upstream_address": ({"nginx_sites": [{"name": "a", "upstreams": {"b": {"servers": [
                                   {"address": "127.0.0.1:123456"}]}},
                                   "locations": [{"path": "/", "proxy_pass": "b"}]}]},
                               "nginx_sites[0].upstreams.b.servers[0].address", "port 123456"),
    "nginx_proxy_pass": ({"nginx_sites": [{"name": "a", "locations": [
                             {"path": "/", "proxy_pass": "http://127.0.0.1:70000/x"}]}]},
                         "nginx_sites[0].locations[0].proxy_pass", "port 70000"),
    "service_health_tcp": ({"services": [{"name": "s", "exec": ["/bin/true"],
                                          "health": {"tcp": "127.0.0.1:70000"}}]},
                           "services[0].health.tcp", "port 70000"),
    "service_health_http": ({"services": [{"name": "s", "exec": ["/bin/true"],
                                           "health": {"http": "http://127.0.0.1:70000/health"}}]},
                            "services[0].health.http", "port 70000"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_out_of_range_port_is_a_validation_error(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    resources, field, quoted = CASES[case]
    spec: dict[str, Any] = {"hosts": {"web": {"connect": "local"}}, **resources}
    root = write_files(tmp_path / "spec", {"spec.yaml": yaml.safe_dump(spec, sort_keys=False)})
    code, lines = validate(root, monkeypatch, capsys)
    assert code == 1
    found = [line for line in errors(lines) if line.split(": ", 2)[1] == field]
    assert found, lines
    assert found[0].startswith("spec.yaml:")
    assert quoted in found[0]
