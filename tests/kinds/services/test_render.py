"""Rendering services (pure logic, golden files): spec -> unit text, command-line
quoting, environment files, and the desired state a plan compares.

The goldens under tests/kinds/services/fixtures/ were checked on a test host:
``systemd-analyze verify`` accepts the rendered units, and systemd reads
env-handwritten.env into exactly env-handwritten.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from reconciler_providers.services.model import Service
from reconciler_providers.services.provider import ServicesProvider
from reconciler_providers.services.render import exec_line, parse_env_file, render_env_file, render_unit

from reconciler.provider import HostContext
from reconciler.sensitive import KNOWN_AFTER_APPLY, Sensitive
from reconciler.transport import LocalTransport

FIXTURES = Path(__file__).parent / "fixtures"


def load_service(name: str) -> Service:
    return Service.model_validate(yaml.safe_load((FIXTURES / f"render-{name}.yaml").read_text()))


@pytest.mark.parametrize("name", ["minimal", "full", "raw", "basic"])
def test_unit_text_matches_golden(name: str) -> None:
    assert render_unit(load_service(name)) == (FIXTURES / f"render-{name}.service").read_text()


def test_every_unit_carries_the_ownership_header() -> None:
    for name in ("minimal", "full", "raw"):
        text = render_unit(load_service(name))
        assert text.startswith("# Managed by reconciler; do not edit.")


def test_exec_list_items_are_literal_arguments() -> None:
    line = exec_line(["/bin/echo", "a b", 'say "hi"', "back\\slash", "$HOME", "%h", ";", "new\nline",
                      "plain"])
    assert line == ('/bin/echo "a b" "say \\"hi\\"" "back\\\\slash" "$$HOME" "%%h" ";" "new\\nline" plain')


def test_exec_string_is_systemd_syntax_as_written() -> None:
    assert exec_line("  /usr/bin/env FOO=$BAR app %i  ") == "/usr/bin/env FOO=$BAR app %i"


TRICKY_VALUES = {
    "QUOTES": 'say "hi" and \'bye\'',
    "SHELLISH": "$HOME `id` ${X} %h",
    "BACKSLASH_END": "ends with \\",
    "NEWLINES": "line one\nline two\n",
    "SPACES": "  padded  ",
    "EMPTY": "",
    "UNICODE": "grüße ✓",
    "HASH": "#not a comment",
}


def test_environment_file_round_trips_tricky_values() -> None:
    text = render_env_file("app", TRICKY_VALUES)
    assert text.startswith("# Managed by reconciler; do not edit.")
    assert parse_env_file(text) == TRICKY_VALUES


def test_environment_file_parser_matches_systemd_on_handwritten_file() -> None:
    text = (FIXTURES / "env-handwritten.env").read_text()
    assert parse_env_file(text) == json.loads((FIXTURES / "env-handwritten.json").read_text())


def _ctx(secrets: dict[str, Sensitive]) -> HostContext:
    return HostContext("web", LocalTransport("web"), secrets=secrets)


def test_desired_state_hides_secret_environment_values() -> None:
    service = load_service("full")
    provider = ServicesProvider()
    secret = Sensitive("s3cr3t-value-for-desired-state")
    desired = provider.desired(service, _ctx({"db_password": secret}))
    env = desired["environment"]
    assert env["APP_ENV"] == "production" and env["PORT"] == "8081" and env["DEBUG"] == "false"
    assert isinstance(env["DB_PASSWORD"], Sensitive)
    assert "s3cr3t" not in json.dumps({k: str(v) for k, v in env.items()})
    assert desired["enabled"] == "enabled" and desired["active"] == "active"
    assert desired["changed_since_start"] == [] and desired["need_daemon_reload"] is False
    # The unit never holds the environment, so it never holds the secret.
    assert "s3cr3t" not in render_unit(service)


def test_desired_state_waits_for_a_secret_not_yet_generated() -> None:
    desired = ServicesProvider().desired(load_service("full"), _ctx({}))
    assert desired["environment"]["DB_PASSWORD"] is KNOWN_AFTER_APPLY


def test_stopped_and_disabled_service_state() -> None:
    service = Service.model_validate({"name": "batch", "exec": ["/bin/true"], "enabled": False,
                                      "state": "stopped"})
    desired = ServicesProvider().desired(service, _ctx({}))
    assert desired["enabled"] == "disabled" and desired["active"] == "inactive"
    assert "changed_since_start" not in desired


def test_raw_unit_without_install_section_is_static_when_disabled() -> None:
    service = Service.model_validate({"name": "helper", "enabled": False,
                                      "unit": "[Service]\nExecStart=/bin/true\n"})
    assert ServicesProvider().desired(service, _ctx({}))["enabled"] == "static"


def test_implicit_dependencies_and_triggers() -> None:
    service = load_service("full")
    provider = ServicesProvider()
    assert provider.requires(service) == [
        "users:servqr", "directories:/opt/servqr", "directories:/opt/servqr/logs",
        "directories:/opt/servqr/storage", "directories:/opt/servqr/data", "services:servqr-postgres"]
    assert provider.triggers(service) == ["files:/opt/servqr/platform", "files:/opt/servqr/.env"]
