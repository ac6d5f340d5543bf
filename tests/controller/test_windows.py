"""Sync-window decisions (pure logic): cron openings, durations, deny over allow,
time zones, and when the answer changes next."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from reconciler.controller.config import SyncWindow, WindowKind
from reconciler.controller.windows import decide, last_opening

UTC_ZONE = ZoneInfo("UTC")
EVENINGS = SyncWindow(kind=WindowKind.ALLOW, schedule="0 22 * * 1-5", duration=7200)  # Mon-Fri 22:00-24:00
CHRISTMAS = SyncWindow(kind=WindowKind.DENY, schedule="0 0 24 12 *", duration=48 * 3600, name="christmas")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_no_windows_always_allows() -> None:
    decision = decide([], at("2026-03-04T12:00:00"), UTC_ZONE)
    assert decision.allowed and decision.next_change is None


def test_allow_window_open_and_closed() -> None:
    # 2026-03-04 is a Wednesday.
    inside = decide([EVENINGS], at("2026-03-04T22:30:00"), UTC_ZONE)
    assert inside.allowed and "open until 2026-03-05T00:00:00+00:00" in inside.reason
    assert inside.next_change == at("2026-03-05T00:00:00")
    before = decide([EVENINGS], at("2026-03-04T21:59:59"), UTC_ZONE)
    assert not before.allowed and "next opens at 2026-03-04T22:00:00+00:00" in before.reason
    assert before.next_change == at("2026-03-04T22:00:00")
    weekend = decide([EVENINGS], at("2026-03-07T23:00:00"), UTC_ZONE)  # Saturday
    assert not weekend.allowed and "2026-03-09T22:00:00" in weekend.reason


def test_the_opening_instant_counts_and_the_closing_instant_does_not() -> None:
    assert decide([EVENINGS], at("2026-03-04T22:00:00"), UTC_ZONE).allowed
    assert not decide([EVENINGS], at("2026-03-05T00:00:00"), UTC_ZONE).allowed
    assert last_opening(EVENINGS, at("2026-03-04T22:00:00")) == at("2026-03-04T22:00:00")


def test_deny_wins_over_allow() -> None:
    # Thursday 24 December 2026, 23:00: inside both windows.
    decision = decide([EVENINGS, CHRISTMAS], at("2026-12-24T23:00:00"), UTC_ZONE)
    assert not decision.allowed
    assert decision.reason == "deny window christmas is open until 2026-12-26T00:00:00+00:00"
    assert decide([CHRISTMAS], at("2026-12-26T00:00:00"), UTC_ZONE).allowed


def test_window_longer_than_its_period_stays_open() -> None:
    always = SyncWindow(kind=WindowKind.DENY, schedule="* * * * *", duration=120)
    assert not decide([always], at("2026-01-01T00:00:30"), UTC_ZONE).allowed


def test_cron_is_read_in_the_configured_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 22:30 in Berlin (winter, UTC+1) is 21:30 UTC.
    assert decide([EVENINGS], at("2026-03-04T21:30:00"), berlin).allowed
    assert not decide([EVENINGS], at("2026-03-04T21:30:00"), UTC_ZONE).allowed
