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
from reconciler.plan import Action, Change, FieldChange, HostPlan, Plan, Reason
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
