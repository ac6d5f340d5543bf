"""The containers spec: value parsers, and offline validation reported at the spec line."""

from __future__ import annotations

from pathlib import Path

import pytest
from reconciler_providers.containers.model import (
    Container,
    duration_ns,
    format_duration,
    parse_port,
    size_bytes,
)

from reconciler.spec import load_spec


@pytest.mark.parametrize(("text", "canonical", "key"), [
    ("127.0.0.1:5432:5432", "127.0.0.1:5432:5432/tcp", "5432/tcp"),
    ("8080:80", "8080:80/tcp", "80/tcp"),
    ("53/udp", "53/udp", "53/udp"),
    ("127.0.0.1::9000/udp", "127.0.0.1::9000/udp", "9000/udp"),
    ("[::1]:5432:5432", "[::1]:5432:5432/tcp", "5432/tcp"),
    ("0.0.0.0:443:8443/tcp", "0.0.0.0:443:8443/tcp", "8443/tcp"),
])
def test_ports_have_one_spelling(text: str, canonical: str, key: str) -> None:
    port = parse_port(text)
    assert (port.canonical(), port.key) == (canonical, key)
    assert parse_port(port.canonical()) == port


@pytest.mark.parametrize("text", ["", "abc", "5432-5440:5432-5440", "1.2.3.4:5:6:7", "70000", "80/icmp"])
def test_bad_ports_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="port"):
        parse_port(text)


@pytest.mark.parametrize(("value", "ns", "shown"), [
    (30, 30_000_000_000, "30s"),
    ("30s", 30_000_000_000, "30s"),
    ("1m30s", 90_000_000_000, "1m30s"),
    ("500ms", 500_000_000, "500ms"),
    ("1h", 3_600_000_000_000, "1h"),
    ("1.5s", 1_500_000_000, "1500ms"),
    (0, 0, "0s"),
])
def test_durations(value: int | str, ns: int, shown: str) -> None:
    assert duration_ns(value) == ns
    assert format_duration(ns) == shown
    assert duration_ns(format_duration(ns)) == ns


@pytest.mark.parametrize("value", ["5x", "s", "10 s", "-1s", -3, True])
def test_bad_durations(value: int | str) -> None:
    with pytest.raises(ValueError, match="duration"):
        duration_ns(value)


@pytest.mark.parametrize(("value", "size"), [
    ("512m", 512 << 20), ("1g", 1 << 30), ("1GiB", 1 << 30), ("64MB", 64 << 20), (1048576, 1 << 20),
    ("100k", 100 << 10), ("1.5g", 3 << 29),
])
def test_memory_sizes_are_binary_like_docker_run(value: int | str, size: int) -> None:
    assert size_bytes(value) == size


def test_string_commands_are_split_like_a_shell_would() -> None:
    res = Container.model_validate({"name": "a", "image": "x", "command": "sh -c 'echo hi there'"})
    from reconciler_providers.containers.model import argv_of

    assert argv_of(res.command) == ["sh", "-c", "echo hi there"]


def test_wait_healthy_defaults_to_having_a_healthcheck() -> None:
    plain = Container.model_validate({"name": "a", "image": "x"})
    checked = Container.model_validate({"name": "a", "image": "x", "healthcheck": {"test": "true"}})
    disabled = Container.model_validate({"name": "a", "image": "x", "healthcheck": {"test": ["NONE"]}})
    stopped = Container.model_validate({"name": "a", "image": "x", "healthcheck": {"test": "true"},
                                        "state": "stopped"})
    assert (plain.waits_healthy, checked.waits_healthy, disabled.waits_healthy, stopped.waits_healthy) == (
        False, True, False, False)


BAD_SPEC = """\
hosts:
  web: {connect: local}
containers:
  - name: db
    image: postgres:15
    ports: ["5432:5432", "127.0.0.1:99999:1"]
    labels: {io.reconciler.managed: "false"}
    memory: 12q
    healthcheck: {test: "pg_isready", interval: 5x}
    restart: sometimes
  - name: "-bad name"
    image: x
    volumes: [{name: data, target: /d}]
    binds: [{source: relative, target: /d}]
    wait_healthy: true
"""


def test_mistakes_are_reported_at_their_line(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(BAD_SPEC)
    spec, diags = load_spec(str(tmp_path))
    assert spec is None
    errors = {(d.field_path, d.pos.line if d.pos else 0): d.message for d in diags.errors}
    expected = {
        ("containers[0].ports[1]", 6): "port 99999 in '127.0.0.1:99999:1' is out of range 1-65535",
        ("containers[0].labels.io.reconciler.managed", 7):
            "labels under io.reconciler. are the reconciler's own",
        ("containers[0].memory", 8):
            "expected a size such as \"512m\", \"1g\" or a number of bytes, got '12q'",
        ("containers[0].healthcheck.interval", 9):
            "expected a duration such as \"30s\", \"1m30s\" or \"500ms\", got '5x'",
        ("containers[0].restart", 10): "expected no, always, unless-stopped or on-failure[:N]",
        ("containers[1].name", 11): "use letters, digits, '_', '.' and '-', starting with a letter or digit",
        ("containers[1].volumes", 13): "/d is mounted twice",
        ("containers[1].binds[0].source", 14): "must be an absolute host path other than /",
        ("containers[1].wait_healthy", 15): "needs a healthcheck (the image's own is not waited for)",
    }
    assert errors == expected


def test_publishing_on_every_interface_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(
        "hosts:\n  web: {connect: local}\ncontainers:\n  - {name: web, image: nginx, ports: ['8080:80']}\n")
    spec, diags = load_spec(str(tmp_path))
    assert spec is not None and not diags.errors
    [warning] = diags.warnings
    assert warning.field_path == "containers[0].ports[0]"
    assert "past the host firewall" in warning.message and "'127.0.0.1:8080:80/tcp'" in warning.message
