"""The JSON plan format (``--output json``, ``plan --out``), documented in docs/plan-json.md.

The serialised plan is compared with a golden file; every key it (or the apply
report) can contain must be documented; a change survives a round trip; secrets
are ``(sensitive)`` and pending values ``(known after apply)``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from reconciler.diagnostics import Diagnostic, Severity, SourcePos
from reconciler.engine import ApplyReport, ChangeOutcome, HostReport, Status
from reconciler.plan import (
    FORMAT_VERSION,
    Action,
    Change,
    DiffKind,
    FieldChange,
    Handover,
    HostPlan,
    Plan,
    Reason,
    TextDiff,
)
from reconciler.sensitive import KNOWN_AFTER_APPLY, REDACTOR, Sensitive

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "fixtures" / "plan_json" / "plan.json"
DOC = ROOT / "docs" / "plan-json.md"
SECRET = "json-golden-secret-4b7d1a"


def sample_plan() -> Plan:
    changes = [
        Change("web", "files", "/etc/app/app.conf", Action.UPDATE,
               (FieldChange("mode", "0600", "0644"),), Reason.DRIFT),
        Change("web", "files", "/etc/app/db.conf", Action.CREATE,
               (FieldChange("content", None, KNOWN_AFTER_APPLY), FieldChange("mode", None, "0640")),
               Reason.ABSENT),
        Change("web", "files", "/etc/app/env", Action.UPDATE,
               (FieldChange("content", Sensitive("sha256:00"), Sensitive(SECRET)),), Reason.SPEC_CHANGED,
               note=f"embeds {SECRET}"),
        Change("web", "secrets", "db_password", Action.REPLACE, (), Reason.REQUESTED),
        Change("web", "directories", "/srv/old", Action.DELETE,
               (FieldChange("mode", "0755", None),), Reason.REMOVED),
        Change("web", "services", "api", Action.UPDATE, (
            FieldChange("unit", "sha256:" + "1" * 64, "sha256:" + "2" * 64, diff=TextDiff(
                DiffKind.TEXT,
                ("@@ -2,2 +2,2 @@", " [Service]", "-ExecStart=/bin/api", "+ExecStart=/bin/api -v"))),
            FieldChange("need_daemon_reload", True, False,
                        internal="systemd has not loaded the unit file on disk yet: a daemon-reload is due"),
        ), Reason.ADOPT),
        Change("web", "files", "/srv/data", Action.UPDATE, (
            FieldChange("type", "directory", "file"),
            FieldChange("content", None, "sha256:" + "3" * 64,
                        diff=TextDiff(DiffKind.LARGE, summary="large file: 3.0 MiB, sha256 333333333333")),
        ), Reason.DRIFT, refused="/srv/data is a directory on the host and the spec wants a file"),
    ]
    return Plan("/srv/specs/prod", "ab" * 32, "a1b2c3d4e5f6", [
        HostPlan("web", changes, unmanaged=["containers:other"], warnings=["files:/etc/x left the spec"],
                 observed_digest="9c0e4b7d2a61f3e8",
                 handovers=[Handover("files:/etc/app/shared.conf", "monitoring", "prod"),
                            Handover("files:/etc/legacy.conf", "", "")]),
        HostPlan("db", error="ssh://root@127.0.0.1:1: cannot connect"),
    ], [Diagnostic("fewer than 16 characters is weak for a generated secret", "secrets[0].length",
                   SourcePos("prod.yaml", 4, 5), Severity.WARNING, resource="secrets:db_password")],
        stack="prod")


def test_plan_json_matches_golden() -> None:
    REDACTOR.register(SECRET)
    data = sample_plan().to_json()
    text = json.dumps(data, indent=2) + "\n"
    if os.environ.get("RECONCILER_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert json.loads(GOLDEN.read_text()) == data
    assert data["format_version"] == FORMAT_VERSION == 1
    assert SECRET not in text


def test_secret_and_pending_values() -> None:
    web = sample_plan().to_json()["hosts"][0]["changes"]
    pending = web[1]["fields"][0]
    assert pending == {"path": "content", "old": None, "new": "(known after apply)", "sensitive": False,
                       "known_after_apply": True, "diff": None, "internal": False, "explanation": ""}
    secret = web[2]["fields"][0]
    assert secret == {"path": "content", "old": "(sensitive)", "new": "(sensitive)", "sensitive": True,
                      "known_after_apply": False, "diff": None, "internal": False, "explanation": ""}


def test_diffs_internal_fields_and_refusals() -> None:
    web = sample_plan().to_json()["hosts"][0]["changes"]
    unit, reload = web[5]["fields"]
    assert unit["diff"] == {"kind": "text", "lines": ["@@ -2,2 +2,2 @@", " [Service]", "-ExecStart=/bin/api",
                                                      "+ExecStart=/bin/api -v"], "summary": "", "omitted": 0}
    assert (reload["internal"], reload["explanation"]) == (
        True, "systemd has not loaded the unit file on disk yet: a daemon-reload is due")
    assert web[6]["refused"].startswith("/srv/data is a directory on the host")
    assert web[6]["fields"][1]["diff"]["kind"] == "large"


def test_change_round_trips() -> None:
    for change in sample_plan().hosts[0].changes:
        if any(f.sensitive or f.pending for f in change.fields) or change.note:
            continue  # redacted on the way out by design: those do not round-trip
        assert Change.from_json(change.to_json()) == change


def _keys(value: Any, prefix: str = "") -> set[str]:
    """Every object key in a JSON document."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            found.add(k)
            found |= _keys(v)
    elif isinstance(value, list):
        for v in value:
            found |= _keys(v)
    return found


def _documented() -> set[str]:
    """Names in the first column of the doc's tables: | `name` | ..."""
    names = set()
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| `([^`]+)` \|", line)
        if m:
            names.add(m.group(1).split(".")[-1].removesuffix("[]"))
    return names


def test_every_field_is_documented() -> None:
    plan = sample_plan()
    report = ApplyReport([HostReport("web", [ChangeOutcome(plan.hosts[0].changes[0], Status.APPLIED)])])
    keys = _keys(plan.to_json()) | _keys(report.to_json()) | {"plan", "apply"}
    undocumented = keys - _documented() - {"plan", "apply"}
    assert not undocumented, f"add these to docs/plan-json.md: {sorted(undocumented)}"
    doc = DOC.read_text()
    assert "`format_version`" in doc and "`{\"plan\": PLAN, \"apply\": REPORT}`" in doc
    for action in Action:
        assert f"`{action.value}`" in doc
    for reason in Reason:
        assert f"`{reason.value}`" in doc
    for status in Status:
        assert f"`{status.value}`" in doc


def test_doc_example_is_valid_json_of_this_version() -> None:
    example = DOC.read_text().split("```json\n", 1)[1].split("```", 1)[0]
    data = json.loads(example.replace("…", ""))
    assert data["format_version"] == FORMAT_VERSION
    assert _keys(data) <= _keys(sample_plan().to_json())
