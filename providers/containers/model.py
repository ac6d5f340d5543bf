"""The ``containers`` spec: the model users write, and its offline checks and parsers.

Values keep the form the user wrote (``"512m"``, ``"30s"``, ``"127.0.0.1:5432:5432"``):
per-host ``${var}`` substitution dumps and re-validates a resource, so a model that
normalised ``"30s"`` into nanoseconds would read it back as seconds. Conversion to
the engine's units happens in ``containers_state``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from reconciler.provider import Issue, Resource

PullPolicy = Literal["always", "missing", "never"]
RunState = Literal["running", "stopped"]
MountMode = Literal["rw", "ro"]

RESERVED_LABEL_PREFIX = "io.reconciler."

# Docker's own rule for container, volume and network names.
_DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmg]?)(?:i?b)?$", re.IGNORECASE)
_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")
_ENV_NAME = re.compile(r"^[^=\s]+$")
_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
       "h": 3_600_000_000_000}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}

Duration = int | str
"""Seconds as a number, or a Go-style duration string: ``"500ms"``, ``"30s"``, ``"1m30s"``."""


def duration_ns(value: Duration) -> int:
    """Nanoseconds (the Docker API's unit) of a duration; ValueError when malformed."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30 or \"30s\", got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return value * _NS["s"]
    text = value.strip()
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f'expected a duration such as "30s", "1m30s" or "500ms", got {value!r}')
    return sum(int(float(n) * _NS[unit]) for n, unit in _DURATION_PART.findall(text))


def format_duration(ns: int) -> str:
    """One spelling per duration, for plans: ``"1m30s"``, ``"500ms"``, ``"0s"``."""
    if ns % _NS["s"]:
        return f"{ns // _NS['ms']}ms" if ns % _NS["ms"] == 0 else f"{ns}ns"
    seconds = ns // _NS["s"]
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


def size_bytes(value: int | str) -> int:
    """Bytes of a memory size; suffixes are binary as in ``docker run -m`` (``512m`` = 512 MiB)."""
    if isinstance(value, bool):
        raise ValueError(f'expected a size such as "512m", got {value!r}')
    if isinstance(value, int):
        return value
    m = _SIZE.match(value.strip())
    if m is None:
        raise ValueError(f'expected a size such as "512m", "1g" or a number of bytes, got {value!r}')
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def argv_of(value: list[str] | str | None) -> list[str] | None:
    """A command as an argument list; a string is split as a shell would (no shell runs it)."""
    if value is None or isinstance(value, list):
        return value
    return shlex.split(value)


@dataclass(frozen=True, order=True)
class PortSpec:
    """One published port: ``[host_ip:][host_port:]container_port[/protocol]``."""

    container_port: int
    protocol: str
    host_ip: str   # "" = every interface
    host_port: str  # "" = a random port chosen by the engine

    @property
    def key(self) -> str:
        """The engine's key for the container side, ``5432/tcp``."""
        return f"{self.container_port}/{self.protocol}"

    def canonical(self) -> str:
        """One spelling per binding, so spec and engine compare as strings."""
        ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        if not self.host_port and not ip:
            return self.key
        return f"{ip + ':' if ip else ''}{self.host_port}:{self.key}"


_PORT = re.compile(r"^(?:(?P<ip>\[[0-9a-fA-F:.]+\]|\d{1,3}(?:\.\d{1,3}){3}):)?(?:(?P<host>\d*):)?(?P<ctr>\d+)"
                   r"(?:/(?P<proto>tcp|udp|sctp))?$")


def parse_port(text: str) -> PortSpec:
    m = _PORT.match(text.strip())
    if m is None:
        raise ValueError(f'expected "[host_ip:][host_port:]container_port[/tcp|udp|sctp]" such as '
                         f'"127.0.0.1:5432:5432", got {text!r} (port ranges are not supported)')
    ip = (m.group("ip") or "").strip("[]")
    host, ctr = m.group("host") or "", int(m.group("ctr"))
    for port in (ctr, int(host) if host else 1):
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} in {text!r} is out of range 1-65535")
    return PortSpec(ctr, m.group("proto") or "tcp", ip, host)


class Healthcheck(BaseModel):
    """How the engine decides the container is healthy (``docker run --health-*``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    test: list[str] | str = Field(description=(
        'A shell command ("pg_isready -U app"), or an exec form (["CMD", "pg_isready"]); '
        '["NONE"] turns off the image\'s check.'))
    interval: Duration | None = Field(default=None, description="Time between checks (engine default 30s).")
    timeout: Duration | None = Field(default=None, description="A check taking longer fails (default 30s).")
    retries: int | None = Field(default=None, description="Consecutive failures that make it unhealthy.")
    start_period: Duration | None = Field(
        default=None, description="Grace time after start during which failures don't count.")

    def test_argv(self) -> list[str]:
        """The engine's form: ``["CMD-SHELL", cmd]``, ``["CMD", argv...]`` or ``["NONE"]``."""
        if isinstance(self.test, str):
            return ["CMD-SHELL", self.test]
        if self.test and self.test[0] in ("CMD", "CMD-SHELL", "NONE"):
            return list(self.test)
        return ["CMD", *self.test]


