"""The controller's state per host, for the status page and the per-host metrics (pure).

Built from the status (``status.json``'s data) and the newest history entries:

* ``last``: the newest run that touched the host: a commit applied, rolled back or
  failed (every host of the spec), or a drift run that names the host. Refused,
  deferred and retrying commits touched no host and are not a host's result. When
  no such entry is in the history read, the last applied revision's result stands.
* ``pending_drift``: resources found drifted and not (yet) corrected.
* ``resources``: each managed resource's state as the last plan or apply saw it
  (``ok``, ``differs``, ``failed``, ``unknown``).
* ``health``: the host's results of the last health probe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.controller.records import Cause, Result

HOST_RESULTS = frozenset({Result.APPLIED, Result.UNCHANGED, Result.ROLLED_BACK, Result.FAILED})
"""Results of a commit run that touched every host."""


@dataclass(frozen=True)
class LastRun:
    result: str
    cause: str
    revision: str
    time: str


@dataclass(frozen=True)
class HostView:
    host: str
    applied: str
    """The revision the controller last applied (the same on every host)."""
    last: LastRun | None
    pending_drift: tuple[Mapping[str, Any], ...] = ()
    resources: Mapping[str, str] = field(default_factory=dict)
    health: tuple[Mapping[str, Any], ...] = ()

    def count(self, state: str) -> int:
        return sum(1 for s in self.resources.values() if s == state)


def host_views(status: Mapping[str, Any], history: Iterable[Mapping[str, Any]]) -> list[HostView]:
    """One view per host the status knows (sorted by name). ``history`` oldest first."""
    resources: Mapping[str, Mapping[str, str]] = status.get("resources") or {}
    drift = [c for c in status.get("pending_drift") or [] if isinstance(c, Mapping)]
    health = [h for h in status.get("health") or [] if isinstance(h, Mapping)]
    hosts = sorted({*resources, *(str(c.get("host", "")) for c in drift),
                    *(str(h.get("host", "")) for h in health)} - {""})
    applied = status.get("last_applied") or {}
    revision = str(applied.get("revision", ""))
    fallback = (LastRun(str(applied.get("result") or Result.APPLIED.value), Cause.COMMIT.value, revision,
                        str(applied.get("at", ""))) if revision else None)
    last = _last_runs(hosts, list(history))
    return [HostView(host, revision, last.get(host, fallback),
                     tuple(c for c in drift if c.get("host") == host), dict(resources.get(host, {})),
                     tuple(h for h in health if h.get("host") == host)) for host in hosts]


def _last_runs(hosts: list[str], history: list[Mapping[str, Any]]) -> dict[str, LastRun]:
    found: dict[str, LastRun] = {}
    for entry in reversed(history):
        cause, result = entry.get("cause"), entry.get("result")
        time = str(entry.get("last_time") or entry.get("time", ""))
        run = LastRun(str(result), str(cause), str(entry.get("revision", "")), time)
        if cause == Cause.COMMIT.value and result in HOST_RESULTS:
            touched = hosts
        elif cause == Cause.DRIFT.value:
            touched = [str(c.get("host")) for c in entry.get("changes") or [] if isinstance(c, Mapping)]
        else:
            continue
        for host in touched:
            found.setdefault(host, run)
        if len(found) == len(hosts):
            break
    return found
