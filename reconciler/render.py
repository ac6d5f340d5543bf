"""Text rendering of plans and apply reports, in Terraform's manner.

Rendering builds styled lines (text segments with a style name); without colour
they are joined as plain text (what goldens, pipes and CI logs get), with colour
they go through rich. rich is imported only then, so a plan piped to a file or a
``--version`` never pays for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler.plan import Action, Change, FieldChange, Plan, Reason
from reconciler.report import ApplyReport, HostReport, RolloutReport, Status
from reconciler.sensitive import REDACTED, KnownAfterApply, Sensitive, public

Segment = tuple[str, str]  # (text, style name; "" for none)
Line = list[Segment]

# Style names -> rich styles. Symbols are styled by the action they stand for.
STYLES = {"+": "green", "~": "yellow", "-": "red", "-/+": "magenta", "!": "bold red", "bold": "bold",
          "dim": "dim", "hunk": "cyan", "warn": "yellow"}

_REASONS = {
    Reason.ABSENT: "is not on the host",
    Reason.SPEC_CHANGED: "the spec changed",
    Reason.DRIFT: "drift: changed on the host outside reconciler",
    Reason.REMOVED: "owned by reconciler and removed from the spec",
    Reason.REQUESTED: "replacement requested",
    Reason.TRIGGERED: "a resource it is triggered by changes",
    Reason.UNWANTED: "the spec says it must be absent",
    Reason.ADOPT: "exists on the host, not managed by this spec yet, and differs from it",
}

_VERBS = {Action.CREATE: "will be created", Action.UPDATE: "will be updated in-place",
          Action.DELETE: "will be destroyed", Action.REPLACE: "must be replaced"}


def to_text(lines: list[Line], *, color: bool = False) -> str:
    """Plain text, or text with ANSI colour made by rich when ``color``."""
    if not color:
        return "\n".join("".join(text for text, _ in line) for line in lines)
    import io

    from rich.console import Console
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="standard", width=10_000,
                      highlight=False, emoji=False, soft_wrap=True)
    for line in lines:
        console.print(Text.assemble(*[(text, STYLES.get(style, "")) for text, style in line]))
    return buffer.getvalue().removesuffix("\n")


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


def _symbol(f: FieldChange, action: Action) -> str:
    # A field that goes away is a removal even inside a create (e.g. a file a new
    # retention rule will delete); otherwise it would read "+ name = null".
    removed = f.new is None and f.old is not None
    if (action is Action.CREATE and not removed) or (f.old is None and f.new is not None):
        return "+"
    if action is Action.DELETE or f.new is None:
        return "-"
    return "~"


def _diff_line_style(line: str) -> str:
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "+"
    if line.startswith("-"):
        return "-"
    return "dim" if line.startswith("\\") else ""


def _field_lines(f: FieldChange, action: Action, width: int) -> list[Line]:
    if f.internal:
        # Bookkeeping (a pending daemon-reload): words, never "need_daemon_reload = true".
        # A create or a delete has nothing to explain: the values are the starting or last state.
        if action in (Action.CREATE, Action.DELETE):
            return []
        return [[("      · ", "dim"), (public(f.internal), "dim")]]
    symbol = _symbol(f, action)
    lead: Line = [("      ", ""), (symbol, symbol), (" ", "")]
    diff = f.diff
    if diff is None:
        if symbol == "+":
            value = show_value(f.new)
        elif symbol == "-":
            value = show_value(f.old)
        else:
            value = f"{show_value(f.old)} -> {show_value(f.new)}"
        return [[*lead, (f"{f.path.ljust(width)} = {value}", "")]]
    if not diff.lines:
        return [[*lead, (f"{f.path.ljust(width)} = ({public(diff.summary)})", "")]]
    out: list[Line] = [[*lead, (f"{f.path}:", "")]]
    out.extend([("          ", ""), (public(line), _diff_line_style(line))] for line in diff.lines)
    if diff.summary:
        out.append([("          ", ""), (f"({public(diff.summary)})", "dim")])
    if diff.omitted:
        out.append([("          ", ""), (f"… {diff.omitted} more diff line{'s' if diff.omitted != 1 else ''} "
                                         "not shown", "dim")])
    return out


def render_change(change: Change) -> list[Line]:
    symbol = "!" if change.refused else change.action.symbol
    if change.refused:
        heading = f"  # {change.address} cannot be applied: {public(change.refused)}"
    else:
        heading = f"  # {change.address} {_VERBS[change.action]} ({_REASONS[change.reason]})"
    lines: list[Line] = [[(heading, "!" if change.refused else "dim")],
                         [("  ", ""), (symbol, symbol), (" ", ""), (change.address, "bold")]]
    if change.note:
        lines.append([(f"      {public(change.note)}", "")])
    width = max((len(f.path) for f in change.fields if not f.internal and f.diff is None), default=0)
    for f in change.fields:
        lines.extend(_field_lines(f, change.action, width))
    lines.append([])
    return lines


def plan_lines(plan: Plan) -> list[Line]:
    out: list[Line] = []
    multi = len(plan.hosts) > 1
    for host in plan.hosts:
        if host.error:
            out.append([(f"Error: host {host.host}: {public(host.error)}", "!")])
            out.append([])
            continue
        if not host.changes and not host.warnings and not host.unmanaged and not host.handovers:
            if multi:
                out.append([(f"Host {host.host}: no changes.", "")])
            continue
        if host.changes:
            out.append([(f"Host {host.host} — reconciler will perform these actions:", "bold")])
            out.append([])
        for change in host.changes:
            out.extend(render_change(change))
        for h in host.handovers:
            out.append([("  ", ""), ("»", "bold"), (f" ownership on {host.host}: {h.describe()}", "")])
        if host.handovers:
            out.append([])
        for w in host.warnings:
            out.append([(f"  Warning ({host.host}): {public(w)}", "warn")])
        for u in host.unmanaged:
            out.append([(f"  Unmanaged on {host.host} (left alone): {u}", "")])
        if host.warnings or host.unmanaged:
            out.append([])
    out.extend(order_lines(plan))
    if plan.has_changes:
        s = plan.summary()
        handovers = sum(len(h.handovers) for h in plan.hosts)
        extra = f", {handovers} ownership handover{'s' if handovers != 1 else ''}" if handovers else ""
        totals = f"Plan: {s['add']} to add, {s['change']} to change, {s['destroy']} to destroy{extra}."
        out.append([(totals, "bold")])
        refused = plan.refused
        if refused:
            out.append([(f"{len(refused)} of these changes cannot be applied (see above); apply will fail "
                         f"{'it' if len(refused) == 1 else 'them'} and skip what depends on "
                         f"{'it' if len(refused) == 1 else 'them'}.", "!")])
    elif not plan.has_errors:
        out.append([("No changes. The hosts match the spec.", "bold")])
    return out


def order_lines(plan: Plan) -> list[Line]:
    """The order hosts are applied in (stages; the batches of a rollout) and what each
    waits for on other hosts. Nothing when every host goes at once."""
    rollout = plan.rollout
    if rollout is None:
        return []
    out: list[Line] = []
    if len(rollout.stages) > 1:
        out.append([("Order: ", "bold"), (" → ".join(", ".join(stage) for stage in rollout.stages), "")])
    if rollout.rolling:
        batches = " | ".join(", ".join(b) for b in rollout.batches)
        count = len(rollout.batches)
        out.append([("Rollout: ", "bold"), (
            f"{count} batch{'es' if count != 1 else ''} (serial {rollout.serial}; stops when more than "
            f"{rollout.max_fail_percentage}% of a batch fails): {batches}", "")])
    waits: dict[str, list[str]] = {}
    for host in plan.hosts:
        if host.after:
            text = "; ".join(f"{h} ({', '.join(a)})" if a else h for h, a in host.after.items())
            waits.setdefault(text, []).append(host.host)
    for text, hosts in waits.items():
        out.append([(f"  {', '.join(hosts)} after {text}", "dim")])
    if out:
        out.append([])
    return out


def render_plan(plan: Plan, *, color: bool = False) -> str:
    return to_text(plan_lines(plan), color=color)


def _outcome_lines(host: HostReport, shown_errors: Mapping[str, str]) -> list[Line]:
    out: list[Line] = []
    for o in host.outcomes:
        c = o.change
        if o.status is Status.APPLIED:
            out.append([("  ", ""), ("✓", "+"), (f" {host.host}: {c.address} ({c.action.value})", "")])
        elif o.status is Status.FAILED:
            out.append([(f"  ✗ {host.host}: {c.address} ({c.action.value}) FAILED", "!")])
            out.extend([(f"      {line}", "")] for line in public(o.error).splitlines() or [""])
        elif o.status is Status.INTERRUPTED:
            out.append([(f"  - {host.host}: {c.address} not applied: {public(o.error)}", "warn")])
        else:
            out.append([(f"  - {host.host}: {c.address} skipped: {public(o.error)}", "warn")])
    if host.error and shown_errors.get(host.host) == host.error:
        out.append([(f"  ✗ {host.host}: not applied (the error is above, in the plan)", "!")])
    elif host.error:
        out.append([(f"  ✗ {host.host}: {public(host.error)}", "!")])
    return out


def report_lines(report: ApplyReport, shown_errors: Mapping[str, str] | None = None) -> list[Line]:
    """``shown_errors``: host -> the error the plan above already printed; the list
    then points at it instead of printing it twice."""
    out: list[Line] = []
    totals = {s: 0 for s in Status}
    for host in report.hosts:
        for o in host.outcomes:
            totals[o.status] += 1
        out.extend(_outcome_lines(host, shown_errors or {}))
    # A host that could not be reached (or planned, or locked) is a failure too.
    failed_hosts = [h.host for h in report.hosts if h.error]
    failed = totals[Status.FAILED] + len(failed_hosts)
    counts = f"{totals[Status.APPLIED]} applied, {failed} failed"
    if failed_hosts:
        counts += f" (including host{'s' if len(failed_hosts) != 1 else ''} {', '.join(failed_hosts)})"
    counts += f", {totals[Status.SKIPPED]} skipped"
    if report.interrupted:
        verdict, style = "Apply INTERRUPTED.", "!"
        counts += f", {totals[Status.INTERRUPTED]} not applied"
    elif report.ok:
        verdict, style = "Apply complete!", "bold"
    else:
        verdict, style = "Apply FAILED.", "!"
    out.append([])
    if report.rollout is not None:
        out.extend(rollout_lines(report.rollout))
    out.append([(f"{verdict} {counts}.", style)])
    return out


def rollout_lines(rollout: RolloutReport) -> list[Line]:
    """The rollout's verdict: where it stopped and which hosts were changed, failed,
    unchanged or left untouched; failed checks with their output."""
    out: list[Line] = []
    for batch in rollout.batches:
        for check in batch.checks:
            if not check.ok:
                out.append([(f"  ✗ {check.host}: check {check.name} did not pass (batch {batch.number}): "
                             f"{public(check.detail)}", "!")])
    done = len(rollout.batches)
    if rollout.stopped:
        out.append([(f"Rollout STOPPED: {public(rollout.stopped)}.", "!")])
    else:
        out.append([(f"Rollout complete: {done} of {rollout.total_batches} batches.", "bold")])
    for label, hosts in (("changed", rollout.changed), ("failed", rollout.failed),
                         ("unchanged", rollout.unchanged), ("untouched", rollout.untouched)):
        if hosts:
            out.append([(f"  {label + ':':<11}{', '.join(hosts)}", "!" if label == "failed" else "")])
    return out


def render_report(report: ApplyReport, *, color: bool = False,
                  shown_errors: Mapping[str, str] | None = None) -> str:
    return to_text(report_lines(report, shown_errors), color=color)
