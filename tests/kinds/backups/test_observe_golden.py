"""Observation of backups, from real ``OBSERVE_JOBS_SH`` output captured on a test host
(a converged backup, a cron path taken by a directory, a job with no files) to the
states the provider compares; and the cron entry as rendered."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler_providers.backups.provider import job_for, parse_observation

FIXTURES = Path(__file__).parent / "fixtures"


def test_observation_output_parses_to_states() -> None:
    text = (FIXTURES / "observe-output.txt").read_text()
    states = parse_observation(text, ["data", "odd", "gone", "never-seen"])
    assert states == json.loads((FIXTURES / "observe-state.json").read_text())


def test_cron_entry_renders_as_golden() -> None:
    rendered = job_for("appdb").render_cron("0  2 * *   1-5")  # whitespace is normalised
    assert rendered == (FIXTURES / "cron-entry.golden").read_text()
