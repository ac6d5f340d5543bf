"""Rolling applies: the order hosts are changed in, in batches, and when to stop.

Hosts are applied in **stages**: a host's stage comes after the stages of every host
it depends on (a cross-host ``depends_on`` such as ``database/containers:postgres``,
or a ``${published:...}`` value), so the database goes before the backends and the
backends before the load balancer. Within a stage, hosts go in **batches** of
``serial`` hosts (a number, a percentage of the stage, or a list that ramps up:
``[1, "50%"]`` is a canary then halves, the last size repeating). After each batch
its health checks must pass within ``health.grace``; a batch *fails* when more than
``max_fail_percentage`` of its hosts failed (a change failed or was skipped, the host
could not be reached, or a check did not pass in time), and then the rollout stops:
later batches are left untouched. The same batches and the same verdict serve
``reconcile apply`` and the controller (``reconciler.controller.core.rollout``).

Everything here is pure except ``run_checks``, which runs commands through the
transports it is given.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from reconciler.errors import ReconcilerError
from reconciler.fleet import natural_key
from reconciler.sensitive import REDACTOR
from reconciler.transport.base import Transport

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PERCENT = re.compile(r"^(\d{1,3})%$")


def parse_duration(value: Any) -> float:
    """Seconds from a number or ``30s``, ``2m``, ``1m30s``, ``500ms``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("expected a duration such as 30s, 2m or 1m30s")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    text = value.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 2m or 1m30s")
    return sum(float(n) * _SECONDS[u] for n, u in parts)


# The editor's schema must accept what the validator accepts: seconds, or a "1m30s" text.
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema({
    "anyOf": [{"type": "number", "minimum": 0},
              {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h))+$"}],
    "description": "seconds, or a duration such as 30s, 2m, 1m30s, 500ms"})]
BatchSize = int | str


def _check_size(value: BatchSize) -> None:
    if isinstance(value, bool):
        raise ValueError("expected a number of hosts or a percentage such as \"25%\"")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("a batch holds at least 1 host")
        return
    match = _PERCENT.match(value.strip())
    if match is None or not 1 <= int(match.group(1)) <= 100:
        raise ValueError(f"expected a number of hosts or a percentage from 1% to 100%, got {value!r}")


class RolloutCheck(BaseModel):
    """A check run on each host of a batch, through its connection, after the batch is
    applied. It passes when the command exits 0 (``http``: ``curl -fsS`` on the host,
    so loopback-only services can be checked; ``insecure`` accepts any certificate)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(description="What the check is called in reports.")
    command: list[str] | None = Field(default=None, description="Argument list run on the host.")
    http: str | None = Field(default=None, description="URL fetched on the host with curl -fsS.")
    insecure: bool = Field(default=False, description="http: accept any TLS certificate (curl -k).")
    hosts: list[str] | None = Field(default=None, description="Selectors of the hosts it runs on "
                                                              "(default: every host).")
    timeout: Duration = Field(default=10.0, strict=False, description="Deadline of one attempt.")

    @model_validator(mode="after")
    def _one_probe(self) -> RolloutCheck:
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
        return ["curl", "-fsS", *(["-k"] if self.insecure else []), "-o", "/dev/null", "--max-time",
                f"{self.timeout:g}", self.http]


class RolloutHealth(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    grace: Duration = Field(default=60.0, strict=False,
                            description="How long a batch's checks may take to pass (e.g. 60s).")
    interval: Duration = Field(default=2.0, strict=False, description="Pause between two attempts.")
    checks: list[RolloutCheck] = Field(default_factory=list,
                                       description="Checks run on each host of a batch.")


class RolloutSpec(BaseModel):
    """``rollout:`` in a spec: how ``reconcile apply`` and the controller change the hosts."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    serial: BatchSize | list[BatchSize] = Field(
        default="100%", description='Hosts per batch within a stage: 1, "25%", or a ramp such as '
                                    '[1, "50%"] (the last size repeats). Default: a stage at once.')
    max_fail_percentage: int = Field(
        default=0, ge=0, le=100, description="Stop the rollout when more than this share of a batch's "
                                             "hosts failed (0: any failure stops it).")
    health: RolloutHealth = Field(default_factory=RolloutHealth,
                                  description="Checks a batch must pass before the next one starts.")

    @model_validator(mode="after")
    def _sizes(self) -> RolloutSpec:
        sizes = self.serial if isinstance(self.serial, list) else [self.serial]
        if not sizes:
            raise ValueError("serial: give at least one batch size")
        for size in sizes:
            _check_size(size)
        return self


# ---------------------------------------------------------------------------------------
# Batches

