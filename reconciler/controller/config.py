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
    history_max_size: 50MB
    history_max_age: 90d
    health:
      grace: 60s
      checks:
        - {name: backend, http: "http://127.0.0.1:8000/health"}
        - {name: db, command: [pg_isready, -h, 127.0.0.1]}
    notifications:                # docs/controller.md#notifications
      link: "https://git.example.com/ops/servqr/commit/{revision}"
      targets:
        - {name: ops, kind: webhook, url: "https://hooks.example.com/reconciler",
           secret_file: /etc/reconciler/notify-secret}
        - {name: chat, kind: apprise, url_file: /etc/reconciler/apprise-urls,
           events: [rolled-back, apply-failed, commit-refused, controller-stuck]}
    commit_status:
      api: https://git.example.com/api/v1
      repository: ops/servqr
      token_file: /etc/reconciler/forge-token
    status_page:
      token_file: /etc/reconciler/page-token
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
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

from reconciler.controller.notices import NoticeKind
from reconciler.diagnostics import SourcePos, format_path
from reconciler.errors import ReconcilerError
from reconciler.sensitive import REDACTOR, redact_urls, register_url_credentials
from reconciler.yamlpos import load_yaml

DEFAULT_STATE_DIR = "/var/lib/reconciler/controller"
DEFAULT_LISTEN = "127.0.0.1:9109"
CONFIG_NAME = "controller.yaml"
WEBHOOK_SECRET_ENV = "RECONCILER_WEBHOOK_SECRET"
REPO_ENV = "RECONCILER_REPO"
"""The repository URL when neither --repo nor the config file names it: how
``install-service`` hands the service a URL with credentials (from a root-only
EnvironmentFile, never the unit or the command line, which any user can read)."""
FORGE_TOKEN_ENV = "RECONCILER_FORGE_TOKEN"

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

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: Any) -> int:
    """Bytes from a number or a string like ``512KB``, ``50MB``, ``1GiB`` (binary units:
    K, KB and KiB all mean 1024)."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 50MB")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return int(value)
    if not isinstance(value, str):
        raise ValueError("expected a size like 50MB")
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a size; write e.g. 512KB, 50MB or 1GB")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


Size = Annotated[int, BeforeValidator(parse_size)]


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


def read_secret_file(path: str, what: str) -> str:
    """The stripped content of a secret file (registered for redaction); ConfigError if
    it cannot be read or is empty. The error names the file, never its content."""
    try:
        value = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read {what} {path}: {reason}") from exc
    if not value:
        raise ConfigError(f"{what} {path} is empty")
    REDACTOR.register(value)
    return value


class TargetKind(StrEnum):
    WEBHOOK = "webhook"  # a JSON POST, signed with HMAC-SHA256 when a secret is set
    APPRISE = "apprise"  # chat and e-mail services through Apprise URLs (the `notify` extra)


class NotifyTarget(BaseModel):
    """One place notices go. The URL comes from ``url`` or, when it carries a token
    (chat webhooks, Apprise URLs usually do), from ``url_file`` (one URL a line)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: TargetKind
    url: str | None = None
    url_file: str | None = None
    secret_file: str | None = Field(default=None, description="webhook: key of the HMAC-SHA256 signature.")
    events: list[NoticeKind] | None = Field(default=None, description="Events sent here (default: all).")

    @model_validator(mode="after")
    def _one_url(self) -> NotifyTarget:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("set exactly one of url or url_file")
        if self.kind is TargetKind.WEBHOOK and self.url is not None and not re.match(r"https?://", self.url):
            raise ValueError("a webhook url must be an http:// or https:// URL")
        if self.kind is TargetKind.APPRISE and self.secret_file is not None:
            raise ValueError("secret_file signs webhooks; Apprise URLs carry their own credentials")
        return self

    def urls(self) -> list[str]:
        """The target's URL(s), read now (a file's URLs are registered for redaction)."""
        if self.url is not None:
            return [self.url]
        assert self.url_file is not None
        text = read_secret_file(self.url_file, f"url_file of notification target {self.name}")
        urls = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        for url in urls:
            REDACTOR.register(url)
        if self.kind is TargetKind.WEBHOOK and (len(urls) != 1 or not re.match(r"https?://", urls[0])):
            raise ConfigError(f"url_file of notification target {self.name} must hold one http(s) URL")
        return urls

    def secret(self) -> bytes | None:
        if self.secret_file is None:
            return None
        return read_secret_file(self.secret_file, f"secret_file of notification target {self.name}").encode()


