"""The controller's configuration: an optional ``controller.yaml`` plus command-line flags.

Flags win over the file; the file wins over the defaults. Every default is the
safe choice: no webhook without a secret, changes applied only inside sync
windows when windows are configured, unsigned commits accepted only when
``require_signed`` is off.

Example ``controller.yaml``::

    repo: https://git.example.com/ops/servqr.git
    branch: main
    path: specs/servqr
    interval: 30s
    drift_interval: 60s
    webhook_secret_file: /etc/reconciler/webhook-secret
    require_signed: true
    allowed_signers: /etc/reconciler/allowed_signers
    sync_windows:
      - {kind: allow, schedule: "0 22 * * 1-5", duration: 2h}
      - {kind: deny, schedule: "0 0 24 12 *", duration: 48h}
    drift_correction: always
    health:
      grace: 60s
      checks:
        - {name: backend, http: "http://127.0.0.1:8000/health"}
        - {name: db, command: [pg_isready, -h, 127.0.0.1]}
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from reconciler.diagnostics import SourcePos, format_path
from reconciler.errors import ReconcilerError
from reconciler.sensitive import redact_urls, register_url_credentials
from reconciler.yamlpos import load_yaml

DEFAULT_STATE_DIR = "/var/lib/reconciler/controller"
DEFAULT_LISTEN = "127.0.0.1:9109"
CONFIG_NAME = "controller.yaml"
WEBHOOK_SECRET_ENV = "RECONCILER_WEBHOOK_SECRET"
REPO_ENV = "RECONCILER_REPO"
"""The repository URL when neither --repo nor the config file names it: how
``install-service`` hands the service a URL with credentials (from a root-only
EnvironmentFile, never the unit or the command line, which any user can read)."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ConfigError(ReconcilerError):
    """The controller configuration is invalid; the message names the file, line and key."""


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like ``90``, ``30s``, ``5m``, ``1h30m``, ``2d``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m or 1h30m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration like 30s, 5m or 1h30m")
    text = value.strip().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 1h30m or 2d")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


Duration = Annotated[float, BeforeValidator(parse_duration)]


