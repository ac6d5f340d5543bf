"""Parsing what a host says about services (pure logic, golden files captured from a
real test host): ``systemctl show`` for several units, the whole observe script's
output turned into per-service state, and ``systemd-analyze verify`` results."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler_providers.services.model import Service
from reconciler_providers.services.observe import (
    parse_observation,
    parse_systemctl_show,
    parse_timestamp,
    service_state,
)
from reconciler_providers.services.provider import ServicesProvider
from reconciler_providers.services.systemd import parse_verify_output

from reconciler.provider import HostContext
from reconciler.sensitive import Sensitive
from reconciler.transport import LocalTransport

FIXTURES = Path(__file__).parent / "fixtures"


def test_systemctl_show_for_several_units() -> None:
    parsed = parse_systemctl_show((FIXTURES / "systemctl-show.txt").read_text())
    assert parsed == json.loads((FIXTURES / "systemctl-show.json").read_text())


def test_timestamps_are_microsecond_utc() -> None:
    assert parse_timestamp("Wed 2026-11-25 18:37:02.601540 UTC") == 1795631822.60154
    # The weekday is locale-dependent and ignored; seconds-only output still parses.
    assert parse_timestamp("Mi 2026-11-25 18:37:02 UTC") == 1795631822.0
    assert parse_timestamp("") is None
    assert parse_timestamp("n/a") is None


def test_observe_output_becomes_service_state() -> None:
    obs = parse_observation((FIXTURES / "observe-output.txt").read_text())
    hello = Service.model_validate({
        "name": "hello", "exec": ["/usr/bin/python3", "-m", "http.server", "8099"],
        "environment": {"GREETING": "hi", "TOKEN": "${secret:api_token}", "PORT": 8099},
        "restart_on": ["files:/etc/hello/config.txt"]})
    states = {name: service_state(name, obs, {"hello": hello}.get(name))
              for name in ("hello", "crashy", "absent")}
    assert states["absent"] is None
    # Secret and unknown values come back as digests, flagged sensitive; plain ones as text.
    hello_env = states["hello"]["environment"]  # type: ignore[index]
    assert isinstance(hello_env["TOKEN"], Sensitive) and hello_env["TOKEN"].reveal().startswith("sha256:")
    assert "fixture-token" not in hello_env["TOKEN"].reveal()
    crashy = states["crashy"]
    assert crashy is not None
    assert crashy["environment"] == {}
    expected = json.loads((FIXTURES / "observe-state.json").read_text())
    plain = {name: None if s is None else {**s, "environment": {k: str.__str__(v) for k, v in
                                                                 s["environment"].items()}}
             for name, s in states.items()}
    assert plain == expected


def test_running_service_sees_files_changed_after_its_start() -> None:
    text = (FIXTURES / "observe-output.txt").read_text()
    # Pretend the env file was rewritten one second after the process started.
    text = text.replace("1795631805.059789 /etc/reconciler/services/hello.env",
                        "1795631823.601540 /etc/reconciler/services/hello.env")
    obs = parse_observation(text)
    hello = Service.model_validate({"name": "hello", "exec": ["/bin/true"], "environment": {"A": "b"}})
    state = service_state("hello", obs, hello)
    assert state is not None
    assert state["changed_since_start"] == ["/etc/reconciler/services/hello.env"]


def test_verify_output_names_refused_units_with_systemds_words() -> None:
    typo_unit = "[Unit]\nDescription=typo\n[Service]\nExecStart=/bin/sleep 100\nRestart=sometimes\nBogus=1\n"
    refused = parse_verify_output((FIXTURES / "verify-output.txt").read_text(), {"typo.service": typo_unit})
    assert sorted(refused) == ["missing", "typo"]
    assert "Unknown key 'Bogus' in section [Service]" in refused["typo"]
    assert "typo.service:5: Failed to parse service restart specifier" in refused["typo"]
    assert "  > Restart=sometimes" in refused["typo"] and "  > Bogus=1" in refused["typo"]
    assert "/tmp/reconciler-verify" not in refused["typo"]
    assert "Command /usr/local/bin/does-not-exist is not executable" in refused["missing"]


def test_drop_ins_are_reported_as_unmanaged() -> None:
    obs = parse_observation((FIXTURES / "observe-output.txt").read_text())
    states = {name: service_state(name, obs, None) for name in ("hello", "crashy", "absent")}
    transport = LocalTransport("web")
    found = ServicesProvider().unmanaged(HostContext("web", transport), states)
    assert found == ["drop-in /etc/systemd/system/hello.service.d/override.conf (changes services:hello)"]