class VolumeMount(BaseModel):
    """A named volume (created on first use, kept across replaces and prunes)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(description="Volume name on the host's engine.")
    target: str = Field(description="Absolute path inside the container.")
    mode: MountMode = Field(default="rw", description="rw (read-write) or ro (read-only).")


class BindMount(BaseModel):
    """A host directory or file mounted into the container."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    source: str = Field(description="Absolute path on the host (created by the engine when missing).")
    target: str = Field(description="Absolute path inside the container.")
    mode: MountMode = Field(default="rw", description="rw (read-write) or ro (read-only).")


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    driver: str = Field(default="json-file", description="Logging driver (json-file, journald, local...).")
    options: dict[str, str] = Field(default_factory=dict,
                                    description='Driver options, e.g. {max-size: "10m", max-file: "3"}.')


class Container(Resource):
    """One container on the host's own Docker engine, named ``name``."""

    name: str = Field(description="Container name; also the resource id.")
    image: str = Field(description='Image reference, e.g. "postgres:15".')
    pull: PullPolicy = Field(default="missing", description=(
        "missing: pull only when the image is not on the host; always: pull before every create or "
        "replace; never: the image must already be there (docker load). A plan never contacts registries."))
    command: list[str] | str | None = Field(default=None, description="Arguments replacing the image's CMD.")
    entrypoint: list[str] | str | None = Field(default=None, description="Replaces the image's ENTRYPOINT.")
    env: dict[str, str | int] = Field(default_factory=dict,
                                      description="Environment; values may use ${secret:NAME}.")
    ports: list[str] = Field(default_factory=list, description=(
        'Published ports, "[host_ip:][host_port:]container_port[/proto]", e.g. "127.0.0.1:5432:5432".'))
    volumes: list[VolumeMount] = Field(default_factory=list, description="Named volumes.")
    binds: list[BindMount] = Field(default_factory=list, description="Host paths mounted into the container.")
    networks: list[str] | None = Field(default=None, description=(
        "User networks to attach (created when missing); default: the engine's bridge."))
    restart: str = Field(default="unless-stopped",
                         description="no | always | unless-stopped | on-failure[:max-retries].")
    healthcheck: Healthcheck | None = Field(default=None, description="Docker health check of the container.")
    labels: dict[str, str] = Field(default_factory=dict,
                                   description="Container labels (the reconciler adds its own).")
    memory: int | str | None = Field(default=None, description='Memory limit, e.g. "512m" or "1g".')
    cpus: float | int | None = Field(default=None, description="CPU limit in cores, e.g. 0.5.")
    log: LogSettings | None = Field(default=None, description="Log driver settings (default: the engine's).")
    user: str | None = Field(default=None, description='User (and group) to run as, "name" or "uid:gid".')
    stop_timeout: Duration | None = Field(default=None,
                                          description="Grace time between SIGTERM and SIGKILL (default 10s).")
    state: RunState = Field(default="running", description="running, or stopped (created but not running).")
    wait_healthy: bool | None = Field(default=None, description=(
        "Apply waits until the healthcheck passes, so dependents start after it (default: true when a "
        "healthcheck is set)."))
    wait_timeout: Duration = Field(default="180s", description="How long apply waits for healthy.")
    remove_volumes_on_prune: bool = Field(default=False, description=(
        "When the container leaves the spec, also delete the named volumes the reconciler created for it. "
        "Off by default: data outlives the container."))

    @field_validator("command", "entrypoint")
    @classmethod
    def _splittable(cls, value: list[str] | str | None) -> list[str] | str | None:
        if isinstance(value, str):
            try:
                shlex.split(value)
            except ValueError as exc:
                raise ValueError(f"cannot split {value!r} into arguments: {exc}") from None
        return value

    @property
    def waits_healthy(self) -> bool:
        """Whether apply waits for (and the state asks for) a healthy container."""
        if self.state != "running":
            return False
        if self.wait_healthy is not None:
            return self.wait_healthy
        return self.healthcheck is not None and self.healthcheck.test_argv() != ["NONE"]


