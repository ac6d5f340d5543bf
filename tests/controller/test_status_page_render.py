"""The status page as rendered from status and history data (pure), and served with
its token and headers by the real HTTP endpoint on 127.0.0.1: every state the page
must show, text a committer wrote escaped, no script, and the token enforced."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.controller.hostview import host_views
from reconciler.controller.httpserver import ControlServer
from reconciler.controller.metrics import Metrics
from reconciler.controller.page import PageData, StatusPage, render_page
from reconciler.controller.windows import WindowDecision

A, B, C = "a" * 40, "b" * 40, "c" * 40
NOW = datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()
HOSTILE = '<script>alert("x")</script>'
CHANGE = {"host": "web", "address": "files:/srv/app.conf", "action": "update", "reason": "drift",
          "fields": [{"path": "content", "before": "by hand\n", "after": "good\n"}]}

STATUS: dict[str, Any] = {
    "repo": "https://git.example.com/ops/servqr.git", "branch": "main", "path": "specs",
    "updated_at": "2027-01-15T08:00:00Z",
    "head": {"revision": C, "at": "2027-01-15T07:59:00Z"},
    "last_applied": {"revision": A, "at": "2027-01-15T07:00:00Z", "result": "applied",
                     "summary": {"add": 1, "change": 0, "destroy": 0}},
    "last_error": {"revision": B, "at": "2027-01-15T07:30:00Z", "cause": "health",
                   "message": f"commit {B[:12]} is unhealthy after 30 s: web: http: curl exited 7; "
                              f"rolled back to {A[:12]}"},
    "pending": {"revision": C, "at": "2027-01-15T07:59:30Z", "summary": {"add": 0, "change": 1, "destroy": 0},
                "message": "outside every allow window; the next opens at 2027-01-15T22:00:00+00:00"},
    "pending_drift": [{**CHANGE, "host": "db", "address": "files:/etc/db.conf"}],
    "last_drift_check": "2027-01-15T07:59:50Z",
    "quarantined": {B: f"health: commit {B[:12]} is unhealthy after 30 s: web: http: curl exited 7"},
    "resources": {"web": {"files:/srv/app.conf": "ok", "services:app": "ok"},
                  "db": {"files:/etc/db.conf": "differs"}},
    "health": [{"host": "web", "check": "converged", "ok": True, "detail": ""},
               {"host": "db", "check": "pg", "ok": False, "detail": "pg_isready exited 2"}],
    "contested": [],
}
HISTORY: list[dict[str, Any]] = [
    {"time": "2027-01-15T07:00:00Z", "cause": "commit", "intent": "intended change", "revision": A,
     "trigger": "webhook", "result": "applied",
     "commit": {"summary": "good", "author": "Ops <ops@example.com>"},
     "summary": {"add": 1, "change": 0, "destroy": 0}, "seconds": 3.2},
    {"time": "2027-01-15T07:30:00Z", "cause": "commit", "intent": "intended change", "revision": B,
     "trigger": "webhook", "result": "rolled-back", "stage": "health",
     "commit": {"summary": HOSTILE, "author": "Mallory <m@example.com>"},
     "error": f"commit {B[:12]} is unhealthy", "rollback": {"attempted": True, "revision": A, "ok": True}},
    {"time": "2027-01-15T07:45:00Z", "cause": "drift", "intent": "drift correction", "revision": A,
     "trigger": "file-event", "result": "corrected", "changes": [CHANGE], "count": 3,
     "last_time": "2027-01-15T07:50:00Z"},
]
WINDOWS = WindowDecision(False, "outside every allow window; the next opens at 2027-01-15T22:00:00+00:00",
                         datetime(2027, 1, 15, 22, 0, tzinfo=UTC))


def page(status: dict[str, Any] = STATUS, history: list[dict[str, Any]] = HISTORY,
         windows: WindowDecision | None = WINDOWS) -> str:
    return render_page(PageData(status, history, windows, refresh=5, now=NOW,
                                link="https://git.example.com/ops/servqr/commit/{revision}"))


def test_the_page_shows_every_state() -> None:
    html = page()
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "last commit failed (health)" in html  # the banner
    assert f"<code>{A[:12]}</code>" in html and f"<code>{C[:12]}</code>" in html
    assert "Deferred" in html and "outside every allow window" in html
    assert "next change at 2027-01-15 22:00:00Z" in html
    assert '<span class="badge closed">closed</span>' in html
    # Per host: last result, pending drift, health, each resource's state.
    assert 'id="host-db"' in html and 'id="host-web"' in html
    assert "pg_isready exited 2" in html and '<span class="badge differs">differs</span>' in html
    assert "<code>services:app</code>" in html
    # Quarantined with its reason; the history tells intended changes from drift corrections.
    assert f"health: commit {B[:12]} is unhealthy after 30 s" in html
    assert html.count('<span class="kind">intended change</span>') == 2
    assert html.count('<span class="kind">drift correction</span>') == 1
    assert f"rolled back to <a href=\"https://git.example.com/ops/servqr/commit/{A}\"" in html
    assert "&times;3 until 2027-01-15T07:50:00Z" in html
    assert "content: by hand\\n &rarr; good\\n" in html
    # Newest first.
    assert html.index('data-result="corrected"') < html.index('data-result="rolled-back"') < html.index(
        'data-result="applied"')


def test_a_failing_fetch_is_shown_with_its_error() -> None:
    error = ("cannot fetch main from https://(sensitive)@git.example.com/ops/servqr.git: no answer within "
             "120 s (git_timeout); git was stopped")
    html = page({**STATUS, "fetch_failing": {"attempt": 3, "since": "2027-01-15T07:50:00Z",
                                             "next_at": NOW + 60, "error": error + HOSTILE}})
    assert f"<dt>Fetch failing</dt><dd>since 2027-01-15T07:50:00Z (3 in a row): {error}" in html
    assert HOSTILE not in html
    assert "Fetch failing" not in page()


def test_text_from_commits_is_escaped_and_there_is_no_script() -> None:
    html = page()
    assert HOSTILE not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "http://" not in html.replace("https://git.example.com", "")  # no external asset


def test_each_host_shows_its_last_run() -> None:
    views = {v.host: v for v in host_views(STATUS, HISTORY)}
    assert views["web"].last is not None and (views["web"].last.result, views["web"].last.cause) == (
        "corrected", "drift")
    assert views["web"].last.time == "2027-01-15T07:50:00Z"  # the end of the burst
    db = views["db"].last  # not in the drift entry: the rolled-back commit touched every host
    assert db is not None and (db.result, db.revision) == ("rolled-back", B)
    assert len(views["db"].pending_drift) == 1 and views["db"].count("differs") == 1
    # Without history, the applied revision's result stands.
    fallback = host_views(STATUS, [])[0].last
    assert fallback is not None and (fallback.result, fallback.revision) == ("applied", A)


def test_a_fresh_controller_renders() -> None:
    html = page({"repo": "r", "branch": "main", "path": "."}, [], None)
    assert "nothing applied yet" in html and "No runs yet." in html and "No host seen yet." in html
    assert "none configured" in html


class Served:
    def __init__(self, token: str | None) -> None:
        route = StatusPage(lambda: PageData(STATUS, HISTORY, None, refresh=5, link=None, now=NOW), token)
        self.server = ControlServer("127.0.0.1", 0, metrics=Metrics(), secret=None, on_push=lambda _e: None,
                                    healthy=lambda: (True, "ok"), status=lambda: STATUS, routes={"/": route})
        self.server.start()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection(*self.server.address, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()
        finally:
            conn.close()


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served("page-token-0123456789")
    yield s
    s.server.stop()


def test_the_page_is_served_with_its_token_and_safe_headers(served: Served) -> None:
    assert served.get("/")[0] == 401
    assert served.get("/?token=wrong")[0] == 401
    code, headers, body = served.get("/?token=page-token-0123456789")
    assert code == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer" and headers["cache-control"] == "no-store"
    assert "reconciler controller" in body
    code, _, _ = served.get("/", {"Authorization": "Bearer page-token-0123456789"})
    assert code == 200
    assert served.get("/healthz")[0] == 200  # the other endpoints are as before


def test_without_a_token_the_page_is_open() -> None:
    s = Served(None)
    try:
        assert s.get("/")[0] == 200
    finally:
        s.server.stop()
