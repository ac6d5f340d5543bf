"""Every input is bounded in time and memory: a huge file is refused before it is
read, a huge list of mistakes gives at most 500 diagnostics and a line saying how
many were left out, and variables cannot multiply a spec into gigabytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.diagnostics import MAX_DIAGNOSTICS
from tests.support.specs import LOCAL_HOSTS, errors, validate, write_files


@pytest.mark.timeout(60)
def test_a_file_over_4_mib_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS,
                                           "big.yaml": "vars:\n  blob: " + "x" * (5 << 20) + "\n"})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    assert errors(lines) == ["big.yaml:1:1: the file is 5.0 MiB; at most 4 MiB per file is read"]


@pytest.mark.timeout(120)
def test_a_huge_list_of_mistakes_gives_bounded_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS,
                                           "list.yaml": "files:\n" + "  - 1\n" * 20_000})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    assert len(errors(lines)) == MAX_DIAGNOSTICS
    assert f"19500 more diagnostic(s) left out; the first {MAX_DIAGNOSTICS} are shown" in lines


@pytest.mark.timeout(60)
def test_variables_cannot_multiply_a_string_into_gigabytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # 1 MiB variable, used 4,096 times in one string: 4 GiB if substituted.
    text = ("vars:\n  mb: " + "y" * (1 << 20) + "\nfiles:\n  - path: /srv/a\n    content: \""
            + "${mb}" * 4096 + "\"\n")
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS, "files.yaml": text})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    assert errors(lines) == ["files.yaml:5:5: files[0].content: substituting variables here would build more "
                             "than 16,777,216 characters (or 67,108,864 in all)"]
