"""``reconcile fleet status``: every host's controller in one table (pull mode).

Each host of the spec runs its own controller (``watch --host``); this command reads
each one's ``status.json`` over the host's own connection (SSH, in parallel, one
request per host) and shows, per host, the revision it applied, its last result,
pending drift and the last error, marking the hosts that **lag**: whose applied
revision is not the reference one (``--revision``; by default the commit the local
spec is at, else the newest head the controllers fetched, by fetch time).

Exit codes: 0 every host is on the reference revision with no error; 2 a host lags,
failed or has no controller yet; 1 a host could not be reached.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from reconciler.controller.config import DEFAULT_STATE_DIR
from reconciler.controller.state import STATUS_FILE
from reconciler.errors import ReconcilerError
from reconciler.sensitive import REDACTOR

MAX_WORKERS = 16


@dataclass(frozen=True)
class HostStatus:
    """One host's controller as its status file says (``error``: it could not be read)."""

    host: str
    status: Mapping[str, Any] | None = None
    error: str = ""

    @property
    def applied(self) -> str:
        applied = (self.status or {}).get("last_applied") or {}
        return str(applied.get("revision", ""))

    @property
    def head(self) -> tuple[str, str]:
        head = (self.status or {}).get("head") or {}
        return str(head.get("revision", "")), str(head.get("at", ""))

    def result(self) -> str:
        """The last thing that happened: running, retrying, failed or the applied result."""
        s = self.status or {}
        if s.get("in_flight"):
            return f"running {s['in_flight'].get('cause', '')}".strip()
        if s.get("retry"):
            return f"retrying (attempt {s['retry'].get('attempt', '?')})"
        error = s.get("last_error")
        applied = s.get("last_applied")
        if error and (not applied or str(error.get("at", "")) >= str(applied.get("at", ""))):
            return f"failed ({error.get('cause', '?')})"
        if applied:
            return str(applied.get("result") or "applied")
        return "nothing applied"

    def when(self) -> str:
        s = self.status or {}
        times = [str((s.get(k) or {}).get("at", "")) for k in ("last_applied", "last_error")]
        return max(times) or "-"

    def drift(self) -> str:
        pending = (self.status or {}).get("pending_drift") or []
        return f"{len(pending)} pending" if pending else "none"

    def last_error(self) -> str:
        error = (self.status or {}).get("last_error") or {}
        return str(error.get("message", "")).splitlines()[0][:120] if error.get("message") else ""


def read_status(spec: Any, host: str, state_dir: str) -> HostStatus:
    """One host's ``status.json`` through its transport; missing means no controller."""
    from reconciler.engine import make_transport

    path = str(PurePosixPath(state_dir) / STATUS_FILE)
    transport = make_transport(host, spec)
    try:
        data = transport.read_file(path)
    except ReconcilerError as exc:
        return HostStatus(host, error=REDACTOR.scrub(str(exc)))
    finally:
        transport.close()
    if data is None:
        return HostStatus(host, error=f"no controller status at {path} (has `reconcile install-service "
                                      "--host auto` run there?)")
    try:
        status = json.loads(data)
    except ValueError as exc:
        return HostStatus(host, error=f"{path} is not JSON: {exc}")
    return HostStatus(host, status if isinstance(status, dict) else None)


def read_fleet(spec: Any, hosts: Sequence[str], state_dir: str = DEFAULT_STATE_DIR) -> list[HostStatus]:
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(hosts))) as pool:
        return list(pool.map(lambda h: read_status(spec, h, state_dir), hosts))


def reference_revision(statuses: Sequence[HostStatus], wanted: str = "") -> str:
    """``wanted`` when given, else the head fetched last by any controller."""
    if wanted:
        return wanted
    heads = [s.head for s in statuses if s.head[0]]
    return max(heads, key=lambda h: h[1])[0] if heads else ""


def lags(status: HostStatus, reference: str) -> bool:
    if not reference:
        return False
    applied = status.applied
    return not applied or not (applied.startswith(reference) or reference.startswith(applied))


def table(statuses: Sequence[HostStatus], reference: str) -> str:
    rows = [("HOST", "APPLIED", "LAGS", "LAST RESULT", "AT", "DRIFT", "LAST ERROR")]
    for s in statuses:
        if s.error:
            rows.append((s.host, "?", "?", "unreachable" if "status at" not in s.error else "no controller",
                         "-", "-", s.error[:120]))
            continue
        rows.append((s.host, s.applied[:12] or "-", "yes" if lags(s, reference) else "no", s.result(),
                     s.when(), s.drift(), s.last_error()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
             for r in rows]
    behind = [s.host for s in statuses if not s.error and lags(s, reference)]
    lines.append("")
    lines.append(f"Reference revision: {reference[:12] or 'unknown'}; "
                 + (f"{len(behind)} host(s) lag: {', '.join(behind)}." if behind else "no host lags."))
    return "\n".join(line.rstrip() for line in lines)


def to_json(statuses: Sequence[HostStatus], reference: str) -> dict[str, Any]:
    return {"reference": reference, "hosts": [
        {"host": s.host, "reachable": not s.error or "status at" in s.error, "error": s.error or None,
         "applied": s.applied or None, "lags": None if s.error else lags(s, reference),
         "result": None if s.error else s.result(), "at": None if s.error else s.when(),
         "pending_drift": len((s.status or {}).get("pending_drift") or []),
         "last_error": s.last_error() or None} for s in statuses]}


def exit_code(statuses: Sequence[HostStatus], reference: str) -> int:
    if any(s.error and "status at" not in s.error for s in statuses):
        return 1
    if any(s.error or lags(s, reference) or s.result().startswith(("failed", "retrying")) for s in statuses):
        return 2
    return 0
