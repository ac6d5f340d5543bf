"""Retry spacing for transient faults (pure logic): exponential, capped, jittered."""

from __future__ import annotations

import random
from pathlib import Path

from reconciler.controller.loop import backoff_delay, relative_diagnostics
from reconciler.diagnostics import Diagnostics, SourcePos


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    for attempt, step in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (9, 300.0), (30, 300.0)]:
        delays = [backoff_delay(attempt, 2.0, 300.0, rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > step / 10  # really jittered, not one fixed value


def test_diagnostics_are_shown_relative_to_the_repository(tmp_path: Path) -> None:
    diags = Diagnostics()
    diags.error("bad mode", field_path="files[0].mode", pos=SourcePos(str(tmp_path / "specs/app.yaml"), 4, 5))
    diags.error("elsewhere", pos=SourcePos("/etc/other.yaml", 1, 1))
    shown = [str(d) for d in relative_diagnostics(diags, tmp_path)]
    assert shown == ["/etc/other.yaml:1:1: elsewhere", "specs/app.yaml:4:5: files[0].mode: bad mode"]
