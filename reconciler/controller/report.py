"""Text for `reconcile status` and `reconcile history` (the JSON forms are the stored data)."""

from __future__ import annotations

from typing import Any

from reconciler.controller.records import utc_text
from reconciler.controller.state import ControllerStatus

MAX_FIELDS_SHOWN = 6


def _short(sha: str) -> str:
    return sha[:12] if sha else "-"


def _summary(summary: dict[str, int] | None) -> str:
    if not summary:
        return ""
    return f"+{summary.get('add', 0)} ~{summary.get('change', 0)} -{summary.get('destroy', 0)}"


def _value(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def render_changes(changes: list[dict[str, Any]], indent: str = "    ") -> list[str]:
    lines: list[str] = []
    for change in changes:
        lines.append(f"{indent}{change['host']}: {change['action']} {change['address']} ({change['reason']})")
        fields = change.get("fields", [])
        for f in fields[:MAX_FIELDS_SHOWN]:
            lines.append(f"{indent}    {f['path']}: {_value(f['before'])} -> {_value(f['after'])}")
        if len(fields) > MAX_FIELDS_SHOWN:
            lines.append(f"{indent}    ... and {len(fields) - MAX_FIELDS_SHOWN} more field(s)")
    return lines


def render_status(status: ControllerStatus) -> str:
    lines = [f"Repository:    {status.repo} (branch {status.branch}, path {status.path})"]
    if status.head:
        lines.append(f"Head:          {_short(status.head.revision)} (fetched {status.head.at})")
    applied = status.last_applied
    if applied:
        lines.append(f"Last applied:  {_short(applied.revision)} at {applied.at} ({applied.result}"
                     + (f", {_summary(applied.summary)}" if applied.summary else "") + ")")
    else:
        lines.append("Last applied:  nothing yet")
    if status.in_flight:
        f = status.in_flight
        lines.append(f"In flight:     {f.cause} {_short(f.revision)} since {f.started_at} "
                     f"(attempt {f.attempts})")
    if status.fetch_failing:
        ff = status.fetch_failing
        lines.append(f"Fetch failing: since {ff.get('since', '?')} ({ff.get('attempt', '?')} in a row): "
                     f"{ff.get('error', '')}")
    if status.retry:
        r = status.retry
        lines.append(f"Retrying:      {_short(r.revision)} (attempt {r.attempt}): {r.error}")
    if status.verifying:
        v = status.verifying
        lines.append(f"Verifying:     {_short(v.get('revision', ''))} in its health grace until "
                     f"{v.get('until', '?')}")
    if status.pending:
        p = status.pending
        lines.append(f"Pending:       {_short(p.revision)} {_summary(p.summary)}, not applied: {p.message}")
    err = status.last_error
    if err:
        first, *rest = err.message.splitlines() or [""]
        lines.append(f"Last error:    {_short(err.revision)} at {err.at} ({err.cause}): {first}")
        lines.extend(f"               {line}" for line in rest)
    else:
        lines.append("Last error:    none")
    if status.quarantined:
        lines.append("Quarantined:   " + ", ".join(_short(sha) for sha in status.quarantined))
    if status.pending_drift:
        lines.append(f"Pending drift: {len(status.pending_drift)} resource(s)")
        lines.extend(render_changes(status.pending_drift, indent="    "))
    else:
        checked = f" (checked {status.last_drift_check})" if status.last_drift_check else ""
        lines.append("Pending drift: none" + checked)
    if status.contested:
        lines.append(f"Contested:     {len(status.contested)} resource(s) the last commit changed and "
                     "something else keeps changing")
        for c in status.contested:
            lines.append(f"    {c.get('host')}: {c.get('address')}  changed back {c.get('count')} time(s), "
                         f"last at {c.get('last_seen')}")
            lines.extend(f"        {line}" for line in c.get("evidence", []))
    if status.jobs:
        lines.append("Host jobs:     the last result of each scheduled job")
        for j in sorted(status.jobs, key=lambda j: (str(j.get("host")), str(j.get("address")),
                                                    str(j.get("job")))):
            when = utc_text(float(j.get("finished_at", 0)))
            why = f": {j['detail']}" if j.get("detail") else ""
            lines.append(f"    {j.get('host')}  {j.get('address')}  {j.get('job')}  {j.get('result')} "
                         f"at {when}{why}")
    if status.resources:
        lines.append("Resources:")
        for host, states in sorted(status.resources.items()):
            for address, state in sorted(states.items()):
                lines.append(f"    {host}  {address}  {state}")
    failing = [h for h in status.health if not h.get("ok")]
    if status.health:
        lines.append("Health:        " + ("ok" if not failing else "; ".join(
            f"{h['host']}: {h['check']}: {h['detail']}" for h in failing)))
    return "\n".join(lines)


def render_history(entries: list[dict[str, Any]], compacted: int = 0) -> str:
    """``compacted``: entries dropped by compaction before the first one shown (0: none, or
    the listing does not reach back that far)."""
    if not entries:
        return "No history yet."
    lines: list[str] = []
    if compacted:
        lines.append(f"({compacted} older entries were compacted; only those of revisions still in use "
                     "are kept)")
    for e in entries:
        if e.get("cause") == "job":
            lines.extend(_job_lines(e))
            continue
        head = (f"{e.get('time', '?')}  {e.get('cause', '?'):6}  {_short(e.get('revision', ''))}  "
                f"{e.get('result', '?')}")
        if int(e.get("count", 1)) > 1:
            head += f" x{e['count']} (until {e.get('last_time', '?')})"
        extra = _summary(e.get("summary"))
        if extra:
            head += f"  {extra}"
        if "seconds" in e:
            head += f"  ({e['seconds']:.1f}s, {e.get('trigger', '?')})"
        lines.append(head)
        commit = e.get("commit")
        if commit:
            lines.append(f"    {commit.get('summary', '')} — {commit.get('author', '')}")
        if e.get("cause") == "drift":
            lines.extend(render_changes(e.get("changes", []), indent="    "))
            if e.get("contested"):
                lines.append("    contested: " + ", ".join(e["contested"]))
        if e.get("error"):
            lines.extend(f"    error: {line}" if i == 0 else f"           {line}"
                         for i, line in enumerate(str(e["error"]).splitlines()))
        rollback = e.get("rollback")
        if rollback and rollback.get("attempted"):
            state = "ok" if rollback.get("ok") else f"FAILED: {rollback.get('error', '')}"
            lines.append(f"    rolled back to {_short(rollback.get('revision', ''))}: {state}")
    return "\n".join(lines)


def _job_lines(e: dict[str, Any]) -> list[str]:
    """A scheduled host job's result: ``TIME  job     drill failed: web backups:appdb``,
    then when it finished, what it used and why it failed."""
    lines = [f"{e.get('time', '?')}  {'job':6}  {e.get('job', '?')} {e.get('result', '?')}: "
             f"{e.get('host', '?')} {e.get('address', '?')}"]
    finished = f"    finished at {e.get('finished_at', '?')}"
    if e.get("artefact"):
        finished += f" ({e['artefact']})"
    lines.append(finished)
    if e.get("detail"):
        lines.append(f"    error: {e['detail']}")
    return lines
