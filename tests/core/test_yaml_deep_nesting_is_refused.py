"""Deep nesting gives a file:line:col error, never a RecursionError.

libyaml stops at 1,000 levels, and the loader then re-parsed with PyYAML's own
composer for its messages, which recursed until Python gave up: the CLI printed a
traceback and the controller retried the commit forever (``KeyError: 'result'``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.specs import LOCAL_HOSTS, errors, validate, write_files


@pytest.mark.parametrize("depth", [65, 2_000, 200_000])
def test_flow_nesting_is_refused_with_a_position(depth: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    text = "files:\n  - path: /srv/a\n    content: " + "[" * depth + "]" * depth + "\n"
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS, "deep.yaml": text})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    # mapping, list, item: 3 levels; the 62nd "[" (column 14 + 61) opens the 65th.
    assert errors(lines) == ["deep.yaml:3:75: YAML refused: nested more than 64 levels deep"]


def test_block_nesting_is_refused_with_a_position(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(100)) + "  " * 100 + "end\n"
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS, "deep.yaml": text})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    assert errors(lines) == ["deep.yaml:65:129: YAML refused: nested more than 64 levels deep"]


def test_sixty_four_levels_are_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    # A mapping (level 1) holding 63 nested lists: deep but allowed; only the key is wrong.
    text = "odd: " + "[" * 63 + "]" * 63 + "\n"
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS, "deep.yaml": text})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    assert [line.split(": ", 2)[1] for line in errors(lines)] == ["odd"]
