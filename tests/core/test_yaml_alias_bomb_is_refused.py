"""A "billion laughs" spec (aliases of aliases, tiny as text, astronomically large as
data) is refused with a file:line:col error before anything is expanded.

Before the fix the loader expanded every alias into a new Python object: ten levels
of ten aliases never finished (the timeout below fails it) and ate memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.specs import DIAGNOSTIC, LOCAL_HOSTS, errors, validate, write_files


def laughs(levels: int = 10, width: int = 10) -> str:
    lines = ["vars:", "  x0: ok", "lol:"]
    lines.append("  l0: &l0 [" + ", ".join(["lol"] * width) + "]")
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(30)
def test_billion_laughs_is_refused_at_the_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS, "bomb.yaml": laughs()})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    [line] = errors(lines)
    match = DIAGNOSTIC.match(line)
    assert match is not None
    assert match["file"] == "bomb.yaml"
    # l4 stands for 111,111 values: the document passes 250,000 at the second *l4 of l5.
    assert (match["line"], match["col"]) == ("9", "17"), line
    assert "alias *l4 expands the document past 250,000 values" in line


@pytest.mark.timeout(30)
def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS,
                                           "loop.yaml": "vars:\n  a: &me {b: *me}\n"})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    assert errors(lines) == ["loop.yaml:2:14: YAML refused: alias *me refers to a node that contains it"]


def test_modest_aliases_still_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    text = ("defaults: &defaults {owner: root, group: root, mode: '0640'}\n"
            "files:\n"
            "  - {<<: *defaults, path: /srv/a, content: a}\n"
            "  - {<<: *defaults, path: /srv/b, content: b}\n")
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS, "files.yaml": text})
    code, lines = validate(spec, monkeypatch, capsys)
    # Only the unknown top-level key is wrong: the merge keys expanded as YAML says.
    assert code == 1
    assert [line.split(": ", 2)[1] for line in errors(lines)] == ["defaults"]
