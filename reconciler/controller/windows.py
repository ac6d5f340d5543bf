"""Sync windows: when the controller may change hosts.

A window opens each time its cron ``schedule`` fires and stays open for its
``duration``. The rules (the same as Argo CD's):

* any open ``deny`` window blocks changes;
* when ``allow`` windows exist, changes happen only while one of them is open;
* with no windows at all, changes are always allowed.

Outside the windows, the controller still plans and reports; it only holds the apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from reconciler.controller.config import SyncWindow, WindowKind

_ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class WindowDecision:
    allowed: bool
    reason: str
    next_change: datetime | None
    """When the answer may change next (a window opens or closes); None if never."""


def last_opening(window: SyncWindow, now: datetime) -> datetime:
    """The latest time at or before ``now`` at which ``window`` opened."""
    # croniter's get_prev is strictly before its base; step one second past now so an
    # opening exactly at ``now`` counts, then step back if that overshot.
    opened: datetime = croniter(window.schedule, now + _ONE_SECOND).get_prev(datetime)
    if opened > now:
        opened = croniter(window.schedule, opened).get_prev(datetime)
    return opened


def next_opening(window: SyncWindow, now: datetime) -> datetime:
    opens: datetime = croniter(window.schedule, now).get_next(datetime)
    return opens


def open_until(window: SyncWindow, now: datetime) -> datetime | None:
    """When the window closes if it is open at ``now``, else None."""
    closes = last_opening(window, now) + timedelta(seconds=window.duration)
    return closes if now < closes else None


def decide(windows: Sequence[SyncWindow], now: datetime, zone: ZoneInfo) -> WindowDecision:
    """May the controller change hosts at ``now`` (an aware datetime)? Cron
    expressions are read in ``zone``."""
    if not windows:
        return WindowDecision(True, "no sync windows are configured", None)
    local = now.astimezone(zone)
    boundaries: list[datetime] = []
    open_deny: list[tuple[SyncWindow, datetime]] = []
    open_allow: list[tuple[SyncWindow, datetime]] = []
    for window in windows:
        closes = open_until(window, local)
        if closes is not None:
            boundaries.append(closes)
            (open_deny if window.kind is WindowKind.DENY else open_allow).append((window, closes))
        boundaries.append(next_opening(window, local))
    next_change = min(boundaries) if boundaries else None
    if open_deny:
        window, closes = max(open_deny, key=lambda wc: wc[1])
        return WindowDecision(False, f"deny window {window.label} is open until {closes.isoformat()}",
                              next_change)
    allows = [w for w in windows if w.kind is WindowKind.ALLOW]
    if allows and not open_allow:
        opens = min(next_opening(w, local) for w in allows)
        return WindowDecision(False, f"outside every allow window; the next opens at {opens.isoformat()}",
                              next_change)
    if open_allow:
        window, closes = max(open_allow, key=lambda wc: wc[1])
        return WindowDecision(True, f"allow window {window.label} is open until {closes.isoformat()}",
                              next_change)
    return WindowDecision(True, "no deny window is open", next_change)
