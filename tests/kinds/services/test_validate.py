"""Offline validation of services: mistakes are reported at their spec line with a
message that says what to do, before any host is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.spec import load_spec

HOSTS = {"web": {"connect": "ssh://root@web.example.com:22"}}


def errors_for(tmp_path: Path, service: dict[str, Any], **extra: Any) -> list[str]:
    spec = {"hosts": HOSTS, "services": [service], **extra}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    _, diags = load_spec(str(tmp_path))
    return [str(d) for d in diags.errors]


def test_a_good_service_is_valid(tmp_path: Path) -> None:
    fixture = Path(__file__).parent / "fixtures" / "render-full.yaml"
    service = yaml.safe_load(fixture.read_text())
    secrets = [{"name": "db_password", "path": "/opt/servqr/.db_password", "length": 32}]
    assert errors_for(tmp_path, service, secrets=secrets) == []


@pytest.mark.parametrize(("service", "expected"), [
    ({"name": "web.service", "exec": ["/bin/true"]}, "services[0].name: write the name without .service"),
    ({"name": "web"}, "set `exec` (the command to run) or `unit` (raw unit text)"),
    ({"name": "web", "exec": ["/bin/true"], "unit": "[Service]\nExecStart=/bin/true\n"},
     "`unit` (raw text) cannot be combined with exec"),
    ({"name": "web", "exec": ["bin/app"]}, "services[0].exec[0]: the program must be an absolute path"),
    ({"name": "web", "exec": ["/bin/true"], "restart": "sometimes"},
     "services[0].restart: expected one of always, on-failure, no"),
    ({"name": "web", "exec": ["/bin/true"], "hardening": {"protect_system": "yes"}},
     "services[0].hardening.protect_system"),
    ({"name": "web", "exec": ["/bin/true"], "limits": {"memory_max": "lots"}},
     'services[0].limits.memory_max: expected a size such as "256M"'),
    ({"name": "web", "exec": ["/bin/true"], "limits": {"cpu_quota": "1.5"}},
     'services[0].limits.cpu_quota: expected a percentage such as "100%"'),
    ({"name": "web", "exec": ["/bin/true"], "environment": {"BAD-NAME": "x"}},
     "services[0].environment.BAD-NAME: variable names are letters, digits and _"),
    ({"name": "web", "exec": ["/bin/true"], "type": "oneshot"},
     "services[0].remain_after_exit: a oneshot service is inactive once it has run"),
    ({"name": "web", "exec": ["/home/app/run"]},
     "services[0].exec[0]: /home/app/run is hidden by hardening.protect_home"),
    ({"name": "web", "exec": ["/bin/true"], "restart_on": ["/opt/app/.env"]},
     "services[0].restart_on[0]: expected an address kind:id"),
    ({"name": "web", "exec": ["/bin/true"], "health": {"http": "http://127.0.0.1/", "tcp": "127.0.0.1:80"}},
     "services[0].health: set exactly one of http, tcp or command"),
    ({"name": "web", "exec": ["/bin/true"], "health": {"tcp": "localhost"}},
     'services[0].health.tcp: expected "HOST:PORT"'),
    ({"name": "web", "unit": "[Service]\nExecStart=/bin/true\n"},
     "services[0].unit: an enabled service needs an [Install] section"),
    ({"name": "web", "exec": ["/bin/true"],
      "hardening": {"restrict_address_families": ["AF_UNIX", "~AF_INET"]}},
     "services[0].hardening.restrict_address_families[1]: only the first entry may start with ~"),
    ({"name": "web", "exec": ["/bin/true"], "hardening": "paranoid"},
     "services[0].hardening.profile: expected one of strict, basic, none"),
    ({"name": "web", "exec": ["/bin/true"], "hardening": {"umask": "027x"}},
     'services[0].hardening.umask: expected an octal mask such as "0027"'),
    ({"name": "web", "exec": ["/bin/true"],
      "hardening": {"capability_bounding_set": [], "ambient_capabilities": ["CAP_NET_BIND_SERVICE"]}},
     "services[0].hardening.ambient_capabilities[0]: CAP_NET_BIND_SERVICE is not in "
     "hardening.capability_bounding_set"),
    ({"name": "web", "exec": ["/bin/true"], "hardening": {"ip_address_allow": ["127.0.0.1 ; x"]}},
     "services[0].hardening.ip_address_allow[0]: '127.0.0.1 ; x' is not an address"),
])
def test_mistakes_are_reported_with_their_path(tmp_path: Path, service: dict[str, Any],
                                               expected: str) -> None:
    errors = errors_for(tmp_path, service)
    assert any(expected in e for e in errors), errors


def test_secrets_are_refused_outside_environment(tmp_path: Path) -> None:
    service = {"name": "web", "exec": ["/usr/bin/app", "--token", "${secret:api_token}"]}
    secrets = [{"name": "api_token", "path": "/etc/app/token", "length": 32}]
    errors = errors_for(tmp_path, service, secrets=secrets)
    assert any("services[0].exec[2]: ${secret:...} is only allowed in `environment` values" in e
               for e in errors), errors


def test_yaml_no_means_restart_no(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(
        "hosts: {web: {connect: 'ssh://root@web.example.com:22'}}\n"
        "services:\n  - {name: web, exec: [/bin/true], restart: no}\n")
    spec, diags = load_spec(str(tmp_path))
    assert spec is not None, [str(d) for d in diags.errors]
    assert spec.entries[0].resource.restart == "no"  # type: ignore[attr-defined]
