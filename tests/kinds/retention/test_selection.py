"""Which files a retention rule selects and how its delete re-checks them: the real
rendered script, run with the real ``sh``/``find``/``awk`` of this machine on a
temporary directory (pure logic, no host needed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from reconciler_providers.retention.provider import (
    RetentionProvider,
    RetentionRule,
    parse_duration,
    parse_size,
    render_script,
)

DAY = 86400
NOW = 1_800_000_000  # a fixed reference time: selection is as of NOW, not the test's clock


def rule(root: Path, **limits: Any) -> RetentionRule:
    return RetentionRule.model_validate({"name": "t", "path": str(root), **limits})


def make(root: Path, name: str, age_days: float, size: int = 10) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = NOW - int(age_days * DAY)
    os.utime(path, (stamp, stamp))
    return path


def select(r: RetentionRule) -> list[tuple[str, str]]:
    """(path relative to the rule's directory, limit) of each selected file, in output order."""
    proc = subprocess.run(["sh", "-c", render_script(r), "retention-t", "select", str(NOW)],
                          capture_output=True, text=True, check=True)
    out = []
    for line in proc.stdout.splitlines():
        tag, _mtime, _size, limit, path = line.split("\t", 4)
        assert tag == "over"
        out.append((os.path.relpath(path, r.path), limit))
    return out


def test_max_age_selects_only_older_files_matching_the_glob(tmp_path: Path) -> None:
    for age in (1, 13, 15, 30):
        make(tmp_path, f"app-{age}.log", age)
    make(tmp_path, "old.txt", 99)
    make(tmp_path, "sub/deep.log", 99)
    assert select(rule(tmp_path, glob="*.log", max_age="14d")) == [("app-15.log", "max_age"),
                                                                   ("app-30.log", "max_age")]


def test_max_count_keeps_the_newest(tmp_path: Path) -> None:
    for age in (1, 2, 3, 4):
        make(tmp_path, f"b{age}.gz", age)
    assert select(rule(tmp_path, max_count=2)) == [("b3.gz", "max_count"), ("b4.gz", "max_count")]


def test_max_total_size_counts_from_the_newest(tmp_path: Path) -> None:
    make(tmp_path, "new", 1, size=600)
    make(tmp_path, "mid", 2, size=424)
    make(tmp_path, "old", 3, size=1)  # small, but the newer ones already fill the budget
    assert select(rule(tmp_path, max_total_size="1K")) == [("old", "max_total_size")]
    assert select(rule(tmp_path, max_total_size="999")) == [("mid", "max_total_size"),
                                                            ("old", "max_total_size")]


def test_recursive_descends_but_never_through_symlinks(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    make(root, "a.log", 20)
    make(root, "sub/b.log", 20)
    make(outside, "victim.log", 20)
    (root / "link-dir").symlink_to(outside)
    (root / "link-file.log").symlink_to(outside / "victim.log")
    (root / "dir.log").mkdir()
    os.utime(root / "dir.log", (NOW - 20 * DAY, NOW - 20 * DAY))
    assert select(rule(root, max_age="1d")) == [("a.log", "max_age")]
    assert sorted(select(rule(root, max_age="1d", recursive=True))) == [("a.log", "max_age"),
                                                                        ("sub/b.log", "max_age")]


def test_files_newer_than_the_reference_time_are_not_judged(tmp_path: Path) -> None:
    make(tmp_path, "later", -1)  # modified after NOW
    make(tmp_path, "a", 1)
    make(tmp_path, "b", 2)
    assert select(rule(tmp_path, max_count=1)) == [("b", "max_count")]


def test_a_symlinked_directory_is_a_problem_not_followed(tmp_path: Path) -> None:
    make(tmp_path / "real", "x.log", 30)
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    r = rule(tmp_path / "alias", max_age="1d")
    proc = subprocess.run(["sh", "-c", render_script(r), "retention-t", "select", str(NOW)],
                          capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("problem\t") and "symbolic link" in proc.stdout
    assert select(rule(tmp_path / "missing", max_age="1d")) == []


def test_delete_rechecks_each_line(tmp_path: Path) -> None:
    root = tmp_path / "root"
    keep_out = make(tmp_path / "outside", "o.log", 30)
    gone = make(root, "gone.log", 30)
    changed = make(root, "changed.log", 30)
    other = make(root, "other.txt", 30)
    ok = make(root, "ok.log", 30)
    lines = [ok, gone, changed, other, keep_out]
    listing = "".join(f"{int(p.stat().st_mtime)}\t{p.stat().st_size}\t{p}\n" for p in lines)
    gone.unlink()
    changed.write_bytes(b"appended since the plan")
    r = rule(root, glob="*.log", max_age="1d")
    proc = subprocess.run(["sh", "-c", render_script(r), "retention-t", "delete"], input=listing,
                          capture_output=True, text=True, check=True)
    assert sorted(proc.stdout.splitlines()) == sorted([
        f"deleted\t{ok}",
        f"skipped\t{gone}\tno longer a regular file",
        f"skipped\t{changed}\tchanged since it was selected",
        f"skipped\t{other}\tdoes not match *.log",
        f"skipped\t{keep_out}\toutside {root}",
    ])
    assert not ok.exists() and changed.exists() and other.exists() and keep_out.exists()


@pytest.mark.parametrize(("text", "seconds"),
                         [("14d", 14 * DAY), ("12h", 43200), ("90s", 90), ("2w", 14 * DAY)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "size"), [("1G", 1 << 30), ("500M", 500 << 20), ("1.5K", 1536), ("10", 10),
                                            ("2GiB", 2 << 30), ("1gb", 1 << 30)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["14", "0d", "1y", "-1d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_a_rule_needs_a_limit(tmp_path: Path) -> None:
    issues = RetentionProvider().validate(rule(tmp_path))
    assert [i.message for i in issues] == ["set at least one limit: max_age, max_count or max_total_size"]


def test_many_files_are_ordered_by_mtime_not_name(tmp_path: Path) -> None:
    for i in range(2000):
        make(tmp_path, f"f{(i * 7919) % 2000:04}.log", i / 100)  # names shuffled against age
    selected = select(rule(tmp_path, max_count=1000))
    assert len(selected) == 1000
    assert selected[0] == (f"f{(1000 * 7919) % 2000:04}.log", "max_count")
    assert selected[-1] == (f"f{(1999 * 7919) % 2000:04}.log", "max_count")
