"""Apply deletes exactly the planned list: a planned file that changed before apply is
skipped, and a file that went over the limits after the plan is not deleted (the
check after apply reports it instead of apply quietly widening its reach)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.engine import Engine, RunOptions, Status
from reconciler.spec import load_spec
from testbed.hosts import TestHost
from tests.kinds.backups.support import write_spec

DIR = "/srv/reports"


@pytest.mark.timeout(600)
def test_apply_deletes_the_planned_list_only(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    host.exec(f"mkdir -p {DIR}")
    for name, age in (("keep.csv", 1), ("old-a.csv", 20), ("old-b.csv", 25)):
        host.exec(f"echo {name} > {DIR}/{name} && touch -d '{age} days ago' {DIR}/{name}")
    spec_dir = write_spec(tmp_path / "spec", host, {"retention": [
        {"name": "reports", "path": DIR, "glob": "*.csv", "max_age": "14d"}]})
    spec, diags = load_spec(str(spec_dir))
    assert spec is not None, [str(d) for d in diags.items]

    with Engine(spec, RunOptions()) as engine:
        plan = engine.plan(lock=True)
        [change] = plan.changes
        planned = sorted(f.path.removeprefix("over_limits.") for f in change.fields
                         if f.path.startswith("over_limits."))
        assert planned == [f"{DIR}/old-a.csv", f"{DIR}/old-b.csv"]

        # Between plan and apply: old-a is written to, and a new old file appears.
        host.exec(f"echo more >> {DIR}/old-a.csv")
        host.exec(f"echo late > {DIR}/late.csv && touch -d '30 days ago' {DIR}/late.csv")

        report = engine.apply()

    [outcome] = report.hosts[0].outcomes
    assert host.exec(["ls", DIR]).stdout.split() == ["keep.csv", "late.csv", "old-a.csv"]
    assert outcome.status is Status.FAILED
    assert "did not converge" in outcome.error and f"{DIR}/late.csv" in outcome.error
    assert "old-a.csv" not in outcome.error, "the changed file is judged as of the plan: not over"
