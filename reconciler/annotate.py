"""What a plan says about each change besides its fields: refusals, bookkeeping fields
in words, and text diffs. Run by the engine once per host after planning, on the
planned changes only, so a plan without changes costs nothing here.

The providers declare; this module does the work for every kind alike:
``Provider.refusal`` (a change apply would always refuse), ``internal_fields``
(explained, not shown as settings) and ``text_fields`` with ``desired_text`` and
``text_path`` (a unified diff; the host's texts are read with one capped command).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from reconciler.errors import ReconcilerError
from reconciler.plan import Action, DiffKind, TextDiff
from reconciler.provider import ApplyItem, HostContext, Provider
from reconciler.sensitive import public
from reconciler.textdiff import DesiredText, HostText, read_host_texts, resolve, text_diff

log = structlog.get_logger("reconciler.annotate")


def explain_internal(template: str, old: Any) -> str:
    """A provider's words for a bookkeeping field, ``{old}`` filled in readably."""
    shown = ", ".join(str(public(v)) for v in old) if isinstance(old, list | tuple) else str(public(old))
    return template.replace("{old}", shown)


def annotate(ctx: HostContext, providers: Mapping[str, Provider[Any]], items: Sequence[ApplyItem]) -> None:
    """Rewrite each item's change in place with its refusal, internal-field words and
    text diffs."""
    wanted: list[tuple[ApplyItem, int, DesiredText, str | None]] = []
    for item in items:
        change = item.change
        provider = providers[change.kind]
        fields = list(change.fields)
        for n, f in enumerate(fields):
            template = provider.internal_fields.get(f.path)
            if template is not None:
                fields[n] = dataclasses.replace(f, internal=explain_internal(template, f.old))
        refused = ""
        if change.action is not Action.DELETE:
            refused = provider.refusal(item) or ""
        item.change = dataclasses.replace(change, fields=tuple(fields), refused=refused)
        if change.action is Action.DELETE or item.resource is None or not provider.text_fields:
            continue
        for n, f in enumerate(fields):
            if f.path not in provider.text_fields or f.pending:
                continue
            template_text = provider.desired_text(item.resource, f.path, ctx)
            desired = None if template_text is None else resolve(template_text, ctx.secrets.get)
            if desired is None:
                continue
            path = None
            if f.old is not None and item.actual is not None:
                path = provider.text_path(change.id, f.path, item.actual)
                if path is None:
                    continue  # it exists, but the provider cannot say where: no diff
            wanted.append((item, n, desired, path))
    if not wanted:
        return
    paths = sorted({path for _, _, _, path in wanted if path is not None})
    texts: dict[str, HostText | None] = {}
    problem = ""
    try:
        texts = read_host_texts(ctx.transport, paths)
    except ReconcilerError as exc:
        # A diff is for review; the plan itself stands without it.
        problem = f"could not read the host's text: {public(str(exc))}"
        log.debug("reading texts for diffs failed", host=ctx.name, error=problem)
    for item, n, desired, path in wanted:
        f = item.change.fields[n]
        diff: TextDiff
        if path is None:
            diff = text_diff(None, desired, new_digest=f.new)
        elif texts.get(path) is None:
            diff = TextDiff(DiffKind.UNREADABLE, summary=problem or
                            f"{path} on the host is not a regular file that can be read")
        else:
            diff = text_diff(texts[path], desired, old_digest=f.old, new_digest=f.new)
        fields = list(item.change.fields)
        fields[n] = dataclasses.replace(f, diff=diff)
        item.change = dataclasses.replace(item.change, fields=tuple(fields))

