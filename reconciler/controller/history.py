"""The controller's history: one JSON object per run, bounded in size and age, cheap
to read from the end.

Layout (in the state directory)::

    history.jsonl          the open segment: appended one line (one write) at a time, fsynced
    history/000042.jsonl   sealed segments, oldest first
    history/index.json     what each sealed segment holds (entries, bytes, first and last
                           time, counts by cause/result), and what compaction dropped
                           (its counts) and had to keep (entries)
    history.burst.json     the open burst: identical drift corrections merged into one entry

* **Rotation.** The open segment is sealed (renamed into ``history/``) when it reaches
  ``segment_bytes`` (an eighth of ``max_bytes``) or its oldest entry is older than an
  eighth of ``max_age``.
* **Compaction.** While the history is larger than ``max_bytes``, or its oldest sealed
  segment holds nothing younger than ``max_age``, that segment is dropped. Its counts
  are added to the index (so totals by cause and result survive), and the entries
  that must outlive it are copied into the index first: the latest commit entry of
  each revision the caller names in ``keep`` (the last applied and last attempted
  revision, a pending or retrying one, the quarantined ones). Segments span at most
  an eighth of the bounds, so the history stays within ``max_bytes`` plus one
  segment while open, and holds nothing much older than ``max_age``.
* **Bursts.** A drift correction identical to the one before it (same revision,
  result, resources, actions and corrected values; what the outside actor wrote may
  differ) within ``burst_seconds`` of the first is merged into one entry with a
  ``count`` and ``last_time``, kept in ``history.burst.json`` (replaced atomically)
  until something else is recorded. Readers see it as the newest entry.
* **Reading the tail** reads the open segment backwards in blocks and stops after
  ``limit`` entries: the cost does not grow with the history.
* **Crash safety.** A line cut short by a crash is ignored by readers and trimmed by
  ``open()``. The index and the burst file are replaced atomically; a segment is
  renamed before the index names it and unlinked after the index forgot it, and
  ``open()`` settles either half-done step. A burst appended to the log but whose
  file was not yet removed is recognised and not counted twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.controller.atomic import write_atomic
from reconciler.controller.records import utc_text

OPEN_SEGMENT = "history.jsonl"
SEGMENT_DIR = "history"
INDEX_FILE = "index.json"
BURST_FILE = "history.burst.json"
INDEX_FORMAT = 1
BLOCK = 64 * 1024
_SEGMENT_NAME = re.compile(r"^(\d{6,})\.jsonl$")

Entry = dict[str, Any]


@dataclass(frozen=True)
class HistoryLimits:
    max_bytes: int = 50 * 1024 * 1024
    max_age: float = 90 * 86400.0
    burst_seconds: float = 3600.0

    @property
    def segment_bytes(self) -> int:
        return max(4096, min(8 * 1024 * 1024, self.max_bytes // 8))

    @property
    def segment_age(self) -> float:
        return self.max_age / 8


def entry_time(entry: Entry, *, last: bool = False) -> float | None:
    """The entry's ``time`` (with ``last``: its ``last_time`` when it is a burst) as Unix
    seconds; None when missing or malformed."""
    text = (entry.get("last_time") if last else None) or entry.get("time")
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def count_key(entry: Entry) -> str:
    return f"{entry.get('cause', '?')}/{entry.get('result', '?')}"


def burst_key(entry: Entry) -> str | None:
    """What makes two drift corrections identical: revision, result, and per resource
    its host, address, action and the corrected (``after``) values. None for entries
    that are never merged."""
    if entry.get("cause") != "drift" or entry.get("result") not in ("corrected", "failed"):
        return None
    changes = [(c.get("host"), c.get("address"), c.get("action"),
                [(f.get("path"), f.get("after")) for f in c.get("fields", [])])
               for c in entry.get("changes", [])]
    return json.dumps([entry.get("revision"), entry.get("result"), entry.get("error", ""), changes],
                      sort_keys=True, default=str)


def _line(entry: Entry) -> bytes:
    return (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode()


def _parse(raw: bytes) -> Entry | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


class _ReadCounter:
    """Bytes read from history files (tests show that reading the tail stays cheap)."""

    def __init__(self) -> None:
        self.bytes = 0


def _lines_backwards(fh: BinaryIO, counter: _ReadCounter) -> Iterator[bytes]:
    """Complete lines from the end of ``fh`` to its start, a block at a time. Bytes after
    the last newline (a line cut short by a crash) are skipped."""
    pos = fh.seek(0, os.SEEK_END)
    carry = b""
    at_end = True
    while pos > 0:
        step = min(BLOCK, pos)
        pos -= step
        fh.seek(pos)
        block = fh.read(step)
        counter.bytes += len(block)
        parts = (block + carry).split(b"\n")
        carry = parts[0]
        lines = parts[1:]
        if at_end:
            if not lines:
                carry = b""  # still inside the cut-short fragment
                continue
            lines = lines[:-1]
            at_end = False
        for line in reversed(lines):
            if line.strip():
                yield line
    if carry.strip() and not at_end:
        yield carry


def _lines_forward(path: Path) -> Iterator[bytes]:
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return  # cut short by a crash
            if raw.strip():
                yield raw


class History:
    """The history of one state directory. Reading needs no ``open()``; recording does."""

    def __init__(self, root: Path, limits: HistoryLimits | None = None) -> None:
        self.root = root
        self.limits = limits or HistoryLimits()
        self.read_counter = _ReadCounter()
        self._opened = False
        self._open_bytes = 0
        self._open_first: float | None = None
        self._open_counts: Counter[str] = Counter()
        self._index: dict[str, Any] = {}
        self._burst: Entry | None = None

    # -- paths -------------------------------------------------------------------------
    @property
    def open_path(self) -> Path:
        return self.root / OPEN_SEGMENT

    @property
    def segment_dir(self) -> Path:
        return self.root / SEGMENT_DIR

    @property
    def index_path(self) -> Path:
        return self.segment_dir / INDEX_FILE

    @property
    def burst_path(self) -> Path:
        return self.root / BURST_FILE

    def segment_path(self, seq: int) -> Path:
        return self.segment_dir / f"{seq:06d}.jsonl"

    # -- reading -------------------------------------------------------------------------
    def _read_index(self) -> dict[str, Any]:
        try:
            data = json.loads(self.index_path.read_text())
        except (FileNotFoundError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        data.setdefault("format", INDEX_FORMAT)
        data.setdefault("segments", [])
        data.setdefault("compacted", {"entries": 0, "first": None, "last": None, "counts": {}, "through": 0})
        data.setdefault("kept", [])
        return data

    def _read_burst(self) -> Entry | None:
        try:
            data = json.loads(self.burst_path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        entry = data.get("entry") if isinstance(data, dict) else None
        return entry if isinstance(entry, dict) else None

    def tail(self, limit: int) -> list[Entry]:
        """The newest ``limit`` entries, oldest first; reads from the end, never the whole history."""
        if limit <= 0:
            return list(self.entries())
        index = self._index if self._opened else self._read_index()
        burst = self._burst if self._opened else self._read_burst()
        out: list[Entry] = [burst] if burst is not None else []
        paths = [self.open_path] + [self.segment_dir / s["name"] for s in reversed(index["segments"])]
        for path in paths:
            if len(out) >= limit:
                break
            try:
                fh = path.open("rb")
            except FileNotFoundError:
                continue
            with fh:
                for raw in _lines_backwards(fh, self.read_counter):
                    entry = _parse(raw)
                    if entry is not None:
                        out.append(entry)
                        if len(out) >= limit:
                            break
        if len(out) < limit:
            out.extend(reversed(index["kept"]))
        return list(reversed(out[:limit]))

    def entries(self) -> Iterator[Entry]:
        """Every entry, oldest first: those kept by compaction, the sealed segments, the
        open segment, the open burst."""
        index = self._index if self._opened else self._read_index()
        yield from index["kept"]
        for segment in index["segments"]:
            yield from self._parsed(self.segment_dir / segment["name"])
        yield from self._parsed(self.open_path)
        burst = self._burst if self._opened else self._read_burst()
        if burst is not None:
            yield burst

    def _parsed(self, path: Path) -> Iterator[Entry]:
        for raw in _lines_forward(path):
            self.read_counter.bytes += len(raw)
            entry = _parse(raw)
            if entry is not None:
                yield entry

    def summary(self) -> dict[str, Any]:
        """Totals over the whole history, compacted parts included (entries by cause/result)."""
        index = self._index if self._opened else self._read_index()
        if not self._opened:
            self._count_open()
        counts: Counter[str] = Counter({k: int(v) for k, v in index["compacted"]["counts"].items()})
        for segment in index["segments"]:
            counts.update({k: int(v) for k, v in segment["counts"].items()})
        counts.update(self._open_counts)
        burst = self._burst if self._opened else self._read_burst()
        if burst is not None:
            counts[count_key(burst)] += int(burst.get("count", 1))
        firsts = [t for t in [index["compacted"]["first"], *(s["first"] for s in index["segments"]),
                              self._open_first] if t is not None]
        return {"entries": sum(counts.values()), "bytes": self.size(),
                "since": utc_text(min(firsts)) if firsts else "",
                "compacted": int(index["compacted"]["entries"]), "counts": dict(sorted(counts.items()))}

    def size(self) -> int:
        """Bytes on disk: sealed segments, the open one, the index and the burst."""
        total = 0
        for path in [self.open_path, self.index_path, self.burst_path]:
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        index = self._index if self._opened else self._read_index()
        return total + sum(int(s["bytes"]) for s in index["segments"])

    # -- writing -------------------------------------------------------------------------
    def open(self) -> bool:
        """Prepare for recording: trim a line cut short, settle a rotation or compaction a
        crash interrupted, load the open burst and count the open segment. Returns True
        when a cut-short line was trimmed."""
        self.segment_dir.mkdir(mode=0o700, exist_ok=True)
        trimmed = self._trim()
        self._index = self._read_index()
        self._settle_segments()
        self._count_open()
        self._burst = self._read_burst()
        if self._burst is not None and self._last_open_entry() == self._burst:
            # Appended, and the controller died before it removed the burst file.
            self._burst = None
            self.burst_path.unlink(missing_ok=True)
        self._opened = True
        return trimmed

    def _trim(self) -> bool:
        try:
            with self.open_path.open("rb+") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size == 0:
                    return False
                fh.seek(size - 1)
                if fh.read(1) == b"\n":
                    return False
                # Find the last newline, reading backwards a block at a time.
                pos = size
                keep = 0
                while pos > 0:
                    step = min(BLOCK, pos)
                    pos -= step
                    fh.seek(pos)
                    found = fh.read(step).rfind(b"\n")
                    if found >= 0:
                        keep = pos + found + 1
                        break
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())
                return True
        except FileNotFoundError:
            return False

    def _settle_segments(self) -> None:
        through = int(self._index["compacted"]["through"])
        named = {s["name"] for s in self._index["segments"]}
        changed = False
        for path in sorted(self.segment_dir.glob("*.jsonl")):
            match = _SEGMENT_NAME.match(path.name)
            if match is None:
                continue
            if int(match.group(1)) <= through:
                path.unlink(missing_ok=True)  # compacted; the crash came before the unlink
            elif path.name not in named:
                self._index["segments"].append(self._describe(path))  # sealed; not yet indexed
                changed = True
        present = [s for s in self._index["segments"] if (self.segment_dir / s["name"]).exists()]
        if len(present) != len(self._index["segments"]):
            self._index["segments"] = present
            changed = True
        self._index["segments"].sort(key=lambda s: s["name"])
        if changed:
            self._write_index()

    def _describe(self, path: Path) -> dict[str, Any]:
        counts: Counter[str] = Counter()
        first = last = None
        entries = 0
        for entry in self._parsed(path):
            entries += 1
            counts[count_key(entry)] += int(entry.get("count", 1))
            begin, end = entry_time(entry), entry_time(entry, last=True)
            if begin is not None:
                first = begin if first is None else min(first, begin)
            if end is not None:
                last = end if last is None else max(last, end)
        return {"name": path.name, "entries": entries, "bytes": path.stat().st_size, "first": first,
                "last": last, "counts": dict(counts)}

    def _count_open(self) -> None:
        self._open_counts = Counter()
        self._open_first = None
        self._open_bytes = 0
        with contextlib.suppress(FileNotFoundError):
            self._open_bytes = self.open_path.stat().st_size
        for entry in self._parsed(self.open_path):
            self._open_counts[count_key(entry)] += int(entry.get("count", 1))
            when = entry_time(entry)
            if when is not None and (self._open_first is None or when < self._open_first):
                self._open_first = when

    def _last_open_entry(self) -> Entry | None:
        try:
            fh = self.open_path.open("rb")
        except FileNotFoundError:
            return None
        with fh:
            for raw in _lines_backwards(fh, self.read_counter):
                return _parse(raw)
        return None

    def record(self, entry: Entry, *, keep: Collection[str] = (), now: float | None = None) -> None:
        """Record one entry (merged into the open burst when it is an identical drift
        correction), then rotate and compact as the limits say. ``keep``: revisions
        whose latest commit entry must survive compaction."""
        if not self._opened:
            self.open()
        when = entry_time(entry) or now or datetime.now(UTC).timestamp()
        key = burst_key(entry)
        burst = self._burst
        if burst is not None and key is not None and burst_key(burst) == key:
            first = entry_time({"time": burst.get("time")})
            if first is not None and when - first < self.limits.burst_seconds:
                merged = {**entry, "time": burst.get("time"), "last_time": entry.get("time"),
                          "count": int(burst.get("count", 1)) + 1}
                self._write_burst(merged)
                return
        if burst is not None:
            self._append(burst)
            self._burst = None
            self.burst_path.unlink(missing_ok=True)
        if key is not None:
            self._write_burst(entry)
        else:
            self._append(entry)
        self._rotate(now if now is not None else when, keep)

    def _write_burst(self, entry: Entry) -> None:
        write_atomic(self.burst_path, (json.dumps({"entry": entry}, default=str) + "\n").encode())
        self._burst = entry

    def _append(self, entry: Entry) -> None:
        line = _line(entry)
        fd = os.open(self.open_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._open_bytes += len(line)
        self._open_counts[count_key(entry)] += int(entry.get("count", 1))
        when = entry_time(entry)
        if when is not None and (self._open_first is None or when < self._open_first):
            self._open_first = when

    def _rotate(self, now: float, keep: Collection[str]) -> None:
        old = self._open_first is not None and now - self._open_first > self.limits.segment_age
        if self._open_bytes >= self.limits.segment_bytes or (old and self._open_bytes > 0):
            self._seal()
        self.compact(now, keep)

    def _seal(self) -> None:
        segments = self._index["segments"]
        last = max([int(self._index["compacted"]["through"]), *(_seq(s["name"]) for s in segments)])
        target = self.segment_path(last + 1)
        os.rename(self.open_path, target)
        _fsync_dir(self.root)
        _fsync_dir(self.segment_dir)
        segments.append(self._describe(target))
        self._write_index()
        self._open_bytes = 0
        self._open_first = None
        self._open_counts = Counter()

    def compact(self, now: float, keep: Collection[str] = ()) -> int:
        """Drop the oldest sealed segments while over the size or age bound; returns how many."""
        dropped = 0
        segments = self._index["segments"]
        while segments:
            total = self._open_bytes + sum(int(s["bytes"]) for s in segments)
            oldest = segments[0]
            expired = oldest["last"] is not None and now - float(oldest["last"]) > self.limits.max_age
            if total <= self.limits.max_bytes and not expired:
                break
            path = self.segment_dir / oldest["name"]
            kept = [e for e in self._index["kept"] if e.get("revision") in keep]
            kept += [e for e in self._parsed(path)
                     if e.get("cause") == "commit" and e.get("revision") in keep]
            latest: dict[str, Entry] = {}
            for e in kept:
                latest.pop(str(e.get("revision")), None)
                latest[str(e.get("revision"))] = e  # the latest per revision, in order
            compacted = self._index["compacted"]
            counts: Counter[str] = Counter({k: int(v) for k, v in compacted["counts"].items()})
            counts.update({k: int(v) for k, v in oldest["counts"].items()})
            firsts = [t for t in (compacted["first"], oldest["first"]) if t is not None]
            self._index["compacted"] = {
                "entries": int(compacted["entries"]) + int(oldest["entries"]),
                "first": min(firsts) if firsts else None,
                "last": oldest["last"] if oldest["last"] is not None else compacted["last"],
                "counts": dict(counts),
                "through": _seq(oldest["name"]),
            }
            self._index["kept"] = list(latest.values())
            segments.pop(0)
            self._write_index()
            path.unlink(missing_ok=True)
            dropped += 1
        return dropped

    def _write_index(self) -> None:
        data = json.dumps(self._index, separators=(",", ":"), default=str) + "\n"
        write_atomic(self.index_path, data.encode())


def _seq(name: str) -> int:
    match = _SEGMENT_NAME.match(name)
    return int(match.group(1)) if match else 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
