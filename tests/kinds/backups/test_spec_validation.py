"""Offline validation of backups: an invalid cron expression (and other mistakes) is a
spec error at file:line:col, before any host is contacted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from reconciler_providers.common.cronjob import schedule_problem

from tests.kinds.backups.support import reconcile

HOSTS = "hosts:\n  web: {connect: 'ssh://root@127.0.0.1:1'}\n"


def validate(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "spec.yaml").write_text(HOSTS + body)
    return reconcile("validate", tmp_path / "spec.yaml", check_code=None)


def test_invalid_cron_expression_is_a_spec_error_with_position(tmp_path: Path) -> None:
    proc = validate(tmp_path, """\
backups:
  - name: db
    schedule: "61 2 * * *"
    source: {paths: [/srv/data]}
    destination: /var/backups/db
""")
    assert proc.returncode == 1
    assert "spec.yaml:5:5: backups[0].schedule: invalid cron expression '61 2 * * *'" in proc.stderr


@pytest.mark.parametrize(("schedule", "fragment"), [
    ("0 2 * *", "expected 5 fields"),
    ("0 0 2 * * *", "expected 5 fields"),
    ("0 2 L * *", "day-of-month field 'L' is not valid for cron"),
    ("0 2 * * 5#2", "day-of-week field '5#2'"),
    ("@reboot", "unknown macro"),
    ("0 25 * * *", "invalid cron expression"),
])
def test_schedules_cron_does_not_run_are_refused(schedule: str, fragment: str) -> None:
    problem = schedule_problem(schedule)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize("schedule", ["0 2 * * *", "*/15 0-23/2 1,15 * mon-fri", "@daily", "0  3 * jan sun"])
def test_schedules_cron_runs_are_accepted(schedule: str) -> None:
    assert schedule_problem(schedule) is None


def test_other_backup_mistakes_all_reported_with_positions(tmp_path: Path) -> None:
    proc = validate(tmp_path, """\
backups:
  - name: "bad.name"
    schedule: "@daily"
    source: {paths: [/srv/data, relative/path]}
    destination: /srv/data/backups
    compression: xz
  - name: db
    schedule: "@daily"
    source:
      postgres: {container: pg, user: app, database: "x=y"}
      paths: [/srv]
    destination: /var/backups/db
  - name: pg
    schedule: "@daily"
    source:
      postgres: {container: pg, database: "${secret:dbname}"}
    destination: /var/backups/pg
    keep: {days: 0}
""")
    assert proc.returncode == 1
    err = proc.stderr
    assert "spec.yaml:8:5: backups[0].compression: expected one of gzip, zstd, none" in err
    assert "backups[1].source: set exactly one of postgres or paths" in err
    assert "backups[2].keep.days: Input should be greater than or equal to 1" in err
    # The first resource fails pydantic validation, so its semantic checks wait for a fix;
    # fix the compression and they appear, pointing at their own lines.
    (tmp_path / "spec.yaml").write_text((tmp_path / "spec.yaml").read_text().replace("xz", "gzip")
                                        .replace("keep: {days: 0}", "keep: {days: 1}"))
    err = reconcile("validate", tmp_path / "spec.yaml", check_code=1).stderr
    assert "spec.yaml:4:5: backups[0].name: 'bad.name': use letters, digits" in err
    assert "backups[0].source.paths[1]: must be an absolute path" in err
    assert "backups[0].source.paths[0]: the destination '/srv/data/backups' is inside '/srv/data'" in err
    assert "backups[2].source.postgres.database: backup settings are written into a script" in err
    assert "warning: " in err and "backups[0].keep: no keep limit: every backup is kept" in err
