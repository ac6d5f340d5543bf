"""Text rendering of plans and apply reports, in Terraform's manner."""

from __future__ import annotations

import json
from typing import Any

from reconciler.engine import ApplyReport, Status
from reconciler.plan import Action, Change, FieldChange, Plan, Reason
from reconciler.sensitive import REDACTED, KnownAfterApply, Sensitive, public

_COLORS = {"+": "32", "~": "33", "-": "31", "-/+": "35", "!": "31", "bold": "1", "dim": "2"}

_REASONS = {
    Reason.ABSENT: "is not on the host",
    Reason.SPEC_CHANGED: "the spec changed",
    Reason.DRIFT: "drift: changed on the host outside reconciler",
    Reason.REMOVED: "owned by reconciler and removed from the spec",
    Reason.REQUESTED: "replacement requested",
    Reason.TRIGGERED: "a resource it is triggered by changes",
    Reason.UNWANTED: "the spec says it must be absent",
}

_VERBS = {Action.CREATE: "will be created", Action.UPDATE: "will be updated in-place",
          Action.DELETE: "will be destroyed", Action.REPLACE: "must be replaced"}


class Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, style: str) -> str:
        if not self.color or style not in _COLORS:
            return text
        return f"\033[{_COLORS[style]}m{text}\033[0m"


def show_value(value: Any) -> str:
    if isinstance(value, Sensitive):
        return REDACTED
    if isinstance(value, KnownAfterApply):
        return "(known after apply)"
    if value is None:
        return "null"
    if isinstance(value, str) and value.startswith("sha256:") and len(value) > 19:
        return json.dumps(value[:19] + "…", ensure_ascii=False)
    return json.dumps(public(value), ensure_ascii=False, default=str)


def _field_line(f: FieldChange, action: Action, width: int, paint: Painter) -> str:
    name = f.path.ljust(width)
    # A field that goes away is a removal even inside a create (e.g. a file a new
    # retention rule will delete); otherwise it would read "+ name = null".
    removed = f.new is None and f.old is not None
    if (action is Action.CREATE and not removed) or (f.old is None and f.new is not None):
        return f"      {paint('+', '+')} {name} = {show_value(f.new)}"
    if action is Action.DELETE or f.new is None:
        return f"      {paint('-', '-')} {name} = {show_value(f.old)}"
    return f"      {paint('~', '~')} {name} = {show_value(f.old)} -> {show_value(f.new)}"


def render_change(change: Change, paint: Painter) -> list[str]:
    symbol = change.action.symbol
    lines = [paint(f"  # {change.address} {_VERBS[change.action]} ({_REASONS[change.reason]})", "dim"),
             f"  {paint(symbol, symbol)} {paint(change.address, 'bold')}"]
    if change.note:
        lines.append(f"      {public(change.note)}")
    width = max((len(f.path) for f in change.fields), default=0)
    for f in change.fields:
        lines.append(_field_line(f, change.action, width, paint))
    lines.append("")
    return lines


def render_plan(plan: Plan, *, color: bool = False) -> str:
    paint = Painter(color)
    out: list[str] = []
    multi = len(plan.hosts) > 1
    for host in plan.hosts:
        if host.error:
            out.append(paint(f"Error: host {host.host}: {public(host.error)}", "!"))
            out.append("")
            continue
        if not host.changes and not host.warnings and not host.unmanaged and not host.handovers:
            if multi:
                out.append(f"Host {host.host}: no changes.")
            continue
        if host.changes:
            out.append(paint(f"Host {host.host} — reconciler will perform these actions:", "bold"))
            out.append("")
        for change in host.changes:
            out.extend(render_change(change, paint))
        for h in host.handovers:
            out.append(f"  {paint('»', 'bold')} ownership on {host.host}: {h.describe()}")
        if host.handovers:
            out.append("")
        for w in host.warnings:
            out.append(paint(f"  Warning ({host.host}): {public(w)}", "~"))
        for u in host.unmanaged:
            out.append(f"  Unmanaged on {host.host} (left alone): {u}")
        if host.warnings or host.unmanaged:
            out.append("")
    if plan.has_changes:
        s = plan.summary()
        handovers = sum(len(h.handovers) for h in plan.hosts)
        extra = f", {handovers} ownership handover{'s' if handovers != 1 else ''}" if handovers else ""
        out.append(paint(f"Plan: {s['add']} to add, {s['change']} to change, {s['destroy']} to destroy"
                         f"{extra}.", "bold"))
    elif not plan.has_errors:
        out.append(paint("No changes. The hosts match the spec.", "bold"))
    return "\n".join(out)


def render_report(report: ApplyReport, *, color: bool = False) -> str:
    paint = Painter(color)
    out: list[str] = []
    totals = {s: 0 for s in Status}
    for host in report.hosts:
        for o in host.outcomes:
            totals[o.status] += 1
            if o.status is Status.APPLIED:
                out.append(f"  {paint('✓', '+')} {host.host}: {o.change.address} ({o.change.action.value})")
            elif o.status is Status.FAILED:
                out.append(paint(f"  ✗ {host.host}: {o.change.address} ({o.change.action.value}) FAILED",
                                 "!"))
                for line in public(o.error).splitlines() or [""]:
                    out.append(f"      {line}")
            else:
                out.append(paint(f"  - {host.host}: {o.change.address} skipped: {public(o.error)}", "~"))
        if host.error:
            out.append(paint(f"  ✗ {host.host}: {public(host.error)}", "!"))
    verdict = "Apply complete!" if report.ok else "Apply FAILED."
    out.append("")
    out.append(paint(f"{verdict} {totals[Status.APPLIED]} applied, {totals[Status.FAILED]} failed, "
                     f"{totals[Status.SKIPPED]} skipped.", "bold" if report.ok else "!"))
    return "\n".join(out)