class RateLimit(BaseModel):
    """Notices that repeat without a new commit (drift, controller trouble) are sent at
    most ``burst`` times per ``period`` for the same event and hosts; the next one
    sent says how many were held back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    burst: int = Field(default=3, ge=1)
    period: Duration = 600.0


class NotificationsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: list[NotifyTarget] = Field(default_factory=list)
    link: str | None = Field(default=None, description="Link of a notice; {revision} is its commit.")
    queue_size: int = Field(default=100, ge=1, le=10000, description="Notices waiting per target (oldest "
                                                                       "dropped first).")
    retries: int = Field(default=5, ge=0, le=20)
    timeout: Duration = Field(default=10.0, description="Deadline of one delivery attempt.")
    backoff_base: Duration = 2.0
    backoff_max: Duration = 60.0
    rate_limit: RateLimit = Field(default_factory=RateLimit)

    @field_validator("targets")
    @classmethod
    def _unique(cls, value: list[NotifyTarget]) -> list[NotifyTarget]:
        names = [t.name for t in value]
        if len(set(names)) != len(names):
            raise ValueError("target names must be unique")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if not 0 < value <= 300:
            raise ValueError("must be more than 0s and at most 5m")
        return value


class CommitStatusConfig(BaseModel):
    """Commit statuses in a Gitea, Forgejo or GitHub compatible forge:
    ``POST {api}/repos/{repository}/statuses/{sha}`` with a token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api: str = Field(description="API base: https://git.example.com/api/v1 or https://api.github.com.")
    repository: str = Field(description="owner/name")
    token_file: str | None = Field(default=None, description=f"Or ${FORGE_TOKEN_ENV}.")
    context: str = "reconciler"
    target_url: str | None = Field(default=None, description="Link of the status; {revision} is the commit.")

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", value) or ".." in value:
            raise ValueError("expected owner/name, e.g. ops/servqr")
        return value

    @field_validator("api")
    @classmethod
    def _api(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise ValueError("expected an http(s) URL without credentials, e.g. https://git.example.com/api/v1")
        return value.rstrip("/")

    def token(self, environ: Mapping[str, str]) -> str:
        if self.token_file:
            return read_secret_file(self.token_file, "commit_status token_file")
        env = environ.get(FORGE_TOKEN_ENV, "").strip()
        if not env:
            raise ConfigError(f"commit_status needs a token: set token_file or ${FORGE_TOKEN_ENV}")
        REDACTOR.register(env)
        return env


class StatusPageConfig(BaseModel):
    """The read-only page at ``/`` of the HTTP endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    token_file: str | None = Field(default=None, description="Ask for this token (?token= or a Bearer "
                                                              "header).")
    refresh: Duration = Field(default=5.0, description="The page reloads itself this often.")
    history: int = Field(default=30, ge=1, le=500, description="History entries shown.")

    @field_validator("refresh")
    @classmethod
    def _refresh(cls, value: float) -> float:
        if value < 1:
            raise ValueError("must be at least 1s")
        return value

    def token(self) -> str | None:
        return read_secret_file(self.token_file, "status_page token_file") if self.token_file else None


class ControllerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(description="Git URL or local path of the spec repository.")
    branch: str = "main"
    path: str = Field(default=".", description="Spec directory or file inside the repository.")
    host: str | None = Field(
        default=None, description="Pull mode: apply only this host of the spec, on this machine (connect: "
                                  "local); auto: the host named like this machine (docs/fleet.md).")
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
    git_timeout: Duration = Field(default=120.0, description="Deadline of one clone or fetch: then its git "
                                  "processes are killed and the fetch is retried with backoff.")
    history_max_size: Size = Field(default=50 * 1024**2,
                                   description="Bound of history.jsonl and its segments (oldest compacted).")
    history_max_age: Duration = Field(default=90 * 86400.0,
                                      description="Entries older than this are compacted.")
    backoff_base: Duration = 2.0
    backoff_max: Duration = 300.0
    stuck_after: Duration = Field(default=3600.0, description="A run busy this long counts as stuck.")
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    commit_status: CommitStatusConfig | None = None
    status_page: StatusPageConfig = Field(default_factory=StatusPageConfig)

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

    @field_validator("stuck_after", "git_timeout")
    @classmethod
    def _stuck_after(cls, value: float) -> float:
        if value < 1:
            raise ValueError("must be at least 1s")
        return value

    @field_validator("history_max_size")
    @classmethod
    def _history_size(cls, value: int) -> int:
        if value < 64 * 1024:
            raise ValueError("must be at least 64KB")
        return value

    @field_validator("history_max_age")
    @classmethod
    def _history_age(cls, value: float) -> float:
        if value < 3600:
            raise ValueError("must be at least 1h")
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