class WindowKind(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class DriftCorrection(StrEnum):
    """When drift found without a new commit is corrected."""

    WINDOWS = "windows"   # only when the sync windows allow changes (the default)
    ALWAYS = "always"     # at once, even outside the sync windows
    NEVER = "never"       # report it, never correct it


class SyncWindow(BaseModel):
    """A window that opens at each time ``schedule`` (cron) fires and stays open ``duration``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: WindowKind
    schedule: str = Field(description="Cron expression for when the window opens, e.g. '0 22 * * 1-5'.")
    duration: Duration = Field(description="How long the window stays open, e.g. 2h.")
    name: str = ""

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a valid cron expression (minute hour day month weekday)")
        return value

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("a window must last longer than 0 s")
        return value

    @property
    def label(self) -> str:
        return self.name or f"{self.kind.value} {self.schedule!r} for {format_seconds(self.duration)}"


class HealthCheck(BaseModel):
    """A check run on each host (or the listed ones) after an apply.

    ``command`` runs as an argument list through the host's transport; ``http`` is
    fetched *on the host* with ``curl -fsS`` (so loopback-only services can be
    checked over SSH). A check passes when it exits 0."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    command: list[str] | None = None
    http: str | None = None
    hosts: list[str] | None = None
    timeout: Duration = 10.0

    @model_validator(mode="after")
    def _one_probe(self) -> HealthCheck:
        if (self.command is None) == (self.http is None):
            raise ValueError("set exactly one of command or http")
        if self.command is not None and not self.command:
            raise ValueError("command must not be empty")
        if self.http is not None and not re.match(r"https?://", self.http):
            raise ValueError("http must be an http:// or https:// URL")
        return self

    def argv(self) -> list[str]:
        if self.command is not None:
            return list(self.command)
        assert self.http is not None
        return ["curl", "-fsS", "-o", "/dev/null", "--max-time", f"{self.timeout:g}", self.http]


class HealthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    grace: Duration = Field(default=30.0, description="How long an applied revision has to become healthy.")
    interval: Duration = Field(default=2.0, description="Pause between probes in the grace window.")
    checks: list[HealthCheck] = Field(default_factory=list)


class ControllerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(description="Git URL or local path of the spec repository.")
    branch: str = "main"
    path: str = Field(default=".", description="Spec directory or file inside the repository.")
    state_dir: str = DEFAULT_STATE_DIR
    interval: Duration = Field(default=30.0, description="How often to fetch.")
    drift_interval: Duration = Field(default=60.0, description="How often to plan again to find drift.")
    listen: str = Field(default=DEFAULT_LISTEN, description="host:port of /healthz, /metrics and /hooks/git.")
    webhook_secret_file: str | None = None
    watch_local: bool = Field(default=True, description="Watch a repository on this machine for new commits.")
    watch_events: bool = Field(default=True,
                               description="Watch managed paths (local hosts) and Docker events for drift.")
    require_signed: bool = False
    allowed_signers: str | None = Field(default=None, description="allowed_signers file for SSH signatures.")
    gpg_home: str | None = Field(default=None, description="GNUPGHOME holding the trusted OpenPGP keys.")
    sync_windows: list[SyncWindow] = Field(default_factory=list)
    timezone: str = "UTC"
    drift_correction: DriftCorrection = DriftCorrection.WINDOWS
    health: HealthConfig = Field(default_factory=HealthConfig)
    lock_timeout: Duration = 60.0
    backoff_base: Duration = 2.0
    backoff_max: Duration = 300.0

    @field_validator("repo")
    @classmethod
    def _repo_credentials(cls, value: str) -> str:
        # From here on, a token in the URL is scrubbed from every log line, status and error.
        register_url_credentials(value)
        return value

    @property
    def shown_repo(self) -> str:
        """The repository URL with any credentials replaced, for units, status and logs."""
        return redact_urls(self.repo)

    @field_validator("interval", "drift_interval")
    @classmethod
    def _not_too_short(cls, value: float) -> float:
        if value < 1:
            raise ValueError("must be at least 1s")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value in ("", "off"):
            return "off"
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("expected host:port, e.g. 127.0.0.1:9109 (or off)")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _signers(self) -> ControllerConfig:
        if self.require_signed and not (self.allowed_signers or self.gpg_home):
            raise ValueError("require_signed needs allowed_signers (SSH signatures) or gpg_home (OpenPGP)")
        return self

    @property
    def state_path(self) -> Path:
        """Absolute: git runs in other directories (``git -C``) and must find the worktrees."""
        return Path(self.state_dir).absolute()

    @property
    def listen_address(self) -> tuple[str, int] | None:
        if self.listen == "off":
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def webhook_secret(self, environ: Mapping[str, str]) -> bytes | None:
        """The webhook secret from the file or $RECONCILER_WEBHOOK_SECRET; None turns the webhook off."""
        if self.webhook_secret_file:
            try:
                secret = Path(self.webhook_secret_file).read_bytes().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read webhook_secret_file {self.webhook_secret_file}: "
                                  f"{exc.strerror}") from exc
            if not secret:
                raise ConfigError(f"webhook_secret_file {self.webhook_secret_file} is empty")
            return secret
        env = environ.get(WEBHOOK_SECRET_ENV, "").strip()
        return env.encode() if env else None


def format_seconds(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def load_config(path: str | None, overrides: Mapping[str, Any]) -> ControllerConfig:
    """Read ``path`` (when given; a missing file is an error) and apply ``overrides``
    (flags; None values are ignored). Errors name the file, line and key."""
    data: dict[str, Any] = {}
    positions: dict[tuple[str | int, ...], SourcePos] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read controller config {path}: {exc.strerror}") from exc
        loaded = load_yaml(text, path)
        if loaded.diagnostics:
            raise ConfigError("\n".join(str(d) for d in loaded.diagnostics))
        if loaded.data is not None and not isinstance(loaded.data, dict):
            raise ConfigError(f"{path}:1:1: the controller config must be a mapping of settings")
        data = dict(loaded.data or {})
        positions = loaded.positions
    for key, value in overrides.items():
        if value is None:
            continue
        # A nested override (health.grace) keeps the file's other keys (health.checks).
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    if "repo" not in data and os.environ.get(REPO_ENV):
        data["repo"] = os.environ[REPO_ENV]
    if "repo" not in data:
        raise ConfigError(f"no repository: pass --repo URL_OR_PATH, set repo: in the controller config "
                          f"or ${REPO_ENV}")
    try:
        return ControllerConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            where = ""
            probe = loc
            flagged = {(k,) for k, v in overrides.items() if v is not None}
            while probe and path is not None:
                if probe in positions and probe[:1] not in flagged:
                    where = f"{positions[probe]}: "
                    break
                probe = probe[:-1]
            message = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown setting; expected one of " + ", ".join(ControllerConfig.model_fields)
            lines.append(f"{where}{format_path(loc) or 'config'}: {message}")
        raise ConfigError("invalid controller configuration:\n  " + "\n  ".join(lines)) from None


def default_config_path(state_dir: str) -> str | None:
    """``STATE_DIR/controller.yaml`` when it exists (so status/history and the service agree)."""
    candidate = Path(state_dir) / CONFIG_NAME
    return str(candidate) if candidate.is_file() else None

