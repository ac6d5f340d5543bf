"""The controller's read-only status page (``GET /`` of the HTTP endpoint).

Server-rendered HTML from the same data as ``GET /status`` and ``reconcile
history``: no script, no build step, no external asset (the style is inline),
and it reloads itself (``<meta http-equiv="refresh">``). What it shows: the
revision applied and the head of the branch, what is running, the last error,
the sync windows, per host the last result, pending drift and each resource's
state, the history with intended changes and drift corrections told apart,
contested resources and quarantined commits.

Everything shown is escaped (commit messages and errors are text a committer
wrote). The response forbids scripts, frames and referrers
(``Content-Security-Policy``, ``Referrer-Policy``): with a token in the URL, a
link followed from the page must not carry it along.

With ``status_page.token_file`` the page answers 401 unless the request carries
the token (``?token=...`` or ``Authorization: Bearer ...``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import parse_qs

from reconciler.controller.hostview import HostView, host_views
from reconciler.controller.httpserver import Response
from reconciler.controller.notifications.payload import link_for
from reconciler.controller.windows import WindowDecision

HTML = "text/html; charset=utf-8"
HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
           ("Referrer-Policy", "no-referrer"),
           ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                                      "form-action 'none'; frame-ancestors 'none'"))
MAX_CHANGES_SHOWN = 8
MAX_FIELDS_SHOWN = 4
MAX_VALUE = 60
MAX_RESOURCES_OPEN = 12
"""A host's resource list is shown unfolded up to this many resources."""
MAX_ERROR_LINES = 12

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 20px}header h1{font-size:18px;margin:0}
header .repo{color:#b8c0d0;margin:2px 0 0}main{padding:12px 20px;max-width:1200px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:12px 0;padding:10px 14px}
h2{font-size:15px;margin:4px 0 8px}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f4;vertical-align:top}
code{font:12px ui-monospace,monospace;background:#eef0f4;padding:1px 4px;border-radius:3px}
pre{font:12px ui-monospace,monospace;white-space:pre-wrap;margin:4px 0;background:#fbf3f3;padding:6px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:0}dt{color:#5a6272}dd{margin:0}
.badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600;background:#e4e7ed}
.ok,.open,.applied,.unchanged,.corrected,.in-sync,.success{background:#d6f2dc;color:#185c2b}
.differs,.detected,.deferred,.retrying,.warn,.closed,.unknown{background:#fdf0cf;color:#6b4b00}
.failed,.refused,.rolled-back,.error{background:#f9d7d7;color:#8a1c1c}
.banner{margin-top:8px;padding:6px 10px;border-radius:4px;font-weight:600}
ol.timeline{list-style:none;padding:0;margin:0}
ol.timeline>li{border-left:5px solid #8aa0c8;padding:6px 10px;margin:6px 0;background:#fafbfc}
ol.timeline>li.drift{border-left-color:#e0a030}ol.timeline>li.bad{background:#fdf6f6}
.field{color:#5a6272;font:12px ui-monospace,monospace}
.kind{font-weight:600;margin-right:6px}.muted{color:#6b7280}ul.res{margin:2px 0;padding-left:18px}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _short(sha: Any) -> str:
    return str(sha)[:12] if sha else "-"


def _badge(result: Any) -> str:
    return f'<span class="badge {_e(result)}">{_e(result)}</span>'


def _summary(summary: Mapping[str, Any] | None) -> str:
    if not summary:
        return ""
    return f"+{summary.get('add', 0)} ~{summary.get('change', 0)} -{summary.get('destroy', 0)}"


class PageData:
    """What one rendering needs (gathered by the runner, read by the HTTP thread)."""

    def __init__(self, status: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                 windows: WindowDecision | None, *, refresh: float, link: str | None, now: float) -> None:
        self.status = status
        self.history = history
        self.windows = windows
        self.refresh = refresh
        self.link = link
        self.now = now

    def revision(self, sha: Any) -> str:
        """A revision as code, linked to the forge when a link is configured."""
        text = f"<code>{_e(_short(sha))}</code>"
        href = link_for(self.link, str(sha or ""))
        return f'<a href="{_e(href)}" rel="noreferrer noopener">{text}</a>' if href else text


def render_page(data: PageData) -> str:
    s = data.status
    views = host_views(s, data.history)
    level, headline = _overall(s)
    applied = s.get("last_applied") or {}
    title = f"reconciler: {headline} ({_short(applied.get('revision'))})"
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{int(data.refresh)}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f'<header><h1>reconciler controller</h1><p class="repo">{_e(s.get("repo", ""))} '
        f'(branch <b>{_e(s.get("branch", ""))}</b>, path {_e(s.get("path", ""))})</p>'
        f'<div id="overall" class="banner {level}">{_e(headline)}</div></header><main>',
        _revisions(data), _hosts(data, views), _drift(s), _contested(s), _quarantine(data), _timeline(data),
        f'<p class="muted" id="updated">Status of {_e(s.get("updated_at", "?"))}; shown at '
        f'{_e(_clock(data.now))}; this page reloads every {data.refresh:g} s. Data: '
        '<a href="status">/status</a>, <a href="metrics">/metrics</a>.</p>',
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _overall(s: Mapping[str, Any]) -> tuple[str, str]:
    """(css class, one line) of the controller's state at a glance."""
    if s.get("verifying"):
        return "warn", f"verifying {_short(s['verifying'].get('revision'))} in its health grace"
    flight = s.get("in_flight")
    if flight:
        return "warn", f"running: {flight.get('cause')} {_short(flight.get('revision'))}"
    error = s.get("last_error")
    if error:
        first = (str(error.get("message", "")).splitlines() or [""])[0]
        return "error", f"last commit failed ({error.get('cause')}): {first}"
    if s.get("pending_drift"):
        return "warn", f"{len(s['pending_drift'])} resource(s) drifted, not corrected"
    if s.get("pending"):
        return "warn", f"commit {_short(s['pending'].get('revision'))} waits for a sync window"
    if not s.get("last_applied"):
        return "warn", "nothing applied yet"
    return "ok", "in sync"


def _revisions(data: PageData) -> str:
    s = data.status
    rows: list[tuple[str, str]] = []
    applied = s.get("last_applied")
    if applied:
        rows.append(("Applied", f"{data.revision(applied.get('revision'))} at {_e(applied.get('at'))} "
                                f"{_badge(applied.get('result') or 'applied')} "
                                f"{_e(_summary(applied.get('summary')))}"))
    else:
        rows.append(("Applied", "nothing yet"))
    head = s.get("head")
    if head:
        rows.append(("Head of branch",
                     f"{data.revision(head.get('revision'))} (fetched {_e(head.get('at'))})"))
    if s.get("verifying"):
        v = s["verifying"]
        rows.append(("Verifying", f"{data.revision(v.get('revision'))} until {_e(v.get('until'))}"))
    if s.get("in_flight"):
        f = s["in_flight"]
        rows.append(("Running", f"{_e(f.get('cause'))} {data.revision(f.get('revision'))} since "
                                f"{_e(f.get('started_at'))}"))
    if s.get("fetch_failing"):
        f = s["fetch_failing"]
        rows.append(("Fetch failing", f"since {_e(f.get('since'))} ({_e(f.get('attempt'))} in a row): "
                                      f"{_e(f.get('error'))}"))
    if s.get("retry"):
        r = s["retry"]
        rows.append(("Retrying", f"{data.revision(r.get('revision'))} attempt {_e(r.get('attempt'))}: "
                                 f"{_e(r.get('error'))}"))
    if s.get("pending"):
        p = s["pending"]
        rows.append(("Deferred", f"{data.revision(p.get('revision'))} {_e(_summary(p.get('summary')))}: "
                                 f"{_e(p.get('message'))}"))
    error = s.get("last_error")
    if error:
        lines = str(error.get("message", "")).splitlines()[:MAX_ERROR_LINES]
        rows.append(("Last error", f"{data.revision(error.get('revision'))} at {_e(error.get('at'))} "
                                   f"({_e(error.get('cause'))})<pre>{_e(chr(10).join(lines))}</pre>"))
    rows.append(("Sync windows", _windows(data.windows)))
    rows.append(("Last drift check", _e(s.get("last_drift_check") or "not yet")))
    body = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<section id="revision"><h2>Revision</h2><dl>{body}</dl></section>'


def _windows(decision: WindowDecision | None) -> str:
    if decision is None:
        return "none configured: changes are applied at any time"
    state = _badge("open") if decision.allowed else _badge("closed")
    nxt = (f"; next change at {_e(decision.next_change.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%SZ'))}"
           if decision.next_change is not None else "")
    return f'{state} {_e(decision.reason)}<span id="next-window">{nxt}</span>'


def _hosts(data: PageData, views: list[HostView]) -> str:
    if not views:
        return '<section id="hosts"><h2>Hosts</h2><p class="muted">No host seen yet.</p></section>'
    rows = []
    for v in views:
        last = (f"{_badge(v.last.result)} {_e(v.last.cause)} {data.revision(v.last.revision)} at "
                f"{_e(v.last.time)}" if v.last else "-")
        failing = [h for h in v.health if not h.get("ok")]
        health = ("-" if not v.health else '<span class="badge ok">ok</span>' if not failing else
                  "<br>".join(f'<span class="badge failed">{_e(h.get("check"))}</span> {_e(h.get("detail"))}'
                              for h in failing))
        resources = "".join(f"<li>{_badge(state)} <code>{_e(address)}</code></li>"
                            for address, state in sorted(v.resources.items()))
        counts = ", ".join(f"{v.count(state)} {state}" for state in ("ok", "differs", "failed", "unknown")
                           if v.count(state))
        drift = len(v.pending_drift)
        rows.append(
            f'<tr id="host-{_e(v.host)}"><td><b>{_e(v.host)}</b></td><td>{last}</td>'
            f"<td>{data.revision(v.applied)}</td>"
            f'<td>{_badge("differs") if drift else ""} {drift}</td><td>{health}</td>'
            f"<td><details{' open' if len(v.resources) <= MAX_RESOURCES_OPEN else ''}>"
            f"<summary>{_e(counts or 'none')}</summary><ul class=\"res\">{resources}</ul></details>"
            "</td></tr>")
    head = ("<tr><th>Host</th><th>Last result</th><th>Applied</th><th>Pending drift</th><th>Health</th>"
            "<th>Resources</th></tr>")
    return f'<section id="hosts"><h2>Hosts</h2><table>{head}{"".join(rows)}</table></section>'


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 3] + "..."


def _fields(change: Mapping[str, Any]) -> str:
    """Before and after of a change's fields (already redacted in the record)."""
    fields = [f for f in change.get("fields") or [] if isinstance(f, Mapping)]
    lines = [f'<div class="field">{_e(f.get("path"))}: {_e(_value(f.get("before")))} &rarr; '
             f"{_e(_value(f.get('after')))}</div>" for f in fields[:MAX_FIELDS_SHOWN]]
    if len(fields) > MAX_FIELDS_SHOWN:
        lines.append(f'<div class="field">and {len(fields) - MAX_FIELDS_SHOWN} more field(s)</div>')
    return "".join(lines)


def _changes(changes: Sequence[Mapping[str, Any]], *, fields: bool = False) -> str:
    items = [f"<li>{_e(c.get('host'))}: {_e(c.get('action'))} <code>{_e(c.get('address'))}</code> "
             f'<span class="muted">({_e(c.get("reason"))})</span>{_fields(c) if fields else ""}</li>'
             for c in changes[:MAX_CHANGES_SHOWN]]
    if len(changes) > MAX_CHANGES_SHOWN:
        items.append(f'<li class="muted">and {len(changes) - MAX_CHANGES_SHOWN} more</li>')
    return f'<ul class="res">{"".join(items)}</ul>' if items else ""


def _drift(s: Mapping[str, Any]) -> str:
    drift = s.get("pending_drift") or []
    if not drift:
        return ""
    return (f'<section id="drift"><h2>Pending drift</h2><p>Found at {_e(s.get("last_drift_check"))} '
            f"and not corrected:</p>{_changes(drift, fields=True)}</section>")


def _contested(s: Mapping[str, Any]) -> str:
    contested = s.get("contested") or []
    if not contested:
        return ""
    rows = "".join(f"<tr><td>{_e(c.get('host'))}</td><td><code>{_e(c.get('address'))}</code></td>"
                   f"<td>{_e(c.get('count'))}</td><td>{_e(c.get('last_seen'))}</td>"
                   f"<td>{_e('; '.join(c.get('evidence') or []))}</td></tr>" for c in contested)
    head = "<tr><th>Host</th><th>Resource</th><th>Times</th><th>Last</th><th>Evidence</th></tr>"
    return ('<section id="contested"><h2>Contested</h2><p>Changed by the last commit, changed back by '
            f"something else since:</p><table>{head}{rows}</table></section>")


def _quarantine(data: PageData) -> str:
    quarantined: Mapping[str, str] = data.status.get("quarantined") or {}
    if not quarantined:
        body = '<p class="muted">None.</p>'
    else:
        rows = "".join(f"<tr><td>{data.revision(sha)}</td><td>{_e(reason)}</td></tr>"
                       for sha, reason in reversed(list(quarantined.items())))
        body = f"<table><tr><th>Commit</th><th>Why it is not applied</th></tr>{rows}</table>"
    return f'<section id="quarantine"><h2>Quarantined commits</h2>{body}</section>'


def _timeline(data: PageData) -> str:
    items = [_entry(data, e) for e in reversed(data.history)]
    body = f'<ol class="timeline">{"".join(items)}</ol>' if items else '<p class="muted">No runs yet.</p>'
    return f'<section id="timeline"><h2>History</h2>{body}</section>'


def _entry(data: PageData, e: Mapping[str, Any]) -> str:
    cause = str(e.get("cause", ""))
    result = str(e.get("result", ""))
    if cause == "job":
        return _job_entry(e, result)
    intent = e.get("intent") or ("intended change" if cause == "commit" else "drift correction")
    bad = " bad" if result in ("failed", "refused", "rolled-back") else ""
    count = int(e.get("count", 1) or 1)
    times = f" &times;{count} until {_e(e.get('last_time'))}" if count > 1 else ""
    head = (f'<span class="kind">{_e(intent)}</span>{_badge(result)} {data.revision(e.get("revision"))} '
            f'<span class="muted">{_e(e.get("time"))}{times} ({_e(e.get("trigger"))}'
            f'{", " + _e(e.get("seconds")) + " s" if "seconds" in e else ""})</span> '
            f"{_e(_summary(e.get('summary')))}")
    lines = [head]
    commit = e.get("commit")
    if commit:
        lines.append(f"<div>{_e(commit.get('summary'))} <span class=\"muted\">&mdash; "
                     f"{_e(commit.get('author'))}</span></div>")
    if e.get("reason"):
        lines.append(f'<div class="muted">{_e(e["reason"])}</div>')
    rollback = e.get("rollback")
    if rollback and rollback.get("attempted"):
        state = "restored" if rollback.get("ok") else f"FAILED: {rollback.get('error', '')}"
        lines.append(f"<div>rolled back to {data.revision(rollback.get('revision'))}: {_e(state)}</div>")
    if e.get("error"):
        text = "\n".join(str(e["error"]).splitlines()[:MAX_ERROR_LINES])
        lines.append(f"<pre>{_e(text)}</pre>")
    if cause == "drift" or result in ("deferred",):
        lines.append(_changes(e.get("changes") or [], fields=cause == "drift"))
    if e.get("contested"):
        lines.append(f"<div>contested: {_e(', '.join(e['contested']))}</div>")
    return f'<li class="{_e(cause)}{bad}" data-result="{_e(result)}">{"".join(lines)}</li>'


def _job_entry(e: Mapping[str, Any], result: str) -> str:
    """A scheduled host job's result: "drill failed: web backups:appdb", when it
    finished, what it used, and why it failed."""
    bad = " bad" if result == "failed" else ""
    head = (f'<span class="kind">{_e(e.get("intent") or "scheduled job")}</span>{_badge(result)} '
            f'{_e(e.get("job"))} {_e(result)}: {_e(e.get("host"))} {_e(e.get("address"))} '
            f'<span class="muted">{_e(e.get("time"))} (finished at {_e(e.get("finished_at"))})</span>')
    lines = [head]
    if e.get("artefact"):
        lines.append(f'<div class="muted">{_e(e["artefact"])}</div>')
    if e.get("detail"):
        lines.append(f"<pre>{_e(e['detail'])}</pre>")
    return f'<li class="job{bad}" data-result="{_e(result)}">{"".join(lines)}</li>'


class StatusPage:
    """The route handler: token check, then the page (``gather`` reads the data)."""

    def __init__(self, gather: Callable[[], PageData], token: str | None) -> None:
        self.gather = gather
        self.token = token

    def __call__(self, query: str, headers: Mapping[str, str]) -> Response:
        if self.token is not None and not self._authorized(query, headers):
            body = b"<!doctype html><title>401</title><p>This page needs its token: ?token=...</p>\n"
            return Response(401, body, HTML, HEADERS)
        return Response(200, render_page(self.gather()).encode(), HTML, HEADERS)

    def _authorized(self, query: str, headers: Mapping[str, str]) -> bool:
        assert self.token is not None
        offered = parse_qs(query).get("token", [""])[0]
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            offered = auth[7:].strip()
        return hmac.compare_digest(offered.encode(), self.token.encode())
