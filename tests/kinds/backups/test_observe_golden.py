"""Observation of backups, from real ``OBSERVE_JOBS_SH`` output captured on a test host
(a converged backup, a cron path taken by a directory, a job with no files) to the
states the provider compares; and the cron entry as rendered."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler_providers.backups.provider import BackupsProvider, job_for, parse_observation
from reconciler_providers.backups.status import status_of

FIXTURES = Path(__file__).parent / "fixtures"


def test_observation_output_parses_to_states() -> None:
    text = (FIXTURES / "observe-output.txt").read_text()
    states = parse_observation(text, ["data", "odd", "gone", "never-seen"])
    assert states == json.loads((FIXTURES / "observe-state.json").read_text())


def test_cron_entry_renders_as_golden() -> None:
    rendered = job_for("appdb").render_cron("0  2 * *   1-5")  # whitespace is normalised
    assert rendered == (FIXTURES / "cron-entry.golden").read_text()


def test_observation_with_offsite_key_drill_and_status_parses_to_state() -> None:
    """Real output from a host with an offsite target (copy failed: nothing listens),
    a scheduled drill (passed) and a backup: the key's public half and the three
    status records come back as data, and status_of reads them."""
    text = (FIXTURES / "observe-offsite-drill-output.txt").read_text()
    states = parse_observation(text, ["data", "gone"])
    assert states == json.loads((FIXTURES / "observe-offsite-drill-state.json").read_text())
    status = status_of(states["data"])
    assert status.last_backup is not None and status.last_backup.ok
    assert status.last_drill is not None and status.last_drill.describe().startswith("ok at 2026-12-01 ")
    vault = status.last_offsite["vault"]
    assert not vault.ok and "Connection refused" in vault.describe() and "\n" not in vault.message
    assert not status.healthy
    assert BackupsProvider().published("data", states["data"])["public_key"].startswith("ssh-ed25519 ")
    assert BackupsProvider().published("gone", states["gone"]) == {}
