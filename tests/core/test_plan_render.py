"""Plan and apply-report rendering (reconciler/render.py), against golden text.

Symbols are Terraform's: ``+`` create, ``~`` update, ``-`` delete, ``-/+`` replace;
each change says why (absent, spec changed, drift, removed from spec, replace
requested); secrets show as ``(sensitive)`` and pending values as
``(known after apply)``; the last line is the summary. Goldens live in
``tests/core/fixtures/render/``; regenerate with ``RECONCILER_UPDATE_GOLDEN=1``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.diagnostics import Diagnostic
from reconciler.engine import ApplyReport, ChangeOutcome, HostReport, Status
from reconciler.plan import Action, Change, DiffKind, FieldChange, HostPlan, Plan, Reason, TextDiff
from reconciler.render import render_plan, render_report
from reconciler.sensitive import KNOWN_AFTER_APPLY, REDACTOR, Sensitive

GOLDEN = Path(__file__).parent / "fixtures" / "render"
SECRET = "golden-secret-value-9f1c2e"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("RECONCILER_UPDATE_GOLDEN"):
        path.write_text(text + "\n")
    assert text + "\n" == path.read_text()


def sample_plan() -> Plan:
    web = HostPlan("web", changes=[
        Change("web", "directories", "/srv/app", Action.CREATE, (
            FieldChange("type", None, "directory"), FieldChange("owner", None, "root"),
            FieldChange("mode", None, "0750")), Reason.ABSENT),
        Change("web", "files", "/srv/app/db.conf", Action.CREATE, (
            FieldChange("content", None, KNOWN_AFTER_APPLY), FieldChange("mode", None, "0640")),
            Reason.ABSENT),
        Change("web", "files", "/srv/app/app.conf", Action.UPDATE, (
            FieldChange("content", "sha256:" + "a" * 64, "sha256:" + "b" * 64),
            FieldChange("mode", "0600", "0644")), Reason.DRIFT),
        Change("web", "files", "/srv/app/secret.env", Action.UPDATE, (
            FieldChange("content", Sensitive("sha256:" + "c" * 64), Sensitive(SECRET)),),
            Reason.SPEC_CHANGED),
        Change("web", "containers", "api", Action.UPDATE, (
            FieldChange("env.DB_HOST", "db1", "db2"), FieldChange("env.OLD", "x", None),
            FieldChange("labels.traefik.enable", None, "true")), Reason.SPEC_CHANGED),
        Change("web", "secrets", "db_password", Action.REPLACE, (), Reason.REQUESTED),
        Change("web", "files", "/srv/old.conf", Action.DELETE, (
            FieldChange("type", "file", None), FieldChange("mode", "0644", None)), Reason.REMOVED),
    ], warnings=["files:/etc/adopted.conf left the spec; it existed before the reconciler managed it, so it "
                 "is released and left in place"],
        unmanaged=["containers:someone-elses"])
    db = HostPlan("db")
    cache = HostPlan("cache", error="ssh://root@127.0.0.1:1: cannot connect: [Errno 111] Connection refused")
    return Plan("/specs/prod", "d" * 64, "abc123", [web, db, cache],
                [Diagnostic("fewer than 16 characters is weak")])


def test_plan_text_matches_golden() -> None:
    text = render_plan(sample_plan())
    golden("plan.txt", text)
    assert SECRET not in text


def test_summary_counts_replace_as_add_and_destroy() -> None:
    plan = sample_plan()
    assert plan.summary() == {"add": 3, "change": 3, "destroy": 2}
    assert render_plan(plan).splitlines()[-1] == "Plan: 3 to add, 3 to change, 2 to destroy."


def test_symbols_per_action() -> None:
    lines = render_plan(sample_plan()).splitlines()
    assert "  + directories:/srv/app" in lines
    assert "  ~ files:/srv/app/app.conf" in lines
    assert "  -/+ secrets:db_password" in lines
    assert "  - files:/srv/old.conf" in lines


def test_no_changes() -> None:
    plan = Plan("/specs/prod", "d" * 64, hosts=[HostPlan("web")])
    assert render_plan(plan) == "No changes. The hosts match the spec."
    two = Plan("/specs/prod", "d" * 64, hosts=[HostPlan("web"), HostPlan("db")])
    golden("plan-no-changes.txt", render_plan(two))


def test_color_only_when_asked() -> None:
    assert "\033[" not in render_plan(sample_plan())
    assert "\033[32m+\033[0m" in render_plan(sample_plan(), color=True)


def test_apply_report_matches_golden() -> None:
    plan = sample_plan()
    web = plan.hosts[0].changes
    report = ApplyReport([
        HostReport("web", [
            ChangeOutcome(web[0], Status.APPLIED, seconds=0.1),
            ChangeOutcome(web[1], Status.FAILED,
                          f"`write /srv/app/db.conf` exited 1: chown: invalid user: 'ghost:root' {SECRET}"),
            ChangeOutcome(web[2], Status.SKIPPED, "depends on files:/srv/app/db.conf, which failed"),
        ]),
        HostReport("cache", error="ssh://root@127.0.0.1:1: cannot connect: [Errno 111] Connection refused"),
    ])
    REDACTOR.register(SECRET)
    text = render_report(report)
    golden("report.txt", text)
    assert SECRET not in text


def diff_plan() -> Plan:
    unit = TextDiff(DiffKind.TEXT, ("@@ -5,3 +5,4 @@", " [Service]", "-ExecStart=/usr/bin/api",
                                    "+ExecStart=/usr/bin/api --verbose", "+Environment=MODE=prod",
                                    " Restart=on-failure"))
    env = TextDiff(DiffKind.TEXT, ("@@ -1,2 +1,2 @@", "-(1 line of the host's file not shown: the file holds "
                                   "secrets)", "+DB_HOST=db2", " DB_PASSWORD=(sensitive)"))
    web = HostPlan("web", changes=[
        Change("web", "files", "/srv/app/logo.png", Action.UPDATE, (
            FieldChange("content", "sha256:" + "1" * 64, "sha256:" + "2" * 64,
                        diff=TextDiff(DiffKind.BINARY, summary="binary, 12 KiB -> 14 KiB")),), Reason.DRIFT),
        Change("web", "files", "/srv/app/.env", Action.UPDATE, (
            FieldChange("content", Sensitive("sha256:" + "3" * 64), Sensitive("sha256:" + "4" * 64),
                        diff=env),),
            Reason.SPEC_CHANGED),
        Change("web", "files", "/srv/app/motd", Action.CREATE, (
            FieldChange("type", None, "file"),
            FieldChange("content", None, "sha256:" + "5" * 64,
                        diff=TextDiff(DiffKind.TEXT, ("@@ -0,0 +1,2 @@", "+hello", "+world"))),
            FieldChange("mode", None, "0644")), Reason.ABSENT),
        Change("web", "files", "/srv/app/data", Action.UPDATE, (
            FieldChange("type", "directory", "file"),), Reason.ADOPT,
            refused="/srv/app/data is a directory on the host and the spec wants a file; the reconciler "
                    "never replaces a directory with a file (move it away by hand, then apply)"),
        Change("web", "services", "api", Action.UPDATE, (
            FieldChange("unit", "sha256:" + "6" * 64, "sha256:" + "7" * 64, diff=unit),
            FieldChange("need_daemon_reload", True, False,
                        internal="systemd has not loaded the unit file on disk yet: a daemon-reload is due"),
            FieldChange("changed_since_start", ["/srv/app/.env"], [],
                        internal="restart: /srv/app/.env changed after the service started")), Reason.DRIFT),
        Change("web", "services", "worker", Action.CREATE, (
            FieldChange("unit", None, "sha256:" + "8" * 64,
                        diff=TextDiff(DiffKind.TEXT, ("@@ -0,0 +1 @@", "+[Unit]"), omitted=41)),
            FieldChange("need_daemon_reload", None, False, internal="a daemon-reload is due")),
            Reason.ABSENT),
    ])
    return Plan("/specs/prod", "d" * 64, "abc123", [web])


def test_text_fields_show_as_diffs() -> None:
    text = render_plan(diff_plan())
    golden("plan-diffs.txt", text)
    assert "need_daemon_reload" not in text and "changed_since_start" not in text
    assert "      · restart: /srv/app/.env changed after the service started" in text.splitlines()
    assert "  ! files:/srv/app/data" in text.splitlines()
    assert text.splitlines()[-1].startswith("1 of these changes cannot be applied")


def test_diff_lines_are_coloured_on_a_terminal() -> None:
    text = render_plan(diff_plan(), color=True)
    assert "\033[32m+ExecStart=/usr/bin/api --verbose\033[0m" in text
    assert "\033[31m-ExecStart=/usr/bin/api\033[0m" in text
    assert "\033[36m@@ -5,3 +5,4 @@\033[0m" in text
