"""The state directory's files: status replaced atomically, history appended one JSON
line at a time, a line cut short by a crash dropped and trimmed, one controller per
directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.controller.state import (
    ControllerStatus,
    ErrorRecord,
    InFlight,
    Revision,
    StateError,
    StateStore,
    write_atomic,
)


def test_status_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.prepare()
    status = ControllerStatus(repo="/srv/gitops", branch="main", path="specs",
                              last_applied=Revision("a" * 40, at="2026-01-01T00:00:00Z", summary={"add": 1}),
                              last_error=ErrorRecord("b" * 40, "2026-01-01T00:01:00Z", "spec",
                                                     "specs/x.yaml:3:5: bad",
                                                     [{"file": "specs/x.yaml", "line": 3}]),
                              in_flight=InFlight("c" * 40, "commit", "2026-01-01T00:02:00Z", 2))
    status.quarantine("b" * 40, "spec: bad")
    store.write_status(status)
    again = store.read_status()
    assert again == status
    assert oct(store.status_path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(store.status_path.read_text())["format"] == 1


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    write_atomic(target, b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["status.json"]


def test_history_drops_and_trims_a_line_cut_short(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.append_history({"revision": "1", "result": "applied"})
    store.append_history({"revision": "2", "result": "refused"})
    with store.history_path.open("ab") as fh:
        fh.write(b'{"revision": "3", "res')  # what a SIGKILL mid-write can leave
    assert [e["revision"] for e in store.read_history()] == ["1", "2"]
    assert store.repair_history()
    assert store.history_path.read_bytes().endswith(b"}\n")
    store.append_history({"revision": "4"})
    assert [e["revision"] for e in store.read_history()] == ["1", "2", "4"]
    assert [e["revision"] for e in store.read_history(limit=1)] == ["4"]
    assert not store.repair_history()


def test_one_controller_per_state_directory(tmp_path: Path) -> None:
    first, second = StateStore(tmp_path), StateStore(tmp_path)
    first.acquire()
    try:
        with pytest.raises(StateError, match="another controller is running"):
            second.acquire()
    finally:
        first.release()
    second.acquire()
    second.release()
