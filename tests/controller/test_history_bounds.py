"""The history stays within its size and age, and keeps what it must (pure file
logic on a temporary directory): segments rotate and the oldest are compacted,
counts by cause and result survive compaction, the entries of revisions the
status still refers to (last applied, last attempted, quarantined) are kept, a
burst of identical drift corrections is one entry with a count, reading the
latest entries reads a bounded number of bytes however long the history is, and
a restart (or a crash half-way through a rotation) finds it as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reconciler.controller.history import History, HistoryLimits
from reconciler.controller.records import utc_text

T0 = 1_800_000_000.0
PAD = "x" * 300  # entries of about half a kilobyte, like a commit with a few changes


def commit(n: int, at: float, result: str = "applied", revision: str | None = None) -> dict[str, Any]:
    return {"time": utc_text(at), "cause": "commit", "revision": revision or f"{n:040d}", "result": result,
            "trigger": "local-repo", "commit": {"summary": f"change {n} {PAD}"}}


def drift(at: float, before: str = "by hand", revision: str = "a" * 40) -> dict[str, Any]:
    return {"time": utc_text(at), "cause": "drift", "revision": revision, "result": "corrected",
            "trigger": "drift-interval", "seconds": 0.4,
            "changes": [{"host": "web", "address": "files:/srv/a.conf", "action": "update", "reason": "drift",
                         "fields": [{"path": "content", "before": before, "after": "sha256:good"}]}]}


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_history_rotates_and_compacts_within_its_size(tmp_path: Path) -> None:
    limits = HistoryLimits(max_bytes=64 * 1024)
    history = History(tmp_path, limits)
    history.open()
    quarantined = f"{7:040d}"
    for n in range(2000):
        result = "refused" if n == 7 else "applied"
        history.record(commit(n, T0 + n, result), keep={quarantined, f"{n:040d}"}, now=T0 + n)
    assert disk_bytes(tmp_path) <= limits.max_bytes + limits.segment_bytes + 4096
    segments = sorted(p.name for p in (tmp_path / "history").glob("*.jsonl"))
    assert segments and segments[0] != "000001.jsonl"  # the oldest were compacted
    summary = history.summary()
    # Counts survive compaction: every entry ever recorded is counted once.
    assert summary["entries"] == 2000 and summary["compacted"] > 1000
    assert summary["counts"] == {"commit/applied": 1999, "commit/refused": 1}
    assert summary["since"] == utc_text(T0)
    # The quarantined commit's entry outlived its segment; the newest entries are all there.
    everything = list(history.entries())
    assert everything[0]["revision"] == quarantined and everything[0]["result"] == "refused"
    assert [e["revision"] for e in everything[-3:]] == [f"{n:040d}" for n in (1997, 1998, 1999)]


def test_compaction_keeps_the_last_applied_and_last_good_revision(tmp_path: Path) -> None:
    history = History(tmp_path, HistoryLimits(max_bytes=16 * 1024))
    history.open()
    good, attempted = f"{1:040d}", f"{2:040d}"
    history.record(commit(1, T0, revision=good), keep={good}, now=T0)
    history.record(commit(2, T0 + 1, result="retrying", revision=attempted), keep={good, attempted},
                   now=T0 + 1)
    for n in range(3, 400):  # entries of other revisions, deferred ones say
        history.record(commit(n, T0 + n, result="deferred"), keep={good, attempted}, now=T0 + n)
    assert history.summary()["compacted"] > 100
    kept = [e for e in history.entries() if e["result"] != "deferred"]
    assert [(e["revision"], e["result"]) for e in kept] == [(good, "applied"), (attempted, "retrying")]
    # Once the status no longer refers to a revision, its kept entry goes with the next compaction.
    for n in range(400, 800):
        history.record(commit(n, T0 + n, result="deferred"), keep={good}, now=T0 + n)
    assert [e["revision"] for e in history.entries() if e["result"] != "deferred"] == [good]


def test_history_is_kept_within_its_age(tmp_path: Path) -> None:
    day = 86400.0
    history = History(tmp_path, HistoryLimits(max_age=8 * day))
    history.open()
    for n in range(40):  # one entry a day for 40 days
        history.record(commit(n, T0 + n * day), now=T0 + n * day)
    times = [e["time"] for e in history.entries()]
    oldest_allowed = T0 + 39 * day - 8 * day - 8 * day / 8  # the bound plus one segment's span
    assert times[0] >= utc_text(oldest_allowed)
    assert times[-1] == utc_text(T0 + 39 * day)
    assert history.summary()["entries"] == 40


def test_a_burst_of_identical_drift_corrections_is_one_entry_with_a_count(tmp_path: Path) -> None:
    history = History(tmp_path)
    history.open()
    for n in range(3000):
        history.record(drift(T0 + n * 0.5, before=f"edit {n}"), now=T0 + n)
    history.record(commit(1, T0 + 1600), now=T0 + 1600)
    entries = list(history.entries())
    assert [e["cause"] for e in entries] == ["drift", "commit"]
    burst = entries[0]
    assert burst["count"] == 3000 and burst["time"] == utc_text(T0)
    assert burst["last_time"] == utc_text(T0 + 2999 * 0.5)
    assert burst["changes"][0]["fields"][0]["before"] == "edit 2999"  # the latest
    assert history.open_path.stat().st_size < 4096  # two lines, not thousands
    assert history.summary()["counts"] == {"commit/applied": 1, "drift/corrected": 3000}


def test_a_burst_ends_after_an_hour_or_on_another_resource(tmp_path: Path) -> None:
    history = History(tmp_path)
    history.open()
    for n in range(0, 7200, 60):  # two hours of identical corrections, one a minute
        history.record(drift(T0 + n), now=T0 + n)
    other = drift(T0 + 7200)
    other["changes"][0]["address"] = "files:/srv/b.conf"
    history.record(other, now=T0 + 7200)
    counts = [e.get("count", 1) for e in history.entries()]
    assert counts == [60, 60, 1]


def test_the_open_burst_is_the_newest_entry_and_survives_a_restart(tmp_path: Path) -> None:
    history = History(tmp_path)
    history.open()
    history.record(commit(1, T0), now=T0)
    for n in range(5):
        history.record(drift(T0 + 1 + n), now=T0 + 1 + n)
    assert [e["cause"] for e in History(tmp_path).tail(2)] == ["commit", "drift"]
    assert History(tmp_path).tail(1)[0]["count"] == 5
    again = History(tmp_path)
    again.open()
    again.record(drift(T0 + 10), now=T0 + 10)
    assert again.tail(1)[0]["count"] == 6


def test_a_burst_appended_before_a_crash_is_not_counted_twice(tmp_path: Path) -> None:
    history = History(tmp_path)
    history.open()
    history.record(drift(T0), now=T0)
    burst = json.loads(history.burst_path.read_text())["entry"]
    # The crash: the burst was appended to the log, its file not yet removed.
    with history.open_path.open("a") as fh:
        fh.write(json.dumps(burst, separators=(",", ":")) + "\n")
    again = History(tmp_path)
    again.open()
    assert len(list(again.entries())) == 1 and not again.burst_path.exists()


def test_reading_the_tail_does_not_read_the_whole_history(tmp_path: Path) -> None:
    history = History(tmp_path, HistoryLimits(max_bytes=200 * 1024 * 1024))
    history.open()
    with history.open_path.open("a") as fh:  # 20 MB of history, written in one go
        for n in range(40000):
            fh.write(json.dumps(commit(n, T0 + n)) + "\n")
    assert history.open_path.stat().st_size > 15 * 1024 * 1024
    reader = History(tmp_path)
    newest = reader.tail(20)
    assert [e["revision"] for e in newest] == [f"{n:040d}" for n in range(39980, 40000)]
    assert reader.read_counter.bytes <= 2 * 64 * 1024


def test_a_line_cut_short_by_a_crash_is_skipped_and_trimmed(tmp_path: Path) -> None:
    history = History(tmp_path)
    history.open()
    history.record(commit(1, T0), now=T0)
    history.record(commit(2, T0 + 1), now=T0 + 1)
    with history.open_path.open("ab") as fh:
        fh.write(b'{"revision": "3", "res')  # what a SIGKILL mid-write can leave
    assert [e["revision"] for e in History(tmp_path).tail(5)] == [f"{1:040d}", f"{2:040d}"]
    again = History(tmp_path)
    assert again.open()  # trimmed
    assert again.open_path.read_bytes().endswith(b"}\n")
    again.record(commit(4, T0 + 2), now=T0 + 2)
    assert [e["revision"][-1] for e in again.tail(0)] == ["1", "2", "4"]


def test_a_rotation_or_compaction_cut_short_is_settled_at_start(tmp_path: Path) -> None:
    limits = HistoryLimits(max_bytes=32 * 1024)
    history = History(tmp_path, limits)
    history.open()
    for n in range(300):
        history.record(commit(n, T0 + n), now=T0 + n)
    before = History(tmp_path, limits).summary()
    # A sealed segment the index does not name yet (the crash came before the index was written) ...
    index = json.loads(history.index_path.read_text())
    newest = index["segments"].pop()
    history.index_path.write_text(json.dumps(index))
    # ... and a compacted segment still on disk (the crash came before the unlink).
    through = index["compacted"]["through"]
    (tmp_path / "history" / f"{through:06d}.jsonl").write_text(json.dumps(commit(0, T0)) + "\n")
    again = History(tmp_path, limits)
    again.open()
    assert again.summary()["counts"] == before["counts"]
    assert not (tmp_path / "history" / f"{through:06d}.jsonl").exists()
    assert (tmp_path / "history" / newest["name"]).exists()
    assert [s["name"] for s in json.loads(again.index_path.read_text())["segments"]][-1] == newest["name"]


def test_files_are_private(tmp_path: Path) -> None:
    history = History(tmp_path, HistoryLimits(max_bytes=16 * 1024))
    history.open()
    for n in range(100):
        history.record(commit(n, T0 + n), now=T0 + n)
    history.record(drift(T0 + 200), now=T0 + 200)
    for path in [history.open_path, history.index_path, history.burst_path,
                 *(tmp_path / "history").glob("*.jsonl")]:
        assert oct(os.stat(path).st_mode & 0o777) == "0o600", path
