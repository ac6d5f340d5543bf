"""A notice as a webhook's JSON body and as a chat message's title and body."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from reconciler.controller.notices import Notice

PAYLOAD_VERSION = 1
MAX_DETAIL_LINES = 20
MAX_TITLE = 120


def link_for(template: str | None, revision: str) -> str | None:
    """The configured link with ``{revision}`` and ``{short}`` filled in (None without
    a template, or for a notice that names no revision)."""
    if not template or not revision:
        return None
    return template.replace("{revision}", revision).replace("{short}", revision[:12])


def notice_payload(notice: Notice, *, controller: Mapping[str, str], link: str | None,
                   held: int = 0) -> dict[str, Any]:
    """The webhook body: the notice (``event``, ``severity``, ``time``, ``revision``,
    ``summary``, ``hosts`` ...), the controller it comes from, ``link`` and ``held``
    (similar notices held back by the rate limit since the last one sent). ``id`` is
    the same on every retry of one delivery."""
    body: dict[str, Any] = {"version": PAYLOAD_VERSION, "id": str(uuid.uuid4()), **notice.to_json(),
                            "controller": dict(controller)}
    if link:
        body["link"] = link
    if held:
        body["held"] = held
    return body


def notice_text(notice: Notice, *, link: str | None, held: int = 0) -> tuple[str, str]:
    """(title, body) for a chat or e-mail message: plain text, the detail cut to
    ``MAX_DETAIL_LINES`` lines."""
    title = f"reconciler: {notice.summary}"
    if len(title) > MAX_TITLE:
        title = title[:MAX_TITLE - 3] + "..."
    lines = [notice.summary]
    if notice.commit is not None:
        lines.append(f"commit: {notice.commit.summary} ({notice.commit.author})")
    if notice.revision:
        lines.append(f"revision: {notice.revision}")
    if notice.hosts:
        lines.append("hosts: " + ", ".join(notice.hosts))
    if notice.job:
        lines.append(f"job: {notice.job} (finished {notice.time})")
    if notice.resources:
        shown = list(notice.resources[:10])
        more = len(notice.resources) - len(shown)
        lines.append("resources: " + ", ".join(shown) + (f" and {more} more" if more > 0 else ""))
    if notice.detail:
        detail = notice.detail.splitlines()
        lines.extend(detail[:MAX_DETAIL_LINES])
        if len(detail) > MAX_DETAIL_LINES:
            lines.append(f"... ({len(detail) - MAX_DETAIL_LINES} more lines)")
    if held:
        lines.append(f"({held} similar notice(s) were held back by the rate limit)")
    if link:
        lines.append(link)
    return title, "\n".join(lines)
