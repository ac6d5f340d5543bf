"""A template that is not UTF-8 is a validation error at the spec's ``template:``
line, naming the template and the line and column of the first bad byte. Before the
fix validation passed and the plan failed with a UnicodeDecodeError."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.specs import LOCAL_HOSTS, errors, validate, write_files


def test_non_utf8_template_names_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_files(tmp_path / "spec", {
        "hosts.yaml": LOCAL_HOSTS,
        "files.yaml": "files:\n  - path: /srv/page\n    template: page.tpl\n",
        "page.tpl": b"line one\nline two \xe9t\xe9\n",
    })
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    assert errors(lines) == ["files.yaml:3:5: files[0].template: template 'page.tpl' is not UTF-8 text: "
                             "byte 0xe9 at line 2, column 10"]


def test_non_utf8_spec_file_names_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS,
                                           "files.yaml": b"files:\n  - path: /srv/\xff\n"})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    assert errors(lines) == ["files.yaml:2:16: cannot read: the file is not UTF-8 text: byte 0xff at line 2, "
                             "column 16"]