def validate_container(res: Container) -> list[Issue]:
    """Every offline check of one container spec, as Issues at field paths."""
    issues: list[Issue] = []
    if not _DOCKER_NAME.match(res.name):
        issues.append(Issue(("name",), "use letters, digits, '_', '.' and '-', "
                                       "starting with a letter or digit"))
    if not res.image.strip() or any(c.isspace() for c in res.image):
        issues.append(Issue(("image",), f"{res.image!r} is not an image reference"))
    for key in res.env:
        if not _ENV_NAME.match(key):
            issues.append(Issue(("env", key), "environment names cannot contain '=' or whitespace"))
    issues += _port_issues(res.ports)
    for i, vol in enumerate(res.volumes):
        if not _DOCKER_NAME.match(vol.name):
            issues.append(Issue(("volumes", i, "name"), f"{vol.name!r} is not a valid volume name"))
        if not vol.target.startswith("/"):
            issues.append(Issue(("volumes", i, "target"), "must be an absolute path in the container"))
    for i, bind in enumerate(res.binds):
        if not bind.source.startswith("/") or bind.source.rstrip("/") == "":
            issues.append(Issue(("binds", i, "source"), "must be an absolute host path other than /"))
        if not bind.target.startswith("/"):
            issues.append(Issue(("binds", i, "target"), "must be an absolute path in the container"))
        if ":" in bind.source or ":" in bind.target:
            issues.append(Issue(("binds", i), "paths cannot contain ':'"))
    targets = [m.target.rstrip("/") for m in res.volumes] + [m.target.rstrip("/") for m in res.binds]
    for dup in sorted({t for t in targets if targets.count(t) > 1}):
        issues.append(Issue(("volumes",), f"{dup} is mounted twice"))
    for i, net in enumerate(res.networks or []):
        if not _DOCKER_NAME.match(net):
            issues.append(Issue(("networks", i), f"{net!r} is not a valid network name"))
    if not _RESTART.match(res.restart):
        issues.append(Issue(("restart",), "expected no, always, unless-stopped or on-failure[:N]"))
    for key in res.labels:
        if key.startswith(RESERVED_LABEL_PREFIX):
            issues.append(Issue(("labels", key),
                                f"labels under {RESERVED_LABEL_PREFIX} are the reconciler's own"))
    issues += _limit_issues(res)
    issues += _duration_issues(res)
    if res.healthcheck is not None:
        argv = res.healthcheck.test_argv()
        if len(argv) < 2 and argv != ["NONE"]:
            issues.append(Issue(("healthcheck", "test"), "needs a command"))
        if res.healthcheck.retries is not None and res.healthcheck.retries < 1:
            issues.append(Issue(("healthcheck", "retries"), "must be at least 1"))
    if res.wait_healthy and res.healthcheck is None:
        issues.append(Issue(("wait_healthy",), "needs a healthcheck (the image's own is not waited for)"))
    if res.state == "stopped" and res.wait_healthy:
        issues.append(Issue(("wait_healthy",), "a stopped container never becomes healthy"))
    return issues


def _port_issues(ports: list[str]) -> list[Issue]:
    issues: list[Issue] = []
    seen: dict[tuple[str, str, str], int] = {}
    for i, text in enumerate(ports):
        try:
            port = parse_port(text)
        except ValueError as exc:
            issues.append(Issue(("ports", i), str(exc)))
            continue
        if port.host_port:
            where = (port.host_ip, port.host_port, port.protocol)
            if where in seen:
                issues.append(Issue(("ports", i),
                                    f"host port {port.host_port} is already used by ports[{seen[where]}]"))
            seen[where] = i
        if not port.host_ip:
            # Docker writes its own iptables rules ahead of ufw/nftables input chains, so a
            # port published on every interface is reachable despite the host firewall.
            local = f"127.0.0.1:{port.host_port or port.container_port}:{port.key}"
            issues.append(Issue(("ports", i), f"{text!r} publishes on every interface, past the host "
                                f"firewall; write {local!r} to keep it local", warning=True))
    return issues


def _limit_issues(res: Container) -> list[Issue]:
    issues: list[Issue] = []
    if res.memory is not None:
        try:
            if size_bytes(res.memory) < 6 << 20:
                issues.append(Issue(("memory",), "the engine refuses limits below 6 MiB"))
        except ValueError as exc:
            issues.append(Issue(("memory",), str(exc)))
    if res.cpus is not None and not 0 < res.cpus <= 1024:
        issues.append(Issue(("cpus",), "must be a positive number of cores"))
    return issues


def _duration_issues(res: Container) -> list[Issue]:
    durations: list[tuple[tuple[str | int, ...], Duration | None]] = [
        (("stop_timeout",), res.stop_timeout), (("wait_timeout",), res.wait_timeout)]
    if res.healthcheck is not None:
        hc = res.healthcheck
        durations += [(("healthcheck", "interval"), hc.interval), (("healthcheck", "timeout"), hc.timeout),
                      (("healthcheck", "start_period"), hc.start_period)]
    issues: list[Issue] = []
    for path, value in durations:
        if value is None:
            continue
        try:
            ns = duration_ns(value)
        except ValueError as exc:
            issues.append(Issue(path, str(exc)))
            continue
        if path[0] == "healthcheck" and 0 < ns < 1_000_000:
            issues.append(Issue(path, "must be at least 1ms"))
        if path == ("stop_timeout",) and ns % 1_000_000_000:
            issues.append(Issue(path, "the engine counts stop timeouts in whole seconds"))
    return issues
