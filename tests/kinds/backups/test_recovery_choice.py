"""Choosing the copy to recover from (pure logic): copies on a target as the target
listed them, newest first, the newest whose checksum verifies (or at or before a
time); other backups' files are ignored; nothing good is a clear error."""

from __future__ import annotations

import pytest
from reconciler_providers.backups.recovery import RecoveryError, choose_copy, parse_copies, seconds_text

LISTING = (
    "servqr-backup-20260501T020003Z.sql.gz.age\t1200\tok\n"
    "servqr-backup-20260503T020001Z.sql.gz.age\t1300\tmismatch\n"
    "servqr-backup-20260502T020002Z.sql.gz.age\t1250\tok\n"
    "servqr-backup-x-20260504T020000Z.sql.gz\t10\tok\n"      # another backup's name
    "notes.txt\t5\tmissing\n"
)


def test_newest_verifying_copy_is_chosen() -> None:
    copies = parse_copies(LISTING, "servqr-backup")
    assert [c.file for c in copies] == ["servqr-backup-20260503T020001Z.sql.gz.age",
                                        "servqr-backup-20260502T020002Z.sql.gz.age",
                                        "servqr-backup-20260501T020003Z.sql.gz.age"]
    chosen = choose_copy(copies)
    assert chosen.backup == "servqr-backup-20260502T020002Z.sql.gz" and chosen.encrypted
    assert chosen.time == "2026-05-02 02:00:02"
    older = choose_copy(copies, at=copies[2].taken)
    assert older.file == "servqr-backup-20260501T020003Z.sql.gz.age"


def test_no_good_copy_is_an_error_naming_what_was_found() -> None:
    copies = parse_copies("servqr-backup-20260503T020001Z.sql.gz\t1\tmismatch\n", "servqr-backup")
    with pytest.raises(RecoveryError, match=r"no offsite copy verifies; copies found: .*\(mismatch\)"):
        choose_copy(copies)


def test_durations_read_as_people_say_them() -> None:
    assert [seconds_text(s) for s in (4.4, 95, 3725)] == ["4 s", "1 min 35 s", "1 h 02 min"]
