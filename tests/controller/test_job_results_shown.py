"""A scheduled host job's result as people see it (pure): its line in `reconcile
history`, its entry on the status page (escaped, marked bad when it failed), the
last result per job in `reconcile status`, and the chat text of its notice."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reconciler.controller.core.tell import job_notice
from reconciler.controller.notifications.payload import notice_text
from reconciler.controller.page import PageData, render_page
from reconciler.controller.records import JobRecord
from reconciler.controller.report import render_history, render_status
from reconciler.controller.state import ControllerStatus
from reconciler.provider import JobOutcome

A = "a" * 40
NOW = datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()
FINISHED = NOW - 4 * 3600
HOSTILE = '<script>alert("x")</script>'
DRILL = JobRecord("web", "backups:appdb", "drill", JobOutcome.FAILED, FINISHED,
                  f"/var/backups/appdb/appdb-1.tar.gz: checksum mismatch {HOSTILE}", "appdb-1.tar.gz")
BACKUP = JobRecord("web", "backups:appdb", "backup", JobOutcome.OK, FINISHED - 7200, "", "appdb-1.tar.gz")


def entries() -> list[dict[str, Any]]:
    return [BACKUP.history_entry("2027-01-15T07:00:00Z", A), DRILL.history_entry("2027-01-15T08:00:00Z", A)]


def test_reconcile_history_shows_each_job_result() -> None:
    text = render_history(entries())
    assert "2027-01-15T08:00:00Z  job     drill failed: web backups:appdb" in text
    assert "finished at 2027-01-15T04:00:00Z (appdb-1.tar.gz)" in text
    assert "    error: /var/backups/appdb/appdb-1.tar.gz: checksum mismatch" in text
    assert "backup ok: web backups:appdb" in text


def test_the_status_page_shows_job_results_escaped() -> None:
    data = PageData({"repo": "r", "branch": "main", "path": "specs"}, entries(), None, refresh=5, link=None,
                    now=NOW)
    html = render_page(data)
    assert '<li class="job bad" data-result="failed">' in html and '<li class="job" data-result="ok">' in html
    assert "drill failed: web backups:appdb" in html and "finished at 2027-01-15T04:00:00Z" in html
    assert HOSTILE not in html and "&lt;script&gt;" in html


def test_reconcile_status_lists_the_last_result_of_each_job() -> None:
    text = render_status(ControllerStatus(repo="r", branch="main", path="specs",
                                          jobs=[DRILL.to_json(), BACKUP.to_json()]))
    lines = text.splitlines()
    start = lines.index("Host jobs:     the last result of each scheduled job")
    assert lines[start + 1:start + 3] == [
        "    web  backups:appdb  backup  ok at 2027-01-15T02:00:00Z",
        f"    web  backups:appdb  drill  failed at 2027-01-15T04:00:00Z: {DRILL.detail}"]


def test_the_chat_text_of_a_failed_job_names_host_job_and_resource() -> None:
    notice = job_notice(DRILL, BACKUP, A)
    assert notice is not None
    title, body = notice_text(notice, link=None)
    assert title == "reconciler: drill failed on web: backups:appdb (appdb-1.tar.gz)"
    assert "hosts: web" in body and "job: drill (finished 2027-01-15T04:00:00Z)" in body
    assert "resources: web: backups:appdb" in body and "checksum mismatch" in body
