"""The controller configuration (pure logic): durations, defaults, flags over the file,
and errors that name the file, line and setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.controller.config import (
    ConfigError,
    DriftCorrection,
    load_config,
    parse_duration,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("30", 30.0), (45, 45.0), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("2d", 172800.0),
    ("250ms", 0.25), ("1.5h", 5400.0),
])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "1h30", "-5", True, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_defaults_are_the_safe_choices() -> None:
    config = load_config(None, {"repo": "/srv/gitops"})
    assert config.branch == "main" and config.interval == 30 and config.drift_interval == 60
    assert config.listen == "127.0.0.1:9109" and config.listen_address == ("127.0.0.1", 9109)
    assert config.webhook_secret({}) is None  # no secret, no webhook
    assert not config.require_signed
    assert config.drift_correction is DriftCorrection.WINDOWS
    assert config.state_path.is_absolute()


def test_flags_win_over_the_file_and_nested_settings_merge(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text("repo: https://git.example.com/ops.git\ninterval: 5m\n"
                    "health:\n  grace: 10s\n  checks:\n    - {name: web, http: 'http://127.0.0.1/health'}\n")
    config = load_config(str(path), {"interval": "10s", "health": {"grace": "1m"}, "branch": None})
    assert config.repo == "https://git.example.com/ops.git"
    assert config.interval == 10 and config.branch == "main"
    assert config.health.grace == 60 and [c.name for c in config.health.checks] == ["web"]
    assert config.health.checks[0].argv() == ["curl", "-fsS", "-o", "/dev/null", "--max-time", "10",
                                              "http://127.0.0.1/health"]


def test_errors_point_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text("repo: /srv/gitops\nsync_windows:\n  - kind: allow\n    schedule: 'at night'\n"
                    "    duration: 1h\ncolour: blue\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), {})
    text = str(caught.value)
    assert f"{path}:4:5: sync_windows[0].schedule: 'at night' is not a valid cron expression" in text
    assert f"{path}:6:1: colour: unknown setting" in text


def test_require_signed_needs_trusted_keys() -> None:
    with pytest.raises(ConfigError, match="require_signed needs allowed_signers"):
        load_config(None, {"repo": "/srv/gitops", "require_signed": True})


def test_missing_repository_and_webhook_secret_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no repository"):
        load_config(None, {})
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    config = load_config(None, {"repo": "/srv/gitops", "webhook_secret_file": str(secret)})
    assert config.webhook_secret({}) == b"s3cret"
    assert load_config(None, {"repo": "x"}).webhook_secret({"RECONCILER_WEBHOOK_SECRET": "env"}) == b"env"
    missing = load_config(None, {"repo": "x", "webhook_secret_file": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="cannot read webhook_secret_file"):
        missing.webhook_secret({})