def stages(hosts: Sequence[str], depends: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Hosts in dependency levels: a host's level is one more than the highest level of
    the hosts (of ``hosts``) it depends on. Hosts caught in a cycle (refused when the
    spec is loaded; published values could still form one) go to a last stage."""
    wanted = set(hosts)
    level: dict[str, int] = {}
    trail: list[str] = []
    looped: set[str] = set()

    def visit(host: str) -> int:
        if host in level:
            return level[host]
        if host in trail:
            looped.update(trail[trail.index(host):])
            return 0
        trail.append(host)
        deps = [d for d in depends.get(host, ()) if d in wanted and d != host]
        level[host] = 1 + max((visit(d) for d in deps), default=-1)
        trail.pop()
        return level[host]

    for h in hosts:
        visit(h)
    out: dict[int, list[str]] = {}
    last = max(level.values(), default=0) + 1
    for h in hosts:
        out.setdefault(last if h in looped else level[h], []).append(h)
    return [sorted(out[k], key=natural_key) for k in sorted(out)]


def batch_size(size: BatchSize, total: int) -> int:
    if isinstance(size, int):
        return size
    percent = int(size.strip().rstrip("%"))
    return max(1, math.floor(total * percent / 100))


def split(stage: Sequence[str], serial: BatchSize | Sequence[BatchSize]) -> list[list[str]]:
    """One stage in batches (Ansible's ``serial``: a list ramps up, its last size repeats)."""
    sizes: list[BatchSize] = [serial] if isinstance(serial, int | str) else list(serial)
    out: list[list[str]] = []
    rest = list(stage)
    n = 0
    while rest:
        size = batch_size(sizes[min(n, len(sizes) - 1)], len(stage))
        out.append(rest[:size])
        rest = rest[size:]
        n += 1
    return out


def too_many_failed(failed: int, total: int, max_fail_percentage: int) -> bool:
    """The batch's verdict: more than ``max_fail_percentage`` of its hosts failed."""
    return total > 0 and failed * 100 > max_fail_percentage * total


@dataclass(frozen=True)
class RolloutPlan:
    """The batches a run goes through, in order, and when it stops. Plain data: the
    controller's decision core carries it in its state."""

    batches: tuple[tuple[str, ...], ...]
    max_fail_percentage: int = 100
    grace: float = 0.0
    interval: float = 2.0
    stages: tuple[tuple[str, ...], ...] = ()
    serial: str = ""
    """The batch sizes as written (for messages), "" when no rollout was asked for."""

    @property
    def rolling(self) -> bool:
        """A rollout was asked for (``rollout:`` or ``--serial``): batches, checks, a threshold."""
        return bool(self.serial)

    def to_json(self) -> dict[str, Any]:
        return {"serial": self.serial or None, "max_fail_percentage": self.max_fail_percentage,
                "stages": [list(s) for s in self.stages], "batches": [list(b) for b in self.batches]}


def plan_rollout(hosts: Sequence[str], depends: Mapping[str, Iterable[str]], spec: RolloutSpec | None,
                 serial: BatchSize | Sequence[BatchSize] | None = None,
                 max_fail_percentage: int | None = None) -> RolloutPlan:
    """The batches for ``hosts``. Without a rollout (no ``rollout:``, no ``serial``)
    each stage is one batch and nothing stops the run (a failure still skips what
    depends on it); ``serial`` / ``max_fail_percentage`` override the spec's."""
    levels = stages(hosts, depends)
    if spec is None and serial is None and max_fail_percentage is None:
        return RolloutPlan(tuple(tuple(s) for s in levels), 100, 0.0, 2.0, tuple(tuple(s) for s in levels))
    spec = spec or RolloutSpec()
    sizes = serial if serial is not None else spec.serial
    threshold = max_fail_percentage if max_fail_percentage is not None else spec.max_fail_percentage
    batches = [tuple(b) for stage in levels for b in split(stage, sizes)]
    shown = ", ".join(str(s) for s in sizes) if isinstance(sizes, list | tuple) else str(sizes)
    return RolloutPlan(tuple(batches), threshold, spec.health.grace if spec.health.checks else 0.0,
                       spec.health.interval, tuple(tuple(s) for s in levels), shown)


# ---------------------------------------------------------------------------------------
# Checks (the one part with effects)

@dataclass(frozen=True)
class CheckResult:
    host: str
    name: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "check": self.name, "ok": self.ok, "detail": self.detail}


def run_check(transport: Transport, host: str, check: RolloutCheck) -> CheckResult:
    argv = check.argv()
    try:
        proc = transport.run(argv, timeout=check.timeout + 5, check=False)
    except ReconcilerError as exc:
        return CheckResult(host, check.name, False, REDACTOR.scrub(str(exc)))
    if proc.ok:
        return CheckResult(host, check.name, True)
    detail = (proc.err.strip() or proc.out.strip())[-300:]
    return CheckResult(host, check.name, False, REDACTOR.scrub(
        f"`{' '.join(argv)}` exited {proc.exit_code}" + (f": {detail}" if detail else "")))


@dataclass
class BatchChecks:
    """The outcome of a batch's checks: the last result of each (host, check)."""

    results: list[CheckResult] = field(default_factory=list)

    @property
    def failed_hosts(self) -> set[str]:
        return {r.host for r in self.results if not r.ok}


def run_checks(transports: Mapping[str, Transport], wanted: Mapping[str, Sequence[RolloutCheck]], *,
               grace: float, interval: float, stop: Callable[[], bool] = lambda: False,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> BatchChecks:
    """Run each host's checks until all pass or ``grace`` is over (at least once). A
    check that passed is not run again."""
    deadline = clock() + grace
    results: dict[tuple[str, str], CheckResult] = {}
    while True:
        for host, checks in wanted.items():
            for check in checks:
                key = (host, check.name)
                if key in results and results[key].ok:
                    continue
                results[key] = run_check(transports[host], host, check)
        if all(r.ok for r in results.values()) or clock() >= deadline or stop():
            return BatchChecks(list(results.values()))
        sleep(min(interval, max(0.0, deadline - clock())))
